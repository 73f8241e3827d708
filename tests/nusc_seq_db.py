"""Write, at test time, a v1.0-mini-shaped nuScenes database (with nuScenes-lidarseg)
from the real 11-frame sequence ``../shared/data/nuscenes_seq11``, so that the root mode
of the occupancy builder (``occwm.occupancy.nuscenes``) can be tested on real records
through nuscenes-devkit. Nothing written here is committed: tests call it on ``tmp_path``.

What comes from the real records, unchanged: the LIDAR_TOP points (``pc/pcK.npy``: the
same x, y, z as ``pc_seman/pc_seman_K.npy`` row for row, checked), the ego_pose records
(tokens, timestamps, poses), the LIDAR_TOP calibrated_sensor record, the instance tokens
and the boxes. Derived:

- ``samples/LIDAR_TOP/*.pcd.bin``: float32 (N, 5) x, y, z, intensity, ring = 0;
- ``lidarseg/v1.0-mini/<token>_lidarseg.bin``: the Occ3D labels mapped back to one
  nuScenes general index per class (``OCC3D_TO_GENERAL``, the inverse of the challenge
  mapping restricted to one representative each);
- ``sample_annotation``: the LiDAR-frame boxes ``(x, y, z_bottom, dx, dy, dz, yaw)``,
  which SurroundOcc stored as ``(w, l, h) * 1.1``, heading + pi/2 and bottom lowered by
  0.1 m, turned back into a nuScenes box (centre, size w, l, h, heading quaternion) and
  moved LiDAR -> ego -> global with the frame's calibration and ego pose (devkit ``Box``);
- with ``cam_pkl`` (an mmdet3d-1.x info pkl, ``../shared/data/nuscenes_frame_cams/*.pkl``:
  log n015-2018-07-24, the same vehicle family): six camera sensors, one
  calibrated_sensor per camera (translation and rotation from its real ``cam2ego``, the
  quaternion by pyquaternion; ``camera_intrinsic`` its real ``cam2img``) and a keyframe
  sample_data per camera and sample (1600 x 900, the LIDAR_TOP timestamp and ego_pose;
  the JPEG files are not written: nuscenes-devkit does not open them when loading);
- placeholders where nuscenes_seq11 has no record: sample tokens (the LIDAR_TOP
  sample_data token, which nuScenes shares with the ego_pose token and which the folder
  mode uses as the frame token, so both modes write the same ``gts/<scene>/<token>``),
  scene / annotation / category / log / map tokens (md5 of a name), the scene name
  ``scene-seq11``, visibility '4', no attributes, ``num_lidar_pts`` 0, a 1 x 1 map PNG.
"""
import hashlib
import json
import os
import pickle
from typing import Optional

import numpy as np
from pyquaternion import Quaternion

from occwm.occupancy.nuscenes import BOX_SCALE, BOX_Z_SHIFT

VERSION = 'v1.0-mini'
SCENE_NAME = 'scene-seq11'
LOGFILE = 'n015-2018-07-18-11-07-57+0800'
# Occ3D class -> a nuScenes-lidarseg general index that the challenge mapping sends back to it.
OCC3D_TO_GENERAL = {0: 0, 1: 9, 2: 14, 3: 16, 4: 17, 5: 18, 6: 21, 7: 2, 8: 12, 9: 22, 10: 23,
                    11: 24, 12: 25, 13: 26, 14: 27, 15: 28, 16: 30}
BOX_CATEGORY_INDEX = {**OCC3D_TO_GENERAL, 0: 11}  # 'others' boxes: pushable_pullable


def _token(kind: str, key) -> str:
    return hashlib.md5(f'occwm-test:{kind}:{key}'.encode()).hexdigest()


def _dump(table_root: str, name: str, records) -> None:
    with open(os.path.join(table_root, f'{name}.json'), 'w') as f:
        json.dump(records, f)


def _global_box(row: np.ndarray, calib: dict, pose: dict):
    """A folder box (LiDAR frame, SurroundOcc convention) as a global nuScenes box."""
    from nuscenes.utils.data_classes import Box
    w, l, h = (float(v) / BOX_SCALE for v in row[3:6])
    centre = [row[0], row[1], row[2] - BOX_Z_SHIFT + h / 2]
    box = Box(centre, [w, l, h], Quaternion(axis=[0, 0, 1], angle=float(row[6]) - np.pi / 2))
    box.rotate(Quaternion(calib['rotation']))
    box.translate(np.asarray(calib['translation']))
    box.rotate(Quaternion(pose['rotation']))
    box.translate(np.asarray(pose['translation']))
    return box


def _linked(records):
    """Set prev / next of a time-ordered list of records."""
    for i, r in enumerate(records):
        r['prev'] = records[i - 1]['token'] if i else ''
        r['next'] = records[i + 1]['token'] if i + 1 < len(records) else ''
    return records


def _camera_calibs(cam_pkl: str) -> dict:
    """``{channel: calibrated_sensor record}`` of the six cameras of frame 0 of ``cam_pkl``."""
    with open(cam_pkl, 'rb') as f:
        images = pickle.load(f)['data_list'][0]['images']
    calibs = {}
    for name, cam in images.items():
        cam2ego = np.asarray(cam['cam2ego'], np.float64)                # (4, 4)
        q = Quaternion(matrix=cam2ego[:3, :3], atol=1e-6)               # float32-rounded input
        calibs[name] = dict(token=_token('calibrated_sensor', name),
                            sensor_token=_token('sensor', name),
                            translation=cam2ego[:3, 3].tolist(), rotation=q.elements.tolist(),
                            camera_intrinsic=np.asarray(cam['cam2img'])[:3, :3].tolist())
    return calibs


def write_seq11_nuscenes_db(seq11_dir: str, root: str, version: str = VERSION,
                            cam_pkl: Optional[str] = None) -> dict:
    """Write the database under ``root`` (cameras only with ``cam_pkl``, see the module
    docstring); returns ``dict(root, version, scene_name, sample_tokens, lidarseg_paths,
    cameras)`` (sample tokens in time order; ``cameras``: {channel: its calibrated_sensor
    record}, empty without ``cam_pkl``)."""
    from nuscenes.utils.color_map import get_colormap
    import imageio.v2 as imageio
    table_root = os.path.join(root, version)
    for d in (table_root, os.path.join(root, 'samples', 'LIDAR_TOP'),
              os.path.join(root, 'lidarseg', version), os.path.join(root, 'maps')):
        os.makedirs(d, exist_ok=True)
    names = list(get_colormap())                      # the 32 classes in 'index' order
    categories = [dict(token=_token('category', n), name=n, description='', index=i)
                  for i, n in enumerate(names)]
    log_token, map_token = _token('log', LOGFILE), _token('map', LOGFILE)
    scene_token = _token('scene', SCENE_NAME)
    lut = np.zeros(17, np.uint8)
    for occ3d, general in OCC3D_TO_GENERAL.items():
        lut[occ3d] = general

    K = len([f for f in os.listdir(os.path.join(seq11_dir, 'pose')) if f.endswith('.npy')])
    cam_calibs = _camera_calibs(cam_pkl) if cam_pkl else {}
    cam_data = {name: [] for name in cam_calibs}      # channel -> keyframe sample_data
    samples, sample_data, poses, calibs, lidarseg, seg_paths = [], [], [], {}, [], []
    tracks = {}                                       # instance token -> [annotation, ...]
    annotations = []                                  # in frame order, then box order
    inst_cat = {}
    for k in range(K):
        load = lambda name: np.load(os.path.join(seq11_dir, name), allow_pickle=True)  # noqa
        pose = load(f'pose/lidar_ego_pose{k}.npy').item()
        calib = load(f'calib/lidar_calibrated_sensor{k}.npy').item()
        pc = load(f'pc/pc{k}.npy').astype(np.float32)                  # (N, 4)
        seman = load(f'pc_seman/pc_seman_{k}.npy')                     # (N, 4) x, y, z, label
        if len(pc) != len(seman) or not np.array_equal(pc[:, :3].astype(np.float64), seman[:, :3]):
            raise ValueError(f'{seq11_dir}: pc{k} and pc_seman_{k} hold different points')
        token, ts = pose['token'], int(pose['timestamp'])
        filename = f'samples/LIDAR_TOP/{LOGFILE}__LIDAR_TOP__{ts}.pcd.bin'
        np.c_[pc, np.zeros(len(pc), np.float32)].astype(np.float32).tofile(
            os.path.join(root, filename))                              # (N, 5) float32
        seg_name = f'lidarseg/{version}/{token}_lidarseg.bin'
        lut[seman[:, 3].astype(np.int64)].tofile(os.path.join(root, seg_name))
        seg_paths.append(os.path.join(root, seg_name))
        samples.append(dict(token=token, timestamp=ts, scene_token=scene_token))
        sample_data.append(dict(token=token, sample_token=token, ego_pose_token=token,
                                calibrated_sensor_token=calib['token'], timestamp=ts,
                                fileformat='pcd', is_key_frame=True, height=0, width=0,
                                filename=filename))
        for name, cal in cam_calibs.items():
            cam_data[name].append(dict(
                token=_token('sample_data', f'{name}:{token}'), sample_token=token,
                ego_pose_token=token, calibrated_sensor_token=cal['token'], timestamp=ts,
                fileformat='jpg', is_key_frame=True, height=900, width=1600,
                filename=f'samples/{name}/{LOGFILE}__{name}__{ts}.jpg'))
        poses.append(dict(token=token, timestamp=ts, rotation=list(pose['rotation']),
                          translation=list(pose['translation'])))
        calibs[calib['token']] = dict(token=calib['token'], sensor_token=calib['sensor_token'],
                                      translation=list(calib['translation']),
                                      rotation=list(calib['rotation']), camera_intrinsic=[])
        lidarseg.append(dict(token=token, sample_data_token=token, filename=seg_name))
        boxes = load(f'bbox/bbox{k}.npy').astype(np.float64).reshape(-1, 7)
        for row, inst, cat in zip(boxes, load(f'bbox/boxes_token{k}.npy').astype(str),
                                  load(f'bbox/object_category{k}.npy').astype(np.int64)):
            box = _global_box(row, calib, pose)
            inst_cat[inst] = names[BOX_CATEGORY_INDEX[int(cat)]]
            annotations.append(dict(
                token=_token('annotation', f'{inst}:{token}'), sample_token=token,
                instance_token=inst, visibility_token='4', attribute_tokens=[],
                translation=box.center.tolist(), size=box.wlh.tolist(),
                rotation=box.orientation.elements.tolist(), num_lidar_pts=0, num_radar_pts=0))
            tracks.setdefault(inst, []).append(annotations[-1])

    for track in tracks.values():
        _linked(track)
    instances = [dict(token=inst, category_token=_token('category', inst_cat[inst]),
                      nbr_annotations=len(track), first_annotation_token=track[0]['token'],
                      last_annotation_token=track[-1]['token']) for inst, track in tracks.items()]
    sensor_tokens = {c['sensor_token'] for c in calibs.values()}
    sensors = [dict(token=t, channel='LIDAR_TOP', modality='lidar') for t in sensor_tokens]
    sensors += [dict(token=c['sensor_token'], channel=name, modality='camera')
                for name, c in cam_calibs.items()]
    tables = dict(
        category=categories, attribute=[],
        visibility=[dict(token=str(i + 1), level=lv, description=f'visibility {lv}')
                    for i, lv in enumerate(('v0-40', 'v40-60', 'v60-80', 'v80-100'))],
        instance=instances,
        sensor=sensors, calibrated_sensor=list(calibs.values()) + list(cam_calibs.values()),
        ego_pose=poses,
        log=[dict(token=log_token, logfile=LOGFILE, vehicle=LOGFILE.split('-')[0],
                  date_captured='2018-07-18', location='singapore')],
        scene=[dict(token=scene_token, log_token=log_token, nbr_samples=len(samples),
                    first_sample_token=samples[0]['token'], last_sample_token=samples[-1]['token'],
                    name=SCENE_NAME, description='nuscenes_seq11 (occwm test database)')],
        sample=_linked(samples),
        sample_data=_linked(sample_data) + [r for recs in cam_data.values() for r in _linked(recs)],
        sample_annotation=annotations,
        map=[dict(token=map_token, log_tokens=[log_token], category='semantic_prior',
                  filename=f'maps/{map_token}.png')],
        lidarseg=lidarseg)
    for name, records in tables.items():
        _dump(table_root, name, records)
    imageio.imwrite(os.path.join(root, 'maps', f'{map_token}.png'), np.zeros((1, 1), np.uint8))
    return dict(root=str(root), version=version, scene_name=SCENE_NAME,
                sample_tokens=[s['token'] for s in samples], lidarseg_paths=seg_paths,
                cameras=cam_calibs)
