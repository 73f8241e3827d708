"""PandaSet -> occwm's "bring your own LiDAR" frames (``occwm.occupancy.frames``), so that
``tools/build_occupancy.py --format frames`` builds Occ3D-layout occupancy from it
(``tools/convert_pandaset.py``; measured numbers in ``docs/pandaset.md``).

Input: one PandaSet sequence as in ``../shared/data/pandaset_002`` (its README)::

    lidar/NN.npz                 keyframes NN = 00, 05, ..., 75 (2 Hz): xyz (N, 3) WORLD
                                 frame, sensor (N,) 0 Pandar64 / 1 PandarGT, label (N,) 1..42
    lidar/poses.json             80 Pandar64 poses in the world {position, heading w x y z}
    lidar/timestamps.json        80 UNIX times (s)
    annotations/semseg/classes.json               {"1": "Smoke", ..., "42": "Other Static Object"}
    annotations/cuboids/NN.json  all 80 frames: uuid, label, yaw, position.*, dimensions.*,
                                 cuboids.sensor_id, cuboids.sibling_id
    camera/<name>/{intrinsics,poses,timestamps}.json   six cameras, world poses per frame

Only the keyframes are converted; the cuboids of the other 64 frames are read for their
sibling links only. Frame ``i`` of the output is PandaSet frame ``5 i``.

Frames (all measured on pandaset_002, see ``docs/pandaset.md``):

* **pose frame** ``L``: ``lidar/poses.json``; x to the vehicle's right, y forward, z up
  (the vehicle drives along +y), tilted about 2 deg in roll against the world; the world is
  level (the road's slope in it is under 0.5 %), so levelling is done against world z.
* **LiDAR frame** (the points' frame, ``lidar2ego``): the pose frame raised by
  ``PANDAR64_ABOVE_POSE`` = 1.5 m along its z. The pose origin is not the optical centre:
  road points lie 0.22-0.32 m below it, but the Pandar64's lower beams (-14 ... -7 deg)
  draw their rings on the road for a centre 1.54-1.68 m above the pose origin, and
  the Pandar64 sees a ring of returns from its own mount ("Reflection") 1.46 m above
  the pose origin, right above it (the Pandar64 sees +15 ... -25 deg, so it sits within
  0.2 m of that height). Points of BOTH sensors are expressed in this frame.
* **ego frame** (``ego2global``): nuScenes convention, x forward, y left, z up; heading
  = the pose's +y axis projected on the world's xy plane (roll and pitch dropped); z = 0
  at the road, measured per frame as the median world z of the Road points (class 7)
  within ``ROAD_RADIUS_M`` of the sensor; origin ``SENSOR_AHEAD_OF_REAR_AXLE`` = 1.0 m
  behind the Pandar64, under the rear axle. That lever arm is ASSUMED: PandaSet
  publishes no vehicle frame or vehicle dimensions. 1.0 m is the nuScenes LIDAR_TOP's
  lever arm (0.94 m ahead of the Zoe's rear axle) rounded; the PandaSet rig, with cameras
  up to 1.5 m ahead of and 0.25 m behind the Pandar64, fits a roof mount over the middle
  of the cabin as well. An error of 0.5 m shifts every frame's grid by about a voxel.
* **boxes**: PandaSet cuboids are centre, ``dimensions.{x, y, z}`` and ``yaw`` about
  world z, with ``dimensions.y`` along the object's heading: 90 % of moving cars and
  trucks move within 0.7 deg of ``yaw + pi/2`` (2,700 box pairs 0.5 s apart). So ``length =
  dimensions.y``, ``width = dimensions.x``, heading ``= yaw + pi/2``; written in each
  keyframe's ego frame as ``(x, y, z_center, length, width, height, yaw)``.
* **duplicates**: where the LiDARs overlap, an object is annotated once per sensor
  (``cuboids.sensor_id`` 0 / 1), the two records naming each other in
  ``cuboids.sibling_id`` (sometimes one-way, sometimes with the uuid cut short). Sibling
  links of all 80 frames join uuids into one track (``track_ids``); per frame one box per
  track is kept, the Pandar64's (``sensor_id`` -1 or 0) before the PandarGT's, and the
  track id is the uuid of the Pandar64's record where there is one. The two LiDARs see a
  moving object 20-70 ms apart and each box fits its own sensor's points, so sibling
  boxes of moving vehicles lie up to 0.7 m apart along the motion (the sign follows the
  capture-time difference); the PandarGT's object points in the dropped box are moved
  onto the kept one (``align_twin_points``): movable-class points inside a box go from
  97.7 % to 99.2 %.
* **cameras**: a camera's world pose is taken at its own timestamp, 19-100 ms before the
  LiDAR's, so ``inv(L_k) C_k`` drifts by up to 0.56 m over the sequence; with the
  Pandar64 pose interpolated to the camera's time (slerp) the camera-to-LiDAR transform is
  rigid to 2.5 cm. ``cam2ego_k = inv(E_k) L_k inv(L(t_cam)) C_k``; 1920 x 1080 pixels,
  pinhole ``fx, fy, cx, cy``, camera x right, y down, z forward.
* **one sensor origin**: the frame format holds one ``lidar2ego`` per frame, so the
  builder casts the PandarGT's rays (about 36 % of the points, forward-facing, its own
  origin not published) from the Pandar64's centre, the better approximation (360 deg,
  64 % of the points, the two sit on the same roof rig).

Class map, PandaSet (``annotations/semseg/classes.json``) -> Occ3D (``occwm.grid``),
255 = ignore. nuScenes-lidarseg's definitions decide where they exist (Occ3D's
classes are nuScenes'), except that a class nuScenes sends to ignore / ``others`` but
that moves on the road goes to the nearest Occ3D *dynamic* class, since occwm treats
``others`` as static (it would be smeared over the aggregated frames):

====  ===============================  ====================  =====================================
id    PandaSet                         Occ3D                 why (unclear ones)
====  ===============================  ====================  =====================================
1-4   Smoke, Exhaust, Spray or rain,   255 ignore            no solid surface; nuScenes "noise"
      Reflection                                             (Reflection: ghosts, the mount ring)
5     Vegetation                       16 vegetation
6     Ground                           14 terrain            unpaved ground, soil, gravel
                                                             (nuScenes terrain)
7     Road                             11 driveable_surface
8-10  Lane Line / Stop Line /          11 driveable_surface  paint on the road (nuScenes-lidarseg
      Other Road Marking                                     labels it as the road under it)
11    Sidewalk                         13 sidewalk
12    Driveway                         11 driveable_surface  cars drive on it (nuScenes: any
                                                             surface a car can drive on)
13    Car                              4 car
14    Pickup Truck                     10 truck              nuScenes: "truck ... including
                                                             pick-ups"
15    Medium-sized Truck               10 truck
16    Semi-truck                       10 truck              nuScenes: semi-tractors are trucks
17    Towed Object                     9 trailer             nuScenes trailer: anything towed
18    Motorcycle                       6 motorcycle
19    Other Vehicle - Construction     5 construction_vehicle
20    Other Vehicle - Uncommon         4 car                 a road vehicle of no other class;
                                                             dynamic, car-sized most often
21    Other Vehicle - Pedicab          2 bicycle             pedal-powered, bicycle speed
22    Emergency Vehicle                4 car                 nuScenes ignores police / ambulance;
                                                             most are police cars; must move
23    Bus                              3 bus
24    Personal Mobility Device         2 bicycle             nuScenes ignores it; ridden at
                                                             bicycle speed (rider: Pedestrian)
25    Motorized Scooter                6 motorcycle          nuScenes: "motorcycles, vespas and
                                                             scooters"
26    Bicycle                          2 bicycle
27-29 Train, Trolley, Tram / Subway    3 bus                 no rail class; large passenger
                                                             vehicles sharing the street
30-31 Pedestrian (with Object)         7 pedestrian          the object moves with the person
32    Animals - Bird                   255 ignore            small, flies off: would be smeared
33    Animals - Other                  0 others              nuScenes animal -> others
34    Pylons                           8 traffic_cone        cone-like delineators
35    Road Barriers                    1 barrier             blocks lanes (nuScenes barrier
                                                             includes concrete jersey barriers)
36    Signs                            15 manmade            nuScenes manmade: "street signs"
37    Cones                            8 traffic_cone
38    Construction Signs               1 barrier             placed temporarily to redirect
                                                             traffic (nuScenes barrier's words)
39    Temporary Construction Barriers  1 barrier
40    Rolling Containers               0 others              nuScenes pushable_pullable (bins)
41    Building                         15 manmade
42    Other Static Object              15 manmade            poles, fences, walls, hydrants
                                                             (nuScenes manmade); 20 % of points
====  ===============================  ====================  =====================================
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from pyquaternion import Quaternion

from occwm.geometry import (apply_se2, matrix_to_quaternion, pose_matrix, se2_to_matrix,
                            transform_points, wrap_angle, yaw_of)
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, STUFF_CLASSES
from occwm.io import read_npz
from occwm.occupancy.builder import box_global, box_local, points_in_boxes
from occwm.occupancy.visibility import CameraCalib

PANDASET_KEYFRAMES: Tuple[int, ...] = tuple(range(0, 80, 5))   # 2 Hz keyframes of 80 frames
PANDASET_CAMERAS = ('front_camera', 'front_left_camera', 'front_right_camera', 'left_camera',
                    'right_camera', 'back_camera')
PANDASET_IMAGE_SIZE = (1920, 1080)        # (W, H) pixels of every PandaSet camera
PANDAR64_ABOVE_POSE = 1.5                 # m, optical centre above the pose origin (measured)
SENSOR_AHEAD_OF_REAR_AXLE = 1.0           # m, the assumed lever arm (module docstring)
ROAD_RADIUS_M = 20.0                      # Road points this close to the sensor give the height
MIN_ROAD_POINTS = 100
ROAD_FALLBACK_OFFSET = -0.28              # m, road z - pose z without Road points (README)
PANDASET_ROAD = 7
IGNORE = 255
# (x right, y forward, z up) pose frame -> (x forward, y left, z up): +90 deg about z
POSE_TO_FLU = se2_to_matrix(0.0, 0.0, np.pi / 2)

PANDASET_TO_OCC3D: Dict[str, int] = {  # the class map (module docstring); 255 = ignore
    'Smoke': IGNORE, 'Exhaust': IGNORE, 'Spray or rain': IGNORE, 'Reflection': IGNORE,
    'Vegetation': 16, 'Ground': 14, 'Road': 11, 'Lane Line Marking': 11,
    'Stop Line Marking': 11, 'Other Road Marking': 11, 'Sidewalk': 13, 'Driveway': 11,
    'Car': 4, 'Pickup Truck': 10, 'Medium-sized Truck': 10, 'Semi-truck': 10,
    'Towed Object': 9, 'Motorcycle': 6, 'Other Vehicle - Construction Vehicle': 5,
    'Other Vehicle - Uncommon': 4, 'Other Vehicle - Pedicab': 2, 'Emergency Vehicle': 4,
    'Bus': 3, 'Personal Mobility Device': 2, 'Motorized Scooter': 6, 'Bicycle': 2,
    'Train': 3, 'Trolley': 3, 'Tram / Subway': 3, 'Pedestrian': 7,
    'Pedestrian with Object': 7, 'Animals - Bird': IGNORE, 'Animals - Other': 0,
    'Pylons': 8, 'Road Barriers': 1, 'Signs': 15, 'Cones': 8, 'Construction Signs': 1,
    'Temporary Construction Barriers': 1, 'Rolling Containers': 0, 'Building': 15,
    'Other Static Object': 15}

CUBOID_KEYS = ('uuid', 'label', 'yaw', 'position.x', 'position.y', 'position.z',
               'dimensions.x', 'dimensions.y', 'dimensions.z', 'cuboids.sensor_id',
               'cuboids.sibling_id')


# ----------------------------------------------------------------------------- reading
def read_json(path: str, what: str):
    """A JSON file; ``FileNotFoundError`` / ``ValueError`` name ``path`` and ``what``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: missing {what}')
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: bad json ({e})') from e


def class_lut(classes, path: str = 'classes.json') -> np.ndarray:
    """``(256,) uint8`` PandaSet class id -> Occ3D id (255 for ids not in ``classes``).

    Args:
        classes: ``{"1": "Smoke", ...}`` as in ``annotations/semseg/classes.json``.

    Raises:
        ValueError naming ``path``: not a dict of ids 1..255, or a name not in
        ``PANDASET_TO_OCC3D``.
    """
    lut = np.full(256, IGNORE, np.uint8)
    if not isinstance(classes, dict) or not classes:
        raise ValueError(f'{path}: expected {{"id": "class name", ...}}, got '
                         f'{type(classes).__name__}')
    for key, name in classes.items():
        if not str(key).isdigit() or not 0 < int(key) < 256:
            raise ValueError(f'{path}: class id {key!r} is not an integer 1..255')
        if name not in PANDASET_TO_OCC3D:
            raise ValueError(f'{path}: unknown PandaSet class {name!r} (id {key}); add it to '
                             f'occwm.occupancy.pandaset.PANDASET_TO_OCC3D')
        lut[int(key)] = PANDASET_TO_OCC3D[name]
    return lut


def _poses(records, path: str) -> np.ndarray:
    """``[{position: {x, y, z}, heading: {w, x, y, z}}, ...]`` -> ``(F, 4, 4) float64``."""
    if not isinstance(records, list) or not records:
        raise ValueError(f'{path}: expected a list of {{position, heading}} records')
    out = []
    for i, r in enumerate(records):
        try:
            t = [float(r['position'][k]) for k in 'xyz']
            q = np.array([float(r['heading'][k]) for k in 'wxyz'])
            out.append(pose_matrix(t, q / np.linalg.norm(q)))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise ValueError(f'{path}: record {i} is not a pose {{position: {{x, y, z}}, '
                             f'heading: {{w, x, y, z}}}} ({type(e).__name__}: {e})') from e
    return np.stack(out)


def _times(records, path: str, n: int) -> np.ndarray:
    if not isinstance(records, list) or len(records) != n \
            or not all(isinstance(v, (int, float)) for v in records):
        raise ValueError(f'{path}: expected a list of {n} timestamps (s)')
    t = np.asarray(records, np.float64)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError(f'{path}: timestamps must be finite and increasing')
    return t


@dataclass
class PandaSetSequence:
    """A PandaSet sequence as read by ``load_sequence`` (files: module docstring).

    classes ``{id: name}``; lut ``(256,) uint8`` class id -> Occ3D; lidar_poses
    ``(F, 4, 4)`` pose frame -> world; lidar_times ``(F,)`` s; cuboids: F lists of records;
    cameras ``{name: (cam2img (3, 3), poses (F, 4, 4) camera -> world, times (F,))}``.
    """
    src_dir: str
    classes: Dict[int, str]
    lut: np.ndarray
    lidar_poses: np.ndarray
    lidar_times: np.ndarray
    cuboids: List[List[dict]]
    cameras: Dict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]

    def path(self, *parts: str) -> str:
        return os.path.join(self.src_dir, *parts)


def _cuboids(records, path: str) -> List[dict]:
    if not isinstance(records, list):
        raise ValueError(f'{path}: expected a list of cuboid records')
    for i, c in enumerate(records):
        missing = [k for k in CUBOID_KEYS if not isinstance(c, dict) or k not in c]
        if missing:
            raise ValueError(f'{path}: cuboid {i} lacks {missing}')
        if c['label'] not in PANDASET_TO_OCC3D:
            raise ValueError(f"{path}: cuboid {i} has an unknown label {c['label']!r}")
        try:
            geo = np.array([c[k] for k in CUBOID_KEYS[2:9]], dtype=np.float64)
        except (TypeError, ValueError):
            geo = np.full(7, np.nan)
        if not np.all(np.isfinite(geo)) or np.any(geo[4:] <= 0):
            raise ValueError(f'{path}: cuboid {i} ({c["uuid"]}) has non-finite geometry or '
                             f'non-positive dimensions')
    return records


def load_sequence(src_dir: str) -> PandaSetSequence:
    """Read and check everything but the point clouds; errors name the file."""
    if not os.path.isdir(src_dir):
        raise FileNotFoundError(f'{src_dir}: PandaSet sequence folder not found')
    path = partial(os.path.join, src_dir)
    p = path('annotations', 'semseg', 'classes.json')
    classes = read_json(p, 'class names')
    lut = class_lut(classes, p)
    p = path('lidar', 'poses.json')
    lidar_poses = _poses(read_json(p, 'LiDAR poses'), p)
    F = len(lidar_poses)
    if F <= max(PANDASET_KEYFRAMES):
        raise ValueError(f'{p}: {F} poses, need {max(PANDASET_KEYFRAMES) + 1} (frames 00..79)')
    p = path('lidar', 'timestamps.json')
    lidar_times = _times(read_json(p, 'LiDAR timestamps'), p, F)
    cuboids = [_cuboids(read_json(p, 'cuboids'), p)
               for p in (path('annotations', 'cuboids', f'{k:02d}.json') for k in range(F))]
    cameras = {}
    for name in PANDASET_CAMERAS:
        p = path('camera', name, 'intrinsics.json')
        k = read_json(p, 'camera intrinsics')
        try:
            cam2img = np.array([[k['fx'], 0, k['cx']], [0, k['fy'], k['cy']], [0, 0, 1]],
                               np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f'{p}: expected {{fx, fy, cx, cy}} ({type(e).__name__}: {e})') from e
        p = path('camera', name, 'poses.json')
        poses = _poses(read_json(p, 'camera poses'), p)
        if len(poses) != F:
            raise ValueError(f'{p}: {len(poses)} poses, but lidar/poses.json has {F}')
        p = path('camera', name, 'timestamps.json')
        cameras[name] = (cam2img, poses, _times(read_json(p, 'camera timestamps'), p, F))
    return PandaSetSequence(src_dir, {int(k): v for k, v in classes.items()}, lut, lidar_poses,
                            lidar_times, cuboids, cameras)


def load_points(seq: PandaSetSequence, k: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keyframe ``k``'s points: world ``xyz (N, 3) float64``, ``sensor (N,) uint8``,
    PandaSet ``label (N,) uint8``; errors name the file."""
    p = seq.path('lidar', f'{k:02d}.npz')
    if not os.path.isfile(p):
        raise FileNotFoundError(f'{p}: missing LiDAR keyframe')
    d = read_npz(p, ('xyz', 'sensor', 'label'))     # errors name the file (occwm.io)
    xyz, sensor, label = d['xyz'], d['sensor'], d['label']
    N = len(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or sensor.shape != (N,) or label.shape != (N,):
        raise ValueError(f'{p}: expected xyz (N, 3), sensor (N,), label (N,); got '
                         f'{xyz.shape}, {sensor.shape}, {label.shape}')
    if not np.all(np.isfinite(xyz)):
        raise ValueError(f'{p}: non-finite coordinates')
    unknown = np.setdiff1d(np.unique(label), list(seq.classes))
    if len(unknown):
        raise ValueError(f'{p}: labels {unknown.tolist()} are not in '
                         f"{seq.path('annotations', 'semseg', 'classes.json')}")
    if np.any(~np.isin(np.unique(sensor), (0, 1))):
        raise ValueError(f'{p}: sensor ids must be 0 (Pandar64) or 1 (PandarGT), got '
                         f'{np.unique(sensor).tolist()}')
    return xyz.astype(np.float64), sensor.astype(np.uint8), label.astype(np.uint8)


# ----------------------------------------------------------------------------- frames
def road_height(xyz: np.ndarray, label: np.ndarray, lidar_pose: np.ndarray,
                radius: float = ROAD_RADIUS_M) -> Optional[float]:
    """Median world z of the Road points (world ``xyz (N, 3)``, PandaSet ``label (N,)``)
    within ``radius`` metres (horizontally) of the pose origin; ``None`` with fewer than
    ``MIN_ROAD_POINTS``."""
    near = np.linalg.norm(xyz[:, :2] - lidar_pose[:2, 3], axis=1) < radius
    z = xyz[near & (label == PANDASET_ROAD), 2]
    return float(np.median(z)) if len(z) >= MIN_ROAD_POINTS else None


def ego_frame(lidar_pose: np.ndarray, road_z: float
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames of one keyframe (module docstring).

    Args:
        lidar_pose: ``(4, 4)`` PandaSet pose frame -> world.
        road_z: world z of the road under the vehicle (m).

    Returns:
        ``ego2global``, ``lidar2global`` and ``lidar2ego``, ``(4, 4) float64`` each; the
        LiDAR frame is the pose frame raised by ``PANDAR64_ABOVE_POSE``.
    """
    heading = yaw_of(lidar_pose @ POSE_TO_FLU)                        # of the pose's +y axis
    sensor = np.array([lidar_pose[0, 3], lidar_pose[1, 3], heading])
    x, y = apply_se2(np.array([-SENSOR_AHEAD_OF_REAR_AXLE, 0.0]), sensor)  # the rear axle
    ego2global = se2_to_matrix(x, y, heading)
    ego2global[2, 3] = road_z
    lidar2global = lidar_pose @ pose_matrix([0.0, 0.0, PANDAR64_ABOVE_POSE], [1.0, 0.0, 0.0, 0.0])
    return ego2global, lidar2global, np.linalg.inv(ego2global) @ lidar2global


def _sibling(sib, uuids: Sequence[str]) -> Optional[str]:
    """The uuid a ``cuboids.sibling_id`` names: itself, or the one uuid it is a prefix of
    (PandaSet cuts some short); ``None`` for ``'-'`` or no match."""
    if not isinstance(sib, str) or len(sib) < 8:
        return None
    if sib in uuids:
        return sib
    match = [u for u in uuids if u.startswith(sib)]
    return match[0] if len(match) == 1 else None


def track_ids(cuboids: Sequence[Sequence[dict]]) -> Dict[str, str]:
    """``uuid -> track id`` over all frames: uuids joined by ``cuboids.sibling_id`` links
    (either direction) are one object; its id is the Pandar64's uuid (``sensor_id`` != 1),
    the smallest one if several."""
    sensor = {c['uuid']: c['cuboids.sensor_id'] for frame in cuboids for c in frame}
    uuids = sorted(sensor)
    parent = {u: u for u in uuids}

    def root(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for frame in cuboids:
        for c in frame:
            s = _sibling(c['cuboids.sibling_id'], uuids)
            if s is not None:
                parent[root(s)] = root(c['uuid'])
    groups: Dict[str, List[str]] = {}
    for u in uuids:
        groups.setdefault(root(u), []).append(u)
    out = {}
    for members in groups.values():
        best = min(members, key=lambda u: (sensor[u] == 1, u))
        out.update({u: best for u in members})
    return out


def dedup_cuboids(records: Sequence[dict], tracks: Dict[str, str]
                  ) -> Tuple[List[dict], List[Tuple[dict, dict]]]:
    """One record per track in a frame: a PandarGT record (``sensor_id`` 1) is dropped when
    its track has a Pandar64 record (-1 or 0) or an earlier PandarGT one in the frame; a
    Pandar64 record is never dropped. Returns the kept records (file order) and the
    dropped ones as ``(dropped, kept twin)`` pairs."""
    best: Dict[str, Tuple[Tuple[bool, int], int]] = {}
    for i, c in enumerate(records):
        gt = c['cuboids.sensor_id'] == 1
        t, rank = tracks.get(c['uuid'], c['uuid']) if gt else c['uuid'], (gt, i)
        if t not in best or rank < best[t][0]:
            best[t] = (rank, i)
    keep = sorted(i for _, i in best.values())
    twin, kept = {t: records[i] for t, (_, i) in best.items()}, set(keep)
    dropped = [(c, twin[tracks.get(c['uuid'], c['uuid'])])          # only PandarGT records
               for i, c in enumerate(records) if i not in kept]
    return [records[i] for i in keep], dropped


def align_twin_points(points: np.ndarray, labels: np.ndarray, sensor: np.ndarray,
                      dropped: np.ndarray, kept: np.ndarray, dropped_sensor: np.ndarray) -> int:
    """Move the object points of each dropped sibling box onto its kept twin, in place.

    Sibling boxes of a moving object lie apart (module docstring, duplicates): the points
    of the dropped box's sensor inside it that are not stuff (classes 11..16) or ignored
    are re-placed in the kept box (same box-local coordinates), so one box holds the
    object as both sensors saw it.

    Args:
        points: ``(N, 3) float64`` ego frame; labels ``(N,)`` Occ3D; sensor ``(N,)`` ids.
        dropped, kept: ``(P, 7)`` ego-frame boxes ``(x, y, z_center, l, w, h, yaw)``, pairs.
        dropped_sensor: ``(P,)`` sensor id of each dropped box.

    Returns:
        the number of points moved.
    """
    obj = ~np.isin(labels, STUFF_CLASSES) & (labels != IGNORE)
    moved = 0
    for drop, keep, s in zip(dropped.astype(np.float64), kept.astype(np.float64),
                             dropped_sensor):
        idx = np.nonzero(obj & (sensor == max(int(s), 0)))[0]
        idx = idx[points_in_boxes(points[idx], drop[None]) >= 0]
        points[idx] = box_global(box_local(points[idx], drop), keep)   # (n, 3) ego frame
        moved += len(idx)
    return moved


def cuboid_boxes(records: Sequence[dict], ego2global: np.ndarray, tracks: Dict[str, str]
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World cuboids -> ego-frame boxes.

    Returns:
        ``boxes (M, 7) float32`` ``(x, y, z_center, length, width, height, yaw)`` with
        length ``dimensions.y``, width ``dimensions.x``, yaw ``yaw + pi/2`` re-expressed
        in the ego frame; ``ids (M,) str`` track ids; ``labels (M,) uint8`` Occ3D classes.
    """
    if not records:
        return np.zeros((0, 7), np.float32), np.zeros(0, '<U36'), np.zeros(0, np.uint8)
    c = {k: np.array([r[k] for r in records], np.float64) for k in CUBOID_KEYS[2:9]}
    centre = np.stack([c['position.x'], c['position.y'], c['position.z']], 1)   # (M, 3) world
    local = transform_points(np.linalg.inv(ego2global), centre)                # (M, 3) ego
    yaw = wrap_angle(c['yaw'] + np.pi / 2 - yaw_of(ego2global))
    boxes = np.concatenate([local, np.stack([c['dimensions.y'], c['dimensions.x'],
                                             c['dimensions.z'], yaw], 1)], 1)  # (M, 7)
    ids = np.array([tracks.get(r['uuid'], r['uuid']) for r in records])
    labels = np.array([PANDASET_TO_OCC3D[r['label']] for r in records], np.uint8)
    return boxes.astype(np.float32), ids, labels


def pose_at(poses: np.ndarray, times: np.ndarray, t: float) -> np.ndarray:
    """``(4, 4)`` pose at time ``t`` between the ``(F, 4, 4)`` ``poses`` at ``times (F,)``:
    translation linear, rotation slerp; clamped to the first / last pose."""
    i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
    a = float(np.clip((t - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0))
    q = Quaternion.slerp(Quaternion(matrix_to_quaternion(poses[i])),
                         Quaternion(matrix_to_quaternion(poses[i + 1])), a)
    return pose_matrix((1 - a) * poses[i][:3, 3] + a * poses[i + 1][:3, 3], q.elements)


def camera_calibs(seq: PandaSetSequence, k: int, ego2global: np.ndarray) -> Dict[str, CameraCalib]:
    """The six cameras of frame ``k`` in its ego frame (module docstring: the Pandar64 pose
    is interpolated to each camera's timestamp)."""
    to_ego = np.linalg.inv(ego2global) @ seq.lidar_poses[k]                # pose frame -> ego
    out = {}
    for name, (cam2img, poses, times) in seq.cameras.items():
        cam2pose = np.linalg.inv(pose_at(seq.lidar_poses, seq.lidar_times, times[k])) @ poses[k]
        out[name] = CameraCalib(name, to_ego @ cam2pose, cam2img, PANDASET_IMAGE_SIZE)
    return out


def movable_in_boxes(points: np.ndarray, labels: np.ndarray, boxes: np.ndarray
                     ) -> Tuple[int, int]:
    """``(movable-class points, of them inside some box)``: ``points (N, 3)``, Occ3D
    ``labels (N,)``, ``boxes (M, 7)`` ``(x, y, z_center, l, w, h, yaw)``, one frame."""
    mov = np.isin(labels, DYNAMIC_CLASSES)
    inside = points_in_boxes(points[mov], np.asarray(boxes, np.float64)) >= 0
    return int(mov.sum()), int(inside.sum())


# ----------------------------------------------------------------------------- converting
def convert_keyframe(seq: PandaSetSequence, k: int, tracks: Dict[str, str]) -> dict:
    """PandaSet frame ``k`` -> ``frame`` (the keyword arguments of
    ``occwm.occupancy.frames.write_frame`` but the path), ``cameras``
    (``{name: CameraCalib}``) and ``stats`` (``format_conversion`` reads them)."""
    xyz, sensor, label = load_points(seq, k)
    L = seq.lidar_poses[k]
    road = road_height(xyz, label, L)
    fallback = road is None
    road = L[2, 3] + ROAD_FALLBACK_OFFSET if fallback else road
    ego2global, lidar2global, lidar2ego = ego_frame(L, road)
    points = transform_points(np.linalg.inv(lidar2global), xyz).astype(np.float32)  # (N, 3)
    labels = seq.lut[label]                                             # (N,) 0..16, 255
    kept, dropped = dedup_cuboids(seq.cuboids[k], tracks)
    boxes, ids, box_labels = cuboid_boxes(kept, ego2global, tracks)
    ego = transform_points(lidar2ego, points)                                       # (N, 3) ego
    before = movable_in_boxes(ego, labels, boxes)
    moved = 0
    if dropped:
        pair_boxes = [cuboid_boxes(list(side), ego2global, tracks)[0] for side in zip(*dropped)]
        moved = align_twin_points(ego, labels, sensor, *pair_boxes,
                                  np.array([d['cuboids.sensor_id'] for d, _ in dropped]))
        points = transform_points(np.linalg.inv(lidar2ego), ego).astype(np.float32)
    in_grid = DEFAULT_GRID.points_to_voxels(ego)[1]                                 # (N,) bool
    road_pts = ego[(label == PANDASET_ROAD) & in_grid, 2]
    stats = dict(source_frame=k, points=len(points), pandar_gt=int((sensor == 1).sum()),
                 ignored=int((labels == IGNORE).sum()), road_offset=road - L[2, 3],
                 road_fallback=fallback,
                 road_z_ego=float(np.median(road_pts)) if len(road_pts) else float('nan'),
                 boxes=len(boxes), duplicates=len(dropped), moved=moved,
                 movable_before=before, movable=movable_in_boxes(ego, labels, boxes),
                 movable_grid=movable_in_boxes(ego[in_grid], labels[in_grid], boxes))
    frame = dict(points=points, labels=labels, lidar2ego=lidar2ego, ego2global=ego2global,
                 timestamp=float(seq.lidar_times[k]), boxes=boxes, box_ids=ids,
                 box_labels=box_labels)
    return dict(frame=frame, cameras=camera_calibs(seq, k, ego2global), stats=stats)


def _is_nonempty_dir(path: str) -> bool:
    return os.path.isdir(path) and bool(os.listdir(path))


def convert_pandaset(src_dir: str, out_dir: str, num_frames: Optional[int] = None,
                     scene_name: Optional[str] = None, overwrite: bool = False,
                     progress: bool = True) -> dict:
    """Convert a PandaSet sequence into the frame format under ``out_dir``.

    The frames are written into a temporary folder beside ``out_dir`` that replaces it
    only when every frame is written (a failure leaves ``out_dir`` as it was).

    Args:
        num_frames: convert only the first keyframes (default all 16).
        scene_name: default the folder name (``pandaset_002``).
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        dict with ``scene_name``, ``out_dir``, ``frames`` (per keyframe the ``stats`` of
        ``convert_keyframe``) and ``seconds``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and not ``overwrite``.
        FileNotFoundError, ValueError: bad input; the message names the file.
    """
    from tqdm import tqdm
    from occwm.occupancy.frames import frame_path, write_frame, write_scene_json
    start = time.perf_counter()
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f'{out_dir}: exists and is not a folder')
    if _is_nonempty_dir(out_dir) and not overwrite:
        raise FileExistsError(f'{out_dir}: not empty; pass --overwrite to replace it')
    scene_name = scene_name or os.path.basename(os.path.normpath(src_dir))
    seq = load_sequence(src_dir)
    keys = PANDASET_KEYFRAMES[:num_frames] if num_frames else PANDASET_KEYFRAMES
    tracks = track_ids(seq.cuboids)
    out_abs = os.path.abspath(out_dir)
    base = os.path.join(os.path.dirname(out_abs), f'.{os.path.basename(out_abs)}')
    tmp, old = f'{base}.tmp-{os.getpid()}', f'{base}.old-{os.getpid()}'
    for stale in (tmp, old):                           # left by a killed run of this process id
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(os.path.join(tmp, 'frames'))       # makedirs: the usual mode (umask)
    try:
        rows, cams = [], {name: [] for name in seq.cameras}
        for i, k in enumerate(tqdm(keys, desc='pandaset', unit='frame', disable=not progress)):
            out = convert_keyframe(seq, k, tracks)
            write_frame(frame_path(tmp, i), **out['frame'])
            for name, cam in out['cameras'].items():
                cams[name].append(cam)
            rows.append(out['stats'])
        write_scene_json(tmp, scene_name, cameras=cams)
        if os.path.isdir(out_abs):                       # empty, or overwrite: set it aside
            os.replace(out_abs, old)
        os.replace(tmp, out_abs)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(scene_name=scene_name, out_dir=out_dir, frames=rows,
                seconds=time.perf_counter() - start)


def _percent(pair) -> float:
    """``(count, of them inside)`` -> percent inside."""
    return 100 * pair[1] / max(pair[0], 1)


def format_conversion(summary: dict) -> str:
    """A table of ``convert_pandaset``'s per-frame statistics: points, ignored points,
    road height (m below the pose origin; the road's median z in the ego frame), boxes,
    removed sibling duplicates and the PandarGT points moved onto the kept twin, and the
    share of movable-class points inside a box (before that move; after it; after it, of
    the points in the Occ3D grid)."""
    lines = ['frame  src   points  PandarGT  ignored  road-below-pose  road-z(ego)  boxes  '
             'dups  moved  movable  in-box(before)  in-box  in-box(grid)']
    for i, r in enumerate(summary['frames']):
        lines.append(f"{i:5d}  {r['source_frame']:3d}  {r['points']:7d}  {r['pandar_gt']:8d}  "
                     f"{r['ignored']:7d}  {-r['road_offset']:14.3f}"
                     f"{'*' if r['road_fallback'] else ' '}"
                     f"  {r['road_z_ego']:11.3f}  {r['boxes']:5d}  {r['duplicates']:4d}  "
                     f"{r['moved']:5d}  {r['movable'][0]:7d}  "
                     f"{_percent(r['movable_before']):13.1f}%  {_percent(r['movable']):5.1f}%  "
                     f"{_percent(r['movable_grid']):11.1f}%")
    rows = summary['frames']
    total = {key: [sum(r[key][j] for r in rows) for j in (0, 1)]
             for key in ('movable_before', 'movable', 'movable_grid')}
    below = [-r['road_offset'] for r in rows]
    lines.append(f'road {np.mean(below):.3f} m below the pose origin (range {min(below):.3f} .. '
                 f'{max(below):.3f}); {sum(r["duplicates"] for r in rows)} sibling duplicates '
                 f'removed, {sum(r["moved"] for r in rows)} of their PandarGT points moved onto '
                 f'the kept box; movable-class points in a box: '
                 f'{_percent(total["movable"]):.1f}% ({_percent(total["movable_before"]):.1f}% '
                 f'before the move, {_percent(total["movable_grid"]):.1f}% in the grid)')
    if any(r['road_fallback'] for r in rows):
        lines.append(f'* fewer than {MIN_ROAD_POINTS} Road points: road taken '
                     f'{-ROAD_FALLBACK_OFFSET} m below the pose origin')
    return '\n'.join(lines)
