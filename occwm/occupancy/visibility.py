"""Visibility masks of an occupancy grid: LiDAR ray casting and camera visibility.

Both follow Occ3D (Tian et al., "Occ3D: A Large-Scale 3D Occupancy Prediction
Benchmark for Autonomous Driving", NeurIPS 2023, Sec. 3 "visibility and occlusion
reasoning"):

* **LiDAR visibility** (``mask_lidar``): a ray is cast from the sensor origin of every
  aggregated scan to each of that scan's points; the voxels a ray crosses before its hit
  are observed (free), the voxel holding the hit is observed, voxels no ray crosses are
  unobserved. A voxel that is occupied in the aggregated semantics but crossed by no ray
  (e.g. the far side of a car carried in from another frame's scan, or a surface filled
  in by densification) keeps its label and stays *unobserved*: the official Occ3D frame in
  ``../shared/data/occ3d_sample`` has 2,982 of its 39,092 occupied voxels at
  ``mask_lidar == 0``, and none of its camera-visible voxels outside ``mask_lidar``.
* **Camera visibility** (``mask_camera``): rays from each camera centre through image
  pixels (every ``stride`` pixels), and to the centre of every occupied voxel in the
  frustum, mark the voxels they cross up to and including the first occupied voxel;
  voxels outside every frustum or behind an occupied voxel are invisible.

Voxel traversal is the exact 3D DDA of Amanatides & Woo (1987), "A Fast Voxel
Traversal Algorithm for Ray Tracing", vectorised over rays: every iteration advances
all live rays by one voxel. Each ray segment is first clipped to the grid box (slab
test); it visits ``1 + |dx| + |dy| + |dz|`` voxels, where ``d*`` are the index
differences between its first and last voxel inside the grid.

Frames: everything is in the ego frame of the grid (metres); cameras come as
``cam2ego`` ``(4, 4)`` and ``cam2img`` ``(3, 3)`` (the nuScenes / mmdet3d conventions:
camera x right, y down, z forward).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from occwm.geometry import pose_matrix
from occwm.grid import DEFAULT_GRID, OccGrid

NUSCENES_IMAGE_SIZE = (1600, 900)   # (W, H) pixels of every nuScenes camera
CAMERA_NAMES = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
                'CAM_BACK_RIGHT')


# ----------------------------------------------------------------------------- traversal
def clip_segments(origins: np.ndarray, ends: np.ndarray, grid: OccGrid = DEFAULT_GRID
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Parameter interval of each segment ``o + t (e - o)``, ``t in [0, 1]``, inside the
    grid box (slab test, Kay & Kajiya 1986).

    Args:
        origins, ends: ``(N, 3) float64`` metres, ego frame.

    Returns:
        ``t_in``, ``t_out`` ``(N,) float64``; the segment misses the box where
        ``t_out < t_in``.
    """
    lo = grid.origin
    hi = lo + np.asarray(grid.shape) * grid.voxel_size
    d = ends - origins                                                   # (N, 3)
    parallel = d == 0
    safe = np.where(parallel, 1.0, d)
    t0, t1 = (lo - origins) / safe, (hi - origins) / safe              # (N, 3)
    inside = (origins >= lo) & (origins < hi)                           # for parallel axes
    tmin = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1))
    tmax = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1))
    return np.maximum(tmin.max(axis=1), 0.0), np.minimum(tmax.min(axis=1), 1.0)


def traverse_voxels(origins: np.ndarray, ends: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                    stop: Optional[np.ndarray] = None, out: Optional[np.ndarray] = None,
                    chunk: int = 1 << 17) -> np.ndarray:
    """Union of the voxels crossed by the segments ``origins[i] -> ends[i]`` (3D DDA).

    Each segment is clipped to the grid; it starts in the voxel of its first point inside
    the grid and ends in the voxel of its last one, which is the hit voxel when ``ends[i]``
    lies inside the grid (included). Segments that miss the grid mark nothing.

    Args:
        origins: ``(N, 3)`` or ``(3,)`` (one origin for all) float, metres, ego frame.
        ends: ``(N, 3+)`` float, metres, ego frame (extra columns ignored).
        stop: optional ``(X, Y, Z) bool``: a ray ends at, and includes, the first voxel
            where ``stop`` is true (camera occlusion).
        out: optional ``(X, Y, Z) bool`` grid to OR the result into (returned).
        chunk: rays processed at once (memory: about 150 bytes a ray).

    Returns:
        ``(X, Y, Z) bool``: true where some ray crossed the voxel.

    Source: Amanatides & Woo, "A Fast Voxel Traversal Algorithm for Ray Tracing",
    Eurographics 1987 (``tMax`` / ``tDelta`` stepping, one axis per step).
    """
    seen = np.zeros(grid.shape, bool) if out is None else out
    if seen.shape != grid.shape or seen.dtype != bool:
        raise ValueError(f'out must be a bool array of the grid shape {grid.shape}, '
                         f'got {seen.dtype} {seen.shape}')
    if stop is not None and stop.shape != grid.shape:
        raise ValueError(f'stop shape {stop.shape} != grid shape {grid.shape}')
    ends = np.asarray(ends, np.float64)[:, :3]
    origins = np.broadcast_to(np.asarray(origins, np.float64), ends.shape)
    flat = seen.reshape(-1)
    stop_flat = None if stop is None else np.ascontiguousarray(stop, bool).reshape(-1)
    for i in range(0, len(ends), chunk):
        _traverse_chunk(origins[i:i + chunk], ends[i:i + chunk], grid, flat, stop_flat)
    return seen


def _traverse_chunk(o: np.ndarray, e: np.ndarray, grid: OccGrid, flat: np.ndarray,
                    stop_flat: Optional[np.ndarray]) -> None:
    """DDA of one chunk of rays; marks ``flat`` (X*Y*Z,) in place."""
    t_in, t_out = clip_segments(o, e, grid)
    hit = t_out >= t_in
    o, d, t_in, t_out = o[hit], (e - o)[hit], t_in[hit], t_out[hit]
    if not len(o):
        return
    shape = np.asarray(grid.shape)
    lo, vs = grid.origin, grid.voxel_size
    first = np.clip(np.floor((o + t_in[:, None] * d - lo) / vs), 0, shape - 1).astype(np.int64)
    last = np.clip(np.floor((o + t_out[:, None] * d - lo) / vs), 0, shape - 1).astype(np.int64)
    step = np.sign(d).astype(np.int64)                                   # (n, 3) -1, 0, +1
    moves = np.maximum((last - first) * step, 0)                        # (n, 3) steps per axis
    with np.errstate(divide='ignore'):
        inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), np.inf)
        bound = lo + (first + (step > 0)) * vs                           # next voxel face
        t_max = np.where(moves > 0, (bound - o) * inv, np.inf)          # (n, 3) t of next face
        t_delta = np.abs(vs * inv)                                       # (n, 3) t per voxel
    cur = first
    left = moves.sum(axis=1)                                             # (n,) steps to go
    yz, z = grid.shape[1] * grid.shape[2], grid.shape[2]
    while True:
        vid = cur[:, 0] * yz + cur[:, 1] * z + cur[:, 2]                # (n,) flat voxel id
        flat[vid] = True
        live = left > 0
        if stop_flat is not None:
            live &= ~stop_flat[vid]
        if not live.all():
            if not live.any():
                return
            cur, t_max, t_delta, step, moves, left = (
                a[live] for a in (cur, t_max, t_delta, step, moves, left))
        axis = np.argmin(t_max, axis=1)                                  # (n,) axis to step
        rows = np.arange(len(axis))
        cur[rows, axis] += step[rows, axis]
        moves[rows, axis] -= 1
        t_max[rows, axis] = np.where(moves[rows, axis] > 0,
                                     t_max[rows, axis] + t_delta[rows, axis], np.inf)
        left -= 1


# ----------------------------------------------------------------------------- LiDAR
def lidar_visibility(scans: Iterable[Tuple[np.ndarray, np.ndarray]],
                     grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """Occ3D LiDAR visibility of a set of aggregated scans.

    Args:
        scans: pairs ``(origin (3,), points (N, 3+))``: a scan's sensor origin and its
            points, both already in the grid's ego frame (metres).

    Returns:
        ``(X, Y, Z) bool``: observed voxels (crossed by a ray, hit voxels included).
    """
    seen = np.zeros(grid.shape, bool)
    for origin, points in scans:
        if len(points):
            traverse_voxels(np.asarray(origin, np.float64), points, grid, out=seen)
    return seen


# ----------------------------------------------------------------------------- cameras
@dataclass
class CameraCalib:
    """One camera: ``cam2ego`` ``(4, 4) float64`` (camera frame x right, y down,
    z forward -> ego frame, metres), ``cam2img`` ``(3, 3) float64`` intrinsics (pixels),
    ``image_size`` ``(W, H)`` pixels."""
    name: str
    cam2ego: np.ndarray
    cam2img: np.ndarray
    image_size: Tuple[int, int] = NUSCENES_IMAGE_SIZE


def camera_rays(cam: CameraCalib, stride: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """Unit ray directions through the pixel centres ``(s/2 + i s, s/2 + j s)``.

    Returns:
        ``origin`` ``(3,)`` camera centre and ``dirs`` ``(N, 3)`` unit vectors, ego frame,
        with ``N = ceil(W / s) * ceil(H / s)``.
    """
    W, H = cam.image_size
    u, v = np.meshgrid(np.arange(stride / 2, W, stride), np.arange(stride / 2, H, stride))
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)     # (N, 3) homogeneous
    dirs = pix @ np.linalg.inv(cam.cam2img).T @ cam.cam2ego[:3, :3].T    # (N, 3) ego frame
    return cam.cam2ego[:3, 3].copy(), dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def in_frustum(cam: CameraCalib, points: np.ndarray, min_depth: float = 0.1) -> np.ndarray:
    """``(N,) bool``: ego-frame ``(N, 3)`` points that project inside the image of ``cam``
    at a depth over ``min_depth`` metres."""
    cam_pts = (points - cam.cam2ego[:3, 3]) @ cam.cam2ego[:3, :3]        # (N, 3) camera frame
    depth = cam_pts[:, 2]
    uvw = cam_pts @ cam.cam2img.T                                        # (N, 3) homogeneous
    with np.errstate(divide='ignore', invalid='ignore'):
        u, v = uvw[:, 0] / depth, uvw[:, 1] / depth
    W, H = cam.image_size
    return (depth > min_depth) & (u >= 0) & (u < W) & (v >= 0) & (v < H)


def camera_visibility(semantics: np.ndarray, cams: Union[Sequence[CameraCalib],
                                                         Mapping[str, CameraCalib]],
                      grid: OccGrid = DEFAULT_GRID, stride: int = 8,
                      voxel_rays: bool = True) -> np.ndarray:
    """Occ3D camera visibility: voxels seen by some camera before occlusion.

    Rays from each camera centre through every ``stride``-th pixel mark the voxels they
    cross up to and including the first occupied voxel (``semantics != free``). With
    ``voxel_rays``, each camera also casts a ray to the centre of every occupied voxel
    inside its frustum, up to the first occupied voxel, as Occ3D does ("connect each
    occupied voxel center with the camera center"): distant ground voxels are a pixel
    tall or less and fall between the pixel rays.

    Args:
        semantics: ``(X, Y, Z) uint8`` labels, 17 = free, ego frame.
        cams: cameras (``CameraCalib``), a list or a ``{name: CameraCalib}`` dict.
        stride: pixel step between rays; 8 keeps the ray spacing under a voxel out to
            about 50 m for the nuScenes front cameras (focal length ~1260 px).

    Returns:
        ``(X, Y, Z) bool``.
    """
    if semantics.shape != grid.shape:
        raise ValueError(f'semantics shape {semantics.shape} != grid shape {grid.shape}')
    occupied = semantics != grid.free_label
    centres = grid.voxel_centers(np.argwhere(occupied)) if voxel_rays else np.zeros((0, 3))
    reach = float(np.linalg.norm(np.asarray(grid.shape) * grid.voxel_size))
    seen = np.zeros(grid.shape, bool)
    for cam in (cams.values() if isinstance(cams, Mapping) else cams):
        origin, dirs = camera_rays(cam, stride)
        far = reach + float(np.linalg.norm(origin - grid.origin))        # beyond the grid
        traverse_voxels(origin, origin + far * dirs, grid, stop=occupied, out=seen)
        targets = centres[in_frustum(cam, centres)]
        traverse_voxels(origin, targets, grid, stop=occupied, out=seen)
    return seen


def _calib_error(path: str, what: str) -> ValueError:
    return ValueError(f'{path}: {what} (expected an mmdet3d-1.x info pkl with data_list[i]'
                      f"['images'][cam]['cam2img', 'cam2ego'], or an OccWorld / occwm info pkl "
                      f"with infos[...]['cams'][cam]['cam_intrinsic', 'sensor2ego_translation', "
                      f"'sensor2ego_rotation'])")


def load_cam_calib(path: str, index: int = 0,
                   image_size: Tuple[int, int] = NUSCENES_IMAGE_SIZE) -> Dict[str, CameraCalib]:
    """Camera calibrations of one frame of an info pkl.

    Reads the mmdet3d-1.x layout (``data_list[index]['images'][cam]`` with ``cam2img``
    and ``cam2ego``) or the OccWorld / occwm one (``infos`` a list, or a scene-keyed dict
    whose scenes are concatenated in order; ``infos[index]['cams'][cam]`` with
    ``cam_intrinsic``, ``sensor2ego_translation``, ``sensor2ego_rotation`` w, x, y, z).
    Calibrations from another log of the same vehicle family are an approximation (the
    rigs differ by centimetres and fractions of a degree).

    Returns:
        ``{camera name: CameraCalib}`` for the six nuScenes cameras present.

    Raises:
        FileNotFoundError, ValueError naming ``path`` and what is wrong.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: camera calibration pkl not found')
    try:
        with open(path, 'rb') as f:
            data = pickle.load(f)
    except Exception as e:  # not a pickle, truncated, ...
        raise ValueError(f'{path}: cannot read ({type(e).__name__}: {e})') from e
    if not isinstance(data, dict):
        raise _calib_error(path, f'a {type(data).__name__}, not a dict')
    if isinstance(data.get('data_list'), list):
        frames: List[dict] = data['data_list']
        key, parse = 'images', _mmdet3d_cam
    elif isinstance(data.get('infos'), (list, dict)):
        infos = data['infos']
        frames = infos if isinstance(infos, list) else [f for v in infos.values() for f in v]
        key, parse = 'cams', _occworld_cam
    else:
        raise _calib_error(path, f'no data_list or infos (keys {sorted(data)})')
    if not -len(frames) <= index < len(frames):
        raise _calib_error(path, f'frame index {index} out of range ({len(frames)} frames)')
    cams = frames[index].get(key)
    if not isinstance(cams, dict):
        raise _calib_error(path, f'frame {index} has no {key!r} dict')
    out = {}
    for name in CAMERA_NAMES:
        if name in cams:
            try:
                cam2ego, cam2img = parse(cams[name])
            except (KeyError, TypeError, ValueError) as e:
                raise _calib_error(path, f'{name} of frame {index}: {type(e).__name__} {e}')
            if cam2ego.shape != (4, 4) or cam2img.shape != (3, 3):
                raise _calib_error(path, f'{name}: cam2ego {cam2ego.shape}, cam2img '
                                         f'{cam2img.shape}; want (4, 4) and (3, 3)')
            out[name] = CameraCalib(name, cam2ego, cam2img, tuple(image_size))
    if not out:
        raise _calib_error(path, f'frame {index} has none of the cameras {CAMERA_NAMES}')
    return out


def _mmdet3d_cam(c: dict) -> Tuple[np.ndarray, np.ndarray]:
    return np.asarray(c['cam2ego'], np.float64), np.asarray(c['cam2img'], np.float64)[:3, :3]


def _occworld_cam(c: dict) -> Tuple[np.ndarray, np.ndarray]:
    cam2ego = pose_matrix(c['sensor2ego_translation'], c['sensor2ego_rotation'])
    return cam2ego, np.asarray(c['cam_intrinsic'], np.float64)[:3, :3]
