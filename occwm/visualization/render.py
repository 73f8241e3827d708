"""Headless rendering of occupancy grids with open3d.

Geometry comes from the pure functions of :mod:`occwm.visualization.geometry`;
:class:`OccRenderer` draws it without a display. Backends, tried in order by
``backend='auto'``:

1. ``'legacy'``: ``open3d.visualization.Visualizer(visible=False)`` +
   ``capture_screen_float_buffer``; with no display open3d falls back to an EGL
   surfaceless context (Mesa ``libEGL``).
2. ``'filament'``: ``open3d.visualization.rendering.OffscreenRenderer`` (Filament on
   EGL / Vulkan, e.g. Mesa llvmpipe; needs ``libvulkan1 mesa-vulkan-drivers``). Same
   pixels, but on llvmpipe it is erratic: 0.1 s to over 10 s per frame for a full
   40k-voxel grid (legacy: about 0.05 s).

Shading is baked into the vertex colours (top faces carry the exact Occ3D palette
colour, side and bottom faces are darker) and lighting is off, so both backends give
the same pixels and a BEV image shows exact palette colours.

Frames: everything is in the ego frame of the grid (x forward, y left, z up, metres).
In the ``'bev'`` view the image looks straight down with +x (forward) pointing up and
+y (left) pointing left.
"""
from __future__ import annotations

import atexit
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.runtime import require_open3d
from occwm.visualization.geometry import (BACKGROUND, ego_box_mesh, error_to_mesh,
                                          occupancy_to_mesh, trajectory_in_own_frame,
                                          trajectory_lineset)

# Camera presets: look-at in the ego frame and vertical field of view in degrees. For
# a panel taller than wide the camera moves back by 1 / aspect so the same ground
# width stays in view.
VIEWS: Dict[str, dict] = {
    # straight down from high up (nearly orthographic); +x points up in the image
    'bev': dict(target=(0.0, 0.0, 0.0), eye=(0.0, 0.0, 240.0), up=(1.0, 0.0, 0.0), fov=20.0),
    # behind and above the ego, looking forward
    'chase': dict(target=(12.0, 0.0, 0.0), eye=(-22.0, 0.0, 24.0), up=(0.0, 0.0, 1.0), fov=60.0),
    # three-quarter view from behind-right, high; see orbit_camera for other azimuths
    'orbit': None,  # filled below
}
ORBIT_AZIMUTH = 215.0  # degrees, 180 = straight behind the ego

BACKEND_ENV = 'OCCWM_RENDER_BACKEND'  # picks the backend of OccRenderer(backend=None)
BACKEND_NOTES = {
    'legacy': 'open3d legacy Visualizer(visible=False) + capture_screen_float_buffer '
              '(EGL headless without a display)',
    'filament': 'open3d OffscreenRenderer (Filament on EGL / Vulkan)',
}
INSTALL_HINT = ('open3d could not create a headless rendering context. Install Mesa EGL / '
                'Vulkan drivers (Debian/Ubuntu: apt-get install -y libegl1 libgl1 libgomp1 '
                'libusb-1.0-0 libvulkan1 mesa-vulkan-drivers), and unset DISPLAY if it points '
                'to no running X server.')


def ensure_runtime_dir() -> str:
    """A valid ``XDG_RUNTIME_DIR`` (a folder owned by this user, mode 0700): the
    current one, else a private ``occwm-runtime-<uid>`` folder in the temp dir, which is
    then exported. Without one, open3d's windowing layer prints "error:
    XDG_RUNTIME_DIR is invalid or not set in the environment." on every headless
    render, although nothing fails.

    Returns:
        The folder in use.
    """
    import stat
    import tempfile

    def valid(path: str) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
                and stat.S_IMODE(st.st_mode) == 0o700)

    current = os.environ.get('XDG_RUNTIME_DIR', '')
    if (current and valid(current)) or not hasattr(os, 'getuid'):  # not POSIX: no such dir
        return current
    path = os.path.join(tempfile.gettempdir(), f'occwm-runtime-{os.getuid()}')
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        pass
    if not valid(path):  # taken by someone else, or wrong mode: a fresh one
        path = tempfile.mkdtemp(prefix='occwm-runtime-')
    os.environ['XDG_RUNTIME_DIR'] = path
    return path


# Hidden legacy windows not in use, by (width, height), destroyed at exit.
_IDLE_WINDOWS: Dict[Tuple[int, int], list] = {}


def _destroy_idle_windows() -> None:
    for windows in _IDLE_WINDOWS.values():
        for vis in windows:
            vis.destroy_window()
    _IDLE_WINDOWS.clear()


def orbit_camera(azimuth: float = ORBIT_AZIMUTH, elevation: float = 38.0, radius: float = 78.0,
                 fov: float = 50.0, target: Sequence[float] = (0.0, 0.0, 0.0)) -> dict:
    """A camera on a circle around ``target`` looking at it (ego frame).

    Args:
        azimuth: degrees counter-clockwise from +x (forward); 180 is behind the ego.
        elevation: degrees above the ground plane.
        radius: distance to the target, metres.
        fov: vertical field of view, degrees.

    Returns:
        ``dict(target, eye, up, fov)`` as in :data:`VIEWS`.
    """
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    offset = radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return dict(target=tuple(target), eye=tuple(np.asarray(target) + offset),
                up=(0.0, 0.0, 1.0), fov=fov)


VIEWS['orbit'] = orbit_camera()


def look_at_extrinsic(eye: Sequence[float], target: Sequence[float], up: Sequence[float]
                      ) -> np.ndarray:
    """``(4, 4)`` world-to-camera matrix (OpenCV camera: x right, y down, z forward)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd])  # (3, 3) rows: camera axes in world
    ext = np.eye(4)
    ext[:3, :3], ext[:3, 3] = rot, -rot @ eye
    return ext


def resolve_camera(view: Union[str, dict], aspect: float = 1.0) -> dict:
    """A camera dict from a preset name of :data:`VIEWS` or a camera dict, moved back by
    ``1 / aspect`` when the image is taller than wide (``aspect = width / height``).

    Raises:
        ValueError: an unknown preset name.
    """
    if isinstance(view, str):
        if view not in VIEWS:
            raise ValueError(f'view must be one of {sorted(VIEWS)}, got {view!r}')
        view = VIEWS[view]
    cam = dict(view)
    if aspect < 1.0:
        target, eye = np.asarray(cam['target'], float), np.asarray(cam['eye'], float)
        cam['eye'] = tuple(target + (eye - target) / aspect)
    return cam


class OccRenderer:
    """A headless open3d renderer of fixed size; reuse it for many frames.

    Args:
        width, height: image size in pixels.
        backend: ``'auto'`` (legacy, then filament), ``'legacy'`` or ``'filament'``;
            ``None``: ``$OCCWM_RENDER_BACKEND`` or ``'auto'``.

    Raises:
        RuntimeError: no backend could create a headless context (says what to install).

    Use as a context manager, or call :meth:`close`. ``self.backend`` names the backend
    in use and :meth:`describe` says what it is.
    """

    def __init__(self, width: int = 640, height: int = 480, backend: Optional[str] = None
                 ) -> None:
        o3d = require_open3d()
        ensure_runtime_dir()
        backend = backend or os.environ.get(BACKEND_ENV) or 'auto'
        self.width, self.height = int(width), int(height)
        self._vis = self._offscreen = None
        order = {'auto': ('legacy', 'filament'), 'legacy': ('legacy',),
                 'filament': ('filament',)}.get(backend)
        if order is None:
            raise ValueError(f"backend must be 'auto', 'legacy' or 'filament', got {backend!r}")
        errors = []
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            for name in order:
                try:
                    getattr(self, f'_start_{name}')()
                    self.backend = name
                    return
                except Exception as err:  # try the next backend
                    errors.append(f'{name}: {err}')
        raise RuntimeError(f'{INSTALL_HINT} Tried: {"; ".join(errors)}')

    def describe(self) -> str:
        """One line naming the backend in use, e.g. for a tool's log."""
        return f"open3d backend '{self.backend}': {BACKEND_NOTES[self.backend]}"

    def _start_legacy(self) -> None:
        o3d = require_open3d()
        idle = _IDLE_WINDOWS.get((self.width, self.height))
        if idle:
            self._vis = idle.pop()
            return
        vis = o3d.visualization.Visualizer()
        if not vis.create_window(visible=False, width=self.width, height=self.height):
            raise RuntimeError('Visualizer.create_window(visible=False) failed')
        if not _IDLE_WINDOWS:
            atexit.register(_destroy_idle_windows)
        _IDLE_WINDOWS.setdefault((self.width, self.height), [])
        opt = vis.get_render_option()
        opt.light_on = False  # shading is baked into vertex colours
        opt.background_color = np.asarray(BACKGROUND, dtype=np.float64) / 255.0
        opt.mesh_show_back_face = False
        opt.line_width = 3.0
        self._vis = vis

    def _start_filament(self) -> None:
        from open3d.visualization import rendering
        r = rendering.OffscreenRenderer(self.width, self.height)
        r.scene.set_background(list(np.asarray(BACKGROUND) / 255.0) + [1.0])
        r.scene.view.set_post_processing(False)  # exact unlit colours
        self._offscreen = r

    def render(self, geometries: Sequence, view: Union[str, dict] = 'bev') -> np.ndarray:
        """Draw open3d geometries from a camera preset of :data:`VIEWS` or a camera dict
        (``target``, ``eye``, ``up`` in metres, ego frame; ``fov`` vertical, degrees).

        Returns:
            ``(H, W, 3) uint8`` RGB image.
        """
        cam = resolve_camera(view, self.width / self.height)
        geometries = [g for g in geometries if not g.is_empty()]
        if self._vis is not None:
            return self._render_legacy(geometries, cam)
        if self._offscreen is not None:
            return self._render_filament(geometries, cam)
        raise RuntimeError('OccRenderer is closed')

    def _render_legacy(self, geometries, cam: dict) -> np.ndarray:
        o3d = require_open3d()
        vis = self._vis
        vis.clear_geometries()
        for g in geometries:
            vis.add_geometry(g, reset_bounding_box=True)
        ctrl = vis.get_view_control()
        params = ctrl.convert_to_pinhole_camera_parameters()
        f = (self.height / 2) / np.tan(np.deg2rad(cam['fov']) / 2)  # vertical fov -> focal, px
        params.intrinsic = o3d.camera.PinholeCameraIntrinsic(
            self.width, self.height, f, f, self.width / 2 - 0.5, self.height / 2 - 0.5)
        params.extrinsic = look_at_extrinsic(cam['eye'], cam['target'], cam['up'])
        ctrl.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True)
        buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))  # (H, W, 3) in [0, 1]
        return (np.clip(buf, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def _render_filament(self, geometries, cam: dict) -> np.ndarray:
        o3d = require_open3d()
        from open3d.visualization import rendering
        scene = self._offscreen.scene
        scene.clear_geometry()
        for i, g in enumerate(geometries):
            mat = rendering.MaterialRecord()
            if isinstance(g, o3d.geometry.LineSet):
                mat.shader, mat.line_width = 'unlitLine', 3.0
            else:
                mat.shader = 'defaultUnlit'
            scene.add_geometry(f'g{i}', g, mat)
        camera = scene.camera
        dist = float(np.linalg.norm(np.subtract(cam['eye'], cam['target'])))
        camera.set_projection(cam['fov'], self.width / self.height, 0.5, dist + 200.0,
                              rendering.Camera.FovType.Vertical)
        camera.look_at(cam['target'], cam['eye'], cam['up'])
        return np.asarray(self._offscreen.render_to_image())[..., :3].astype(np.uint8)

    def close(self) -> None:
        """Release the rendering context. A legacy window is kept hidden for the next
        renderer of its size: destroying one open3d window while another lives breaks
        the other's OpenGL context."""
        if self._vis is not None:
            self._vis.clear_geometries()
            _IDLE_WINDOWS.setdefault((self.width, self.height), []).append(self._vis)
        self._vis = self._offscreen = None

    def __enter__(self) -> 'OccRenderer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scene_geometries(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                     traj: Optional[np.ndarray] = None, show_ego: bool = True,
                     mask: Optional[np.ndarray] = None, traj_index: Optional[int] = None,
                     errors: bool = False) -> list:
    """The geometries of one panel: voxels, the ego box and the trajectory.

    Args:
        occ: ``(X, Y, Z)`` labels, or error codes when ``errors`` (see
            ``geometry.error_codes``).
        traj: optional ``(T, 3)`` waypoints ``x, y, yaw``; in the frame of ``occ``
            unless ``traj_index`` is given, in which case ``traj`` is in any ego frame
            and is re-expressed in the frame of its waypoint ``traj_index`` (the pose of
            this panel's frame), with the part before it drawn grey.
        mask: optional ``(X, Y, Z)`` visibility mask; 0 voxels are dimmed.
    """
    if errors:
        geoms = [error_to_mesh(occ, grid)]
    else:
        geoms = [occupancy_to_mesh(occ, grid, dim_mask=mask)]
    if show_ego:
        geoms.append(ego_box_mesh())
    if traj is not None and len(traj):
        if traj_index is not None:
            traj = trajectory_in_own_frame(traj, traj_index)
        geoms.append(trajectory_lineset(traj, current=traj_index))
    return geoms


def render_occupancy(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID, width: int = 640,
                     height: int = 480, view: Union[str, dict] = 'bev',
                     traj: Optional[np.ndarray] = None, show_ego: bool = True,
                     renderer: Optional[OccRenderer] = None, mask: Optional[np.ndarray] = None,
                     traj_index: Optional[int] = None, errors: bool = False) -> np.ndarray:
    """Render one occupancy grid headlessly.

    Args:
        occ: ``(X, Y, Z)`` integer labels, ``grid.shape`` (error codes with ``errors``).
        grid: the voxel grid.
        width, height: image size in pixels (ignored when ``renderer`` is given).
        view: ``'bev'`` (top-down, +x up), ``'chase'`` (behind and above the ego),
            ``'orbit'`` (three-quarter view) or a camera dict (:func:`orbit_camera`).
        traj: optional ``(T, 3)`` ego waypoints ``x, y, yaw`` (see
            :func:`scene_geometries` for ``traj_index``).
        show_ego: draw the ego box at the origin.
        renderer: an open :class:`OccRenderer` to reuse (faster for many frames).
        mask: optional ``(X, Y, Z)`` camera-visibility mask; 0 voxels are dimmed.

    Returns:
        ``(H, W, 3) uint8`` RGB image on a white background.
    """
    geoms = scene_geometries(occ, grid, traj, show_ego, mask, traj_index, errors)
    if renderer is not None:
        return renderer.render(geoms, view)
    with OccRenderer(width, height) as r:
        return r.render(geoms, view)

