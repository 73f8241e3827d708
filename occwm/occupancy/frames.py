"""The frame format: bring your own LiDAR to the occupancy builder.

One sequence is one folder ``SRC`` (``tools/build_occupancy.py --format frames SRC OUT``
turns it into the Occ3D layout with ``occwm.occupancy.builder``)::

    SRC/frames/000000.npz    one file per LiDAR frame, in time order: indices 000000 ..
    SRC/frames/000001.npz    L-1, 6 digits, contiguous (``frame_path``, ``write_frame``)
    ...
    SRC/scene.json           optional: scene name and cameras (``write_scene_json``)

Each ``frames/<NNNNNN>.npz`` (``write_frame`` writes it, ``read_frame`` checks it)::

    points      (N, 3)  float32  x, y, z metres, LiDAR frame
    labels      (N,)    uint8    Occ3D class per point, 0..16 (``occwm.grid.OCC3D_CLASS_NAMES``);
                                 255 = ignore: dropped from the semantics, but the point
                                 still casts its ray for ``mask_lidar`` (scan k's own rays)
    lidar2ego   (4, 4)  float64  LiDAR -> ego, rigid (orthonormal rotation, det +1,
                                 bottom row 0 0 0 1)
    ego2global  (4, 4)  float64  ego -> global (any fixed world frame), rigid; only its
                                 x, y and yaw are used (frames are related by planar poses,
                                 see ``occwm.geometry.planar``)
    timestamp   ()      float64  seconds (any epoch), strictly increasing over the frames
    boxes       (M, 7)  float32  optional, EGO frame: x, y, z_center, length, width,
                                 height (metres), yaw (radians, counter-clockwise about +z
                                 from the ego x axis to the length axis); upright boxes
    box_ids     (M,)    str or int64  track ids, persistent across frames (one object, one id)
    box_labels  (M,)    uint8    Occ3D class of each box, 0..16

Ego frame (nuScenes): x forward, y left, z up, origin on the ground below the centre of
the rear axle, so the road lies at z ~ 0. ``boxes``, ``box_ids`` and ``box_labels`` come
together or not at all (a frame without boxes: no field, or M = 0). How the builder uses
them: points inside a box (the ego-frame test of ``builder.points_in_boxes``) that are not
ground or background stuff (classes 11..16) belong to that track and are carried into
every frame where its id has a box; dynamic-class points outside every box stay in their
own frame; all other points are static and aggregated over the sequence.

``scene.json`` (optional; without it the scene is named after the folder and
``mask_camera`` is all ones)::

    {"scene_name": "my_scene",
     "cameras": {"CAM_FRONT": {"cam2img": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],
                               "image_size": [W, H],
                               "cam2ego": 4 x 4 (a fixed rig)}
                 "CAM_BACK": {..., "cam2ego_per_frame": [4 x 4, ...] (one per frame)}}}

``cam2ego`` maps camera-frame points (x right, y down, z forward; nuScenes / OpenCV) to
the ego frame in metres; ``cam2img`` is the 3 x 3 intrinsic matrix in pixels
(``occwm.occupancy.visibility.CameraCalib``). Scene names are folder names under
``gts/``: no ``/`` or ``\\``.

In memory every reader builds a dict of these fields and turns it into a ``SourceFrame``
with ``to_source_frame`` (the checks of ``read_frame``): ``load_frames`` for this format,
``occwm.occupancy.seq11.load_source`` for the ``nuscenes_seq11`` layout and
``occwm.occupancy.nuscenes.load_nuscenes_scene`` for a nuScenes root (both move their
LiDAR-frame boxes into the ego frame with ``lidar_boxes_to_ego``);
``builder.build_sequence`` takes them. Frames carry no tokens: the token of frame ``i`` is
``frame_token(scene_name, i)``, stable for a scene name and index. Timestamps become
integer microseconds.

Bad input raises a one-line ``ValueError`` (``FileNotFoundError`` for missing files) that
names the file and the field: ``SRC/frames/000003.npz: lidar2ego: rotation not
orthonormal (max |R^T R - I| = 0.02)``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from occwm.geometry import implausible_motion, timestamp_unit_mistake, transform_points
from occwm.grid import DEFAULT_GRID
from occwm.infos.fields import hashed_token
from occwm.io import atomic_path, read_npz
from occwm.occupancy.visibility import CameraCalib

FRAMES_DIR = 'frames'
SCENE_JSON = 'scene.json'
FRAME_FIELDS = ('points', 'labels', 'lidar2ego', 'ego2global', 'timestamp')
BOX_FIELDS = ('boxes', 'box_ids', 'box_labels')
NUM_CLASSES = DEFAULT_GRID.free_label          # semantic classes 0..16
IGNORE_LABEL = 255
RIGID_TOL = 1e-5                               # max |R^T R - I| of a rigid transform
MAX_SECONDS = 1e11                             # larger timestamps are not seconds
_NAME = re.compile(r'(\d{6})\.npz')
_TOKEN_VERSION = 'occwm-frames-1'


@dataclass
class SourceFrame:
    """One LiDAR frame as the builder takes it (``builder.build_sequence``).

    ``index`` position in the sequence; ``token`` sample token (the folder under
    ``gts/<scene>/``); ``timestamp`` int microseconds; ``points`` ``(N, 3) float64``
    metres, LiDAR frame; ``labels`` ``(N,) int64`` 0..16 or 255 (ignore); ``boxes``
    ``(M, 7) float64`` EGO frame (x, y, z_center, length, width, height, yaw);
    ``box_tokens`` ``(M,) str`` track ids; ``box_labels`` ``(M,) int64`` 0..16;
    ``ego2global`` / ``lidar2ego`` ``(4, 4) float64``; ``ego_pose`` / ``calib``: the raw
    nuScenes records when the reader has them (their translation and rotation go to the
    info pkl unchanged; else they are derived from the matrices).

    Readers make them with ``to_source_frame`` from a frame dict of this format, which
    checks and casts every field.
    """
    index: int
    token: str
    timestamp: int
    points: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    box_tokens: np.ndarray
    box_labels: np.ndarray
    ego2global: np.ndarray
    lidar2ego: np.ndarray
    ego_pose: Optional[dict] = None
    calib: Optional[dict] = None


def lidar_boxes_to_ego(boxes: np.ndarray, lidar2ego: np.ndarray) -> np.ndarray:
    """LiDAR-frame boxes to the ego-frame boxes of the frame format.

    Args:
        boxes: ``(M, 7)`` (x, y, z_bottom, dx, dy, dz, yaw), LiDAR frame, dx along yaw
            (mmdet3d LiDAR boxes; the ``nuscenes_seq11`` and nuScenes-root readers).
        lidar2ego: ``(4, 4)`` LiDAR -> ego.

    Returns:
        ``(M, 7) float64`` (x, y, z_center, length = dx, width = dy, height = dz, yaw), ego
        frame: the centre moved exactly, yaw the heading ``R (cos yaw, sin yaw, 0)``
        projected on the ego ground plane. The box stays upright in the ego frame, so a
        LiDAR tilted by ``a`` radians against the ego moves a corner at distance ``r`` from
        the centre by about ``a r`` (1.4 degrees and 2.5 m: 6 cm).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    centre = b[:, :3].copy()
    centre[:, 2] += b[:, 5] / 2                                          # (M, 3) LiDAR frame
    heading = np.stack([np.cos(b[:, 6]), np.sin(b[:, 6]), np.zeros(len(b))], 1)  # (M, 3)
    heading = heading @ np.asarray(lidar2ego, np.float64)[:3, :3].T      # (M, 3) ego frame
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    return np.concatenate([transform_points(lidar2ego, centre), b[:, 3:6], yaw[:, None]], 1)


def frame_token(scene_name: str, index: int) -> str:
    """The 32-hex token of frame ``index`` of a frame-format scene (stable:
    ``occwm.infos.fields.hashed_token`` of the format version, scene name and index)."""
    return hashed_token(_TOKEN_VERSION, scene_name, index)


def seconds_to_us(seconds: float) -> int:
    """Timestamp in seconds -> integer microseconds (rounded; exact for float64 seconds
    of µs timestamps up to about 4e9 s)."""
    return int(round(float(seconds) * 1e6))


# ----------------------------------------------------------------------------- checks
def _fault(name: str, field: str, msg: str) -> ValueError:
    return ValueError(' '.join(f'{name}: {field}: {msg}'.split()))  # always one line


def _array(value, name: str, field: str, kinds: str, want: str) -> np.ndarray:
    """``value`` as an array whose dtype kind is one of ``kinds`` (numpy kind codes)."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise _fault(name, field, f'not an array ({e})') from e
    if arr.dtype.kind not in kinds and arr.size:      # an empty list is any dtype
        raise _fault(name, field, f'dtype {arr.dtype} (want {want})')
    return arr


def _shaped(arr: np.ndarray, shape: Sequence[Optional[int]], name: str, field: str
            ) -> np.ndarray:
    """Check ``arr.shape`` against ``shape`` (``None``: any length)."""
    if arr.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, arr.shape)):
        want = '(' + ', '.join('N' if s is None else str(s) for s in shape) + \
            (',)' if len(shape) == 1 else ')')
        raise _fault(name, field, f'shape {tuple(arr.shape)} (want {want})')
    return arr


def _finite(arr: np.ndarray, name: str, field: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise _fault(name, field, f'non-finite value at index {bad}')
    return arr


def check_rigid(value, name: str, field: str) -> np.ndarray:
    """A ``(4, 4) float64`` rigid transform, or a ``ValueError`` naming ``name`` and
    ``field``: float dtype, finite, rotation orthonormal (``RIGID_TOL``) with det +1,
    bottom row ``0 0 0 1``."""
    T = _finite(_shaped(_array(value, name, field, 'f', 'float64'), (4, 4), name, field),
                name, field).astype(np.float64)
    if not np.allclose(T[3], [0, 0, 0, 1], rtol=0, atol=1e-9):
        raise _fault(name, field, f'bottom row {T[3].tolist()} (want [0, 0, 0, 1])')
    R = T[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > RIGID_TOL:
        raise _fault(name, field, f'rotation not orthonormal (max |R^T R - I| = {err:.3g})')
    det = float(np.linalg.det(R))
    if det < 0:
        raise _fault(name, field, f'det(R) = {det:.6g}, a reflection (want +1)')
    return T


def _labels(value, n: Optional[int], name: str, field: str, allow_ignore: bool) -> np.ndarray:
    arr = _shaped(_array(value, name, field, 'iu', 'uint8'), (n,), name, field)
    bad = (arr < 0) | (arr >= NUM_CLASSES)
    if allow_ignore:
        bad &= arr != IGNORE_LABEL
    if bad.any():
        rule = f'0..{NUM_CLASSES - 1}' + (f' or {IGNORE_LABEL} (ignore)' if allow_ignore else '')
        raise _fault(name, field, f'label {int(arr[bad][0])} at index {int(np.argmax(bad))} '
                                  f'out of range (want {rule})')
    return arr.astype(np.uint8)


def check_frame(frame: Mapping, name: str) -> Dict[str, np.ndarray]:
    """Check one frame and cast it to the documented dtypes (module docstring).

    Args:
        frame: a mapping with the fields of ``write_frame`` (other keys are ignored).
        name: how errors name the frame (its file path).

    Returns:
        dict with the 8 fields: ``points`` float32, ``labels`` uint8, ``lidar2ego`` /
        ``ego2global`` float64, ``timestamp`` 0-d float64 seconds, ``boxes`` ``(M, 7)``
        float32, ``box_ids`` ``(M,)`` str or int64, ``box_labels`` uint8 (M = 0 without
        boxes).

    Raises:
        ValueError: one line naming ``name`` and the field.
    """
    for key in FRAME_FIELDS:
        if frame.get(key) is None:
            raise _fault(name, key, f'missing field (a frame needs {", ".join(FRAME_FIELDS)})')
    points = _array(frame['points'], name, 'points', 'f', 'float32 (N, 3) metres')
    points = _finite(_shaped(points, (None, 3), name, 'points'), name, 'points')
    labels = _labels(frame['labels'], len(points), name, 'labels', allow_ignore=True)
    lidar2ego = check_rigid(frame['lidar2ego'], name, 'lidar2ego')
    ego2global = check_rigid(frame['ego2global'], name, 'ego2global')
    ts = _array(frame['timestamp'], name, 'timestamp', 'fiu', 'float64 seconds')
    if ts.size != 1:
        raise _fault(name, 'timestamp', f'shape {tuple(ts.shape)} (want one number)')
    ts = float(_finite(ts.reshape(()), name, 'timestamp'))
    if abs(ts) > MAX_SECONDS:
        raise _fault(name, 'timestamp', f'{ts:.17g} is not seconds (microseconds or '
                                        f'nanoseconds? divide by 1e6 or 1e9)')
    out = dict(points=points.astype(np.float32), labels=labels, lidar2ego=lidar2ego,
               ego2global=ego2global, timestamp=np.float64(ts))
    given = [k for k in BOX_FIELDS if frame.get(k) is not None]
    if not given:
        return dict(out, boxes=np.zeros((0, 7), np.float32), box_ids=np.zeros(0, str),
                    box_labels=np.zeros(0, np.uint8))
    for key in BOX_FIELDS:
        if key not in given:
            raise _fault(name, key, f'missing field ({", ".join(given)} given: boxes, '
                                    f'box_ids and box_labels come together)')
    boxes = _array(frame['boxes'], name, 'boxes', 'f', 'float32 (M, 7)')
    boxes = _finite(_shaped(boxes.reshape(-1, 7) if boxes.size == 0 else boxes, (None, 7),
                            name, 'boxes'), name, 'boxes')
    if np.any(boxes[:, 3:6] <= 0):
        row = int(np.argwhere(boxes[:, 3:6] <= 0)[0, 0])
        raise _fault(name, 'boxes', f'box {row}: length, width, height must be > 0, got '
                                    f'{boxes[row, 3:6].tolist()}')
    M = len(boxes)
    ids = _array(frame['box_ids'], name, 'box_ids', 'UiuO', 'str or int track ids')
    if ids.ndim != 1 or len(ids) != M:
        raise _fault(name, 'box_ids', f'shape {tuple(ids.shape)} but boxes has {M} rows '
                                      f'(box arrays of inconsistent lengths)')
    if ids.dtype.kind == 'O':                      # in memory: a list of str / int
        if not all(isinstance(i, (str, int, np.integer)) for i in ids):
            raise _fault(name, 'box_ids', 'ids must be str or int')
        ids = ids.astype(str)
    ids = ids.astype(np.int64) if ids.dtype.kind in 'iu' else ids.astype(str)
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise _fault(name, 'box_ids', f'id {uniq[counts > 1][0]!r} appears {counts.max()} times '
                                      f'(one box per track and frame)')
    box_labels = _array(frame['box_labels'], name, 'box_labels', 'iu', 'uint8')
    if box_labels.ndim != 1 or len(box_labels) != M:
        raise _fault(name, 'box_labels', f'shape {tuple(box_labels.shape)} but boxes has {M} '
                                         f'rows (box arrays of inconsistent lengths)')
    box_labels = _labels(box_labels, M, name, 'box_labels', allow_ignore=False)
    return dict(out, boxes=boxes.astype(np.float32), box_ids=ids, box_labels=box_labels)


# ----------------------------------------------------------------------------- frames
def frame_path(src_dir: str, index: int) -> str:
    """``<src_dir>/frames/<index:06d>.npz``."""
    if not 0 <= int(index) < 10 ** 6:
        raise ValueError(f'frame index {index} out of range 0..999999')
    return os.path.join(src_dir, FRAMES_DIR, f'{int(index):06d}.npz')


def write_frame(path: str, points, labels, lidar2ego, ego2global, timestamp, boxes=None,
                box_ids=None, box_labels=None) -> None:
    """Check one frame (``check_frame``), cast it to the documented dtypes and write it
    to ``path`` atomically (uncompressed npz). Arguments: the fields of the module
    docstring (``timestamp`` in seconds; boxes in the EGO frame).

    Raises:
        ValueError: naming ``path`` and the field; nothing is written.
    """
    frame = check_frame(dict(points=points, labels=labels, lidar2ego=lidar2ego,
                             ego2global=ego2global, timestamp=timestamp, boxes=boxes,
                             box_ids=box_ids, box_labels=box_labels), path)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            np.savez(f, **frame)


def read_frame(path: str) -> Dict[str, np.ndarray]:
    """Read and check one frame file.

    Returns:
        ``check_frame``'s dict (boxes fields with M = 0 when the file has none).

    Raises:
        FileNotFoundError: no file; ValueError: unreadable, or a bad field (named).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: frame file not found')
    return check_frame(read_npz(path), path)     # read_npz: one-line errors naming the file


def frame_indices(src_dir: str) -> List[int]:
    """Indices ``0..L-1`` of ``<src_dir>/frames/<NNNNNN>.npz``.

    Raises:
        FileNotFoundError: no ``frames/`` folder or no frame in it, or a gap in the
            indices (the first missing file is named); ValueError: an ``.npz`` file whose
            name is not 6 digits.
    """
    folder = os.path.join(src_dir, FRAMES_DIR)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{folder}: no frames folder (the frame format: '
                                f'SRC/frames/000000.npz, ...; see occwm/occupancy/frames.py)')
    found = []
    for f in sorted(os.listdir(folder)):
        if f.startswith('.') or not f.endswith('.npz'):
            continue                                 # temporary files of atomic writes
        m = _NAME.fullmatch(f)
        if not m:
            raise ValueError(f'{os.path.join(folder, f)}: file name: not a frame name '
                             f'(want 6 digits, e.g. 000007.npz)')
        found.append(int(m.group(1)))
    if not found:
        raise FileNotFoundError(f'{folder}: no frame files <NNNNNN>.npz')
    for i, k in enumerate(found):
        if i != k:
            raise FileNotFoundError(f'{frame_path(src_dir, i)}: frame missing (frame indices '
                                    f'must run 0..L-1 without gaps; found {k:06d}.npz next)')
    return found


def to_source_frame(frame: Mapping, index: int, token: str, name: str = '<frame>',
                    ego_pose: Optional[dict] = None, calib: Optional[dict] = None
                    ) -> SourceFrame:
    """A frame in the format of this module (checked here by ``check_frame``; errors
    name ``name``) as the builder's ``SourceFrame``; the one way readers make them.

    ``ego_pose`` / ``calib``: raw nuScenes records to keep for the info pkl (optional).
    """
    f = check_frame(frame, name)
    return SourceFrame(index=int(index), token=str(token), timestamp=seconds_to_us(f['timestamp']),
                       points=f['points'].astype(np.float64), labels=f['labels'].astype(np.int64),
                       boxes=f['boxes'].astype(np.float64), box_tokens=f['box_ids'].astype(str),
                       box_labels=f['box_labels'].astype(np.int64), ego2global=f['ego2global'],
                       lidar2ego=f['lidar2ego'], ego_pose=ego_pose, calib=calib)


def check_time_order(frames: Sequence[SourceFrame], names: Sequence[str]) -> None:
    """Raise a ``ValueError`` naming the file and ``timestamp`` unless the timestamps
    strictly increase (in microseconds)."""
    for a, b, na, nb in zip(frames, frames[1:], names, names[1:]):
        if b.timestamp <= a.timestamp:
            raise _fault(nb, 'timestamp', f'{b.timestamp / 1e6:.6f} s is not after '
                                          f'{a.timestamp / 1e6:.6f} s of {na} (frames must be '
                                          f'in time order)')


def check_sequence(frames: Sequence[SourceFrame], names: Sequence[str],
                   scene_name: Optional[str] = None) -> None:
    """The checks of a whole sequence, which every reader runs on its frames: tokens
    differ (each names a ``gts/<scene>/<token>`` folder), timestamps strictly increase
    (``check_time_order``) and are in seconds (``occwm.geometry.timestamp_unit_mistake``:
    a median frame period outside 0.01-10 s names the probable unit), and the
    ``ego2global`` translations move as a road vehicle can
    (``occwm.geometry.implausible_motion``: at most ``MAX_SPEED`` 70 m/s and
    ``MAX_ACCEL`` 15 m/s^2).

    Args:
        frames: the sequence in its order; ``names``: how errors name each frame (its
            file); ``scene_name``: added to the messages.

    Raises:
        ValueError: one line naming the frame's file, the field and the scene.
    """
    scene = f' (scene {scene_name!r})' if scene_name else ''
    first = {}
    for f, n in zip(frames, names):
        if first.setdefault(f.token, n) != n:
            raise _fault(n, 'token', f'{f.token} is also the token of {first[f.token]}{scene}')
    check_time_order(frames, names)
    seconds = np.array([f.timestamp for f in frames], np.float64) * 1e-6      # (L,) s
    problem = timestamp_unit_mistake(seconds, 's')
    if problem:
        raise _fault(names[0], 'timestamp', f'{problem}{scene}')
    if len(frames) > 1:
        found = implausible_motion(np.stack([f.ego2global[:3, 3] for f in frames]), seconds)
        if found:
            k, text = found
            raise _fault(names[k], 'ego2global', f'{text}{scene}')


def load_frames(src_dir: str, scene_name: Optional[str] = None) -> List[SourceFrame]:
    """Every frame of a frame-format folder as ``SourceFrame`` records, in order.

    Args:
        scene_name: for the tokens (``frame_token``); default: ``scene.json``'s name, else
            the folder name.

    Raises:
        FileNotFoundError / ValueError naming the file and field (also for a bad
        ``scene.json``, and a sequence that fails ``check_sequence``).
    """
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f'{src_dir}: source folder not found')
    indices = frame_indices(src_dir)
    scene = load_scene_json(src_dir, num_frames=len(indices))
    scene_name = scene_name or scene['scene_name'] or folder_scene_name(src_dir)
    names = [frame_path(src_dir, i) for i in indices]
    frames = [to_source_frame(read_frame(p), i, frame_token(scene_name, i), p)
              for i, p in zip(indices, names)]
    check_sequence(frames, names, scene_name)
    return frames


def folder_scene_name(src_dir: str) -> str:
    """A scene name from a folder name (characters other than ``A-Za-z0-9_.-`` -> ``_``)."""
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(os.path.normpath(src_dir)))


# ----------------------------------------------------------------------------- scene.json
def _scene_name(value, name: str) -> str:
    if not isinstance(value, str) or not value or value in ('.', '..') \
            or any(c in value for c in '/\\\n'):
        raise _fault(name, 'scene_name', f'{value!r} is not a folder name (a non-empty '
                                         f'string without / or \\)')
    return value


def _matrix(value, shape, name: str, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError) as e:
        raise _fault(name, field, f'not a numeric matrix ({e})') from e
    return _finite(_shaped(arr, shape, name, field), name, field)


def _camera(cam_name: str, entry, name: str, num_frames: Optional[int]):
    """One ``scene.json`` camera entry -> ``CameraCalib`` or a list of them per frame."""
    where = f'cameras.{cam_name}'
    if not isinstance(entry, dict):
        raise _fault(name, where, f'a {type(entry).__name__}, want an object')
    keys = {'cam2img', 'image_size', 'cam2ego', 'cam2ego_per_frame'}
    if set(entry) - keys:
        raise _fault(name, where, f'unknown key(s) {sorted(set(entry) - keys)} (known: '
                                  f'{sorted(keys)})')
    for key in ('cam2img', 'image_size'):
        if key not in entry:
            raise _fault(name, f'{where}.{key}', 'missing field')
    cam2img = _matrix(entry['cam2img'], (3, 3), name, f'{where}.cam2img')
    size = entry['image_size']
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise _fault(name, f'{where}.image_size', f'{size!r} (want [W, H], positive ints)')
    if ('cam2ego' in entry) == ('cam2ego_per_frame' in entry):
        raise _fault(name, where, 'give exactly one of cam2ego (a fixed rig) and '
                                  'cam2ego_per_frame (one 4 x 4 per frame)')
    if 'cam2ego' in entry:
        T = check_rigid(_matrix(entry['cam2ego'], (4, 4), name, f'{where}.cam2ego'), name,
                        f'{where}.cam2ego')
        return CameraCalib(cam_name, T, cam2img, (size[0], size[1]))
    field = f'{where}.cam2ego_per_frame'
    per_frame = entry['cam2ego_per_frame']
    if not isinstance(per_frame, list):
        raise _fault(name, field, f'a {type(per_frame).__name__}, want a list of 4 x 4')
    if num_frames is not None and len(per_frame) != num_frames:
        raise _fault(name, field, f'{len(per_frame)} matrices for {num_frames} frames')
    return [CameraCalib(cam_name, check_rigid(_matrix(T, (4, 4), name, f'{field}[{i}]'), name,
                                              f'{field}[{i}]'), cam2img, (size[0], size[1]))
            for i, T in enumerate(per_frame)]


def load_scene_json(src_dir: str, num_frames: Optional[int] = None) -> dict:
    """Read and check ``<src_dir>/scene.json``.

    Args:
        num_frames: the number of frames, to check ``cam2ego_per_frame`` lengths.

    Returns:
        ``{'scene_name': str or None, 'cameras': {name: CameraCalib, or a list of one
        CameraCalib per frame}}``; ``{'scene_name': None, 'cameras': {}}`` without the file.

    Raises:
        ValueError: not JSON, unknown keys, or a bad field (named, e.g.
        ``cameras.CAM_FRONT.cam2img``).
    """
    path = os.path.join(src_dir, SCENE_JSON)
    if not os.path.isfile(path):
        return dict(scene_name=None, cameras={})
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: cannot read ({type(e).__name__}: {e})') from e
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON ({e.msg} at line {e.lineno}, column '
                         f'{e.colno})') from e
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a JSON {type(data).__name__}, want an object')
    unknown = sorted(set(data) - {'scene_name', 'cameras'})
    if unknown:
        raise ValueError(f'{path}: unknown key(s) {unknown} (known: scene_name, cameras)')
    scene_name = _scene_name(data['scene_name'], path) if 'scene_name' in data else None
    cams = data.get('cameras') or {}
    if not isinstance(cams, dict):
        raise _fault(path, 'cameras', f'a {type(cams).__name__}, want an object {{name: camera}}')
    return dict(scene_name=scene_name,
                cameras={n: _camera(n, e, path, num_frames) for n, e in cams.items()})


def write_scene_json(src_dir: str, scene_name: str, cameras=None) -> None:
    """Write ``<src_dir>/scene.json`` atomically.

    Args:
        cameras: ``{name: CameraCalib}`` (a fixed rig) or ``{name: [CameraCalib, ...]}``
            (one per frame: ``cam2ego`` may change, ``cam2img`` and ``image_size`` not).

    Raises:
        ValueError: a bad name or camera (checked as ``load_scene_json`` checks).
    """
    path = os.path.join(src_dir, SCENE_JSON)
    data = dict(scene_name=_scene_name(scene_name, path), cameras={})
    for cam_name, cam in (cameras or {}).items():
        first = cam if isinstance(cam, CameraCalib) else (list(cam) or [None])[0]
        if not isinstance(first, CameraCalib):
            raise _fault(path, f'cameras.{cam_name}', 'want a CameraCalib or a non-empty list')
        entry = dict(cam2img=np.asarray(first.cam2img, np.float64).tolist(),
                     image_size=[int(v) for v in first.image_size])
        if isinstance(cam, CameraCalib):
            entry['cam2ego'] = np.asarray(cam.cam2ego, np.float64).tolist()
        else:
            for c in cam:
                if not (np.array_equal(c.cam2img, first.cam2img)
                        and tuple(c.image_size) == tuple(first.image_size)):
                    raise _fault(path, f'cameras.{cam_name}', 'cam2img or image_size differs '
                                                              'between frames (only cam2ego may)')
            entry['cam2ego_per_frame'] = [np.asarray(c.cam2ego, np.float64).tolist() for c in cam]
        _camera(cam_name, entry, path, None)                             # the reader's checks
        data['cameras'][cam_name] = entry
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            json.dump(data, f, indent=1)
