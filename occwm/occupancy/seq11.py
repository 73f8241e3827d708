"""Reader of the ``nuscenes_seq11`` layout (SurroundOcc's per-frame files of one nuScenes
sequence, ``../shared/data/nuscenes_seq11``) into the frame format of
``occwm.occupancy.frames``: in memory for the builder (``load_source``;
``tools/build_occupancy.py --format seq11``) or written as frames
(``tools/convert_seq11.py``, through ``read_seq11_frame``).

One file per frame ``K`` (any sorted integers)::

    pc_seman/pc_seman_K.npy               (N, 4) float   x, y, z (LiDAR frame, metres), label 0..16
    bbox/bboxK.npy                        (M, 7) float   x, y, z_bottom, w, l, h, heading + pi / 2
                                                         (LiDAR frame; SurroundOcc, see the README
                                                         of ../shared/data)
    bbox/boxes_tokenK.npy                 (M,)   str     nuScenes instance tokens (persistent)
    bbox/object_categoryK.npy             (M,)   int     class ids 0..16
    pose/lidar_ego_poseK.npy              pickled dict   nuScenes ego_pose record (ego -> global)
    calib/lidar_calibrated_sensorK.npy    pickled dict   LIDAR_TOP calibrated_sensor (LiDAR -> ego)

The boxes become ``(x, y, z_bottom, l, w, h, heading)`` and move into the ego frame with
``frames.lidar_boxes_to_ego`` (upright there; this LiDAR is tilted by about 1.4 degrees
against the ego, which moves box corners by centimetres); the frame token is the
ego_pose record's ``sample_token`` (else its ``token``); the raw ego_pose and
calibrated_sensor records go to the info pkl unchanged.
"""
from __future__ import annotations

import glob
import os
import re
from typing import List

import numpy as np

from occwm.geometry import record_pose_matrix, wrap_angle
from occwm.occupancy.frames import (NUM_CLASSES, SourceFrame, check_sequence,
                                   folder_scene_name, lidar_boxes_to_ego, to_source_frame)

SOURCE_FILES = {  # key -> path pattern relative to a nuscenes_seq11 folder
    'pc_seman': 'pc_seman/pc_seman_{k}.npy', 'bbox': 'bbox/bbox{k}.npy',
    'boxes_token': 'bbox/boxes_token{k}.npy', 'object_category': 'bbox/object_category{k}.npy',
    'pose': 'pose/lidar_ego_pose{k}.npy', 'calib': 'calib/lidar_calibrated_sensor{k}.npy'}


def _load(path: str, record: bool = False):
    """An array (plain or object, e.g. tokens) or, with ``record``, a pickled dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: missing source file')
    try:
        arr = np.load(path, allow_pickle=True)
        return arr.item() if record else arr
    except Exception as e:  # corrupt npy, not a pickled object array, ...
        raise ValueError(f'{path}: cannot read ({type(e).__name__}: {e})') from e


def seq11_indices(src_dir: str) -> List[int]:
    """Sorted frame indices ``K`` of ``pc_seman/pc_seman_K.npy`` in ``src_dir``."""
    pattern = os.path.join(src_dir, 'pc_seman', 'pc_seman_*.npy')
    found = sorted(int(m.group(1)) for p in glob.glob(pattern)
                   if (m := re.fullmatch(r'pc_seman_(\d+)\.npy', os.path.basename(p))))
    if not found:
        raise FileNotFoundError(f'{pattern}: no LiDAR scans found (is {src_dir} a folder in the '
                                f'layout of nuscenes_seq11?)')
    return found


def read_seq11_frame(src_dir: str, k: int) -> dict:
    """Frame ``k`` of a ``nuscenes_seq11`` folder in the frame format.

    Returns:
        dict with the fields of ``frames.write_frame`` (``timestamp`` in seconds, boxes
        ``(M, 7)`` in the ego frame) plus ``token`` (the sample token) and the raw
        nuScenes records ``ego_pose`` and ``calib``.

    Raises:
        FileNotFoundError / ValueError naming the file and the fault.
    """
    p = {key: os.path.join(src_dir, pat.format(k=k)) for key, pat in SOURCE_FILES.items()}
    pc = np.asarray(_load(p['pc_seman']), np.float64)
    if pc.ndim != 2 or pc.shape[1] < 4:
        raise ValueError(f"{p['pc_seman']}: expected (N, 4) x, y, z, label, got shape {pc.shape}")
    if not np.all(np.isfinite(pc[:, :4])):
        raise ValueError(f"{p['pc_seman']}: non-finite coordinates or labels")
    labels = pc[:, 3].astype(np.int64)
    if np.any(labels != pc[:, 3]) or np.any((labels < 0) | (labels >= NUM_CLASSES)):
        raise ValueError(f"{p['pc_seman']}: labels must be integers 0..{NUM_CLASSES - 1}")
    boxes = np.asarray(_load(p['bbox']), np.float64)
    boxes = boxes.reshape(0, 7) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 7 or not np.all(np.isfinite(boxes)):
        raise ValueError(f"{p['bbox']}: expected finite (M, 7) boxes "
                         f"(x, y, z_bottom, w, l, h, heading + pi / 2), got shape {boxes.shape}")
    tokens = np.asarray(_load(p['boxes_token'])).astype(str).reshape(-1)
    cats = np.asarray(_load(p['object_category'])).reshape(-1).astype(np.int64)
    for key, arr in (('boxes_token', tokens), ('object_category', cats)):
        if len(arr) != len(boxes):
            raise ValueError(f'{p[key]}: {len(arr)} entries but {p["bbox"]} has {len(boxes)} boxes')
    pose = _load(p['pose'], record=True)
    calib = _load(p['calib'], record=True)
    if not isinstance(pose, dict) or 'token' not in pose or 'timestamp' not in pose:
        got = sorted(pose) if isinstance(pose, dict) else type(pose).__name__
        raise ValueError(f"{p['pose']}: expected a nuScenes ego_pose record with token and "
                         f'timestamp, got {got}')
    ego2global = record_pose_matrix(pose, p['pose'])
    lidar2ego = record_pose_matrix(calib, p['calib'])
    lidar_boxes = boxes[:, [0, 1, 2, 4, 3, 5, 6]]                      # (M, 7) l along heading
    lidar_boxes[:, 6] = wrap_angle(boxes[:, 6] - np.pi / 2)
    return dict(points=pc[:, :3], labels=labels, lidar2ego=lidar2ego, ego2global=ego2global,
                timestamp=int(pose['timestamp']) / 1e6,
                boxes=lidar_boxes_to_ego(lidar_boxes, lidar2ego), box_ids=tokens,
                box_labels=cats, token=str(pose.get('sample_token', pose['token'])),
                ego_pose=pose, calib=calib)


def load_source(src_dir: str) -> List[SourceFrame]:
    """All frames of a ``nuscenes_seq11`` folder, in time order (timestamps must
    increase), read through the frame format in memory (``frames.to_source_frame``
    checks and casts each one as ``frames.read_frame`` does)."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f'{src_dir}: source folder not found')
    frames, names = [], []
    for k in seq11_indices(src_dir):
        f = read_seq11_frame(src_dir, k)
        names.append(os.path.join(src_dir, SOURCE_FILES['pc_seman'].format(k=k)))
        frames.append(to_source_frame(f, k, f['token'], names[-1], ego_pose=f['ego_pose'],
                                      calib=f['calib']))
    check_sequence(frames, names, default_scene_name(src_dir))
    return frames


def default_scene_name(src_dir: str) -> str:
    """``.../nuscenes_seq11`` -> ``nuscenes_seq11``; ``.../seq11`` -> ``nuscenes_seq11``."""
    name = folder_scene_name(src_dir)
    return name if name.startswith('nuscenes') else f'nuscenes_{name}'
