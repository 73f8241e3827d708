"""An interactive open3d window that steps through the frames of a window with keys.

Keys: right arrow or N: next frame; left arrow or P: previous; Q (or Esc): quit. The
mouse rotates / pans / zooms as in any open3d window. Several panels of a time step
(ground truth, forecast, errors) are laid out side by side in 3D, 90 m apart.

Needs a display; :func:`has_display` tells whether one exists (tools fall back to
writing files when it does not).
"""
from __future__ import annotations

import os
import sys
from typing import Callable, List, Sequence, Tuple

import numpy as np

from occwm.runtime import require_open3d

# GLFW key codes used by open3d's VisualizerWithKeyCallback.
KEY_RIGHT, KEY_LEFT = 262, 263
KEY_N, KEY_P, KEY_Q = ord('N'), ord('P'), ord('Q')
PANEL_SPACING = 90.0  # metres between panels (the grid is 80 m wide)


def has_display() -> bool:
    """Whether a window can be opened: always on macOS / Windows, on Linux when
    ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set."""
    if sys.platform in ('darwin', 'win32'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def next_index(current: int, key: int, n: int) -> int:
    """The frame shown after pressing ``key`` on frame ``current`` of ``n`` (clamped)."""
    if key in (KEY_RIGHT, KEY_N):
        return min(current + 1, n - 1)
    if key in (KEY_LEFT, KEY_P):
        return max(current - 1, 0)
    return current


def grid_outline(grid, color: Sequence[int] = (150, 150, 150)):
    """The ground rectangle of ``grid`` (an ``OccGrid``) as a grey ``LineSet`` at its
    lowest z, ego frame; it marks a panel's extent and keeps every step's bounds equal."""
    o3d = require_open3d()
    x0, y0, _, x1, y1, _ = grid.point_cloud_range
    z0 = float(grid.origin[2])
    pts = np.array([[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0]])  # (4, 3)
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(pts),
                              o3d.utility.Vector2iVector([[0, 1], [1, 2], [2, 3], [3, 0]]))
    ls.colors = o3d.utility.Vector3dVector(np.tile(np.asarray(color) / 255.0, (4, 1)))
    return ls


def side_by_side(panels: Sequence[list], grid=None) -> list:
    """Geometries of several panels, panel ``i`` moved ``i * PANEL_SPACING`` metres to
    the right (-y), each with the outline of ``grid`` when given; the input geometries
    are not modified."""
    import copy
    out = []
    for i, geoms in enumerate(panels):
        for g in list(geoms) + ([grid_outline(grid)] if grid is not None else []):
            g = copy.deepcopy(g)
            g.translate(np.array([0.0, -PANEL_SPACING * i, 0.0]))
            out.append(g)
    return out


def show_timeline(step: Callable[[int], list], titles: Sequence[str],
                  size: Tuple[int, int] = (1280, 720)) -> None:
    """Open a window that steps through ``len(titles)`` time steps.

    Args:
        step: ``step(k)`` returns the open3d geometries of time step ``k`` (called once
            per step, then cached).
        titles: one line per step, printed when the step is shown.
        size: window ``(width, height)``.

    Raises:
        RuntimeError: no window could be created (no display).
    """
    o3d = require_open3d()
    n = len(titles)
    cache: dict = {}
    state = dict(k=0)
    vis = o3d.visualization.VisualizerWithKeyCallback()
    if not vis.create_window('occwm: right/N next, left/P previous, Q quit', *size):
        raise RuntimeError('open3d could not open a window (no display?)')
    opt = vis.get_render_option()
    opt.light_on = False  # colours carry baked shading
    opt.mesh_show_back_face = False

    def show(k: int, reset: bool) -> None:
        if k not in cache:
            cache[k] = step(k)
        vis.clear_geometries()
        for g in cache[k]:
            vis.add_geometry(g, reset_bounding_box=reset)
        print(f'[{k + 1}/{n}] {titles[k]}', flush=True)

    def on_key(key: int) -> Callable:
        def callback(v) -> bool:
            k = next_index(state['k'], key, n)
            if k != state['k']:
                state['k'] = k
                show(k, reset=False)
            return True
        return callback

    for key in (KEY_RIGHT, KEY_N, KEY_LEFT, KEY_P):
        vis.register_key_callback(key, on_key(key))
    vis.register_key_callback(KEY_Q, lambda v: v.close() or False)
    show(0, reset=True)
    ctrl = vis.get_view_control()
    points = np.concatenate([np.asarray(g.get_axis_aligned_bounding_box().get_box_points())
                             for g in cache[0] if not g.is_empty()])  # (8G, 3)
    ctrl.set_lookat((points.min(0) + points.max(0)) / 2)
    ctrl.set_front([-0.7, 0.0, 0.7])
    ctrl.set_up([0.0, 0.0, 1.0])
    ctrl.set_zoom(0.6)
    print('keys: right / N next frame, left / P previous, Q quit', flush=True)
    vis.run()
    vis.destroy_window()


def timeline_steps(win, preds: Sequence = (), errors: bool = True, semantic: bool = True,
                   grid=None, pred_name: str = 'Forecast'
                   ) -> Tuple[Callable[[int], list], List[str]]:
    """``(step, titles)`` for :func:`show_timeline` from an ``OccWindow`` and forecasts
    ``(T_f, X, Y, Z)`` of its future: per time step the ground truth, the forecast
    sample(s) and the errors side by side (what :func:`figures.window_video` shows)."""
    from occwm.grid import DEFAULT_GRID
    from occwm.visualization.figures import _Frames
    from occwm.visualization.render import scene_geometries
    grid = grid or DEFAULT_GRID
    frames = _Frames(win, preds, pred_name)
    rows = frames.rows(errors)

    def step(k: int) -> list:
        row = frames.traj_row(k)
        panels = []
        for kind, _, s in rows:
            occ, mask, err, _ = frames.content(kind, s, k, grid, semantic)
            traj = frames.traj if row is not None and not err else None
            panels.append([] if occ is None else scene_geometries(
                occ, grid, traj, True, mask, row, err))
        return side_by_side(panels, grid)

    names = ' | '.join(name for _, name, _ in rows)
    titles = [f't = {frames.time_label(k)}: {names} (left to right)' for k in range(len(frames))]
    return step, titles
