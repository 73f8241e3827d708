"""Occupancy ground truth for any nuScenes scene, read from a nuScenes root through
nuscenes-devkit (the "root mode" of ``tools/build_occupancy.py``).

Input: a nuScenes root with nuScenes-lidarseg::

    <root>/<version>/*.json                          tables (scene, sample, ..., category with
                                                     'index', lidarseg)
    <root>/samples/LIDAR_TOP/*.pcd.bin               keyframe scans, float32 (N, 5)
    <root>/lidarseg/<version>/<token>_lidarseg.bin   uint8 (N,) general-class index per point

Each keyframe sample becomes one frame of the frame format (``read_nuscenes_frame``: a
dict of the fields of ``occwm.occupancy.frames``, points in the LIDAR_TOP frame, boxes in
the ego frame, ego pose, lidar2ego) and then a ``SourceFrame`` through
``frames.to_source_frame``, the path of every reader; ``occwm.occupancy.builder.build_sequence``
builds the occupancy unchanged, so all input modes share one method (see
``occwm.occupancy.builder``).

Cameras (``mask_camera``): the ``calibrated_sensor`` records of the keyframe sample_data
of the six surround cameras (``visibility.CAMERA_NAMES``): ``translation`` and
``rotation`` (w, x, y, z) give ``cam2ego`` (camera x right, y down, z forward -> ego),
``camera_intrinsic`` gives ``cam2img``, the sample_data ``width`` / ``height`` the image
size (1600 x 900 when missing). nuScenes calibrates per log, so one set per scene
(``scene_cameras`` checks that every keyframe agrees); no image file is read. A database
without camera channels (e.g. LiDAR only) gives ``mask_camera`` all ones, recorded in the
info pkl's ``metadata['mask_camera']``.

Point labels: nuScenes-lidarseg general index (32 classes) -> Occ3D 0..16 with the
nuScenes-lidarseg challenge mapping (nuscenes-devkit
``nuscenes/eval/lidarseg/utils.py: LidarsegClassMapper``; the same table as the
``learning_map`` of SurroundOcc's ``nuscenes.yaml`` and Occ3D's label numbering, where
the challenge's 0 'ignore' is Occ3D's 0 'others')::

    0 noise, 1 animal, 5 human.pedestrian.personal_mobility, 7 .stroller, 8 .wheelchair,
      10 movable_object.debris, 11 .pushable_pullable, 13 static_object.bicycle_rack,
      19 vehicle.emergency.ambulance, 20 .police, 29 static.other, 31 vehicle.ego -> 0 others
    9 movable_object.barrier -> 1 barrier          14 vehicle.bicycle -> 2 bicycle
    15 vehicle.bus.bendy, 16 vehicle.bus.rigid -> 3 bus
    17 vehicle.car -> 4 car                        18 vehicle.construction -> 5 construction_vehicle
    21 vehicle.motorcycle -> 6 motorcycle
    2 human.pedestrian.adult, 3 .child, 4 .construction_worker, 6 .police_officer -> 7 pedestrian
    12 movable_object.trafficcone -> 8 traffic_cone
    22 vehicle.trailer -> 9 trailer                23 vehicle.truck -> 10 truck
    24 flat.driveable_surface -> 11                25 flat.other -> 12 other_flat
    26 flat.sidewalk -> 13                         27 flat.terrain -> 14
    28 static.manmade -> 15                        30 static.vegetation -> 16

Box classes: the annotation's category name through the same table (e.g. vehicle.car
-> 4 car, human.pedestrian.* -> 7 pedestrian, movable_object.barrier -> 1 barrier).

Boxes: the sample's annotations moved into the LIDAR_TOP frame by
``NuScenes.get_sample_data`` (global -> ego -> sensor), then, as SurroundOcc
(``tools/generate_occupancy_nuscenes/generate_occupancy_nuscenes.py``) does before
cutting object points, enlarged by ``box_scale`` = 1.1 and lowered by 0.1 m in the LiDAR
frame (``lidar_boxes``): ``(x, y, z_c - h / 2 + box_z_shift, box_scale * l, box_scale * w,
box_scale * h, yaw)`` with (w, l, h) the nuScenes size, ``z_c`` the centre height and yaw
the heading of the box in the LiDAR frame (pitch and roll dropped), the mmdet3d LiDAR
convention ``(x, y, z_bottom, dx, dy, dz, yaw)`` with dx along the heading, in which the
folder layout ``nuscenes_seq11`` stores the same boxes (as w, l, yaw + pi/2, geometrically
identical). Both readers then move them into the ego frame with
``frames.lidar_boxes_to_ego``: ``(x, y, z_center, length, width, height, yaw)``, upright
in the ego frame (the frame format's boxes), so root mode and folder mode agree.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.io import labels_path, refuse_overwrite, save_labels, save_pickle
from occwm.occupancy.builder import _ray_cast_mode, build_sequence, frame_infos
from occwm.occupancy.frames import (SourceFrame, check_sequence, lidar_boxes_to_ego,
                                   to_source_frame)
from occwm.occupancy.visibility import CAMERA_NAMES, NUSCENES_IMAGE_SIZE, CameraCalib
from occwm.geometry import record_pose_matrix
from occwm.grid import DEFAULT_GRID, OccGrid

LIDAR_CHANNEL = 'LIDAR_TOP'
BOX_SCALE = 1.1      # SurroundOcc: "slightly expand the bbox to wrap all object points"
BOX_Z_SHIFT = -0.1   # SurroundOcc: "move the bbox slightly down in the z direction" (metres)


# ----------------------------------------------------------------------------- opening
def _missing_lidarseg_files(root: str, version: str) -> List[str]:
    """Paths named by ``<root>/<version>/lidarseg.json`` that do not exist."""
    with open(os.path.join(root, version, 'lidarseg.json')) as f:
        records = json.load(f)
    return [os.path.join(root, r['filename']) for r in records
            if not os.path.isfile(os.path.join(root, r['filename']))]


def open_nuscenes(root: str, version: str):
    """``nuscenes.nuscenes.NuScenes(version, dataroot=root)`` with nuScenes-lidarseg,
    after checking the folders it needs.

    Raises:
        FileNotFoundError: no ``root``, no ``<root>/<version>/`` table folder, a missing
            table, no ``lidarseg.json`` or ``lidarseg/<version>/`` folder, or lidarseg
            label files named by the table are missing (the first ones are named).
        ValueError: the devkit cannot load the tables (its message is kept).
    """
    from nuscenes.nuscenes import NuScenes
    table_root = os.path.join(root, version)
    if not os.path.isdir(root):
        raise FileNotFoundError(f'{root}: nuScenes root not found')
    if not os.path.isdir(table_root):
        found = sorted(d for d in os.listdir(root) if d.startswith('v1.'))
        raise FileNotFoundError(f'{table_root}: table folder of version {version!r} not found '
                                f'(versions under {root}: {found or "none"})')
    for path, what in ((os.path.join(table_root, 'lidarseg.json'), 'lidarseg table'),
                       (os.path.join(root, 'lidarseg', version), 'lidarseg label folder')):
        if not os.path.exists(path):
            raise FileNotFoundError(f'{path}: no nuScenes-lidarseg {what}; the occupancy needs '
                                    f'per-point labels (download nuScenes-lidarseg into {root})')
    try:
        return NuScenes(version=version, dataroot=root, verbose=False)
    except AssertionError as e:
        if 'label files' in str(e):
            missing = _missing_lidarseg_files(root, version)
            if missing:
                raise FileNotFoundError(
                    f'{missing[0]}: lidarseg label file missing ({len(missing)} missing in all'
                    f'{", e.g. " + ", ".join(missing[1:3]) if len(missing) > 1 else ""}); '
                    f'the devkit refuses to load {table_root} without them') from e
        raise ValueError(f'{table_root}: nuscenes-devkit cannot load the tables ({e})') from e
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{e.filename}: nuScenes table or file missing') from e
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f'{table_root}: nuscenes-devkit cannot load the tables '
                         f'({type(e).__name__}: {e})') from e


# ----------------------------------------------------------------------------- labels
def occ3d_class_maps(nusc):
    """The module docstring's mapping for the categories of ``nusc``.

    Returns:
        ``lut`` ``(256,) int64``: lidarseg general index -> Occ3D class 0..16, -1 for
        indices the database does not define; ``by_name`` {category name: Occ3D class}.

    Raises:
        KeyError: a category of the database that the mapping does not know.
    """
    from nuscenes.eval.lidarseg.utils import LidarsegClassMapper
    mapper = LidarsegClassMapper(nusc)
    by_name = {name: mapper.coarse_name_2_coarse_idx_mapping[
        mapper.fine_name_2_coarse_name_mapping[name]] for name in nusc.lidarseg_name2idx_mapping}
    lut = np.full(256, -1, np.int64)
    for name, fine in nusc.lidarseg_name2idx_mapping.items():
        lut[fine] = by_name[name]
    return lut, by_name


# ----------------------------------------------------------------------------- reading
def lidar_boxes(nusc, lidar_token: str, by_name: Dict[str, int], box_scale: float = BOX_SCALE,
                box_z_shift: float = BOX_Z_SHIFT):
    """The annotations of a keyframe in its LiDAR frame (module docstring).

    Args:
        by_name: category name -> Occ3D class (``occ3d_class_maps``).

    Returns:
        ``boxes`` ``(M, 7) float64`` (x, y, z_bottom, dx, dy, dz, yaw), metres / radians,
        LiDAR frame; ``tokens`` ``(M,) str`` instance tokens; ``labels`` ``(M,) int64``
        Occ3D classes.
    """
    _, boxes, _ = nusc.get_sample_data(lidar_token)
    rows, tokens, labels = [], [], []
    for b in boxes:
        w, l, h = b.wlh
        rows.append([b.center[0], b.center[1], b.center[2] - h / 2 + box_z_shift,
                     box_scale * l, box_scale * w, box_scale * h, b.orientation.yaw_pitch_roll[0]])
        tokens.append(nusc.get('sample_annotation', b.token)['instance_token'])
        labels.append(by_name[b.name])
    return (np.asarray(rows, np.float64).reshape(-1, 7), np.asarray(tokens, dtype=str),
            np.asarray(labels, np.int64))


def read_nuscenes_frame(nusc, sample: dict, class_maps=None, box_scale: float = BOX_SCALE,
                        box_z_shift: float = BOX_Z_SHIFT) -> dict:
    """One keyframe ``sample`` record in the frame format (module docstring): token =
    sample token, timestamp and poses those of its LIDAR_TOP sample_data.

    Args:
        class_maps: ``occ3d_class_maps(nusc)`` (computed when ``None``).

    Returns:
        dict with the fields of ``frames.write_frame`` (``points`` ``(N, 3)`` LiDAR frame,
        ``labels`` Occ3D 0..16, ``timestamp`` in seconds, ``boxes`` ``(M, 7)`` in the EGO
        frame, ``box_ids`` instance tokens) plus ``token`` (the sample token) and the raw
        nuScenes records ``ego_pose`` and ``calib`` (LIDAR_TOP calibrated_sensor).

    Raises:
        FileNotFoundError: the scan or its lidarseg labels are missing (names the sample
            and the file or the LIDAR_TOP sample_data token).
        ValueError: unreadable scan, label count != point count, unknown label index, a
            bad pose record.
    """
    from nuscenes.utils.data_classes import LidarPointCloud
    from nuscenes.utils.data_io import load_bin_file
    lut, by_name = occ3d_class_maps(nusc) if class_maps is None else class_maps
    if LIDAR_CHANNEL not in sample['data']:
        raise FileNotFoundError(f"sample {sample['token']}: no {LIDAR_CHANNEL} keyframe")
    lidar_token = sample['data'][LIDAR_CHANNEL]
    sd = nusc.get('sample_data', lidar_token)
    scan_path = os.path.join(nusc.dataroot, sd['filename'])
    if not os.path.isfile(scan_path):
        raise FileNotFoundError(f"{scan_path}: {LIDAR_CHANNEL} scan of sample {sample['token']} "
                                f'missing')
    try:
        points = LidarPointCloud.from_file(scan_path).points[:3].T.astype(np.float64)  # (N, 3)
    except (ValueError, AssertionError) as e:
        raise ValueError(f'{scan_path}: not a float32 (N, 5) .pcd.bin scan ({e})') from e
    try:
        seg = nusc.get('lidarseg', lidar_token)
    except KeyError:
        raise FileNotFoundError(f"sample {sample['token']}: no lidarseg record for its "
                                f'{LIDAR_CHANNEL} sample_data {lidar_token} in '
                                f'{os.path.join(nusc.table_root, "lidarseg.json")}') from None
    seg_path = os.path.join(nusc.dataroot, seg['filename'])
    if not os.path.isfile(seg_path):
        raise FileNotFoundError(f"{seg_path}: lidarseg labels of sample {sample['token']} missing")
    raw = load_bin_file(seg_path, type='lidarseg')                          # (N,) uint8
    if len(raw) != len(points):
        raise ValueError(f'{seg_path}: {len(raw)} labels but {scan_path} has {len(points)} points')
    labels = lut[raw]                                               # (N,) Occ3D 0..16
    if np.any(labels < 0):
        raise ValueError(f'{seg_path}: label index {int(raw[labels < 0][0])} is not a category '
                         f"'index' in {os.path.join(nusc.table_root, 'category.json')}")
    boxes, tokens, box_labels = lidar_boxes(nusc, lidar_token, by_name, box_scale, box_z_shift)
    pose = dict(nusc.get('ego_pose', sd['ego_pose_token']))
    calib = dict(nusc.get('calibrated_sensor', sd['calibrated_sensor_token']))
    lidar2ego = record_pose_matrix(calib, f"calibrated_sensor record {calib.get('token')}")
    return dict(points=points, labels=labels, lidar2ego=lidar2ego,
                ego2global=record_pose_matrix(pose, f"ego_pose record {pose.get('token')}"),
                timestamp=int(sd['timestamp']) / 1e6,
                boxes=lidar_boxes_to_ego(boxes, lidar2ego), box_ids=tokens, box_labels=box_labels,
                token=sample['token'], ego_pose=pose, calib=calib)


def load_nuscenes_frame(nusc, sample: dict, index: int, class_maps=None,
                        box_scale: float = BOX_SCALE, box_z_shift: float = BOX_Z_SHIFT
                        ) -> SourceFrame:
    """One keyframe ``sample`` record as a ``SourceFrame``: ``read_nuscenes_frame``
    through ``frames.to_source_frame`` (whose errors name the sample).

    Args:
        index: the frame's position in its sequence.

    Raises:
        FileNotFoundError / ValueError: see ``read_nuscenes_frame``; ValueError for a field
        the frame format rejects.
    """
    f = read_nuscenes_frame(nusc, sample, class_maps, box_scale, box_z_shift)
    return to_source_frame(f, index, f['token'], f"sample {f['token']}", ego_pose=f['ego_pose'],
                           calib=f['calib'])


def sample_cameras(nusc, sample: dict) -> Dict[str, CameraCalib]:
    """Calibrations of the surround cameras (``visibility.CAMERA_NAMES``) that have a
    keyframe sample_data in ``sample`` (module docstring); ``{}`` when none has.

    Returns:
        ``{channel: CameraCalib}``: ``cam2ego`` ``(4, 4) float64`` (metres, camera ->
        ego), ``cam2img`` ``(3, 3) float64`` (pixels), ``image_size`` ``(W, H)``.

    Raises:
        ValueError: a camera calibrated_sensor record without a finite ``(3, 3)``
            ``camera_intrinsic`` or with a bad pose (names the record and the table).
    """
    out = {}
    table = os.path.join(nusc.table_root, 'calibrated_sensor.json')
    for name in CAMERA_NAMES:
        if name not in sample['data']:
            continue
        sd = nusc.get('sample_data', sample['data'][name])
        calib = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
        cam2img = np.asarray(calib.get('camera_intrinsic') or [], np.float64)
        if cam2img.shape != (3, 3) or not np.all(np.isfinite(cam2img)):
            raise ValueError(f"{table}: calibrated_sensor {calib['token']} of {name} (sample "
                             f"{sample['token']}): camera_intrinsic of shape {cam2img.shape}, "
                             f'want a finite 3 x 3 matrix')
        size = (int(sd.get('width') or NUSCENES_IMAGE_SIZE[0]),
                int(sd.get('height') or NUSCENES_IMAGE_SIZE[1]))
        cam2ego = record_pose_matrix(calib, f"calibrated_sensor record {calib['token']}")
        out[name] = CameraCalib(name, cam2ego, cam2img, size)
    return out


def scene_cameras(nusc, sample_tokens: Sequence[str], scene_name: str = ''
                  ) -> Dict[str, CameraCalib]:
    """One set of camera calibrations for keyframes of one scene (``sample_cameras`` of
    each; a channel missing from some keyframes is taken from the others).

    Raises:
        ValueError: a channel whose calibration (cam2ego, cam2img or image size) differs
            between two keyframes (nuScenes calibrates per log; ``build_sequence`` takes
            one set per sequence); see also ``sample_cameras``.
    """
    cams: Dict[str, CameraCalib] = {}
    first: Dict[str, str] = {}
    for token in sample_tokens:
        for name, cam in sample_cameras(nusc, nusc.get('sample', token)).items():
            if name not in cams:
                cams[name], first[name] = cam, token
            elif not (np.array_equal(cam.cam2ego, cams[name].cam2ego)
                      and np.array_equal(cam.cam2img, cams[name].cam2img)
                      and cam.image_size == cams[name].image_size):
                raise ValueError(f'{scene_name}: the {name} calibration of sample {token} differs '
                                 f'from that of sample {first[name]}; one calibration per scene '
                                 f'is supported (give cameras explicitly, e.g. --cam-calib, or '
                                 f'skip mask_camera with --no-camera-mask)')
    return {name: cams[name] for name in CAMERA_NAMES if name in cams}


def find_scene(nusc, scene_name: str) -> dict:
    """The scene record named ``scene_name``; ``KeyError`` listing some names if absent."""
    for scene in nusc.scene:
        if scene['name'] == scene_name:
            return scene
    names = [s['name'] for s in nusc.scene]
    raise KeyError(f'scene {scene_name!r} not in {nusc.table_root} ({len(names)} scenes: '
                   f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")


def load_nuscenes_scene(nusc, scene_name: str, skip_missing: bool = False,
                        box_scale: float = BOX_SCALE, box_z_shift: float = BOX_Z_SHIFT,
                        progress: bool = False, class_maps=None
                        ) -> List[SourceFrame]:
    """Every keyframe of a scene as ``SourceFrame`` records, in time order.

    Args:
        nusc: a ``NuScenes`` with nuScenes-lidarseg (``open_nuscenes``).
        scene_name: e.g. ``'scene-0103'``.
        skip_missing: drop a keyframe whose scan or lidarseg labels are missing, with a
            warning, instead of raising.

    Raises:
        KeyError: unknown scene. FileNotFoundError / ValueError: see
        ``load_nuscenes_frame``; ValueError when the sequence fails
        ``frames.check_sequence`` (time order, unit, ego motion).
    """
    from tqdm import tqdm
    scene = find_scene(nusc, scene_name)
    maps = occ3d_class_maps(nusc) if class_maps is None else class_maps
    frames, token = [], scene['first_sample_token']
    with tqdm(total=scene['nbr_samples'], desc=f'read {scene_name}', unit='frame',
              leave=False, disable=not progress) as bar:
        while token:
            sample = nusc.get('sample', token)
            try:
                frames.append(load_nuscenes_frame(nusc, sample, len(frames), maps,
                                                  box_scale, box_z_shift))
            except FileNotFoundError as e:
                if not skip_missing:
                    raise
                warnings.warn(f'{scene_name}: skipping sample {token}: {e}')
            token = sample['next']
            bar.update()
    check_sequence(frames, [f'{scene_name} sample {f.token}' for f in frames])
    return frames


# ----------------------------------------------------------------------------- building
def build_nuscenes_scenes(root: str, version: str, out_dir: str,
                          scenes: Optional[Sequence[str]] = None, info_name: Optional[str] = None,
                          grid: OccGrid = DEFAULT_GRID, ray_cast=True,
                          skip_missing: bool = False, keep_occupancy: bool = False,
                          progress: bool = True, nusc=None, cams='database',
                          cam_stride: int = 8, build_options: Optional[dict] = None,
                          overwrite: bool = True) -> dict:
    """Build the Occ3D layout for scenes of a nuScenes root.

    Writes ``<out_dir>/gts/<scene_name>/<sample_token>/labels.npz`` per keyframe and one
    info pkl ``<out_dir>/<info_name>`` (default ``nuscenes_occ_infos_<version>.pkl``,
    ``{'metadata', 'infos': {scene_name: [frame_info, ...]}}``, ``occwm.io``),
    each atomically; the pkl is written once every scene is built. Its ``metadata`` says
    how ``mask_camera`` was made: ``mask_camera`` (one line, or ``'per scene:
    mask_camera_scenes'`` when scenes differ) and ``mask_camera_scenes`` {scene: line}.

    Args:
        scenes: scene names (default: every scene of the version).
        ray_cast, cam_stride, build_options: passed to ``occwm.occupancy.builder.build_sequence``
            (``ray_cast``, ``cam_stride`` and any further keyword arguments but ``cams``).
        cams: ``'database'`` (default): each scene's own camera calibrations
            (``scene_cameras``), ``mask_camera`` all ones for a scene without camera
            channels; ``None``: ``mask_camera`` all ones; ``{name: CameraCalib}`` or a
            list: these cameras for every scene (an override).
        skip_missing: see ``load_nuscenes_scene``.
        keep_occupancy: also return each scene's ``build_sequence`` output (memory:
            about 1.3 MB per frame).
        nusc: an already opened ``NuScenes`` (else ``open_nuscenes(root, version)``).
        overwrite: ``False``: stop before building when the info pkl or a scene's
            ``gts/<scene>`` folder exists (``occwm.io.refuse_overwrite``: a ``SetupError``).

    Returns:
        dict with ``scene_names``, ``info_path``, ``label_paths`` {scene: [path, ...]},
        ``ego2globals`` {scene: ``(L, 4, 4)``}, ``cameras`` {scene: [channel, ...]}
        (empty: ``mask_camera`` all ones), ``mask_camera`` {scene: how it was made},
        ``seconds``, and with ``keep_occupancy`` ``occupancy`` {scene:
        [``build_sequence`` dicts (semantics, mask_lidar, mask_camera)]}.

    Raises:
        FileNotFoundError / KeyError / ValueError naming the folder, file, sample or scene
        (ValueError also for a bad ``cams`` or ``ray_cast``, and see ``scene_cameras``).
    """
    from tqdm import tqdm
    start = time.perf_counter()
    mode = _ray_cast_mode(ray_cast)
    if not (cams is None or isinstance(cams, (dict, list, tuple)) or cams == 'database'):
        raise ValueError(f"cams must be 'database', None, a dict or a list, got {cams!r}")
    nusc = open_nuscenes(root, version) if nusc is None else nusc
    names = [s['name'] for s in nusc.scene] if scenes is None else list(scenes)
    for name in names:
        find_scene(nusc, name)                          # fail before any work
    info_path = os.path.join(out_dir, info_name or f'nuscenes_occ_infos_{version}.pkl')
    refuse_overwrite([info_path] + [os.path.join(out_dir, 'gts', n) for n in names], overwrite,
                     'occupancy and info pkl of an earlier build')
    maps = occ3d_class_maps(nusc)
    infos: Dict[str, List[dict]] = {}
    out = dict(scene_names=[], label_paths={}, ego2globals={}, cameras={}, mask_camera={})
    if keep_occupancy:
        out['occupancy'] = {}
    for name in tqdm(names, desc='scenes', unit='scene', disable=not progress):
        frames = load_nuscenes_scene(nusc, name, skip_missing, progress=progress,
                                     class_maps=maps)
        if not frames:
            warnings.warn(f'{name}: no keyframe left to build, scene skipped')
            continue
        scene_cams = (scene_cameras(nusc, [f.token for f in frames], name)
                      if isinstance(cams, str) else cams) or None
        occ = build_sequence(frames, grid, ray_cast=mode, cams=scene_cams, cam_stride=cam_stride,
                             progress=progress, **(build_options or {}))
        paths = [labels_path(out_dir, name, f.token) for f in frames]
        for path, o in zip(paths, occ):
            save_labels(path, o['semantics'], o['mask_lidar'], o.get('mask_camera'), grid=grid)
        infos[name] = frame_infos(frames, name)
        out['scene_names'].append(name)
        out['label_paths'][name] = paths
        out['ego2globals'][name] = np.stack([f.ego2global for f in frames])
        out['cameras'][name] = _camera_names(scene_cams)
        out['mask_camera'][name] = _mask_camera_note(cams, scene_cams, version, cam_stride)
        if keep_occupancy:
            out['occupancy'][name] = occ
    out['info_path'] = info_path
    notes = set(out['mask_camera'].values())
    metadata = dict(version='occwm-occ-builder-v2', source=f'nuscenes:{version}',
                    point_cloud_range=tuple(grid.point_cloud_range), z_offset=grid.z_offset,
                    voxel_size=grid.voxel_size,
                    occ_size=grid.shape, ray_cast=mode,
                    densify=bool((build_options or {}).get('densify', False)),
                    mask_camera=(notes.pop() if len(notes) == 1
                                 else 'per scene: mask_camera_scenes'),
                    mask_camera_scenes=dict(out['mask_camera']))
    save_pickle(out['info_path'], dict(metadata=metadata, infos=infos))
    out['seconds'] = time.perf_counter() - start
    return out


def _camera_names(cams) -> List[str]:
    if not cams:
        return []
    return list(cams) if isinstance(cams, dict) else [c.name for c in cams]


def _mask_camera_note(cams, scene_cams, version: str, cam_stride: int) -> str:
    """How a scene's ``mask_camera`` was made, for the info pkl metadata."""
    if cams is None:
        return 'all ones (cameras not used)'
    if not scene_cams:
        return ('all ones (no camera channels in the database)' if isinstance(cams, str)
                else 'all ones (no cameras given)')
    source = (f'calibrated_sensor of {version}' if isinstance(cams, str)
              else 'calibrations given by the caller')
    return (f"camera rays ({', '.join(_camera_names(scene_cams))}; {source}; "
            f'stride {cam_stride} px)')
