"""Root mode of the occupancy builder (occwm.data.nuscenes_occ): a nuScenes database
written at test time from the real nuscenes_seq11 records (tests/nusc_seq_db.py), read
through nuscenes-devkit, must give what the folder mode gives on the same frames."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

from occwm.data.layout import load_labels, load_scene_infos
from occwm.data.nuscenes_occ import (build_nuscenes_scenes, load_nuscenes_scene,
                                     occ3d_class_maps, open_nuscenes)
from occwm.data.occ_builder import build_scene, load_source, points_in_boxes
from tests.nusc_seq_db import SCENE_NAME, VERSION, write_seq11_nuscenes_db

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def db(tmp_path_factory):
    from tests.conftest import shared_path
    seq11 = shared_path('nuscenes_seq11')
    info = write_seq11_nuscenes_db(seq11, str(tmp_path_factory.mktemp('nuscenes')))
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
                                 keep_occupancy=True, progress=False, nusc=nusc)
    folder = build_scene(db['seq11'], str(out / 'folder'), scene_name=SCENE_NAME,
                         ray_cast=False, progress=False)
    return root, folder


def test_devkit_loads_the_database(nusc):
    from nuscenes.nuscenes import NuScenes
    assert isinstance(nusc, NuScenes)
    assert [s['name'] for s in nusc.scene] == [SCENE_NAME] and len(nusc.sample) == 11
    assert len(nusc.lidarseg) == 11 and len(nusc.category) == 32
    sample = nusc.get('sample', nusc.scene[0]['first_sample_token'])
    assert list(sample['data']) == ['LIDAR_TOP'] and len(sample['anns']) == 58


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
        # the same boxes, (l, w, heading) here and (w, l, heading + pi/2) in the folder
        np.testing.assert_allclose(a.boxes[:, [0, 1, 2, 5]], b.boxes[:, [0, 1, 2, 5]], atol=1e-6)
        np.testing.assert_allclose(a.boxes[:, [3, 4]], b.boxes[:, [4, 3]], atol=1e-6)
        dyaw = np.angle(np.exp(1j * (a.boxes[:, 6] - b.boxes[:, 6] + np.pi / 2)))
        assert np.abs(dyaw).max() < 1e-6
        if a.index in (0, 5, 10):                        # the same points in the same box
            np.testing.assert_array_equal(points_in_boxes(a.points, a.boxes),
                                          points_in_boxes(b.points, b.boxes))


def test_root_mode_equals_folder_mode(built):
    root, folder = built
    occ_root, occ_folder = root['occupancy'][SCENE_NAME], folder['occupancy']
    assert len(occ_root) == len(occ_folder) == 11
    for a, b in zip(occ_root, occ_folder):                 # measured: 100 % identical
        assert (a['semantics'] == b['semantics']).mean() >= 0.999
        assert (a['mask_lidar'] == b['mask_lidar']).mean() >= 0.999
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


def test_unknown_scene_named(db, nusc, tmp_path):
    with pytest.raises(KeyError, match='scene-0103'):
        build_nuscenes_scenes(db['root'], VERSION, str(tmp_path), scenes=['scene-0103'],
                              progress=False, nusc=nusc)
    assert not os.listdir(tmp_path)                        # nothing written


def test_tool_root_mode(db, tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    try:
        import build_occupancy
    finally:
        sys.path.pop(0)
    out = str(tmp_path / 'out')
    build_occupancy.main(['--nusc-root', db['root'], '--version', VERSION, '--scenes', SCENE_NAME,
                          '--out', out, '--no-ray-cast', '--quiet',
                          '--grid', '-8', '-8', '-1', '8', '8', '5.4', '0.4'])   # small: fast
    printed = capsys.readouterr().out
    assert f'nuscenes_occ_infos_{VERSION}.pkl' in printed and 'gts' in printed
    assert len(os.listdir(os.path.join(out, 'gts', SCENE_NAME))) == 11
    with pytest.raises(SystemExit, match='not both'):
        build_occupancy.main([db['seq11'], out, '--nusc-root', db['root']])
    with pytest.raises(SystemExit, match='v1.0-trainval'):
        build_occupancy.main(['--nusc-root', db['root'], '--version', 'v1.0-trainval',
                              '--out', out])
