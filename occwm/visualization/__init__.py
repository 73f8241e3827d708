"""Headless pictures of occupancy: pure geometry builders and open3d rendering."""
from occwm.visualization.render import (VIEWS, OccRenderer, ego_box_mesh, occupancy_to_mesh,
                                        render_comparison, render_occupancy,
                                        trajectory_lineset)

__all__ = ['VIEWS', 'OccRenderer', 'occupancy_to_mesh', 'ego_box_mesh', 'trajectory_lineset',
           'render_occupancy', 'render_comparison']
