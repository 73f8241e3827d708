"""tools/create_data.py and occwm.infos.nuscenes on real nuScenes-schema tables:
the Lyft Level 5 tables of ../shared/data, and a v1.0-mini-shaped database that the tests
write into tmp_path from the real records of nuscenes_mini_infos_val.pkl."""
import os
import pickle

import numpy as np
import pytest
from pyquaternion import Quaternion

from occwm.data import OccForecastDataset
from occwm.infos.layouts import load_scene_infos
from occwm.infos.nuscenes import create_nuscenes_infos, format_summary, info_path
from tests.conftest import shared_path
from tests.nusc_tables import lidar_token_of, write_nuscenes_tables
from tools import create_data


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


@pytest.fixture(scope='module')
def mini_src():
    """The 81 real keyframe infos of v1.0-mini scene-0103 (40) and scene-0916 (41)."""
    return _load(shared_path('nuscenes_mini_meta', 'nuscenes_mini_infos_val.pkl'))['infos']


def _planar(info):
    """(x, y, yaw) of the ego pose with pyquaternion: yaw is the heading of the ego x axis
    in the global xy plane."""
    t = info['ego2global_translation']
    heading = Quaternion(info['ego2global_rotation']).rotate([1.0, 0.0, 0.0])
    return t[0], t[1], np.arctan2(heading[1], heading[0])


def _annotation_specs(src):
    """A car seen in frames 5 and 6 of scene-0103 (10 m ahead of the LiDAR of frame 5,
    yaw 0.3 rad in that LiDAR frame, then 1.0 m east and 0.5 m north in the global
    frame) and a lone pedestrian without points in frame 5."""
    f5, f6 = src[5], src[6]
    e2g, l2e = Quaternion(f5['ego2global_rotation']), Quaternion(f5['lidar2ego_rotation'])
    in_ego = np.asarray(f5['lidar2ego_translation']) + l2e.rotate([10, 2, -1])
    center = np.asarray(f5['ego2global_translation']) + e2g.rotate(in_ego)
    rot = e2g * l2e * Quaternion(axis=[0, 0, 1], angle=0.3)
    car = dict(instance_token='car0', category_name='vehicle.car', size=[1.9, 4.5, 1.6],
               rotation=rot.elements, num_lidar_pts=12, num_radar_pts=0)
    return [dict(car, sample_token=f5['token'], translation=center),
            dict(car, sample_token=f6['token'], translation=center + [1.0, 0.5, 0.0]),
            dict(instance_token='ped0', category_name='human.pedestrian.adult',
                 sample_token=f5['token'], translation=center + [3, 0, 0], size=[0.6, 0.7, 1.8],
                 rotation=[1, 0, 0, 0], num_lidar_pts=0, num_radar_pts=0)]


@pytest.fixture(scope='module')
def mini_out(mini_src, tmp_path_factory):
    """create_data on the mini-shaped database; returns (summary, src, out_dir)."""
    root = str(tmp_path_factory.mktemp('nusc_mini'))
    write_nuscenes_tables(mini_src, root, annotations=_annotation_specs(mini_src),
                          lidarseg_tokens=[lidar_token_of(i) for i in mini_src[:3]])
    out_dir = os.path.join(root, 'infos')
    summary = create_nuscenes_infos(root, 'v1.0-mini', out_dir, progress=False)
    return summary, out_dir


def test_lyft_tables_one_unsplit_scene(tmp_path, capsys):
    from nuscenes.nuscenes import NuScenes
    root = shared_path('lyft_tables', 'v1.01-train')
    create_data.main(['--root', root, '--version', 'v1.01-train', '--out', str(tmp_path),
                      '--quiet'])
    stdout = capsys.readouterr().out
    assert 'train: 1 scenes, 1 frames' in stdout and 'put in train' in stdout
    data = _load(info_path(str(tmp_path), 'train'))
    assert data['metadata']['created_by'] == 'occwm create_data'
    assert data['metadata']['version'] == 'v1.01-train'
    assert not os.path.exists(info_path(str(tmp_path), 'val'))  # empty split: no pkl
    assert 'val  : 0 scenes, 0 frames, 0 with lidarseg (empty: no pkl written)' in stdout
    nusc = NuScenes(version='v1.01-train', dataroot=root, verbose=False)
    scene = nusc.scene[0]
    (name, frames), = data['infos'].items()
    assert name == scene['name'] and len(frames) == 1
    f = frames[0]
    sample = nusc.sample[0]
    lidar = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    pose = nusc.get('ego_pose', lidar['ego_pose_token'])
    cs = nusc.get('calibrated_sensor', lidar['calibrated_sensor_token'])
    assert f['token'] == sample['token'] and f['scene_token'] == scene['token']
    assert f['prev'] == f['next'] == ''  # the linked samples are not in these tables
    np.testing.assert_allclose(f['ego2global_translation'], pose['translation'])
    np.testing.assert_allclose(f['ego2global_rotation'], pose['rotation'])
    np.testing.assert_allclose(f['lidar2ego_translation'], cs['translation'])
    np.testing.assert_allclose(f['lidar2ego_rotation'], cs['rotation'])
    assert f['lidar_path'] == lidar['filename'] and f['lidarseg_path'] is None
    assert f['sweeps'] == []  # the previous sweep is not in these tables
    assert set(f['cams']) == {'CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                              'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'}  # CAM_FRONT_ZOOMED left out
    cam = f['cams']['CAM_BACK']
    sd = nusc.get('sample_data', cam['sample_data_token'])
    cs_cam = nusc.get('calibrated_sensor', sd['calibrated_sensor_token'])
    np.testing.assert_allclose(cam['sensor2ego_rotation'], cs_cam['rotation'])
    np.testing.assert_allclose(cam['ego2global_translation'],
                               nusc.get('ego_pose', sd['ego_pose_token'])['translation'])
    assert f['gt_boxes'].shape == (4, 7) and list(f['gt_names']) == ['car'] * 4
    assert not f['valid_flag'].any()  # num_lidar_pts is -1 in Lyft
    np.testing.assert_array_equal(f['gt_ego_fut_masks'], np.zeros(6))
    assert f['occ_path'] == f'gts/{name}/{sample["token"]}'


def test_mini_scenes_go_to_val_with_source_records(mini_src, mini_out):
    summary, out_dir = mini_out
    assert summary['splits']['train'] == dict(scenes=0, frames=0, lidarseg_frames=0, path=None)
    assert summary['splits']['val'] == dict(scenes=2, frames=81, lidarseg_frames=3,
                                            path=info_path(out_dir, 'val'))
    assert summary['unsplit']['scenes'] == [] and summary['partial_scenes'] == []
    assert 'val  : 2 scenes, 81 frames, 3 with lidarseg' in format_summary(summary)
    assert not os.path.exists(info_path(out_dir, 'train'))
    infos = load_scene_infos(info_path(out_dir, 'val'))
    assert {k: len(v) for k, v in infos.items()} == {'scene-0103': 40, 'scene-0916': 41}
    frames = infos['scene-0103'] + infos['scene-0916']
    for k, (s, f) in enumerate(zip(mini_src, frames)):
        assert (f['token'], f['timestamp'], f['scene_token']) == (s['token'], s['timestamp'],
                                                                   s['scene_token'])
        for key in ('ego2global_translation', 'ego2global_rotation', 'lidar2ego_translation',
                    'lidar2ego_rotation'):
            np.testing.assert_allclose(f[key], s[key], err_msg=key)
        assert '\\' not in f['lidar_path'] and f['lidar_path'].startswith('samples/LIDAR_TOP/')
        assert list(f['cams']) == list(s['cams'])
        for channel, c in f['cams'].items():
            sc = s['cams'][channel]
            assert (c['timestamp'], c['sample_data_token']) == (sc['timestamp'],
                                                                sc['sample_data_token'])
            for key in ('cam_intrinsic', 'sensor2ego_translation', 'sensor2ego_rotation',
                        'ego2global_translation', 'ego2global_rotation'):
                np.testing.assert_allclose(c[key], sc[key], err_msg=key)
            # sensor -> LiDAR equals the source's (UniAD's obtain_sensor2top)
            np.testing.assert_allclose(c['sensor2lidar_rotation'], sc['sensor2lidar_rotation'],
                                       atol=1e-9)
            np.testing.assert_allclose(c['sensor2lidar_translation'],
                                       sc['sensor2lidar_translation'], atol=1e-9)
    assert [f['lidarseg_path'] is not None for f in frames[:4]] == [True, True, True, False]
    token = lidar_token_of(mini_src[0])
    assert frames[0]['lidarseg_path'] == f'lidarseg/v1.0-mini/{token}_lidarseg.bin'


def test_mini_links_sweeps_and_trajectories(mini_out):
    _, out_dir = mini_out
    infos = load_scene_infos(info_path(out_dir, 'val'))
    for frames in infos.values():
        assert [f['frame_idx'] for f in frames] == list(range(len(frames)))
        assert frames[0]['prev'] == '' and frames[-1]['next'] == ''
        assert all(a['next'] == b['token'] and b['prev'] == a['token']
                   for a, b in zip(frames, frames[1:]))
        for k in range(len(frames) - 1):  # relative planar pose to frame k + 1
            x0, y0, yaw0 = _planar(frames[k])
            x1, y1, yaw1 = _planar(frames[k + 1])
            c, s = np.cos(yaw0), np.sin(yaw0)
            dx, dy = x1 - x0, y1 - y0
            dyaw = (yaw1 - yaw0 + np.pi) % (2 * np.pi) - np.pi
            np.testing.assert_allclose(frames[k]['ego_fut_traj'][0],
                                       [c * dx + s * dy, -s * dx + c * dy, dyaw], atol=1e-4)
        np.testing.assert_array_equal(frames[-1]['gt_ego_fut_masks'], np.zeros(6))
        np.testing.assert_array_equal(frames[-3]['gt_ego_fut_masks'], [1, 1, 0, 0, 0, 0])
        # sweeps: the earlier LIDAR_TOP sample_data (here the earlier keyframes), newest first
        f = frames[12]
        assert [sw['timestamp'] for sw in f['sweeps']] == [
            frames[j]['timestamp'] for j in range(11, 1, -1)]
        assert len(frames[3]['sweeps']) == 3 and frames[0]['sweeps'] == []
        sw = f['sweeps'][0]  # frame 11's LiDAR in frame 12's LiDAR frame
        lidar2global = [_pose(frames[j]['ego2global_translation'], frames[j]['ego2global_rotation'])
                        @ _pose(frames[j]['lidar2ego_translation'], frames[j]['lidar2ego_rotation'])
                        for j in (11, 12)]
        expected = np.linalg.inv(lidar2global[1]) @ lidar2global[0]
        np.testing.assert_allclose(sw['sensor2lidar_rotation'], expected[:3, :3], atol=1e-9)
        np.testing.assert_allclose(sw['sensor2lidar_translation'], expected[:3, 3], atol=1e-6)


def _pose(t, q):
    T = np.eye(4)
    T[:3, :3] = Quaternion(q).rotation_matrix
    T[:3, 3] = t
    return T


def test_mini_boxes_in_lidar_frame(mini_src, mini_out):
    _, out_dir = mini_out
    frames = load_scene_infos(info_path(out_dir, 'val'))['scene-0103']
    f5, f6 = frames[5], frames[6]
    assert list(f5['instance_tokens']) == ['car0', 'ped0']
    assert list(f5['gt_names']) == ['car', 'pedestrian']
    # centre 10, 2, -1; (dx, dy, dz) = (l, w, h); yaw 0.3 in the LiDAR frame
    np.testing.assert_allclose(f5['gt_boxes'][0], [10, 2, -1, 4.5, 1.9, 1.6, 0.3], atol=1e-6)
    np.testing.assert_array_equal(f5['valid_flag'], [True, False])
    np.testing.assert_array_equal(f5['num_lidar_pts'], [12, 0])
    # velocity: 1.0 m east, 0.5 m north over the time between the samples, rotated into
    # the LiDAR frame of each frame; NaN for the single pedestrian annotation
    dt = (mini_src[6]['timestamp'] - mini_src[5]['timestamp']) * 1e-6
    for f in (f5, f6):
        g2l = (Quaternion(f['ego2global_rotation']) * Quaternion(f['lidar2ego_rotation'])).inverse
        np.testing.assert_allclose(f['gt_velocity'][0], g2l.rotate([1.0 / dt, 0.5 / dt, 0])[:2],
                                   atol=1e-6)
    assert np.isnan(f5['gt_velocity'][1]).all()
    assert frames[0]['gt_boxes'].shape == (0, 7) and frames[0]['gt_velocity'].shape == (0, 2)


def test_dataset_windows_from_created_pkl(mini_out):
    _, out_dir = mini_out
    ds = OccForecastDataset(ann_file=info_path(out_dir, 'val'), data_root=out_dir,
                            num_past=5, num_future=6)
    assert len(ds) == (40 - 10) + (41 - 10)
    item = ds.get_data_info(0)
    assert item['scene_name'] == 'scene-0103' and len(item['tokens']) == 11


def test_missing_cameras_and_unsplit_scenes(mini_src, tmp_path):
    renamed = [dict(i, occ_path=f"gts/custom-0001/{i['token']}") for i in mini_src[40:52]]
    root = str(tmp_path / 'db')
    write_nuscenes_tables(mini_src[:12] + renamed, root, version='v1.0-custom',
                          cam_channels=('CAM_FRONT', 'CAM_BACK'))
    summary = create_nuscenes_infos(root, 'v1.0-custom', str(tmp_path / 'out'), max_sweeps=2,
                                    progress=False)
    # scene-0103 is in nuScenes val (a custom version uses the train / val / test lists);
    # custom-0001 is in no split and goes to train by default
    assert [(k, v['scenes'], v['frames']) for k, v in summary['splits'].items()] == [
        ('train', 1, 12), ('val', 1, 12)]
    assert summary['unsplit'] == dict(to='train', scenes=['custom-0001'])
    assert summary['missing_cams'] == {c: 24 for c in ('CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT',
                                                       'CAM_BACK_LEFT', 'CAM_BACK_RIGHT')}
    text = format_summary(summary)
    assert 'camera CAM_BACK_LEFT missing in 24 frames' in text
    assert '1 scenes in no v1.0-custom split' in text and 'put in train' in text
    frames = load_scene_infos(info_path(str(tmp_path / 'out'), 'train'))['custom-0001']
    assert list(frames[5]['cams']) == ['CAM_FRONT', 'CAM_BACK'] and len(frames[5]['sweeps']) == 2
    summary = create_nuscenes_infos(root, 'v1.0-custom', str(tmp_path / 'skip'),
                                    unsplit_to='skip', progress=False)
    assert summary['splits']['train']['scenes'] == 0 and 'skipped' in format_summary(summary)
    summary = create_nuscenes_infos(root, 'v1.0-custom', str(tmp_path / 'val'),
                                    unsplit_to='val', progress=False)
    assert summary['splits']['val']['scenes'] == 2
    with pytest.raises(ValueError, match='unsplit_to'):
        create_nuscenes_infos(root, 'v1.0-custom', str(tmp_path / 'x'), unsplit_to='test')


def test_bad_input_names_the_path(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match='nuScenes root not found: .*nowhere'):
        create_nuscenes_infos(missing, 'v1.0-mini', str(tmp_path / 'out'), progress=False)
    with pytest.raises(FileNotFoundError,
                       match=r'version folder not found: .*v1\.0-mini.*samples/'):
        create_nuscenes_infos(str(tmp_path), 'v1.0-mini', str(tmp_path / 'out'), progress=False)
    (tmp_path / 'v1.0-mini').mkdir()
    (tmp_path / 'v1.0-mini' / 'scene.json').write_text('[]')
    with pytest.raises(FileNotFoundError, match='missing tables category.json'):
        create_nuscenes_infos(str(tmp_path), 'v1.0-mini', str(tmp_path / 'out'), progress=False)
    for table in ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
                  'ego_pose', 'log', 'sample', 'sample_data', 'sample_annotation', 'map'):
        (tmp_path / 'v1.0-mini' / f'{table}.json').write_text('[]')
    with pytest.raises(ValueError, match='nuscenes-devkit could not load'):
        create_nuscenes_infos(str(tmp_path), 'v1.0-mini', str(tmp_path / 'out'), progress=False)
    assert not (tmp_path / 'out').exists()  # nothing written on failure
    with pytest.raises(SystemExit) as exit_info:
        create_data.main(['--root', missing, '--out', str(tmp_path / 'o')])
    assert missing in str(exit_info.value) and 'v1.0-trainval' in str(exit_info.value)
