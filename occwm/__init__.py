"""occwm: a 4D occupancy world model for autonomous driving."""
__version__ = '0.1.0'
