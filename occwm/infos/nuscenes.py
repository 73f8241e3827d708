"""Info pkls from a database in the nuScenes schema (nuScenes, Lyft Level 5, ...) read
with nuscenes-devkit, written in occwm's scene-keyed layout (OccWorld's
``nuscenes_infos_{split}_temporal_v3_scene.pkl``, see ``occwm.infos.fields``)::

    OUT_DIR/nuscenes_infos_{split}_temporal_v3_scene.pkl
        {'metadata': {'version', 'split', 'created_by': 'occwm create_data', ...},
         'infos': {scene_name: [frame_info, ...]}}      # keyframes in time order

Per keyframe the fields of ``occwm.infos.fields`` plus those of mmdetection3d's
``tools/dataset_converters/nuscenes_converter.py`` (``_fill_trainval_infos``,
``obtain_sensor2top``) as UniAD / OccWorld use them, with occwm's choices where noted:

    token, scene_name, scene_token, frame_idx, timestamp (µs, int), prev, next
        sample tokens; '' at the ends of a scene and where the linked sample is not in
        the database (partial databases such as the Lyft test tables)
    map_location                 log location (str)
    lidar_token                  LIDAR_TOP sample_data token
    lidar_path                   relative to the data root, '/' separators (occwm; mmdet3d
                                 stores root-joined paths)
    lidarseg_path                relative path of the nuScenes-lidarseg label file, or None
    ego2global_translation (3,) / _rotation (4,) w, x, y, z: the ego pose of the LIDAR_TOP
                                 sample_data (metres, global frame)
    lidar2ego_translation (3,) / _rotation (4,): LIDAR_TOP calibrated_sensor
    sweeps  [dict, ...]          up to ``max_sweeps`` earlier LIDAR_TOP sample_data, newest
                                 first, following ``prev`` as mmdet3d does (the 20 Hz
                                 non-key sweeps and, every 10th, the previous keyframe)
    cams    {channel: dict}      the camera channels of ``cam_channels`` the sample has
        sweep / camera dict: data_path, type (channel), sample_data_token, timestamp,
        sensor2ego_translation (3,) / _rotation (4,), ego2global_translation (3,) /
        _rotation (4,) (the ego pose at the sensor's own timestamp),
        sensor2lidar_rotation (3, 3), sensor2lidar_translation (3,) such that
        ``p_lidar = R @ p_sensor + t`` (mmdet3d's ``obtain_sensor2top``); cameras add
        cam_intrinsic (3, 3) float64
    gt_boxes (M, 7) float64      x, y, z (box centre), dx, dy, dz (length, width, height),
                                 yaw: LiDAR frame of the keyframe, mmdet3d >= 1.0 convention
                                 (UniAD-era pkls store (w, l, h) and -yaw - pi/2)
    gt_names (M,) str            detection class (nuscenes-devkit
                                 ``category_to_detection_name``), else the category name
    gt_velocity (M, 2) float64   vx, vy in m/s, LiDAR frame (``NuScenes.box_velocity``,
                                 NaN where it cannot be estimated)
    num_lidar_pts, num_radar_pts (M,) int64;  valid_flag (M,) bool: lidar + radar points > 0
    instance_tokens (M,) str
    occ_path                     'gts/<scene_name>/<token>'
    gt_ego_fut_trajs, gt_ego_fut_masks, gt_ego_his_trajs, ego_fut_traj, ego_his_traj:
                                 ``occwm.infos.fields.add_trajectories``

Splits come from ``nuscenes.utils.splits.create_splits_scenes()``; scenes in no split of
the version (other datasets in the schema) go to ``unsplit_to``.
"""
from __future__ import annotations

import os
import os.path as osp
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.io import save_pickle
from occwm.geometry import pose_matrix

LIDAR_CHANNEL = 'LIDAR_TOP'
CAMERA_CHANNELS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                   'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')
TABLES = ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
          'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map')
# output split -> nuscenes.utils.splits name, per version; other versions use OTHER_SPLITS
VERSION_SPLITS = {'v1.0-mini': {'train': 'mini_train', 'val': 'mini_val'},
                  'v1.0-trainval': {'train': 'train', 'val': 'val'},
                  'v1.0-test': {'test': 'test'}}
OTHER_SPLITS = {'train': 'train', 'val': 'val', 'test': 'test'}
EXPECTED_LAYOUT = ('<root>/<version>/*.json (the 13 tables: ' + ', '.join(TABLES) + '), '
                   '<root>/samples/, <root>/sweeps/ (and optionally <root>/lidarseg/<version>/)')


def info_path(out_dir: str, split: str) -> str:
    """``OUT_DIR/nuscenes_infos_{split}_temporal_v3_scene.pkl`` (OccWorld's file name)."""
    return osp.join(out_dir, f'nuscenes_infos_{split}_temporal_v3_scene.pkl')


def load_nuscenes(root: str, version: str):
    """Load a nuScenes-schema database with nuscenes-devkit.

    Raises:
        FileNotFoundError: ``root``, ``root/version`` or one of the 13 tables is missing
            (the message names the path and the expected layout).
        ValueError: the devkit cannot load the tables (the message names the folder).
    """
    from nuscenes.nuscenes import NuScenes
    if not osp.isdir(root):
        raise FileNotFoundError(f'nuScenes root not found: {root} (expected {EXPECTED_LAYOUT})')
    table_root = osp.join(root, version)
    if not osp.isdir(table_root):
        found = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
        raise FileNotFoundError(f'version folder not found: {table_root} (expected '
                                f'{EXPECTED_LAYOUT}; folders in the root: {found})')
    missing = [t for t in TABLES if not osp.isfile(osp.join(table_root, t + '.json'))]
    if missing:
        names = ', '.join(t + '.json' for t in missing)
        raise FileNotFoundError(f'{table_root}: missing tables {names} '
                                f'(expected {EXPECTED_LAYOUT})')
    try:
        return NuScenes(version=version, dataroot=root, verbose=False)
    except Exception as e:  # devkit asserts, KeyErrors on dangling tokens, JSON errors
        raise ValueError(f'{table_root}: nuscenes-devkit could not load the tables '
                         f'({type(e).__name__}: {e})') from e


def _get(nusc, table: str, token: str) -> Optional[dict]:
    """``nusc.get(table, token)``, or None for '' or a token not in the database."""
    if not token:
        return None
    try:
        return nusc.get(table, token)
    except KeyError:
        return None


def _rel_path(filename: str) -> str:
    return filename.replace('\\', '/')


def _ts(t) -> int:
    """Timestamp in µs as int (Lyft stores floats)."""
    return int(round(float(t)))


def sensor_info(nusc, sd_token: str, lidar2global: np.ndarray) -> dict:
    """Calibration and pose of one sample_data relative to the keyframe's LiDAR
    (mmdet3d ``obtain_sensor2top``, written with 4x4 matrices).

    Args:
        nusc: a ``NuScenes``.
        sd_token: sample_data token (a LiDAR sweep or a camera image).
        lidar2global: ``(4, 4) float64`` LiDAR -> global of the keyframe.

    Returns:
        the sweep / camera dict of the module docstring; ``cam_intrinsic`` ``(3, 3)
        float64`` for a camera.
    """
    sd = nusc.get('sample_data', sd_token)
    cs = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    pose = nusc.get('ego_pose', sd['ego_pose_token'])
    sensor2global = pose_matrix(pose['translation'], pose['rotation']) @ pose_matrix(
        cs['translation'], cs['rotation'])
    sensor2lidar = np.linalg.inv(lidar2global) @ sensor2global  # (4, 4)
    info = dict(data_path=_rel_path(sd['filename']), type=sd['channel'],
                sample_data_token=sd['token'], timestamp=_ts(sd['timestamp']),
                sensor2ego_translation=np.asarray(cs['translation'], np.float64),
                sensor2ego_rotation=np.asarray(cs['rotation'], np.float64),
                ego2global_translation=np.asarray(pose['translation'], np.float64),
                ego2global_rotation=np.asarray(pose['rotation'], np.float64),
                sensor2lidar_rotation=sensor2lidar[:3, :3].copy(),
                sensor2lidar_translation=sensor2lidar[:3, 3].copy())
    if sd['sensor_modality'] == 'camera':
        info['cam_intrinsic'] = np.asarray(cs['camera_intrinsic'], np.float64)
    return info


def lidar_sweeps(nusc, lidar_sd: dict, lidar2global: np.ndarray, max_sweeps: int) -> List[dict]:
    """Up to ``max_sweeps`` earlier LiDAR sample_data, newest first, following ``prev``
    (mmdet3d); stops at the start of the chain or at a token missing from the database."""
    sweeps = []
    sd = lidar_sd
    while len(sweeps) < max_sweeps:
        sd = _get(nusc, 'sample_data', sd['prev'])
        if sd is None:
            break
        sweeps.append(sensor_info(nusc, sd['token'], lidar2global))
    return sweeps


def annotation_fields(nusc, lidar_token: str, ego2global: np.ndarray, lidar2ego: np.ndarray
                      ) -> Dict[str, np.ndarray]:
    """The box fields of a keyframe in its LiDAR frame (mmdet3d ``_fill_trainval_infos``):
    gt_boxes (M, 7), gt_names (M,), gt_velocity (M, 2), num_lidar_pts, num_radar_pts,
    valid_flag, instance_tokens (M,) (module docstring).

    Args:
        lidar_token: the keyframe's LIDAR_TOP sample_data token.
        ego2global, lidar2ego: ``(4, 4) float64`` poses of that sample_data.

    ``NuScenes.get_sample_data`` moves the boxes global -> ego -> LiDAR; velocities from
    ``NuScenes.box_velocity`` (global) are rotated into the LiDAR frame.
    """
    from nuscenes.eval.detection.utils import category_to_detection_name
    _, boxes, _ = nusc.get_sample_data(lidar_token)
    anns = [nusc.get('sample_annotation', b.token) for b in boxes]
    global2lidar_rot = (ego2global[:3, :3] @ lidar2ego[:3, :3]).T  # (3, 3)
    velocity = np.zeros((len(boxes), 2))
    for i, b in enumerate(boxes):
        try:
            v = nusc.box_velocity(b.token)
        except KeyError:  # prev / next annotation not in a partial database
            v = np.full(3, np.nan)
        velocity[i] = (global2lidar_rot @ v)[:2]
    locs = np.array([b.center for b in boxes]).reshape(-1, 3)
    dims = np.array([b.wlh for b in boxes]).reshape(-1, 3)  # (M, 3) w, l, h
    yaws = np.array([b.orientation.yaw_pitch_roll[0] for b in boxes]).reshape(-1, 1)
    names = [category_to_detection_name(b.name) or b.name for b in boxes]
    num_lidar = np.array([a['num_lidar_pts'] for a in anns], np.int64)
    num_radar = np.array([a.get('num_radar_pts', 0) for a in anns], np.int64)
    return dict(gt_boxes=np.concatenate([locs, dims[:, [1, 0, 2]], yaws], axis=1),  # (M, 7)
                gt_names=np.array(names, dtype=str), gt_velocity=velocity,
                num_lidar_pts=num_lidar, num_radar_pts=num_radar,
                valid_flag=(num_lidar + num_radar) > 0,
                instance_tokens=np.array([a['instance_token'] for a in anns], dtype=str))


def frame_info_from_sample(nusc, sample: dict, scene_name: Optional[str] = None,
                           frame_idx: int = 0, max_sweeps: int = 10,
                           cam_channels: Sequence[str] = CAMERA_CHANNELS) -> dict:
    """The frame_info of one keyframe sample (module docstring), without the trajectory
    fields (``add_trajectories`` adds them once the scene is known).

    Raises:
        ValueError: the sample has no LIDAR_TOP sample_data.
    """
    scene = nusc.get('scene', sample['scene_token'])
    scene_name = scene['name'] if scene_name is None else scene_name
    if LIDAR_CHANNEL not in sample['data']:
        raise ValueError(f"sample {sample['token']} of scene {scene_name!r} has no "
                         f"{LIDAR_CHANNEL} data (channels: {sorted(sample['data'])})")
    lidar_token = sample['data'][LIDAR_CHANNEL]
    lidar_sd = nusc.get('sample_data', lidar_token)
    cs = nusc.get('calibrated_sensor', lidar_sd['calibrated_sensor_token'])
    pose = nusc.get('ego_pose', lidar_sd['ego_pose_token'])
    info = make_frame_info(scene_name, sample['token'], _ts(sample['timestamp']),
                           pose['translation'], pose['rotation'], cs['translation'],
                           cs['rotation'])
    ego2global = pose_matrix(pose['translation'], pose['rotation'])
    lidar2ego = pose_matrix(cs['translation'], cs['rotation'])
    lidar2global = ego2global @ lidar2ego
    log = _get(nusc, 'log', scene['log_token'])
    lidarseg = _get(nusc, 'lidarseg', lidar_token) if hasattr(nusc, 'lidarseg') else None
    info.update(
        scene_token=sample['scene_token'], frame_idx=frame_idx,
        prev=sample['prev'] if _get(nusc, 'sample', sample['prev']) else '',
        next=sample['next'] if _get(nusc, 'sample', sample['next']) else '',
        map_location=log['location'] if log else '',
        lidar_token=lidar_token, lidar_path=_rel_path(lidar_sd['filename']),
        lidarseg_path=_rel_path(lidarseg['filename']) if lidarseg else None,
        sweeps=lidar_sweeps(nusc, lidar_sd, lidar2global, max_sweeps))
    info['cams'] = {channel: sensor_info(nusc, sample['data'][channel], lidar2global)
                    for channel in cam_channels if channel in sample['data']}
    info.update(annotation_fields(nusc, lidar_token, ego2global, lidar2ego))
    return info


def scene_samples(nusc, scene: dict, samples_of_scene: Dict[str, List[dict]]
                  ) -> Tuple[List[dict], bool]:
    """The keyframe samples of a scene in time order, following ``next`` from
    ``first_sample_token``.

    Where the chain is broken (a partial database whose first sample or a linked one is
    missing) the scene's samples present are sorted by timestamp instead.

    Returns:
        (samples, complete): ``complete`` is False for the timestamp fallback.
    """
    chain = []
    sample = _get(nusc, 'sample', scene['first_sample_token'])
    while sample is not None:
        chain.append(sample)
        sample = _get(nusc, 'sample', sample['next'])
    present = samples_of_scene.get(scene['token'], [])
    if chain and len(chain) == len(present) and chain[-1]['token'] == scene['last_sample_token']:
        return chain, True
    return sorted(present, key=lambda s: s['timestamp']), False


def split_lists(version: str) -> Dict[str, str]:
    """``{output split: nuscenes.utils.splits list name}`` of a version: v1.0-mini,
    -trainval and -test use their own lists, other versions train / val / test."""
    return dict(VERSION_SPLITS.get(version, OTHER_SPLITS))


def scene_splits(version: str, scene_names: Sequence[str], unsplit_to: str = 'train'
                 ) -> Tuple[Dict[str, Optional[str]], List[str]]:
    """Assign scenes to output splits with ``nuscenes.utils.splits.create_splits_scenes``.

    Args:
        version: database version (see ``split_lists``).
        scene_names: the database's scene names.
        unsplit_to: 'train', 'val' or 'skip' for scenes in no split of the version.

    Returns:
        (the split of each scene, None where skipped; the scenes in no split).

    Raises:
        ValueError: a bad ``unsplit_to``.
    """
    from nuscenes.utils.splits import create_splits_scenes
    if unsplit_to not in ('train', 'val', 'skip'):
        raise ValueError(f"unsplit_to must be 'train', 'val' or 'skip', got {unsplit_to!r}")
    lists = create_splits_scenes()
    members = {out: set(lists[name]) for out, name in split_lists(version).items()}
    split_of, unsplit = {}, []
    for name in scene_names:
        hits = [out for out, names in members.items() if name in names]
        if not hits:
            unsplit.append(name)
        split_of[name] = hits[0] if hits else (None if unsplit_to == 'skip' else unsplit_to)
    return split_of, unsplit


def create_nuscenes_infos(root: str, version: str, out_dir: str, max_sweeps: int = 10,
                          unsplit_to: str = 'train', progress: bool = True,
                          cam_channels: Sequence[str] = CAMERA_CHANNELS) -> dict:
    """Write ``OUT_DIR/nuscenes_infos_{split}_temporal_v3_scene.pkl`` for every split.

    All infos are built before anything is written; each pkl is written atomically. A
    split without scenes gets no pkl (the summary says so).

    Args:
        root: data root holding ``<version>/*.json``, ``samples/``, ``sweeps/``.
        version: e.g. 'v1.0-mini', 'v1.0-trainval', 'v1.0-test', 'v1.01-train' (Lyft).
        out_dir: output folder.
        max_sweeps: earlier LiDAR sweeps per keyframe.
        unsplit_to: where scenes in no split of the version go ('train', 'val', 'skip').
        progress: tqdm bar over scenes.
        cam_channels: camera channels to keep where a sample has them.

    Returns:
        summary dict: ``version``, ``root``, ``out_dir``, ``seconds``, ``splits``
        ``{split: {scenes, frames, lidarseg_frames, path}}`` (path None: an empty split,
        no pkl written), ``unsplit`` ``{to, scenes}``,
        ``split_lists`` ``{split: nuscenes split name}``, ``partial_scenes`` (scenes
        ordered by timestamp because their sample chain is incomplete),
        ``missing_cams`` ``{channel: frames without it}``.

    Raises:
        FileNotFoundError / ValueError from ``load_nuscenes``; ValueError for a bad
        ``unsplit_to`` or ``max_sweeps`` or a sample without LIDAR_TOP.
    """
    from tqdm import tqdm
    if max_sweeps < 0:
        raise ValueError(f'max_sweeps must be >= 0, got {max_sweeps}')
    start = time.time()
    nusc = load_nuscenes(root, version)
    split_of, unsplit = scene_splits(version, [s['name'] for s in nusc.scene], unsplit_to)
    mapping = split_lists(version)
    # the splits always written (empty or not): those of the version, train / val otherwise
    expected = list(VERSION_SPLITS.get(version, {'train': 'train', 'val': 'val'}))
    samples_of_scene = defaultdict(list)
    for s in nusc.sample:
        samples_of_scene[s['scene_token']].append(s)
    infos = {split: {} for split in expected}
    partial, missing_cams = [], defaultdict(int)
    for scene in tqdm(nusc.scene, desc=f'{version} scenes', unit='scene', disable=not progress):
        name = scene['name']
        split = split_of[name]
        if split is None:
            continue
        samples, complete = scene_samples(nusc, scene, samples_of_scene)
        if not complete:
            partial.append(name)
        frames = [frame_info_from_sample(nusc, s, name, k, max_sweeps, cam_channels)
                  for k, s in enumerate(samples)]
        for f in frames:
            for channel in cam_channels:
                if channel not in f['cams']:
                    missing_cams[channel] += 1
        infos.setdefault(split, {})[name] = add_trajectories(frames)
    splits = {}
    for split, scenes in infos.items():
        frames = [f for fs in scenes.values() for f in fs]
        splits[split] = dict(scenes=len(scenes), frames=len(frames),
                             path=info_path(out_dir, split) if scenes else None,
                             lidarseg_frames=sum(f['lidarseg_path'] is not None for f in frames))
    for split, scenes in infos.items():
        if scenes:  # an empty split gets no pkl (loaders reject a pkl without frames)
            meta = dict(version=version, split=split, created_by='occwm create_data',
                        max_sweeps=max_sweeps, cam_channels=list(cam_channels))
            save_pickle(splits[split]['path'], dict(metadata=meta, infos=scenes))
    return dict(version=version, root=root, out_dir=out_dir, seconds=time.time() - start,
                splits=splits, unsplit=dict(to=unsplit_to, scenes=unsplit),
                split_lists=mapping, partial_scenes=partial, missing_cams=dict(missing_cams))


def format_summary(summary: dict) -> str:
    """Human-readable lines of a ``create_nuscenes_infos`` summary."""
    lines = [f"{summary['version']} from {summary['root']} in {summary['seconds']:.1f} s "
             f"(splits: " + ', '.join(f'{k} <- nuscenes {v}' for k, v in
                                      summary['split_lists'].items()) + ')']
    for split, s in summary['splits'].items():
        where = f"-> {s['path']}" if s['path'] else '(empty: no pkl written)'
        lines.append(f"  {split:5s}: {s['scenes']} scenes, {s['frames']} frames, "
                     f"{s['lidarseg_frames']} with lidarseg {where}")
    un = summary['unsplit']
    if un['scenes']:
        where = 'skipped' if un['to'] == 'skip' else f"put in {un['to']}"
        shown = ', '.join(un['scenes'][:5]) + (' ...' if len(un['scenes']) > 5 else '')
        lines.append(f"  {len(un['scenes'])} scenes in no {summary['version']} split of "
                     f"nuscenes.utils.splits, {where} (--unsplit-to): {shown}")
    if summary['partial_scenes']:
        lines.append(f"  {len(summary['partial_scenes'])} scenes with an incomplete sample "
                     f"chain (partial database), frames ordered by timestamp: "
                     f"{', '.join(summary['partial_scenes'][:5])}")
    for channel, n in summary['missing_cams'].items():
        lines.append(f'  camera {channel} missing in {n} frames')
    return '\n'.join(lines)
