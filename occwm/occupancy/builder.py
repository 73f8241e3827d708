"""Occupancy ground truth from real LiDAR (the SurroundOcc / Occ3D recipe, thin).

Input: a time-ordered sequence of ``SourceFrame`` records (``occwm.occupancy.frames``):
per frame the LiDAR points ``(N, 3)`` with Occ3D labels 0..16 (255 = ignore),
``lidar2ego``, ``ego2global``, a timestamp, and tracked boxes in the EGO frame
``(x, y, z_center, length, width, height, yaw)`` with persistent track ids. Three readers
give them, so every input goes through the same method:

* the frame format (``frames.load_frames``; ``tools/build_occupancy.py --format frames``),
  the documented way to bring your own LiDAR;
* the ``nuscenes_seq11`` layout (``occwm.occupancy.seq11.load_source``: SurroundOcc's
  per-frame files, LiDAR-frame boxes moved into the ego frame with
  ``frames.lidar_boxes_to_ego``; ``tools/convert_seq11.py`` writes it as frames);
* a nuScenes root through nuscenes-devkit (``occwm.occupancy.nuscenes``, root mode;
  ``tools/build_occupancy.py --nusc-root``), its boxes moved the same way.

Every reader builds a frame dict of the frame format and turns it into a ``SourceFrame``
with ``frames.to_source_frame`` (one check, one cast).

Output (``occwm.io``): one Occ3D ``labels.npz`` per frame and an OccWorld-style
info pkl; statistics in ``occwm.occupancy.report`` (re-exported here). The method, per
frame ``k`` of the sequence:

1. every scan goes LiDAR -> ego with its ``lidar2ego``; label-0 returns within
   ``NEAR_SENSOR_M`` of the sensor and returns on the ego body (``EGO_BODY``) are dropped;
   ignored points (label 255) only cast rays of their own scan (step 6);
2. points inside a tracked box (ego frame) that are not ground / background stuff
   (labels 11..16) belong to that box's track; the rest are static;
3. the static points of *all* frames are moved into frame ``k``'s ego frame with the
   planar ego poses (x, y, yaw: full SE(3) tilts the road, see ``occwm.geometry``);
   dynamic-class points outside every box stay in their own frame only (an
   unannotated mover must not be smeared);
4. each track's points of all frames, in box-local coordinates (origin at the box
   centre, x along yaw), are placed into every frame where its box exists (moving
   objects densified, not smeared);
5. voxelisation with the majority label per voxel, ground points just below the lowest
   layer lifted into it (``floor_ground``; the vertical convention is
   ``OccGrid.z_offset``'s: seq11's road 99.8 % in layer 0, as Occ3D's); with
   ``densify``, free voxels on the Poisson surface of the static points of the whole sequence (reconstructed once, in
   the planar frame of frame 0) are filled (``occwm.occupancy.densify``, SurroundOcc);
6. ``mask_lidar`` (``occwm.occupancy.visibility``, Occ3D LiDAR visibility, exact 3D DDA):
   ``ray_cast='all'``: every scan j casts rays from its own sensor origin (its
   ``lidar2ego`` translation moved into frame k with the planar poses) to its static
   points, and scan k also to its object, unboxed-mover and ignored points (other scans'
   moving objects were elsewhere at their time); ``'own'``: scan k's rays only;
   ``'none'``: the occupied voxels. Occupied voxels that no ray crosses (carried object
   points, densified surfaces) keep their label and stay unobserved, as in Occ3D;
7. ``mask_camera``: with cameras (fixed, or a calibration per frame), the voxels seen
   through the image pixels of some camera up to the first occupied voxel
   (``visibility.camera_visibility``) *and* observed in ``mask_lidar`` (Occ3D's masks
   satisfy ``mask_camera <= mask_lidar``); all ones when no cameras are given.
   Calibrations taken from another log of the same vehicle family (``--cam-calib``) are
   an approximation.
"""
from __future__ import annotations

import os
import time
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.io import labels_path, refuse_overwrite, save_labels, save_pickle
from occwm.geometry import apply_se2, matrix_to_quaternion, planar, transform_points
from occwm.occupancy.frames import (NUM_CLASSES, SourceFrame, folder_scene_name, load_frames,
                                   load_scene_json)
from occwm.occupancy.report import (OCC3D_NONFREE_FRACTION, format_report,  # noqa: F401
                                   occupancy_report, static_iou)
from occwm.occupancy.seq11 import (  # noqa: F401  (re-exported: the seq11 reader)
    default_scene_name, load_source, read_seq11_frame, seq11_indices)
from occwm.occupancy.visibility import CameraCalib
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, GROUND_CLASSES, STUFF_CLASSES, OccGrid

NEAR_SENSOR_M = 3.0          # label-0 returns closer than this to the sensor are invalid
# LiDAR returns dropped as hitting the ego's own body: the ego vehicle of occwm.geometry
# (EGO_LENGTH x EGO_WIDTH x EGO_HEIGHT around the rear-axle origin) with a margin for
# mirrors, roof rack and calibration (x_min, y_min, z_min, x_max, y_max, z_max) metres, ego
# frame. z_min > 0 keeps the road.
EGO_BODY = (-1.2, -1.1, 0.1, 3.4, 1.1, 2.2)
SOURCE_FORMATS = ('frames', 'seq11')


def source_format(src_dir: str) -> str:
    """``'frames'`` (a ``frames/`` folder) or ``'seq11'`` (``pc_seman/``) for a source
    folder. Raises ``FileNotFoundError`` when it is neither."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f'{src_dir}: source folder not found')
    if os.path.isdir(os.path.join(src_dir, 'frames')):
        return 'frames'
    if os.path.isdir(os.path.join(src_dir, 'pc_seman')):
        return 'seq11'
    raise FileNotFoundError(f'{src_dir}: neither the frame format (frames/000000.npz, ...; '
                            f'occwm/occupancy/frames.py) nor the nuscenes_seq11 layout '
                            f'(pc_seman/, bbox/, pose/, calib/)')


# ----------------------------------------------------------------------------- geometry
def box_local(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(N, 3)`` points to the frame of ``box`` ``(7,)`` (x, y, z_center, length, width,
    height, yaw): origin at its centre, x along yaw."""
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
        points: ``(N, 3+)`` metres; boxes: ``(M, 7)`` (x, y, z_center, length, width,
        height, yaw), same frame (upright boxes). A point p is inside when
        ``q = R_z(-yaw)(p - (x, y, z_center))`` has ``|q_x| <= length/2``,
        ``|q_y| <= width/2``, ``|q_z| <= height/2``.

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
                  & (np.abs(dz) <= boxes[:, 5] / 2))                    # (n, M)
        hit = inside.any(axis=1)
        out[i:i + chunk][hit] = inside[hit].argmax(axis=1)
    return out


GROUND_FLOOR_M = 0.4  # ground points this far below the lowest layer are kept in it


def floor_ground(points: np.ndarray, labels: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                 margin: float = GROUND_FLOOR_M) -> np.ndarray:
    """Ground points (``GROUND_CLASSES``) up to ``margin`` m below the grid's lowest
    layer, lifted into it.

    The vertical convention (``OccGrid.z_offset``) puts the road under the ego in layer 0
    (ego z -0.2 to 0.2 m), as the official Occ3D-nuScenes frames have every road voxel
    there; a road that falls away from the ego (seq11: the road's median ego z is -0.02 m
    within 10 m, -0.1 to -0.15 m at 20-40 m, 5 % of it below -0.5 m) would otherwise drop
    out of the grid.

    Args:
        points: ``(N, 3+)`` metres, ego frame; labels: ``(N,)`` ints.

    Returns:
        ``(N, 3+) float64`` (a copy where anything is lifted).
    """
    z0 = grid.origin[2]
    low = np.isin(labels, GROUND_CLASSES) & (points[:, 2] < z0) & (points[:, 2] >= z0 - margin)
    if not low.any():
        return points
    points = np.array(points, dtype=np.float64)
    points[low, 2] = z0 + 1e-6
    return points


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
    if not inside.any():                                              # no point in the grid
        return occ
    vid = np.ravel_multi_index(idx[inside].T, grid.shape)             # (n,) flat voxel id
    keys, counts = np.unique(vid * C + labels[inside], return_counts=True)
    v, lab = keys // C, keys % C
    order = np.lexsort((counts, v))                                   # by voxel, then count
    last = np.r_[v[order][1:] != v[order][:-1], True]                 # the top count per voxel
    occ.reshape(-1)[v[order][last]] = lab[order][last]
    return occ


# ----------------------------------------------------------------------------- building
def _split_frame(f: SourceFrame):
    """Static ego-frame points + labels, track points (box-local x, y, z, label per
    token), own-frame-only points + labels, and all valid points (ego frame; ignored
    points too: they cast their scan's rays)."""
    keep = ~((f.labels == 0) & (np.linalg.norm(f.points, axis=1) < NEAR_SENSOR_M))
    ego = transform_points(f.lidar2ego, f.points)                          # (N, 3) ego frame
    body = np.all((ego >= EGO_BODY[:3]) & (ego <= EGO_BODY[3:]), axis=1)
    keep &= ~body
    labelled = keep & (f.labels < NUM_CLASSES)                            # not 255 (ignore)
    box_of = points_in_boxes(ego, f.boxes)                                # ego frame test
    obj = labelled & (box_of >= 0) & ~np.isin(f.labels, STUFF_CLASSES)
    own = labelled & ~obj & np.isin(f.labels, DYNAMIC_CLASSES)            # unboxed movers
    static = labelled & ~obj & ~own
    instances: Dict[str, List[np.ndarray]] = {}
    for b in np.unique(box_of[obj]):
        sel = obj & (box_of == b)
        loc = box_local(ego[sel], f.boxes[b])                             # (n, 3) box frame
        instances.setdefault(f.box_tokens[b], []).append(
            np.concatenate([loc, f.labels[sel, None].astype(np.float64)], axis=1))
    return (ego[static], f.labels[static]), instances, (ego[own], f.labels[own]), ego[keep]


def cameras_per_frame(cams, num_frames: int) -> List[Optional[List[CameraCalib]]]:
    """The cameras of each frame.

    Args:
        cams: ``None``; ``{name: CameraCalib}`` or a list of ``CameraCalib`` (the same
            for every frame); ``{name: [CameraCalib, ...]}`` with one calibration per frame
            (``frames.load_scene_json``; fixed and per-frame cameras may mix); or a list of
            ``num_frames`` camera sets (dicts or lists).

    Returns:
        ``num_frames`` lists of ``CameraCalib`` (``None`` for a frame without cameras).

    Raises:
        ValueError: a per-frame list whose length is not ``num_frames``.
    """
    if not cams:
        return [None] * num_frames
    if isinstance(cams, Mapping):
        out: List[List[CameraCalib]] = [[] for _ in range(num_frames)]
        for name, cam in cams.items():
            per = [cam] * num_frames if isinstance(cam, CameraCalib) else list(cam)
            if len(per) != num_frames:
                raise ValueError(f'camera {name}: {len(per)} calibrations for {num_frames} frames')
            for frame_cams, c in zip(out, per):
                frame_cams.append(c)
        return out
    cams = list(cams)
    if all(isinstance(c, CameraCalib) for c in cams):
        return [cams] * num_frames
    if len(cams) != num_frames:
        raise ValueError(f'{len(cams)} camera sets for {num_frames} frames')
    return [list(c.values()) if isinstance(c, Mapping) else (list(c) or None) for c in cams]


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
    lo = grid.origin
    hi = lo + np.asarray(grid.shape) * grid.voxel_size
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
        cams: ``None`` (``mask_camera`` all ones) or cameras, fixed or per frame, in any
            form of ``cameras_per_frame``.
        densify: fill free voxels on the Poisson surface of the static points.
        cam_stride: pixel step between camera rays.

    Returns:
        one dict per frame, ego frame of that frame: ``semantics`` ``(X, Y, Z) uint8``
        (17 = free), ``mask_lidar`` and ``mask_camera`` ``(X, Y, Z) uint8`` (1 = observed
        / visible).

    Raises:
        ValueError: an unknown ``ray_cast``, per-frame cameras of the wrong length.
    """
    from tqdm import tqdm
    from occwm.occupancy.visibility import camera_visibility, lidar_visibility
    mode = _ray_cast_mode(ray_cast)
    frame_cams = cameras_per_frame(cams, len(frames))
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
        for b, tok in enumerate(f.box_tokens):                            # step 4: tracks
            if tok in instances:
                loc = instances[tok]
                pts.append(box_global(loc, f.boxes[b]))                   # (n, 3) ego frame
                labs.append(loc[:, 3].astype(np.int64))
        pts, labs = np.concatenate(pts), np.concatenate(labs)
        sem = voxelize_majority(floor_ground(pts, labs, grid), labs, grid)  # step 5
        if surface is not None:
            from occwm.occupancy.densify import fill_from_surface
            sem, _ = fill_from_surface(sem, transform_points(inv_k @ flat[0], surface),
                                       static_pts, static_labs, grid)
        if mode == 'none':                                                # step 6
            mask = sem != grid.free_label
        else:
            mask = lidar_visibility(scans, grid)
        cam = np.ones(grid.shape, bool) if frame_cams[k] is None else \
            camera_visibility(sem, frame_cams[k], grid, stride=cam_stride) & mask  # step 7
        out.append(dict(semantics=sem, mask_lidar=mask.astype(np.uint8),
                        mask_camera=cam.astype(np.uint8)))
    return out


def _record_pose(record: Optional[dict], T: np.ndarray):
    """Translation ``(3,)`` and w, x, y, z rotation ``(4,)`` of a pose: the raw record's
    when the reader kept one, else from the matrix (``matrix_to_quaternion``, w >= 0)."""
    if record is not None:
        return record['translation'], record['rotation']
    return T[:3, 3].copy(), matrix_to_quaternion(T)


def frame_infos(frames: Sequence[SourceFrame], scene_name: str) -> List[dict]:
    """OccWorld frame_infos (``make_frame_info`` + ``add_trajectories``) of a sequence."""
    infos = [make_frame_info(scene_name, f.token, f.timestamp,
                             *_record_pose(f.ego_pose, f.ego2global),
                             *_record_pose(f.calib, f.lidar2ego))
             for f in frames]
    return add_trajectories(infos)


def read_source(src_dir: str, fmt: str = 'auto', scene_name: Optional[str] = None):
    """Read a source folder: ``(frames, scene_name, cameras, fmt)``.

    Args:
        fmt: ``'frames'``, ``'seq11'`` or ``'auto'`` (``source_format``).
        scene_name: overrides the source's (frame format: ``scene.json``, else the folder
            name; seq11: ``default_scene_name``); frame-format tokens derive from it.

    Returns:
        ``SourceFrame`` list, the scene name, the source's cameras (``scene.json``'s,
        ``{}`` for the seq11 layout) and the format (``'frames'`` or ``'seq11'``).
    """
    fmt = source_format(src_dir) if fmt == 'auto' else fmt
    if fmt == 'seq11':
        return load_source(src_dir), scene_name or default_scene_name(src_dir), {}, fmt
    if fmt != 'frames':
        raise ValueError(f"format must be 'auto' or one of {SOURCE_FORMATS}, got {fmt!r}")
    frames = load_frames(src_dir, scene_name)
    scene = load_scene_json(src_dir, num_frames=len(frames))
    return (frames, scene_name or scene['scene_name'] or folder_scene_name(src_dir),
            scene['cameras'], fmt)


def camera_note(cams, cam_stride: int) -> str:
    """How ``mask_camera`` was made, for the info pkl metadata and the tool's printout."""
    if not cams:
        return 'all ones (no cameras)'
    names = list(cams) if isinstance(cams, Mapping) else [c.name for c in cams]
    per_frame = isinstance(cams, Mapping) and any(not isinstance(c, CameraCalib)
                                                  for c in cams.values())
    return (f'camera rays ({", ".join(names)}; {"per-frame cam2ego; " if per_frame else ""}'
            f'stride {cam_stride} px)')


def build_scene(src_dir: str, out_dir: str, scene_name: Optional[str] = None,
                info_name: Optional[str] = None, grid: OccGrid = DEFAULT_GRID,
                ray_cast='all', cams='source', densify: bool = False, cam_stride: int = 8,
                progress: bool = True, fmt: str = 'auto', overwrite: bool = True) -> dict:
    """Read ``src_dir`` (``read_source``), build every frame and write the Occ3D layout
    under ``out_dir``.

    ``ray_cast``, ``densify``, ``cam_stride``: as in ``build_sequence``; ``cams``:
    ``'source'`` (default: the frame format's ``scene.json`` cameras, none for the seq11
    layout), ``None`` (none) or cameras for ``build_sequence`` (an override). Each
    ``labels.npz`` holds ``semantics``, ``mask_lidar`` and ``mask_camera`` (all ones
    without cameras; the info pkl's ``metadata['mask_camera']`` says which).
    ``overwrite=False``: stop before building when the scene's ``gts/<scene>`` folder or
    its info pkl exists (``occwm.io.refuse_overwrite``: a ``SetupError``).

    Returns:
        dict with ``scene_name``, ``format``, ``info_path``, ``label_paths`` (one per
        frame), ``occupancy`` (``build_sequence`` output), ``ego2globals`` ``(L, 4, 4)``,
        ``mask_camera`` (how it was made), ``seconds`` (wall time of reading + building +
        writing).
    """
    start = time.perf_counter()
    if isinstance(cams, str) and cams != 'source':
        raise ValueError(f"cams must be 'source', None or cameras, got {cams!r}")
    mode = _ray_cast_mode(ray_cast)
    frames, scene_name, source_cams, fmt = read_source(src_dir, fmt, scene_name)
    info_path = os.path.join(out_dir, info_name or f'{scene_name}_infos.pkl')
    refuse_overwrite([os.path.join(out_dir, 'gts', scene_name), info_path], overwrite,
                     f'occupancy of scene {scene_name}')
    cams = source_cams if isinstance(cams, str) else cams
    occ = build_sequence(frames, grid, ray_cast=mode, cams=cams, densify=densify,
                         cam_stride=cam_stride, progress=progress)
    paths = []
    for f, o in zip(frames, occ):
        paths.append(labels_path(out_dir, scene_name, f.token))
        save_labels(paths[-1], o['semantics'], o['mask_lidar'], o['mask_camera'], grid=grid)
    note = camera_note(cams, cam_stride)
    metadata = dict(version='occwm-occ-builder-v2',
                    source=os.path.basename(os.path.normpath(src_dir)), format=fmt,
                    point_cloud_range=tuple(grid.point_cloud_range), z_offset=grid.z_offset,
                    voxel_size=grid.voxel_size,
                    occ_size=grid.shape, ray_cast=mode, densify=densify, mask_camera=note)
    infos = {scene_name: frame_infos(frames, scene_name)}
    save_pickle(info_path, dict(metadata=metadata, infos=infos))
    return dict(scene_name=scene_name, format=fmt, info_path=info_path, label_paths=paths,
                occupancy=occ, ego2globals=np.stack([f.ego2global for f in frames]),
                mask_camera=note, seconds=time.perf_counter() - start)
