"""Info pkls: the frame_info fields occwm writes (``fields``), readers of every layout
in use (``layouts``) and the nuScenes-schema converter (``nuscenes``)."""
