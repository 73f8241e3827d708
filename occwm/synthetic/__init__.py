"""The procedural synthetic driving world (``world``) and its scenes written in the
Occ3D layout (``scenes``): the quickstart and test data."""
