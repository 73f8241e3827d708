"""Write a small nuScenes-schema database (the JSON tables nuscenes-devkit loads) at test
time from OccWorld / UniAD-style frame infos (``nuscenes_mini_infos_val.pkl`` layout).

Only tables are written, never sensor data, and only into a test's ``tmp_path``: the
source infos are nuScenes data (CC BY-NC-SA) and must not be committed.

What the infos give becomes real records: scenes, samples, the LIDAR_TOP and camera
sample_data of every keyframe (chained by ``prev`` / ``next`` per channel within a scene,
so "sweeps" are the earlier keyframes), their ego poses and calibrated sensors. The
infos hold no annotation or instance tokens: annotations are given explicitly
(``annotations``), and lidarseg records with empty placeholder label files on request.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from typing import Dict, Iterable, List, Sequence

import numpy as np
from PIL import Image

CAMERAS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK', 'CAM_BACK_LEFT',
           'CAM_BACK_RIGHT')
# nuScenes-lidarseg category names and indices (category.json of nuScenes-lidarseg)
CATEGORY_INDEX = {'noise': 0, 'human.pedestrian.adult': 2, 'vehicle.car': 17}


def _token(*parts) -> str:
    return hashlib.md5('/'.join(map(str, parts)).encode()).hexdigest()


def _rel(path: str) -> str:
    """'./data/nuscenes\\samples/X/f.jpg' -> 'samples/X/f.jpg'."""
    path = path.replace('\\', '/')
    m = re.search(r'(samples|sweeps)/.*$', path)
    return m.group(0) if m else path.lstrip('./')


def _list(x) -> list:
    return np.asarray(x, np.float64).tolist()


def scene_name_of(info: dict) -> str:
    """Scene name from an OccWorld ``occ_path`` ('.../gts/scene-0103/<token>')."""
    return info['occ_path'].replace('\\', '/').rstrip('/').split('/')[-2]


def lidar_token_of(info: dict) -> str:
    """LIDAR_TOP sample_data token: from ``pts_semantic_mask_path`` ('<token>_lidarseg.bin')
    when present, else derived from the sample token."""
    m = re.search(r'([0-9a-f]{32})_lidarseg', info.get('pts_semantic_mask_path') or '')
    return m.group(1) if m else _token('lidar', info['token'])


def write_nuscenes_tables(infos: Sequence[dict], root: str, version: str = 'v1.0-mini',
                          cam_channels: Sequence[str] = CAMERAS,
                          annotations: Iterable[dict] = (),
                          lidarseg_tokens: Iterable[str] = ()) -> Dict[str, List[dict]]:
    """Write ``<root>/<version>/*.json`` (the 13 tables nuscenes-devkit needs).

    Args:
        infos: frame infos in time order, grouped by scene: ``token``, ``timestamp`` (µs),
            ``scene_token``, ``occ_path``, ``ego2global_*``, ``lidar2ego_*``, ``lidar_path``,
            ``cams`` {channel: data_path, sample_data_token, timestamp, sensor2ego_*,
            ego2global_*, cam_intrinsic}, optional ``map_location``.
        root: data root; nothing but tables (and empty lidarseg placeholders) is written.
        version: table folder name.
        cam_channels: cameras to write (a subset makes a database without some channels).
        annotations: dicts with ``sample_token``, ``instance_token``, ``category_name``
            (a key of ``CATEGORY_INDEX``), global ``translation`` (3,) metres, ``size``
            (3,) w, l, h metres, ``rotation`` (4,) w, x, y, z, ``num_lidar_pts``,
            ``num_radar_pts``; chained per instance in time order.
        lidarseg_tokens: LIDAR_TOP sample_data tokens that get a lidarseg record and an
            empty ``<root>/lidarseg/<version>/<token>_lidarseg.bin``.

    Returns:
        the tables written, ``{table: [record, ...]}``.
    """
    t = defaultdict(list)
    by_scene = defaultdict(list)
    for info in infos:
        by_scene[info['scene_token']].append(info)
    sensors = {}
    for channel in ('LIDAR_TOP',) + tuple(cam_channels):
        sensors[channel] = dict(token=_token('sensor', channel), channel=channel,
                                modality='lidar' if channel.startswith('LIDAR') else 'camera')
    t['sensor'] = list(sensors.values())
    calib, index_of_sd = {}, {}

    def add_sd(channel, sd_token, sample_token, timestamp, filename, s2e_t, s2e_r, e2g_t, e2g_r,
               intrinsic, prev, is_camera):
        key = (channel, tuple(_list(s2e_t)), tuple(_list(s2e_r)))
        if key not in calib:
            calib[key] = dict(token=_token('calib', *key), sensor_token=sensors[channel]['token'],
                              translation=_list(s2e_t), rotation=_list(s2e_r),
                              camera_intrinsic=_list(intrinsic) if is_camera else [])
        t['ego_pose'].append(dict(token=sd_token, timestamp=int(timestamp),
                                  translation=_list(e2g_t), rotation=_list(e2g_r)))
        rec = dict(token=sd_token, sample_token=sample_token, ego_pose_token=sd_token,
                   calibrated_sensor_token=calib[key]['token'], timestamp=int(timestamp),
                   fileformat='jpg' if is_camera else 'pcd', is_key_frame=True,
                   height=900 if is_camera else 0, width=1600 if is_camera else 0,
                   filename=_rel(filename), prev=prev, next='')
        if prev:
            t['sample_data'][index_of_sd[prev]]['next'] = sd_token
        index_of_sd[sd_token] = len(t['sample_data'])
        t['sample_data'].append(rec)

    for scene_token, frames in by_scene.items():
        name = scene_name_of(frames[0])
        log_token = _token('log', name)
        t['log'].append(dict(token=log_token, logfile=name, vehicle='n008', date_captured='',
                             location=frames[0].get('map_location', 'boston-seaport')))
        t['scene'].append(dict(token=scene_token, name=name, description='', log_token=log_token,
                               nbr_samples=len(frames), first_sample_token=frames[0]['token'],
                               last_sample_token=frames[-1]['token']))
        prev_sd = defaultdict(str)
        for k, f in enumerate(frames):
            t['sample'].append(dict(
                token=f['token'], timestamp=int(f['timestamp']), scene_token=scene_token,
                prev=frames[k - 1]['token'] if k else '',
                next=frames[k + 1]['token'] if k + 1 < len(frames) else ''))
            lidar = lidar_token_of(f)
            add_sd('LIDAR_TOP', lidar, f['token'], f['timestamp'], f['lidar_path'],
                   f['lidar2ego_translation'], f['lidar2ego_rotation'],
                   f['ego2global_translation'], f['ego2global_rotation'], None,
                   prev_sd['LIDAR_TOP'], False)
            prev_sd['LIDAR_TOP'] = lidar
            for channel in cam_channels:
                c = f['cams'][channel]
                add_sd(channel, c['sample_data_token'], f['token'], c['timestamp'],
                       c['data_path'], c['sensor2ego_translation'], c['sensor2ego_rotation'],
                       c['ego2global_translation'], c['ego2global_rotation'],
                       c['cam_intrinsic'], prev_sd[channel], True)
                prev_sd[channel] = c['sample_data_token']
    t['calibrated_sensor'] = list(calib.values())
    t['map'] = [dict(token=_token('map'), filename='maps/none.png', category='semantic_prior',
                     log_tokens=[log['token'] for log in t['log']])]
    t['category'] = [dict(token=_token('category', n), name=n, description='', index=i)
                     for n, i in CATEGORY_INDEX.items()]
    _add_annotations(t, list(annotations))
    for table in ('attribute', 'visibility', 'instance', 'sample_annotation'):
        t.setdefault(table, [])
    folder = os.path.join(root, version)
    os.makedirs(folder, exist_ok=True)
    os.makedirs(os.path.join(root, 'maps'), exist_ok=True)  # the devkit asserts the mask file
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(os.path.join(root, t['map'][0]['filename']))
    lidarseg_tokens = list(lidarseg_tokens)
    if lidarseg_tokens:
        os.makedirs(os.path.join(root, 'lidarseg', version), exist_ok=True)
        for tok in lidarseg_tokens:
            filename = f'lidarseg/{version}/{tok}_lidarseg.bin'
            t['lidarseg'].append(dict(token=tok, sample_data_token=tok, filename=filename))
            open(os.path.join(root, filename), 'wb').close()
    for table, records in t.items():
        with open(os.path.join(folder, f'{table}.json'), 'w') as fh:
            json.dump(records, fh)
    return dict(t)


def _add_annotations(t: Dict[str, list], annotations: List[dict]) -> None:
    """sample_annotation and instance records, chained per instance by sample time."""
    time_of = {s['token']: s['timestamp'] for s in t['sample']}
    by_instance = defaultdict(list)
    for a in annotations:
        by_instance[a['instance_token']].append(a)
    for inst, anns in by_instance.items():
        anns = sorted(anns, key=lambda a: time_of[a['sample_token']])
        tokens = [_token('ann', inst, a['sample_token']) for a in anns]
        for k, a in enumerate(anns):
            t['sample_annotation'].append(dict(
                token=tokens[k], sample_token=a['sample_token'], instance_token=inst,
                visibility_token='', attribute_tokens=[], translation=_list(a['translation']),
                size=_list(a['size']), rotation=_list(a['rotation']),
                num_lidar_pts=int(a['num_lidar_pts']), num_radar_pts=int(a['num_radar_pts']),
                prev=tokens[k - 1] if k else '', next=tokens[k + 1] if k + 1 < len(anns) else ''))
        category = _token('category', anns[0]['category_name'])
        t['instance'].append(dict(token=inst, category_token=category, nbr_annotations=len(anns),
                                  first_annotation_token=tokens[0],
                                  last_annotation_token=tokens[-1]))
