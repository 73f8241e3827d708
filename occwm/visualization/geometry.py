"""Pure geometry of the pictures: coloured voxel meshes, the ego box, the trajectory
line and the error classification of a forecast. No rendering context is needed.

Frames: everything is in the ego frame of the grid (x forward, y left, z up, metres).
Colours: ``(3,) uint8`` RGB in the constants, ``[0, 1]`` floats in open3d geometry.
Classes are drawn in :data:`CLASS_PALETTE`: the Occ3D palette with the entries too close
to the white background darkened (:func:`delta_e`, :data:`MIN_BACKGROUND_DELTA_E`).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from occwm.geometry import EGO_REAR, EGO_SIZE, relative_se2
from occwm.grid import DEFAULT_GRID, OCC3D_PALETTE, OccGrid
from occwm.runtime import require_open3d
from occwm.window import to_numpy

EGO_COLOR = (60, 60, 60)  # RGB uint8
TRAJ_COLOR = (255, 0, 0)  # the conditioning trajectory ahead of the frame
TRAJ_PAST_COLOR = (110, 110, 110)  # the part already driven
BACKGROUND = (255, 255, 255)
DIM_ALPHA = 0.65  # weight of the background in a dimmed (camera-invisible) voxel

# Every class colour differs from BACKGROUND by at least this CIE76 colour difference
# (CIELAB Delta E; 2.3 is a just-noticeable difference, the Occ3D manmade lavender white
# is 13 from white, bicycle pink 29; saturated colours such as bus yellow are far from
# white by chroma, not luminance, and stay: 97).
MIN_BACKGROUND_DELTA_E = 40.0

# The class colours of the pictures, one row per label 0..17: occwm.grid.OCC3D_PALETTE
# (the Occ3D / OccWorld colours) with the two entries that vanish on the white background
# darkened, hue kept: buildings fill large parts of every picture.
CLASS_PALETTE = OCC3D_PALETTE.copy()
CLASS_PALETTE[15] = (140, 140, 200)  # manmade: slate lavender (Occ3D 230, 230, 250: Delta E 13)
CLASS_PALETTE[2] = (255, 130, 170)   # bicycle: deep pink (Occ3D 255, 192, 203: Delta E 29)
CLASS_PALETTE.setflags(write=False)

# Error view codes (geometric, plus a semantic mismatch code), their names and colours:
# grey is right, colours are wrong.
TP, FP, FN, WRONG_CLASS = 1, 2, 3, 4
ERROR_NAMES = ('', 'true positive', 'false positive', 'false negative', 'wrong class')
ERROR_PALETTE = np.array([
    [255, 255, 255],  # 0 not drawn
    [175, 175, 175],  # 1 true positive: occupied in both (same class if semantic)
    [230, 25, 25],    # 2 false positive: forecast occupied, ground truth free
    [20, 90, 235],    # 3 false negative: ground truth occupied, forecast free
    [255, 165, 0],    # 4 occupied in both, different class
], dtype=np.uint8)

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


def srgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB colours.

    Args:
        rgb: ``(..., 3)`` sRGB, 0..255.

    Returns:
        ``(..., 3) float64`` ``L*`` (0 black .. 100 white), ``a*``, ``b*``.
    """
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)  # linear RGB
    m = np.array([[0.4124, 0.3576, 0.1805],  # linear sRGB -> XYZ (D65)
                  [0.2126, 0.7152, 0.0722],
                  [0.0193, 0.1192, 0.9505]])
    xyz = (c @ m.T) / np.array([0.95047, 1.0, 1.08883])  # (..., 3) relative to white
    d = 6.0 / 29.0
    f = np.where(xyz > d ** 3, np.cbrt(xyz), xyz / (3 * d * d) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e(rgb_a, rgb_b=BACKGROUND) -> np.ndarray:
    """CIE76 colour difference (Euclidean distance in CIELAB) of sRGB colours,
    ``(...,) float64``; by default to the picture background."""
    return np.linalg.norm(srgb_to_lab(rgb_a) - srgb_to_lab(rgb_b), axis=-1)


def _box_quads(lo: np.ndarray, size: np.ndarray, rgb: np.ndarray, face: int, shade: bool = True
               ) -> Tuple[np.ndarray, np.ndarray]:
    """One face of N axis-aligned boxes as quads.

    Args:
        lo: ``(N, 3)`` lower corners, metres. size: ``(N, 3)`` or ``(3,)`` edge lengths.
        rgb: ``(N, 3) float`` colours in ``[0, 1]``. face: index into ``_FACES``.
        shade: darken the face by its baked light (``_FACE_SHADE``).

    Returns:
        ``vertices`` ``(4N, 3) float64`` and ``colors`` ``(4N, 3) float64``.
    """
    verts = lo[:, None, :] + _FACES[face][None] * np.asarray(size)[..., None, :]  # (N, 4, 3)
    c = rgb * _FACE_SHADE[face] if shade else rgb
    colors = np.repeat(c[:, None, :], 4, axis=1)  # (N, 4, 3)
    return verts.reshape(-1, 3), colors.reshape(-1, 3)


def _quads_to_mesh(verts: Sequence[np.ndarray], colors: Sequence[np.ndarray]):
    """Concatenate quad vertex lists (4 vertices per quad) into a ``TriangleMesh``."""
    o3d = require_open3d()
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
                      hidden: Sequence[int] = (17,), palette: np.ndarray = CLASS_PALETTE,
                      dim_mask: Optional[np.ndarray] = None, dim_alpha: float = DIM_ALPHA,
                      shade: bool = True):
    """Coloured voxel cubes of an occupancy grid, only their exposed faces.

    A face is kept when the neighbouring voxel across it is hidden or outside the grid,
    so a solid block costs only its surface. About 0.1 s for 40k voxels.

    Args:
        occ: ``(X, Y, Z)`` integer labels (numpy or torch), ``grid.shape``.
        grid: the voxel grid (origin and voxel size, metres).
        hidden: labels not drawn (free, 17, by default; unobserved space is free in
            Occ3D, so it is hidden too).
        palette: ``(L, 3) uint8`` RGB per label (default :data:`CLASS_PALETTE`).
        dim_mask: optional ``(X, Y, Z)`` mask (e.g. ``mask_camera``); voxels where it is
            0 are dimmed: blended with the background by ``dim_alpha`` (they look
            translucent on the white background).
        shade: bake a fixed light into the colours (top faces exact, sides and bottom
            darker); ``False`` gives flat palette colours (mesh export).

    Returns:
        ``open3d.geometry.TriangleMesh`` in the ego frame with per-vertex colours.

    Raises:
        ValueError: ``occ`` is not 3-D, or ``dim_mask`` has another shape.
    """
    occ = to_numpy(occ)
    if occ.ndim != 3:
        raise ValueError(f'occ must be (X, Y, Z), got shape {occ.shape}')
    shown = ~np.isin(occ, np.asarray(hidden))  # (X, Y, Z) bool
    padded = np.pad(shown, 1, constant_values=False)  # (X+2, Y+2, Z+2)
    inner = (slice(1, -1),) * 3
    rgb_of = np.asarray(palette, dtype=np.float64) / 255.0  # (L, 3)
    dim = None
    if dim_mask is not None:
        dim = to_numpy(dim_mask) == 0  # (X, Y, Z) bool
        if dim.shape != occ.shape:
            raise ValueError(f'dim_mask shape {dim.shape} != occ shape {occ.shape}')
    bg = np.asarray(BACKGROUND, dtype=np.float64) / 255.0
    verts, colors = [], []
    for face, (axis, sign) in enumerate(_FACE_AXIS):
        nb = list(inner)
        nb[axis] = slice(1 + sign, padded.shape[axis] - 1 + sign)  # neighbour across the face
        idx = np.argwhere(shown & ~padded[tuple(nb)])  # (N, 3) voxel indices
        if not len(idx):
            continue
        lo = grid.origin + idx * grid.voxel_size  # (N, 3) lower corners, metres
        rgb = rgb_of[occ[idx[:, 0], idx[:, 1], idx[:, 2]]]  # (N, 3)
        v, c = _box_quads(lo, np.full(3, grid.voxel_size), rgb, face, shade)
        if dim is not None:
            d = np.repeat(dim[idx[:, 0], idx[:, 1], idx[:, 2]], 4)  # (4N,) per vertex
            c[d] = (1.0 - dim_alpha) * c[d] + dim_alpha * bg
        verts.append(v)
        colors.append(c)
    return _quads_to_mesh(verts, colors)


def ego_box_mesh(size: Sequence[float] = EGO_SIZE, color: Sequence[int] = EGO_COLOR,
                 rear: float = EGO_REAR):
    """The ego vehicle as a box standing on ``z = 0``, centred in y, from ``-rear`` to
    ``size[0] - rear`` metres in x: the nuScenes ego origin is the rear axle
    (the nuScenes ego of ``occwm.geometry``: 4.084 m x 1.730 m x 1.56 m, the scenario
    scoring footprint)."""
    size = np.asarray(size, dtype=np.float64)
    lo = np.array([[-rear, -size[1] / 2, 0.0]])  # (1, 3)
    rgb = np.asarray(color, dtype=np.float64)[None] / 255.0  # (1, 3)
    quads = [_box_quads(lo, size, rgb, f) for f in range(6)]
    return _quads_to_mesh([q[0] for q in quads], [q[1] for q in quads])


def trajectory_in_own_frame(traj: np.ndarray, k: int) -> np.ndarray:
    """Re-express a planar trajectory in the ego frame of its own waypoint ``k``.

    Args:
        traj: ``(T, 3)`` waypoints ``x, y, yaw`` (metres, radians) in some ego frame
            (e.g. the present frame's, as in ``OccForecastDataset``'s ``traj``).
        k: the waypoint whose pose becomes the origin.

    Returns:
        ``(T, 3) float64`` waypoints in the ego frame of waypoint ``k`` (row ``k`` is 0).
    """
    traj = np.asarray(to_numpy(traj), dtype=np.float64).reshape(-1, 3)  # (T, 3)
    return relative_se2(traj[k], traj)


def trajectory_lineset(traj: np.ndarray, z: float = 0.3, tick: float = 1.0,
                       color: Sequence[int] = TRAJ_COLOR, current: Optional[int] = None,
                       past_color: Sequence[int] = TRAJ_PAST_COLOR):
    """An ego trajectory on the ground as an ``open3d.geometry.LineSet``.

    Args:
        traj: ``(T, 3)`` waypoints ``x, y, yaw`` (metres, metres, radians), ego frame.
        z: height of the drawn path, metres (just above the road voxels).
        tick: length of the heading tick drawn at each waypoint, metres.
        color: RGB uint8 of the path (the part after ``current``).
        current: optional index of the waypoint of the shown frame; segments and ticks
            before it are drawn in ``past_color`` (already driven).

    Returns:
        ``LineSet`` of the ``T - 1`` path segments plus one heading tick per waypoint.
    """
    o3d = require_open3d()
    traj = np.asarray(to_numpy(traj), dtype=np.float64).reshape(-1, 3)  # (T, 3)
    t = len(traj)
    path = np.column_stack([traj[:, 0], traj[:, 1], np.full(t, z)])  # (T, 3)
    heads = path + tick * np.column_stack([np.cos(traj[:, 2]), np.sin(traj[:, 2]), np.zeros(t)])
    points = np.concatenate([path, heads])  # (2T, 3)
    seg = np.column_stack([np.arange(t - 1), np.arange(1, t)]) if t > 1 else np.zeros((0, 2))
    ticks = np.column_stack([np.arange(t), np.arange(t, 2 * t)])
    lines = np.concatenate([seg, ticks]).astype(np.int32)  # (2T-1, 2)
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points), o3d.utility.Vector2iVector(lines))
    before = np.zeros(len(lines), dtype=bool)  # (2T-1,)
    if current is not None:
        before = np.concatenate([np.arange(t - 1) < current, np.arange(t) < current])
    rgb = np.where(before[:, None], np.asarray(past_color, np.float64)[None],
                   np.asarray(color, np.float64)[None]) / 255.0  # (2T-1, 3)
    ls.colors = o3d.utility.Vector3dVector(rgb)
    return ls


def error_codes(gt: np.ndarray, pred: np.ndarray, free_label: int = DEFAULT_GRID.free_label,
                semantic: bool = True, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Classify every voxel of a forecast against the ground truth.

    Geometric (occupied vs free, the IoU of OccWorld / Occ3D): true positive (both
    occupied), false positive (forecast occupied, truth free), false negative (truth
    occupied, forecast free). With ``semantic``, a true positive whose classes differ
    is ``WRONG_CLASS`` instead.

    Args:
        gt, pred: ``(..., X, Y, Z)`` integer labels of the same shape.
        free_label: the free label (17).
        semantic: mark class mismatches as ``WRONG_CLASS`` (4).
        mask: optional visibility mask of ``gt``'s shape (e.g. ``mask_camera``); voxels
            where it is 0 get code 0 (ignored, as in the Occ3D evaluation).

    Returns:
        ``(..., X, Y, Z) uint8`` codes: 0 free in both (or masked), ``TP`` 1, ``FP`` 2,
        ``FN`` 3, ``WRONG_CLASS`` 4; colours in ``ERROR_PALETTE``.

    Raises:
        ValueError: shapes differ.
    """
    gt, pred = to_numpy(gt), to_numpy(pred)
    if gt.shape != pred.shape:
        raise ValueError(f'gt shape {gt.shape} != pred shape {pred.shape}')
    g, p = gt != free_label, pred != free_label
    codes = np.zeros(gt.shape, dtype=np.uint8)
    codes[g & p] = TP
    codes[~g & p] = FP
    codes[g & ~p] = FN
    if semantic:
        codes[g & p & (gt != pred)] = WRONG_CLASS
    if mask is not None:
        codes[to_numpy(mask) == 0] = 0
    return codes


def error_to_mesh(codes: np.ndarray, grid: OccGrid = DEFAULT_GRID, shade: bool = True):
    """The voxels of an ``(X, Y, Z)`` error-code grid (:func:`error_codes`) as a mesh
    coloured by ``ERROR_PALETTE``; code 0 is not drawn."""
    return occupancy_to_mesh(codes, grid, hidden=(0,), palette=ERROR_PALETTE, shade=shade)
