"""Occupancy ground truth from real nuScenes LiDAR (the SurroundOcc / Occ3D recipe, thin).

Input: a folder in the layout of ``../shared/data/nuscenes_seq11`` (see its README),
one file per frame ``K = 0..L-1``::

    pc_seman/pc_seman_K.npy               (N, 4) float   x, y, z (LiDAR frame, metres), label 0..16
    bbox/bboxK.npy                        (M, 7) float   x, y, z_bottom, dx, dy, dz, yaw (LiDAR)
    bbox/boxes_tokenK.npy                 (M,)   str     nuScenes instance tokens (persistent)
    bbox/object_categoryK.npy             (M,)   int     class ids 0..16
    pose/lidar_ego_poseK.npy              pickled dict   nuScenes ego_pose record (ego -> global)
    calib/lidar_calibrated_sensorK.npy    pickled dict   LIDAR_TOP calibrated_sensor (LiDAR -> ego)

Output (``occwm.io``): one Occ3D ``labels.npz`` per frame and an OccWorld-style
info pkl; statistics in ``occwm.occupancy.report`` (re-exported here). The method, per
frame ``k`` of the sequence:

1. every scan goes LiDAR -> ego with its ``lidar2ego``; label-0 returns within
   ``NEAR_SENSOR_M`` of the sensor and returns on the ego body (``EGO_BODY``) are dropped;
2. points inside a tracked box that are not ground / background stuff (labels 11..16)
   belong to that box's instance; the rest are static;
3. the static points of *all* frames are moved into frame ``k``'s ego frame with the
   planar ego poses (x, y, yaw: full SE(3) tilts the road, see ``occwm.geometry``);
   dynamic-class points outside every box stay in their own frame only (an
   unannotated mover must not be smeared);
4. each instance's points of all frames, in box-local coordinates, are placed into
   every frame where its box exists (moving objects densified, not smeared);
5. voxelisation with the majority label per voxel; with ``densify``, free voxels on the
   Poisson surface of the static points of the whole sequence (reconstructed once, in
   the planar frame of frame 0) are filled (``occwm.occupancy.densify``, SurroundOcc);
6. ``mask_lidar`` (``occwm.occupancy.visibility``, Occ3D LiDAR visibility, exact 3D DDA):
   ``ray_cast='all'``: every scan j casts rays from its own sensor origin (its
   ``lidar2ego`` translation moved into frame k with the planar poses) to its static
   points, and scan k also to its object and unboxed-mover points (other scans' moving
   objects were elsewhere at their time); ``'own'``: scan k's rays only; ``'none'``:
   the occupied voxels. Occupied voxels that no ray crosses (carried object points,
   densified surfaces) keep their label and stay unobserved, as in Occ3D;
7. ``mask_camera``: with cameras, the voxels seen through the image pixels of some
   camera up to the first occupied voxel (``visibility.camera_visibility``) *and*
   observed in ``mask_lidar`` (Occ3D's masks satisfy ``mask_camera <= mask_lidar``);
   all ones when no cameras are given. Calibrations taken from another log of the same
   vehicle family (``--cam-calib``) are an approximation.
"""
from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.io import labels_path, save_labels, save_pickle
from occwm.geometry import apply_se2, planar, pose_matrix, transform_points
from occwm.occupancy.report import (OCC3D_NONFREE_FRACTION, format_report,  # noqa: F401
                                   occupancy_report, static_iou)
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, STUFF_CLASSES, OccGrid

NEAR_SENSOR_M = 3.0          # label-0 returns closer than this to the sensor are invalid
# LiDAR returns dropped as hitting the ego's own body: the ego vehicle of occwm.geometry
# (EGO_LENGTH x EGO_WIDTH x EGO_HEIGHT around the rear-axle origin) with a margin for
# mirrors, roof rack and calibration (x_min, y_min, z_min, x_max, y_max, z_max) metres, ego
# frame. z_min > 0 keeps the road.
EGO_BODY = (-1.2, -1.1, 0.1, 3.4, 1.1, 2.2)
NUM_LABELS = 17                            # semantic labels 0..16 in the source scans

SOURCE_FILES = {  # key -> path pattern relative to the source folder
    'pc_seman': 'pc_seman/pc_seman_{k}.npy', 'bbox': 'bbox/bbox{k}.npy',
    'boxes_token': 'bbox/boxes_token{k}.npy', 'object_category': 'bbox/object_category{k}.npy',
    'pose': 'pose/lidar_ego_pose{k}.npy', 'calib': 'calib/lidar_calibrated_sensor{k}.npy'}


@dataclass
class SourceFrame:
    """One LiDAR keyframe as read from the source folder.

    points ``(N, 3) float64`` LiDAR frame metres; labels ``(N,) int64`` 0..16;
    boxes ``(M, 7) float64`` (x, y, z_bottom, dx, dy, dz, yaw) LiDAR frame;
    box_tokens ``(M,) str``; box_labels ``(M,) int64``; ego2global / lidar2ego
    ``(4, 4) float64``; the raw pose records are kept for the info pkl.
    """
    index: int
    token: str
    timestamp: int
    points: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    box_tokens: np.ndarray
    box_labels: np.ndarray
    ego_pose: dict
    calib: dict
    ego2global: np.ndarray
    lidar2ego: np.ndarray


# ----------------------------------------------------------------------------- reading
def _load(path: str, record: bool = False):
    """An array (plain or object, e.g. tokens) or, with ``record``, a pickled dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: missing source file')
    try:
        arr = np.load(path, allow_pickle=True)
        return arr.item() if record else arr
    except Exception as e:  # corrupt npy, not a pickled object array, ...
        raise ValueError(f'{path}: cannot read ({type(e).__name__}: {e})') from e


def _pose_record(path: str, rec, need_time: bool) -> np.ndarray:
    keys = ('translation', 'rotation') + (('token', 'timestamp') if need_time else ())
    if not isinstance(rec, dict) or any(k not in rec for k in keys):
        raise ValueError(f'{path}: expected a nuScenes record dict with keys {keys}, got '
                         f'{sorted(rec) if isinstance(rec, dict) else type(rec).__name__}')
    t = np.asarray(rec['translation'], np.float64)
    q = np.asarray(rec['rotation'], np.float64)
    if t.shape != (3,) or q.shape != (4,):
        raise ValueError(f'{path}: translation must be (3,), rotation (4,) w, x, y, z; '
                         f'got {t.shape} and {q.shape}')
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))) or np.linalg.norm(q) < 1e-6:
        raise ValueError(f'{path}: non-finite or zero pose (translation {t}, rotation {q})')
    return pose_matrix(t, q / np.linalg.norm(q))


def frame_indices(src_dir: str) -> List[int]:
    """Sorted frame indices ``K`` of ``pc_seman/pc_seman_K.npy`` in ``src_dir``."""
    pattern = os.path.join(src_dir, 'pc_seman', 'pc_seman_*.npy')
    found = sorted(int(m.group(1)) for p in glob.glob(pattern)
                   if (m := re.fullmatch(r'pc_seman_(\d+)\.npy', os.path.basename(p))))
    if not found:
        raise FileNotFoundError(f'{pattern}: no LiDAR scans found (is {src_dir} a folder in the '
                                f'layout of nuscenes_seq11?)')
    return found


def load_source_frame(src_dir: str, k: int) -> SourceFrame:
    """Read and check frame ``k``; errors name the file and the fault."""
    p = {key: os.path.join(src_dir, pat.format(k=k)) for key, pat in SOURCE_FILES.items()}
    pc = np.asarray(_load(p['pc_seman']), np.float64)
    if pc.ndim != 2 or pc.shape[1] < 4:
        raise ValueError(f"{p['pc_seman']}: expected (N, 4) x, y, z, label, got shape {pc.shape}")
    if not np.all(np.isfinite(pc[:, :4])):
        raise ValueError(f"{p['pc_seman']}: non-finite coordinates or labels")
    labels = pc[:, 3].astype(np.int64)
    if np.any(labels != pc[:, 3]) or np.any((labels < 0) | (labels >= NUM_LABELS)):
        raise ValueError(f"{p['pc_seman']}: labels must be integers 0..{NUM_LABELS - 1}")
    boxes = np.asarray(_load(p['bbox']), np.float64)
    boxes = boxes.reshape(0, 7) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 7 or not np.all(np.isfinite(boxes)):
        raise ValueError(f"{p['bbox']}: expected finite (M, 7) boxes "
                         f"(x, y, z_bottom, dx, dy, dz, yaw), got shape {boxes.shape}")
    tokens = np.asarray(_load(p['boxes_token'])).astype(str).reshape(-1)
    cats = np.asarray(_load(p['object_category'])).reshape(-1).astype(np.int64)
    for key, arr in (('boxes_token', tokens), ('object_category', cats)):
        if len(arr) != len(boxes):
            raise ValueError(f'{p[key]}: {len(arr)} entries but {p["bbox"]} has {len(boxes)} boxes')
    pose = _load(p['pose'], record=True)
    calib = _load(p['calib'], record=True)
    ego2global = _pose_record(p['pose'], pose, need_time=True)
    lidar2ego = _pose_record(p['calib'], calib, need_time=False)
    return SourceFrame(index=k, token=str(pose.get('sample_token', pose['token'])),
                       timestamp=int(pose['timestamp']), points=pc[:, :3].copy(), labels=labels,
                       boxes=boxes, box_tokens=tokens, box_labels=cats, ego_pose=pose,
                       calib=calib, ego2global=ego2global, lidar2ego=lidar2ego)


def load_source(src_dir: str) -> List[SourceFrame]:
    """All frames of a source folder, in time order (timestamps must increase)."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f'{src_dir}: source folder not found')
    frames = [load_source_frame(src_dir, k) for k in frame_indices(src_dir)]
    for a, b in zip(frames, frames[1:]):
        if b.timestamp <= a.timestamp:
            raise ValueError(f'{src_dir}: timestamp of frame {b.index} ({b.timestamp}) is not '
                             f'after frame {a.index} ({a.timestamp})')
    return frames


# ----------------------------------------------------------------------------- geometry
def box_local(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(N, 3)`` points to the frame of ``box`` ``(7,)`` (x, y, z_bottom, dx, dy, dz, yaw):
    origin at its bottom centre, x along yaw."""
    local = apply_se2(points[:, :3], box[[0, 1, 6]], inverse=True)      # (N, 3), z unchanged
    local[:, 2] -= box[2]
    return local


def box_global(local: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Inverse of ``box_local``: box-local ``(N, 3)`` points to the box's frame."""
    out = apply_se2(local[:, :3], box[[0, 1, 6]])                         # (N, 3), z unchanged
    out[:, 2] += box[2]
    return out


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the first box holding each point, or -1.

    Args:
        points: ``(N, 3+)`` metres; boxes: ``(M, 7)`` (x, y, z_bottom, dx, dy, dz, yaw), same frame.
        A point p is inside when ``q = R_z(-yaw)(p - (x, y, z_bottom))`` has
        ``|q_x| <= dx/2``, ``|q_y| <= dy/2``, ``0 <= q_z <= dz``.

    Returns:
        ``(N,) int64``.
    """
    out = np.full(len(points), -1, np.int64)
    if len(boxes) == 0:
        return out
    pose = boxes[:, [0, 1, 6]]                                          # (M, 3)
    for i in range(0, len(points), chunk):
        q = apply_se2(points[i:i + chunk, None, :2], pose, inverse=True)  # (n, M, 2) box frames
        dz = points[i:i + chunk, None, 2] - boxes[None, :, 2]           # (n, M)
        inside = ((np.abs(q[..., 0]) <= boxes[:, 3] / 2) & (np.abs(q[..., 1]) <= boxes[:, 4] / 2)
                  & (dz >= 0) & (dz <= boxes[:, 5]))                    # (n, M)
        hit = inside.any(axis=1)
        out[i:i + chunk][hit] = inside[hit].argmax(axis=1)
    return out


def voxelize_majority(points: np.ndarray, labels: np.ndarray, grid: OccGrid = DEFAULT_GRID
                      ) -> np.ndarray:
    """Majority label per voxel (ties go to the larger label id).

    Args:
        points: ``(N, 3+)`` metres, ego frame; labels: ``(N,)`` ints in ``0..free_label-1``.

    Returns:
        ``(X, Y, Z) uint8``, ``grid.free_label`` where no point falls.
    """
    C = grid.num_classes
    occ = np.full(grid.shape, grid.free_label, np.uint8)
    idx, inside = grid.points_to_voxels(points)
    vid = np.ravel_multi_index(idx[inside].T, grid.shape)             # (n,) flat voxel id
    keys, counts = np.unique(vid * C + labels[inside], return_counts=True)
    v, lab = keys // C, keys % C
    order = np.lexsort((counts, v))                                   # by voxel, then count
    last = np.r_[v[order][1:] != v[order][:-1], True]                 # the top count per voxel
    occ.reshape(-1)[v[order][last]] = lab[order][last]
    return occ


# ----------------------------------------------------------------------------- building
def _split_frame(f: SourceFrame):
    """Static ego-frame points + labels, instance points (box-local x, y, z, label per
    token), own-frame-only points + labels, and all valid points (ego frame)."""
    keep = ~((f.labels == 0) & (np.linalg.norm(f.points, axis=1) < NEAR_SENSOR_M))
    ego = transform_points(f.lidar2ego, f.points)                          # (N, 3) ego frame
    body = np.all((ego >= EGO_BODY[:3]) & (ego <= EGO_BODY[3:]), axis=1)
    keep &= ~body
    box_of = points_in_boxes(f.points, f.boxes)                           # LiDAR frame test
    obj = keep & (box_of >= 0) & ~np.isin(f.labels, STUFF_CLASSES)
    own = keep & ~obj & np.isin(f.labels, DYNAMIC_CLASSES)                # unboxed movers
    static = keep & ~obj & ~own
    instances: Dict[str, List[np.ndarray]] = {}
    for b in np.unique(box_of[obj]):
        sel = obj & (box_of == b)
        loc = box_local(f.points[sel], f.boxes[b])                        # (n, 3) box frame
        instances.setdefault(f.box_tokens[b], []).append(
            np.concatenate([loc, f.labels[sel, None].astype(np.float64)], axis=1))
    return (ego[static], f.labels[static]), instances, (ego[own], f.labels[own]), ego[keep]


RAY_CAST_MODES = ('all', 'own', 'none')


def _ray_cast_mode(ray_cast) -> str:
    """``'all' | 'own' | 'none'``; ``True`` / ``False`` mean ``'all'`` / ``'none'``."""
    if isinstance(ray_cast, bool):
        ray_cast = 'all' if ray_cast else 'none'
    if ray_cast not in RAY_CAST_MODES:
        raise ValueError(f'ray_cast must be one of {RAY_CAST_MODES}, got {ray_cast!r}')
    return ray_cast


def _static_surface(frames, split, flat, grid: OccGrid) -> np.ndarray:
    """Poisson surface samples ``(M, 3)`` of the static points of all frames, in the
    planar ego frame of frame 0, cropped to the frames' grids (2 m margin)."""
    from occwm.occupancy.densify import poisson_surface_points
    inv_0 = np.linalg.inv(flat[0])
    pts, views = [], []
    for f, (static, _, _, _), T in zip(frames, split, flat):
        pts.append(transform_points(inv_0 @ T, static[0]))
        view = transform_points(inv_0 @ T, f.lidar2ego[None, :3, 3])[0]   # sensor origin
        views.append(np.broadcast_to(view, pts[-1].shape))
    pts, views = np.concatenate(pts), np.concatenate(views)              # (N, 3) each
    lo, hi = np.asarray(grid.point_cloud_range[:3]), np.asarray(grid.point_cloud_range[3:])
    keep = (pts[:, 2] > lo[2] - 1) & (pts[:, 2] < hi[2] + 2)
    near = np.zeros(len(pts), bool)
    for T in flat:                                                        # inside some grid
        local = transform_points(np.linalg.inv(inv_0 @ T), pts)
        near |= np.all((local[:, :2] > lo[:2] - 2) & (local[:, :2] < hi[:2] + 2), axis=1)
    keep &= near
    return poisson_surface_points(pts[keep], views[keep], spacing=grid.voxel_size / 4)


def build_sequence(frames: Sequence[SourceFrame], grid: OccGrid = DEFAULT_GRID,
                   ray_cast='all', cams=None, densify: bool = False, cam_stride: int = 8,
                   progress: bool = True) -> List[Dict[str, np.ndarray]]:
    """Occupancy of every frame of a time-ordered sequence (method: module docstring).

    Args:
        ray_cast: ``'all'`` (rays of every aggregated scan), ``'own'`` (frame k's scan
            only) or ``'none'`` (mask_lidar = occupied voxels); ``True`` / ``False``
            mean ``'all'`` / ``'none'``.
        cams: ``{name: visibility.CameraCalib}`` (or a list), the same for every frame;
            ``None``: ``mask_camera`` is all ones.
        densify: fill free voxels on the Poisson surface of the static points.
        cam_stride: pixel step between camera rays.

    Returns:
        one dict per frame, ego frame of that frame: ``semantics`` ``(X, Y, Z) uint8``
        (17 = free), ``mask_lidar`` and ``mask_camera`` ``(X, Y, Z) uint8`` (1 = observed
        / visible).

    Raises:
        ValueError: an unknown ``ray_cast``.
    """
    from tqdm import tqdm
    from occwm.occupancy.visibility import camera_visibility, lidar_visibility
    mode = _ray_cast_mode(ray_cast)
    split = [_split_frame(f) for f in frames]
    instances: Dict[str, np.ndarray] = {}
    for _, inst, _, _ in split:
        for tok, parts in inst.items():
            instances.setdefault(tok, []).extend(parts)
    instances = {tok: np.concatenate(parts) for tok, parts in instances.items()}  # (n, 4)
    flat = [planar(f.ego2global) for f in frames]
    surface = _static_surface(frames, split, flat, grid) if densify else None
    out = []
    for k, f in enumerate(tqdm(frames, desc='occupancy', unit='frame', disable=not progress)):
        inv_k = np.linalg.inv(flat[k])
        pts, labs, scans = [], [], []
        for j, ((sp, sl), _, _, _) in enumerate(split):                   # step 3: static
            T = inv_k @ flat[j]                                           # scan j -> frame k
            pts.append(transform_points(T, sp))
            labs.append(sl)
            origin = transform_points(T, frames[j].lidar2ego[None, :3, 3])[0]
            if j == k:
                scans.append((origin, split[k][3]))                      # all of scan k
            elif mode == 'all':
                scans.append((origin, pts[-1]))
        static_pts, static_labs = np.concatenate(pts), np.concatenate(labs)
        pts.append(split[k][2][0])                                        # own-frame movers
        labs.append(split[k][2][1])
        for b, tok in enumerate(f.box_tokens):                            # step 4: instances
            if tok in instances:
                loc = instances[tok]
                pts.append(transform_points(f.lidar2ego, box_global(loc, f.boxes[b])))
                labs.append(loc[:, 3].astype(np.int64))
        sem = voxelize_majority(np.concatenate(pts), np.concatenate(labs), grid)  # step 5
        if surface is not None:
            from occwm.occupancy.densify import fill_from_surface
            sem, _ = fill_from_surface(sem, transform_points(inv_k @ flat[0], surface),
                                       static_pts, static_labs, grid)
        if mode == 'none':                                                # step 6
            mask = sem != grid.free_label
        else:
            mask = lidar_visibility(scans, grid)
        cam = np.ones(grid.shape, bool) if cams is None else \
            camera_visibility(sem, cams, grid, stride=cam_stride) & mask  # step 7
        out.append(dict(semantics=sem, mask_lidar=mask.astype(np.uint8),
                        mask_camera=cam.astype(np.uint8)))
    return out


def default_scene_name(src_dir: str) -> str:
    """``.../nuscenes_seq11`` -> ``nuscenes_seq11``; ``.../seq11`` -> ``nuscenes_seq11``."""
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(os.path.normpath(src_dir)))
    return name if name.startswith('nuscenes') else f'nuscenes_{name}'


def frame_infos(frames: Sequence[SourceFrame], scene_name: str) -> List[dict]:
    """OccWorld frame_infos (``make_frame_info`` + ``add_trajectories``) of a sequence."""
    infos = [make_frame_info(scene_name, f.token, f.timestamp, f.ego_pose['translation'],
                             f.ego_pose['rotation'], f.calib['translation'], f.calib['rotation'])
             for f in frames]
    return add_trajectories(infos)


def build_scene(src_dir: str, out_dir: str, scene_name: Optional[str] = None,
                info_name: Optional[str] = None, grid: OccGrid = DEFAULT_GRID,
                ray_cast='all', cams=None, densify: bool = False, cam_stride: int = 8,
                progress: bool = True) -> dict:
    """Read ``src_dir``, build every frame and write the Occ3D layout under ``out_dir``.

    ``ray_cast``, ``cams``, ``densify``, ``cam_stride``: as in ``build_sequence``; each
    ``labels.npz`` holds ``semantics``, ``mask_lidar`` and ``mask_camera`` (all ones
    without cameras; the info pkl's ``metadata['mask_camera']`` says which).

    Returns:
        dict with ``scene_name``, ``info_path``, ``label_paths`` (one per frame),
        ``occupancy`` (``build_sequence`` output), ``ego2globals`` ``(L, 4, 4)``,
        ``seconds`` (wall time of reading + building + writing).
    """
    start = time.perf_counter()
    scene_name = scene_name or default_scene_name(src_dir)
    frames = load_source(src_dir)
    mode = _ray_cast_mode(ray_cast)
    occ = build_sequence(frames, grid, ray_cast=mode, cams=cams, densify=densify,
                         cam_stride=cam_stride, progress=progress)
    paths = []
    for f, o in zip(frames, occ):
        paths.append(labels_path(out_dir, scene_name, f.token))
        save_labels(paths[-1], o['semantics'], o['mask_lidar'], o['mask_camera'], grid=grid)
    info_path = os.path.join(out_dir, info_name or f'{scene_name}_infos.pkl')
    cam_names = sorted(cams) if isinstance(cams, dict) else [c.name for c in cams or ()]
    metadata = dict(version='occwm-occ-builder-v2',
                    source=os.path.basename(os.path.normpath(src_dir)),
                    point_cloud_range=tuple(grid.point_cloud_range), voxel_size=grid.voxel_size,
                    occ_size=grid.shape, ray_cast=mode, densify=densify,
                    mask_camera=(f'camera rays ({", ".join(cam_names)}; stride {cam_stride} px)'
                                 if cams else 'all ones (no cameras)'))
    infos = {scene_name: frame_infos(frames, scene_name)}
    save_pickle(info_path, dict(metadata=metadata, infos=infos))
    return dict(scene_name=scene_name, info_path=info_path, label_paths=paths, occupancy=occ,
                ego2globals=np.stack([f.ego2global for f in frames]),
                seconds=time.perf_counter() - start)
