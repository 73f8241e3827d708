"""Headless rendering of occupancy grids with open3d.

Geometry is built by pure numpy functions (:func:`occupancy_to_mesh`,
:func:`ego_box_mesh`, :func:`trajectory_lineset`); :class:`OccRenderer` draws it
without a display. Backends, tried in order by ``backend='auto'``:

1. ``'legacy'``: ``open3d.visualization.Visualizer(visible=False)`` +
   ``capture_screen_float_buffer``; with no display open3d falls back to an EGL
   surfaceless context (Mesa ``libEGL``).
2. ``'filament'``: ``open3d.visualization.rendering.OffscreenRenderer`` (Filament on
   EGL / Vulkan, e.g. Mesa llvmpipe). Same pixels, but on llvmpipe it is erratic:
   0.1 s to over 10 s per frame for a full 40k-voxel grid (legacy: about 0.04 s).

Shading is baked into the vertex colours (top faces carry the exact Occ3D palette
colour, side and bottom faces are darker) and lighting is off, so both backends give
the same pixels and a BEV image shows exact palette colours.

Frames: everything is in the ego frame of the grid (x forward, y left, z up, metres).
In the ``'bev'`` view the image looks straight down with +x (forward) pointing up and
+y (left) pointing left.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from occwm.grid import DEFAULT_GRID, OCC3D_PALETTE, OccGrid

# nuScenes ego vehicle (Renault Zoe): length x width x height in metres.
EGO_SIZE = (4.08, 1.73, 1.56)
EGO_COLOR = (60, 60, 60)  # RGB uint8
TRAJ_COLOR = (255, 0, 0)
BACKGROUND = (255, 255, 255)

# Unit-cube corners of the 6 faces, counter-clockwise seen from outside (outward
# normals), in the order +x, -x, +y, -y, +z, -z.
_FACES = np.array([
    [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
    [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
    [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
    [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
    [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
], dtype=np.float64)  # (6, 4, 3)
_FACE_AXIS = ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1))  # (axis, sign)
_FACE_SHADE = np.array([0.80, 0.80, 0.65, 0.65, 1.00, 0.45])  # baked light per face
_QUAD_TRIS = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int32)

# Camera presets: look-at in the ego frame and vertical field of view in degrees.
VIEWS: Dict[str, dict] = {
    # straight down from high up (nearly orthographic); +x points up in the image
    'bev': dict(target=(0.0, 0.0, 0.0), eye=(0.0, 0.0, 240.0), up=(1.0, 0.0, 0.0), fov=20.0),
    # behind and above the ego, looking forward
    'chase': dict(target=(12.0, 0.0, 0.0), eye=(-22.0, 0.0, 24.0), up=(0.0, 0.0, 1.0), fov=60.0),
}

INSTALL_HINT = ('open3d could not create a headless rendering context. Install Mesa EGL / '
                'Vulkan drivers (Debian/Ubuntu: apt-get install -y libegl1 libgl1 libgomp1 '
                'libusb-1.0-0 libvulkan1 mesa-vulkan-drivers), and unset DISPLAY if it points '
                'to no running X server.')


def _box_quads(lo: np.ndarray, size: np.ndarray, rgb: np.ndarray, face: int
               ) -> Tuple[np.ndarray, np.ndarray]:
    """One face of N axis-aligned boxes as quads.

    Args:
        lo: ``(N, 3)`` lower corners, metres. size: ``(N, 3)`` or ``(3,)`` edge lengths.
        rgb: ``(N, 3) float`` colours in ``[0, 1]``. face: index into ``_FACES``.

    Returns:
        ``vertices`` ``(4N, 3) float64`` and ``colors`` ``(4N, 3) float64``.
    """
    verts = lo[:, None, :] + _FACES[face][None] * np.asarray(size)[..., None, :]  # (N, 4, 3)
    colors = np.repeat((rgb * _FACE_SHADE[face])[:, None, :], 4, axis=1)  # (N, 4, 3)
    return verts.reshape(-1, 3), colors.reshape(-1, 3)


def _quads_to_mesh(verts: Sequence[np.ndarray], colors: Sequence[np.ndarray]):
    """Concatenate quad vertex lists (4 vertices per quad) into a ``TriangleMesh``."""
    import open3d as o3d
    v = np.concatenate(verts) if verts else np.zeros((0, 3))  # (4Q, 3)
    c = np.concatenate(colors) if colors else np.zeros((0, 3))  # (4Q, 3)
    q = len(v) // 4
    tris = (np.arange(q, dtype=np.int32)[:, None, None] * 4 + _QUAD_TRIS[None]).reshape(-1, 3)
    mesh = o3d.geometry.TriangleMesh()
    mesh.vertices = o3d.utility.Vector3dVector(v)
    mesh.triangles = o3d.utility.Vector3iVector(tris)  # (2Q, 3)
    mesh.vertex_colors = o3d.utility.Vector3dVector(np.clip(c, 0.0, 1.0))
    return mesh


def occupancy_to_mesh(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                      hidden: Sequence[int] = (17,)):
    """Coloured voxel cubes of an occupancy grid, only their exposed faces.

    A face is kept when the neighbouring voxel across it is hidden or outside the grid,
    so a solid block costs only its surface. About 0.1 s for 40k voxels.

    Args:
        occ: ``(X, Y, Z)`` integer labels (numpy or torch), ``grid.shape``.
        grid: the voxel grid (origin and voxel size, metres).
        hidden: labels not drawn (free, 17, by default).

    Returns:
        ``open3d.geometry.TriangleMesh`` in the ego frame with per-vertex colours from
        ``OCC3D_PALETTE`` (top faces exact, other faces darkened).
    """
    occ = _to_numpy(occ)
    if occ.ndim != 3:
        raise ValueError(f'occ must be (X, Y, Z), got shape {occ.shape}')
    shown = ~np.isin(occ, np.asarray(hidden))  # (X, Y, Z) bool
    padded = np.pad(shown, 1, constant_values=False)  # (X+2, Y+2, Z+2)
    inner = (slice(1, -1),) * 3
    palette = OCC3D_PALETTE.astype(np.float64) / 255.0  # (18, 3)
    verts, colors = [], []
    for face, (axis, sign) in enumerate(_FACE_AXIS):
        nb = list(inner)
        nb[axis] = slice(1 + sign, padded.shape[axis] - 1 + sign)  # neighbour across the face
        idx = np.argwhere(shown & ~padded[tuple(nb)])  # (N, 3) voxel indices
        if not len(idx):
            continue
        lo = grid.origin + idx * grid.voxel_size  # (N, 3) lower corners, metres
        rgb = palette[occ[idx[:, 0], idx[:, 1], idx[:, 2]]]  # (N, 3)
        v, c = _box_quads(lo, np.full(3, grid.voxel_size), rgb, face)
        verts.append(v)
        colors.append(c)
    return _quads_to_mesh(verts, colors)


def ego_box_mesh(size: Sequence[float] = EGO_SIZE, color: Sequence[int] = EGO_COLOR):
    """The ego vehicle as a box centred on the ego origin in x and y, standing on
    ``z = 0`` (nuScenes ego: 4.08 m x 1.73 m x 1.56 m)."""
    size = np.asarray(size, dtype=np.float64)
    lo = np.array([[-size[0] / 2, -size[1] / 2, 0.0]])  # (1, 3)
    rgb = np.asarray(color, dtype=np.float64)[None] / 255.0  # (1, 3)
    quads = [_box_quads(lo, size, rgb, f) for f in range(6)]
    return _quads_to_mesh([q[0] for q in quads], [q[1] for q in quads])


def trajectory_lineset(traj: np.ndarray, z: float = 0.3, tick: float = 1.0,
                       color: Sequence[int] = TRAJ_COLOR):
    """An ego trajectory on the ground as an ``open3d.geometry.LineSet``.

    Args:
        traj: ``(T, 3)`` waypoints ``x, y, yaw`` (metres, metres, radians), ego frame.
        z: height of the drawn path, metres (just above the road voxels).
        tick: length of the heading tick drawn at each waypoint, metres.
        color: RGB uint8.

    Returns:
        ``LineSet`` of the path segments plus one heading tick per waypoint.
    """
    import open3d as o3d
    traj = np.asarray(_to_numpy(traj), dtype=np.float64).reshape(-1, 3)  # (T, 3)
    t = len(traj)
    path = np.column_stack([traj[:, 0], traj[:, 1], np.full(t, z)])  # (T, 3)
    heads = path + tick * np.column_stack([np.cos(traj[:, 2]), np.sin(traj[:, 2]), np.zeros(t)])
    points = np.concatenate([path, heads])  # (2T, 3)
    seg = np.column_stack([np.arange(t - 1), np.arange(1, t)]) if t > 1 else np.zeros((0, 2))
    ticks = np.column_stack([np.arange(t), np.arange(t, 2 * t)])
    lines = np.concatenate([seg, ticks]).astype(np.int32)  # (2T-1, 2)
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points), o3d.utility.Vector2iVector(lines))
    rgb = np.asarray(color, dtype=np.float64) / 255.0
    ls.colors = o3d.utility.Vector3dVector(np.tile(rgb, (len(lines), 1)))  # (L, 3)
    return ls


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


class OccRenderer:
    """A headless open3d renderer of fixed size; reuse it for many frames.

    Args:
        width, height: image size in pixels.
        backend: ``'auto'`` (legacy, then filament), ``'legacy'`` or ``'filament'``.

    Raises:
        RuntimeError: no backend could create a headless context (says what to install).

    Use as a context manager, or call :meth:`close`. ``self.backend`` names the backend
    in use.
    """

    def __init__(self, width: int = 640, height: int = 480, backend: str = 'auto') -> None:
        import open3d as o3d
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

    def _start_legacy(self) -> None:
        import open3d as o3d
        vis = o3d.visualization.Visualizer()
        if not vis.create_window(visible=False, width=self.width, height=self.height):
            raise RuntimeError('Visualizer.create_window(visible=False) failed')
        opt = vis.get_render_option()
        opt.light_on = False  # shading is baked into vertex colours
        opt.background_color = np.asarray(BACKGROUND, dtype=np.float64) / 255.0
        opt.mesh_show_back_face = False
        self._vis = vis

    def _start_filament(self) -> None:
        from open3d.visualization import rendering
        r = rendering.OffscreenRenderer(self.width, self.height)
        r.scene.set_background(list(np.asarray(BACKGROUND) / 255.0) + [1.0])
        r.scene.view.set_post_processing(False)  # exact unlit colours
        self._offscreen = r

    def render(self, geometries: Sequence, view: str = 'bev') -> np.ndarray:
        """Draw open3d geometries from a camera preset in :data:`VIEWS`.

        Returns:
            ``(H, W, 3) uint8`` RGB image.
        """
        if view not in VIEWS:
            raise ValueError(f'view must be one of {sorted(VIEWS)}, got {view!r}')
        cam = VIEWS[view]
        geometries = [g for g in geometries if not g.is_empty()]
        if self._vis is not None:
            return self._render_legacy(geometries, cam)
        if self._offscreen is not None:
            return self._render_filament(geometries, cam)
        raise RuntimeError('OccRenderer is closed')

    def _render_legacy(self, geometries, cam: dict) -> np.ndarray:
        import open3d as o3d
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
        import open3d as o3d
        from open3d.visualization import rendering
        scene = self._offscreen.scene
        scene.clear_geometry()
        for i, g in enumerate(geometries):
            mat = rendering.MaterialRecord()
            if isinstance(g, o3d.geometry.LineSet):
                mat.shader, mat.line_width = 'unlitLine', 2.0
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
        """Release the rendering context."""
        if self._vis is not None:
            self._vis.destroy_window()
        self._vis = self._offscreen = None

    def __enter__(self) -> 'OccRenderer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scene_geometries(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                     traj: Optional[np.ndarray] = None, show_ego: bool = True) -> list:
    """The geometries of one panel: voxels, the ego box and the trajectory."""
    geoms = [occupancy_to_mesh(occ, grid)]
    if show_ego:
        geoms.append(ego_box_mesh())
    if traj is not None and len(traj):
        geoms.append(trajectory_lineset(traj))
    return geoms


def render_occupancy(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID, width: int = 640,
                     height: int = 480, view: str = 'bev', traj: Optional[np.ndarray] = None,
                     show_ego: bool = True, renderer: Optional[OccRenderer] = None) -> np.ndarray:
    """Render one occupancy grid headlessly.

    Args:
        occ: ``(X, Y, Z)`` integer labels, ``grid.shape``.
        grid: the voxel grid.
        width, height: image size in pixels (ignored when ``renderer`` is given).
        view: ``'bev'`` (top-down, +x up) or ``'chase'`` (behind and above the ego).
        traj: optional ``(T, 3)`` ego waypoints ``x, y, yaw`` in the grid's ego frame.
        show_ego: draw the ego box at the origin.
        renderer: an open :class:`OccRenderer` to reuse (faster for many frames).

    Returns:
        ``(H, W, 3) uint8`` RGB image on a white background.
    """
    geoms = scene_geometries(occ, grid, traj, show_ego)
    if renderer is not None:
        return renderer.render(geoms, view)
    with OccRenderer(width, height) as r:
        return r.render(geoms, view)


def _label(img: np.ndarray, text: str, org: Tuple[int, int], scale: float = 0.8) -> None:
    """Black text with a white halo, in place (``img`` is BGR or RGB uint8)."""
    for color, thick in (((255, 255, 255), 5), ((0, 0, 0), 2)):
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def render_comparison(gt: np.ndarray, pred: np.ndarray, out_path: str,
                      times: Optional[Sequence[float]] = None, past: Optional[np.ndarray] = None,
                      traj: Optional[np.ndarray] = None, grid: OccGrid = DEFAULT_GRID,
                      view: str = 'bev', panel_size: Tuple[int, int] = (400, 400)) -> str:
    """Write a PNG: ground truth on top, forecast below, one column per future frame.

    Args:
        gt, pred: ``(T, X, Y, Z)`` integer labels of the future frames.
        out_path: PNG path; its folder is created, the write is atomic.
        times: seconds after the last observed frame, one per column
            (default ``0.5, 1.0, ...``, i.e. 2 Hz); written on each panel as ``+0.5 s``.
        past: optional ``(T_p, X, Y, Z)`` observed frames; the last one is shown as a
            leading ``0 s (input)`` column in both rows.
        traj: optional ``(N, 3)`` waypoints ``x, y, yaw`` drawn in every panel, in the
            ego frame of the grids.
        grid, view: see :func:`render_occupancy`.
        panel_size: ``(width, height)`` of one panel in pixels.

    Returns:
        ``out_path``. The image is ``(2 * h + top, left + C * w)`` pixels with
        ``C = T (+1 with past)``, ``top = 40`` and ``left = 180``.
    """
    gt, pred = _to_numpy(gt), _to_numpy(pred)
    if gt.shape != pred.shape or gt.ndim != 4:
        raise ValueError(f'gt and pred must both be (T, X, Y, Z), got {gt.shape} and {pred.shape}')
    t = gt.shape[0]
    times = [0.5 * (i + 1) for i in range(t)] if times is None else list(times)
    if len(times) != t:
        raise ValueError(f'{len(times)} times for {t} frames')
    columns = [(gt[i], pred[i], f'+{times[i]:g} s') for i in range(t)]  # (top, bottom, title)
    if past is not None:
        last = _to_numpy(past)[-1]
        columns.insert(0, (last, last, '0 s (input)'))

    w, h = panel_size
    left, top = 180, 40
    canvas = np.full((top + 2 * h, left + len(columns) * w, 3), 255, dtype=np.uint8)  # RGB
    with OccRenderer(w, h) as r:
        for c, (top_occ, bottom_occ, title) in enumerate(columns):
            x0 = left + c * w
            for row, occ in enumerate((top_occ, bottom_occ)):
                y0 = top + row * h
                panel = r.render(scene_geometries(occ, grid, traj), view)  # (h, w, 3)
                _label(panel, title, (10, 30))
                canvas[y0:y0 + h, x0:x0 + w] = panel
            cv2.line(canvas, (x0, top), (x0, top + 2 * h), (200, 200, 200), 1)
    _label(canvas, 'future frames (forecast horizon)', (left + 10, 28))
    for row, name in enumerate(('Ground truth', 'Forecast')):
        _label(canvas, name, (10, top + row * h + h // 2), scale=0.7)

    out_path = os.fspath(out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    ok, data = cv2.imencode('.png', cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'cv2 could not encode the comparison image for {out_path}')
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix='.png')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.tobytes())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out_path


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)
