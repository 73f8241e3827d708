"""Pictures of occupancy: pure geometry builders (``geometry``), headless open3d
rendering (``render``), 2D layout (``canvas``), the figures of a forecast window
(``figures``: an ``occwm.window.OccWindow`` and forecasts of its future), image / video
writers (``media``), mesh export (``export``) and an interactive viewer
(``interactive``)."""
from occwm.visualization.figures import (frame_image, orbit_video, render_comparison,
                                         window_image, window_video)
from occwm.visualization.geometry import (ego_box_mesh, error_codes, error_to_mesh,
                                          occupancy_to_mesh, trajectory_lineset)
from occwm.visualization.media import save_image, write_video
from occwm.visualization.render import (VIEWS, OccRenderer, orbit_camera, render_occupancy,
                                        scene_geometries)

__all__ = ['VIEWS', 'OccRenderer', 'occupancy_to_mesh', 'ego_box_mesh', 'trajectory_lineset',
           'error_codes', 'error_to_mesh', 'render_occupancy', 'scene_geometries',
           'orbit_camera', 'render_comparison', 'window_image', 'window_video',
           'orbit_video', 'frame_image', 'save_image', 'write_video']
