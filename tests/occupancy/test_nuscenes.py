"""Root mode of the occupancy builder (occwm.occupancy.nuscenes): a nuScenes database
written at test time from the real nuscenes_seq11 records (tests/nusc_seq_db.py), read
through nuscenes-devkit, must give what the folder mode gives on the same frames; its
six camera calibrations (the real ones of nuscenes_frame_cams) give mask_camera."""
import glob
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from occwm.infos.layouts import load_scene_infos
from occwm.io import load_labels
from occwm.occupancy.nuscenes import (build_nuscenes_scenes, load_nuscenes_scene,
                                     occ3d_class_maps, open_nuscenes, scene_cameras)
from occwm.occupancy.builder import build_scene, points_in_boxes
from occwm.occupancy.seq11 import load_source
from occwm.occupancy.visibility import CAMERA_NAMES, CameraCalib, load_cam_calib
from occwm.geometry import pose_matrix, transform_points
from occwm.grid import OccGrid
from tests.nusc_seq_db import SCENE_NAME, VERSION, write_seq11_nuscenes_db

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = OccGrid((-8, -8, -1, 8, 8, 5.4), 0.4)          # 40 x 40 x 16: fast camera rays
SMALL_ARGS = ['--grid', '-8', '-8', '-1', '8', '8', '5.4', '0.4']


def _seq11():
    from tests.conftest import shared_path
    return shared_path('nuscenes_seq11')


@pytest.fixture(scope='module')
def cam_pkl():
    from tests.conftest import shared_path
    return glob.glob(os.path.join(shared_path('nuscenes_frame_cams'), '*.pkl'))[0]


@pytest.fixture(scope='module')
def db(tmp_path_factory, cam_pkl):
    """The database with LIDAR_TOP and the six cameras."""
    seq11 = _seq11()
    info = write_seq11_nuscenes_db(seq11, str(tmp_path_factory.mktemp('nuscenes')),
                                   cam_pkl=cam_pkl)
    info['seq11'] = seq11
    return info


@pytest.fixture(scope='module')
def db_lidar_only(tmp_path_factory):
    seq11 = _seq11()
    info = write_seq11_nuscenes_db(seq11, str(tmp_path_factory.mktemp('nuscenes_lidar')))
    info['seq11'] = seq11
    return info


@pytest.fixture(scope='module')
def nusc(db):
    return open_nuscenes(db['root'], VERSION)


@pytest.fixture(scope='module')
def built(db, nusc, tmp_path_factory):
    """Both modes on the same 11 frames (no ray cast: the same code path either way)."""
    out = tmp_path_factory.mktemp('built')
    root = build_nuscenes_scenes(db['root'], VERSION, str(out / 'root'), ray_cast=False,
                                 keep_occupancy=True, progress=False, nusc=nusc, cams=None)
    folder = build_scene(db['seq11'], str(out / 'folder'), scene_name=SCENE_NAME,
                         ray_cast=False, progress=False)
    return root, folder


def test_devkit_loads_the_database(db, nusc):
    from nuscenes.nuscenes import NuScenes
    assert isinstance(nusc, NuScenes)
    assert [s['name'] for s in nusc.scene] == [SCENE_NAME] and len(nusc.sample) == 11
    assert len(nusc.lidarseg) == 11 and len(nusc.category) == 32
    sample = nusc.get('sample', nusc.scene[0]['first_sample_token'])
    assert sorted(sample['data']) == sorted(('LIDAR_TOP',) + CAMERA_NAMES)
    assert len(sample['anns']) == 58
    sd = nusc.get('sample_data', sample['data']['CAM_FRONT'])
    assert not os.path.exists(os.path.join(db['root'], sd['filename']))   # no JPEG needed


def test_class_maps_hand_checked(nusc):
    lut, by_name = occ3d_class_maps(nusc)
    # general index -> Occ3D: noise, adult, barrier, car, driveable, vegetation, ego, police car
    assert [lut[i] for i in (0, 2, 9, 17, 24, 30, 31, 20)] == [0, 7, 1, 4, 11, 16, 0, 0]
    assert lut[32] == -1 and (lut[:32] >= 0).all()
    assert by_name['vehicle.car'] == 4 and by_name['human.pedestrian.child'] == 7
    assert by_name['movable_object.barrier'] == 1 and by_name['vehicle.bus.bendy'] == 3
    assert by_name['movable_object.pushable_pullable'] == 0


def test_frames_match_the_folder_frames(db, nusc):
    frames, source = load_nuscenes_scene(nusc, SCENE_NAME), load_source(db['seq11'])
    assert [f.token for f in frames] == [f.token for f in source] == db['sample_tokens']
    for a, b in zip(frames, source):
        assert a.timestamp == b.timestamp
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.ego2global, b.ego2global)
        np.testing.assert_array_equal(a.lidar2ego, b.lidar2ego)
        assert list(a.box_tokens) == list(b.box_tokens)
        np.testing.assert_array_equal(a.box_labels, b.box_labels)
        # the same ego-frame boxes (x, y, z_center, length, width, height, yaw), bit for
        # bit: both readers move LiDAR-frame boxes with frames.lidar_boxes_to_ego and
        # frames.to_source_frame rounds them to the format's float32
        np.testing.assert_array_equal(a.boxes, b.boxes)
        if a.index in (0, 5, 10):                        # the same points in the same box
            ego = transform_points(a.lidar2ego, a.points)
            np.testing.assert_array_equal(points_in_boxes(ego, a.boxes),
                                          points_in_boxes(ego, b.boxes))


def test_root_mode_equals_folder_mode(built):
    root, folder = built
    occ_root, occ_folder = root['occupancy'][SCENE_NAME], folder['occupancy']
    assert len(occ_root) == len(occ_folder) == 11
    for a, b in zip(occ_root, occ_folder):                 # the same frames: identical
        np.testing.assert_array_equal(a['semantics'], b['semantics'])
        np.testing.assert_array_equal(a['mask_lidar'], b['mask_lidar'])
    # the written files: same paths under gts/, same contents
    for pr, pf in zip(root['label_paths'][SCENE_NAME], folder['label_paths']):
        assert os.path.relpath(pr, os.path.dirname(root['info_path'])) == \
            os.path.relpath(pf, os.path.dirname(folder['info_path']))
        np.testing.assert_array_equal(load_labels(pr)['semantics'], load_labels(pf)['semantics'])


def test_info_pkl_same_tokens_and_poses(db, built):
    root, folder = built
    a = load_scene_infos(root['info_path'])[SCENE_NAME]
    b = load_scene_infos(folder['info_path'])[SCENE_NAME]
    assert [f['token'] for f in a] == [f['token'] for f in b] == db['sample_tokens']
    for fa, fb in zip(a, b):
        assert fa['timestamp'] == fb['timestamp'] and fa['occ_path'] == fb['occ_path']
        for key in ('ego2global_translation', 'ego2global_rotation', 'lidar2ego_translation',
                    'lidar2ego_rotation', 'gt_ego_fut_trajs', 'ego_fut_traj', 'ego_his_traj'):
            np.testing.assert_array_equal(fa[key], fb[key])
    assert os.path.basename(root['info_path']) == f'nuscenes_occ_infos_{VERSION}.pkl'


def _copy(db, tmp_path):
    root = str(tmp_path / 'nuscenes')
    shutil.copytree(db['root'], root)
    return root


def test_missing_version_folder_named(db):
    with pytest.raises(FileNotFoundError, match=r'v1\.0-trainval.*not found'):
        open_nuscenes(db['root'], 'v1.0-trainval')


def test_missing_lidarseg_file_named(db, tmp_path):
    root = _copy(db, tmp_path)
    victim = db['lidarseg_paths'][3].replace(db['root'], root)
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=os.path.basename(victim)):
        open_nuscenes(root, VERSION)


def test_missing_lidarseg_record_names_sample_or_skips(db, tmp_path):
    root = _copy(db, tmp_path)
    table = os.path.join(root, VERSION, 'lidarseg.json')
    with open(table) as f:
        records = json.load(f)
    gone = records.pop(3)
    os.remove(os.path.join(root, gone['filename']))
    with open(table, 'w') as f:
        json.dump(records, f)
    nusc = open_nuscenes(root, VERSION)
    with pytest.raises(FileNotFoundError, match=db['sample_tokens'][3]):
        load_nuscenes_scene(nusc, SCENE_NAME)
    with pytest.warns(UserWarning, match=f"skipping sample {db['sample_tokens'][3]}"):
        frames = load_nuscenes_scene(nusc, SCENE_NAME, skip_missing=True)
    assert [f.token for f in frames] == db['sample_tokens'][:3] + db['sample_tokens'][4:]


def test_bad_box_named_by_sample(db):
    """Root-mode frames go through the frame format's checks (frames.to_source_frame)."""
    nusc = open_nuscenes(db['root'], VERSION)                # own tables: edited in memory
    sample = nusc.get('sample', db['sample_tokens'][2])
    nusc.get('sample_annotation', sample['anns'][0])['size'] = [0.0, 4.0, 1.5]
    with pytest.raises(ValueError, match=f"sample {sample['token']}: boxes: box 0: length, "
                                         f"width, height must be > 0"):
        load_nuscenes_scene(nusc, SCENE_NAME)


def test_unknown_scene_named(db, nusc, tmp_path):
    with pytest.raises(KeyError, match='scene-0103'):
        build_nuscenes_scenes(db['root'], VERSION, str(tmp_path), scenes=['scene-0103'],
                              progress=False, nusc=nusc)
    assert not os.listdir(tmp_path)                        # nothing written


def _tool():
    from tools import build_occupancy
    return build_occupancy


def test_tool_root_mode(db, tmp_path, capsys):
    build_occupancy = _tool()
    out = str(tmp_path / 'out')
    build_occupancy.main(['--nusc-root', db['root'], '--version', VERSION, '--scenes', SCENE_NAME,
                          '--out', out, '--no-ray-cast', '--quiet', '--no-camera-mask']
                         + SMALL_ARGS)                                     # small: fast
    printed = capsys.readouterr().out
    assert f'nuscenes_occ_infos_{VERSION}.pkl' in printed and 'gts' in printed
    assert 'mask_camera all ones (cameras not used)' in printed and 'note:' not in printed
    assert len(os.listdir(os.path.join(out, 'gts', SCENE_NAME))) == 11
    with pytest.raises(SystemExit, match='not both'):
        build_occupancy.main(['--nusc-root', db['root'], '--out', out, '--no-camera-mask',
                              '--cam-calib', 'x.pkl'])
    with pytest.raises(SystemExit, match='not both'):
        build_occupancy.main([db['seq11'], out, '--nusc-root', db['root']])
    with pytest.raises(SystemExit, match='v1.0-trainval'):
        build_occupancy.main(['--nusc-root', db['root'], '--version', 'v1.0-trainval',
                              '--out', out])


# ----------------------------------------------------------------------------- cameras
@pytest.fixture(scope='module')
def cam_built(db, nusc, tmp_path_factory):
    """Both modes on a small grid with each frame's own rays and the same six cameras:
    root mode reads them from the database through the devkit, folder mode gets them as
    ``cams``, built here from the records the database was written with."""
    cams = {name: CameraCalib(name, pose_matrix(r['translation'], r['rotation']),
                              np.asarray(r['camera_intrinsic'], np.float64))
            for name, r in db['cameras'].items()}
    out = tmp_path_factory.mktemp('cam_built')
    root = build_nuscenes_scenes(db['root'], VERSION, str(out / 'root'), grid=SMALL,
                                 ray_cast='own', cam_stride=32, keep_occupancy=True,
                                 progress=False, nusc=nusc)
    folder = build_scene(db['seq11'], str(out / 'folder'), scene_name=SCENE_NAME, grid=SMALL,
                         ray_cast='own', cams=cams, cam_stride=32,
                         progress=False)
    return root, folder


def test_database_cameras_are_the_pkl_cameras(db, nusc, cam_pkl):
    cams, ref = scene_cameras(nusc, db['sample_tokens'], SCENE_NAME), load_cam_calib(cam_pkl)
    assert list(cams) == list(CAMERA_NAMES)
    for name, cam in cams.items():
        assert cam.image_size == (1600, 900)
        np.testing.assert_array_equal(cam.cam2img, ref[name].cam2img)
        # the pkl's float32-rounded matrix -> quaternion -> matrix: measured <= 4e-8 apart
        np.testing.assert_allclose(cam.cam2ego, ref[name].cam2ego, atol=1e-6)


def test_root_mask_camera_equals_folder_mask_camera(cam_built):
    root, folder = cam_built
    occ_root = root['occupancy'][SCENE_NAME]
    for a, b in zip(occ_root, folder['occupancy']):         # measured: 100 % identical
        np.testing.assert_array_equal(a['semantics'], b['semantics'])
        np.testing.assert_array_equal(a['mask_lidar'], b['mask_lidar'])
        np.testing.assert_array_equal(a['mask_camera'], b['mask_camera'])
        assert (a['mask_camera'] <= a['mask_lidar']).all()
        # measured: 0.34..0.44 of the voxels camera-visible, 0.48..0.50 LiDAR-observed
        assert 0.2 < a['mask_camera'].mean() < a['mask_lidar'].mean() - 0.02
    written = load_labels(root['label_paths'][SCENE_NAME][6], SMALL,
                          keys=('mask_camera',))['mask_camera']
    np.testing.assert_array_equal(written, occ_root[6]['mask_camera'])
    assert root['cameras'][SCENE_NAME] == list(CAMERA_NAMES)
    with open(root['info_path'], 'rb') as f:
        note = pickle.load(f)['metadata']['mask_camera']
    assert note.startswith('camera rays (CAM_FRONT') and f'calibrated_sensor of {VERSION}' in note


def _edit_table(root, name, edit):
    path = os.path.join(root, VERSION, f'{name}.json')
    with open(path) as f:
        records = json.load(f)
    with open(path, 'w') as f:
        json.dump(edit(records), f)


def test_bad_camera_records_named(db, tmp_path):
    """CAM_FRONT of sample 5 moved by 0.3 m (a calibration change within the scene),
    then CAM_BACK without intrinsics: errors that name the sample or the record."""
    root = _copy(db, tmp_path)
    moved = dict(db['cameras']['CAM_FRONT'], token='moved-cam-front')
    moved['translation'] = [moved['translation'][0] + 0.3] + moved['translation'][1:]
    sample_5 = db['sample_tokens'][5]

    def edit_data(records):
        for r in records:
            if r['sample_token'] == sample_5 and r['filename'].startswith('samples/CAM_FRONT/'):
                r['calibrated_sensor_token'] = moved['token']
        return records
    _edit_table(root, 'calibrated_sensor', lambda records: records + [moved])
    _edit_table(root, 'sample_data', edit_data)
    nusc = open_nuscenes(root, VERSION)
    with pytest.raises(ValueError, match=f'CAM_FRONT calibration of sample {sample_5} differs'):
        scene_cameras(nusc, db['sample_tokens'], SCENE_NAME)
    assert len(scene_cameras(nusc, db['sample_tokens'][:5], SCENE_NAME)) == 6
    token = db['cameras']['CAM_BACK']['token']
    nusc.get('calibrated_sensor', token)['camera_intrinsic'] = []      # this copy only
    with pytest.raises(ValueError, match=f'calibrated_sensor {token} of CAM_BACK.*intrinsic'):
        scene_cameras(nusc, db['sample_tokens'][:1], SCENE_NAME)


def test_tool_lidar_only_database_falls_back(db_lidar_only, cam_pkl, tmp_path, capsys):
    """No camera channels: mask_camera all ones, a printed note and the metadata say so;
    --cam-calib PKL still gives a camera mask (an override)."""
    build_occupancy = _tool()
    args = ['--nusc-root', db_lidar_only['root'], '--version', VERSION, '--no-ray-cast',
            '--quiet', '--cam-stride', '32'] + SMALL_ARGS
    out = str(tmp_path / 'bare')
    build_occupancy.main(args + ['--out', out])
    printed = capsys.readouterr().out
    assert 'note: no camera channels' in printed and 'all ones' in printed
    info = os.path.join(out, f'nuscenes_occ_infos_{VERSION}.pkl')
    with open(info, 'rb') as f:
        meta = pickle.load(f)['metadata']
    assert meta['mask_camera'] == 'all ones (no camera channels in the database)'
    assert meta['mask_camera_scenes'] == {SCENE_NAME: meta['mask_camera']}
    token = db_lidar_only['sample_tokens'][0]
    assert load_labels(os.path.join(out, 'gts', SCENE_NAME, token, 'labels.npz'), SMALL,
                       keys=('mask_camera',))['mask_camera'].all()
    out = str(tmp_path / 'override')
    build_occupancy.main(args + ['--out', out, '--cam-calib', cam_pkl])
    printed = capsys.readouterr().out
    assert 'note:' not in printed and 'calibrations given by the caller' in printed
    cam = load_labels(os.path.join(out, 'gts', SCENE_NAME, token, 'labels.npz'), SMALL,
                      keys=('mask_camera',))['mask_camera']
    assert 0 < cam.mean() < 1
