"""Every info-pkl layout in use gives the same scenes and the same windows.

The real frames are the 81 keyframes of nuScenes v1.0-mini scene-0103 and scene-0916
(``nuscenes_mini_meta``, the I²-World layout); the other layouts are written from them
to ``tmp_path`` at test time.
"""
import copy
import json
import os
import pickle
import warnings

import numpy as np
import pytest

from occwm.data import OccForecastDataset
from occwm.infos.layouts import detect_layout, load_infos, scene_names_from_nuscenes
from occwm.infos.layouts import load_scene_infos
from occwm.io import save_pickle
from occwm.geometry import pose_matrix
from tests.conftest import shared_path

MINI = ('nuscenes_mini_meta', 'nuscenes_mini_infos_val.pkl')
MINIMAL_KEYS = ('token', 'timestamp', 'ego2global_translation', 'ego2global_rotation',
                'lidar2ego_translation', 'lidar2ego_rotation', 'gt_ego_fut_trajs',
                'gt_ego_his_trajs')


@pytest.fixture(scope='module')
def mini_path():
    return shared_path(*MINI)


@pytest.fixture(scope='module')
def mini_raw(mini_path):
    """The unpickled real pkl: ``{'infos': [81 frames], 'metadata'}``."""
    with open(mini_path, 'rb') as f:
        return pickle.load(f)


def scene_of(frame):
    return frame['occ_path'].replace('\\', '/').split('/')[-2]


def scene_keyed(raw, extra=()):
    """OccWorld scene-keyed layout with only the minimal fields (+ ``extra`` keys)."""
    infos = {}
    for f in raw['infos']:
        infos.setdefault(scene_of(f), []).append(
            {k: copy.deepcopy(f[k]) for k in MINIMAL_KEYS + tuple(extra)})
    return dict(metadata=dict(version='v1.0-mini'), infos=infos)


def write_all_layouts(raw, mini_path, tmp_path):
    """{layout name: (pkl path, scene_names)} for the same 81 frames."""
    out = {'i2world': (mini_path, None)}
    save_pickle(str(tmp_path / 'occworld.pkl'), scene_keyed(raw))
    out['occworld'] = (str(tmp_path / 'occworld.pkl'), None)
    dome = scene_keyed(raw)
    for fr, src in zip([f for s in dome['infos'].values() for f in s], raw['infos']):
        fr['pose_mode'] = np.asarray(src['gt_ego_fut_cmd'], np.float32)  # one-hot command
    save_pickle(str(tmp_path / 'dome.pkl'), dome)
    out['dome'] = (str(tmp_path / 'dome.pkl'), None)
    # UniAD / mmdet3d-0.x flat list: no occ_path, shuffled, names via scene_token
    flat = [{k: f[k] for k in MINIMAL_KEYS + ('scene_token', 'prev')} for f in raw['infos']]
    flat = [flat[i] for i in np.random.default_rng(0).permutation(len(flat))]
    save_pickle(str(tmp_path / 'flat.pkl'), dict(infos=flat, metadata=dict(version='v1.0-mini')))
    out['flat'] = (str(tmp_path / 'flat.pkl'),
                   {f['scene_token']: scene_of(f) for f in raw['infos']})
    # mmdet3d 1.x: 4x4 matrices, seconds, no scene_token; names via sample tokens
    data_list = [dict(sample_idx=i, token=f['token'], timestamp=f['timestamp'] / 1e6,
                      ego2global=pose_matrix(f['ego2global_translation'],
                                             f['ego2global_rotation']).tolist(),
                      lidar_points=dict(lidar2ego=pose_matrix(
                          f['lidar2ego_translation'], f['lidar2ego_rotation']).tolist()))
                 for i, f in enumerate(raw['infos'])]
    save_pickle(str(tmp_path / 'v2.pkl'), dict(metainfo=dict(version='v1.0-mini'),
                                               data_list=data_list))
    out['mmdet3d_v2'] = (str(tmp_path / 'v2.pkl'), {f['token']: scene_of(f) for f in raw['infos']})
    # occwm's own: what load_infos returns, written back
    save_pickle(str(tmp_path / 'occwm.pkl'), dict(metadata={}, infos=load_infos(mini_path)))
    out['occwm'] = (str(tmp_path / 'occwm.pkl'), None)
    return out


def test_real_mini_val_loads_as_i2world(mini_path, mini_raw):
    assert detect_layout(mini_raw, mini_path) == 'i2world'
    infos = load_scene_infos(mini_path)
    assert list(infos) == ['scene-0103', 'scene-0916']
    assert [len(v) for v in infos.values()] == [40, 41]
    for scene, frames in infos.items():
        ts = [f['timestamp'] for f in frames]
        assert all(isinstance(t, int) for t in ts) and np.all(np.diff(ts) > 0)
        assert np.diff(ts).max() < 600_000
        assert all(f['scene_name'] == scene and f['occ_path'] == f"gts/{scene}/{f['token']}"
                   for f in frames)
        assert '\\' not in frames[0]['lidar_path']
        assert frames[0]['ego2global_rotation'].dtype == np.float64
        # trajectories come from the poses, in the ego frame (x forward)
        assert frames[0]['ego_fut_traj'].shape == (6, 3) and frames[0]['ego_fut_traj'][0, 0] > 1


def windows(path, root, scene_names):
    ds = OccForecastDataset(ann_file=path, data_root=root, scene_names=scene_names, pipeline=[])
    return [ds.get_data_info(i) for i in range(len(ds))]


def test_every_layout_gives_the_same_windows(mini_raw, mini_path, tmp_path):
    layouts = write_all_layouts(mini_raw, mini_path, tmp_path)
    root = str(tmp_path / 'root')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # every layout here is complete: no warning
        ref = windows(*layouts['i2world'][:1], root, None)
        assert len(ref) == (40 - 10) + (41 - 10)  # 5 past + 6 future, stride 1
        assert ref[0]['occ_paths'][0] == os.path.join(
            root, 'gts', 'scene-0103', mini_raw['infos'][0]['token'], 'labels.npz')
        for name, (path, scene_names) in layouts.items():
            got = windows(path, root, scene_names)
            assert len(got) == len(ref), name
            for a, b in zip(ref, got):
                assert a['scene_name'] == b['scene_name'], name
                assert a['tokens'] == b['tokens'] and a['occ_paths'] == b['occ_paths'], name
                np.testing.assert_array_equal(a['timestamps'], b['timestamps'], err_msg=name)
                np.testing.assert_allclose(b['ego2global'], a['ego2global'], atol=1e-6,
                                           err_msg=name)
                np.testing.assert_allclose(b['traj'], a['traj'], atol=1e-5, err_msg=name)
    assert {detect_layout(pickle.load(open(p, 'rb')), p) for p, _ in layouts.values()} == \
        {'occworld', 'dome', 'i2world', 'flat', 'mmdet3d_v2'}
    dome = load_infos(layouts['dome'][0])
    assert dome['scene-0103'][0]['pose_mode'].shape == (3,)  # DOME's field kept


def test_real_mmdet3d_v2_pkl_loads():
    path = shared_path('nuscenes_frame_cams', 'n015-2018-07-24-11-22-45+0800.pkl')
    with open(path, 'rb') as f:
        raw = pickle.load(f)['data_list'][0]
    with pytest.warns(UserWarning, match='without a scene name.*scene_names_from_nuscenes'):
        infos = load_infos(path)
    assert list(infos) == ['seq-0000'] and len(infos['seq-0000']) == 1
    f = infos['seq-0000'][0]
    assert f['token'] == 'ca9a282c9e77460f8360f564131a8af5' and f['timestamp'] == 1532402927647951
    np.testing.assert_allclose(pose_matrix(f['ego2global_translation'], f['ego2global_rotation']),
                               raw['ego2global'], atol=1e-5)
    np.testing.assert_allclose(pose_matrix(f['lidar2ego_translation'], f['lidar2ego_rotation']),
                               raw['lidar_points']['lidar2ego'], atol=1e-5)
    named = load_infos(path, scene_names={f['token']: 'scene-0061'})
    assert named['scene-0061'][0]['occ_path'] == f"gts/scene-0061/{f['token']}"


def test_shuffled_flat_list_is_sorted(mini_raw, tmp_path):
    frames = [{k: f[k] for k in MINIMAL_KEYS + ('scene_token',)} for f in mini_raw['infos']]
    path = str(tmp_path / 'shuffled.pkl')
    save_pickle(path, dict(infos=frames[::-1], metadata={}))
    with pytest.warns(UserWarning, match='named by their scene_token'):
        infos = load_infos(path)
    by_token = {f['token']: f['scene_token'] for f in frames}
    assert [len(v) for v in infos.values()] == [40, 41]
    for name, fr in infos.items():
        assert [f['token'] for f in fr] == [f['token'] for f in frames if f['scene_token'] == name]
        assert by_token[fr[0]['token']] == name


def test_gap_cuts_scene_and_warns(mini_raw, tmp_path):
    data = scene_keyed(mini_raw)
    scene = data['infos']['scene-0103']
    for f in scene[20:]:
        f['timestamp'] += 1_000_000  # a 1.5 s gap between frames 19 and 20
    path = str(tmp_path / 'gap.pkl')
    save_pickle(path, data)
    t19, t20 = scene[19]['timestamp'], scene[20]['timestamp']
    with pytest.warns(UserWarning, match=rf"gap.pkl: scene 'scene-0103' .*{t19} and {t20} "
                                         rf"are 1.500 s apart"):
        ds = OccForecastDataset(ann_file=path, data_root='/d', pipeline=[], scenes=['scene-0103'])
    infos = ds.get_data_info(len(ds) - 1)
    assert infos['scene_name'] == 'scene-0103@1'
    assert infos['occ_paths'][0] == f"/d/gts/scene-0103/{infos['tokens'][0]}/labels.npz"
    assert len(ds) == 2 * (20 - 10)
    with pytest.warns(UserWarning):
        assert list(load_infos(path)) == ['scene-0103', 'scene-0103@1', 'scene-0916']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert len(load_infos(path, max_gap_s=2.0)) == 2


def test_broken_prev_chain_cuts_scene(mini_raw, tmp_path):
    data = copy.deepcopy(mini_raw)
    data['infos'][10]['prev'] = ''
    path = str(tmp_path / 'prev.pkl')
    save_pickle(path, data)
    with pytest.warns(UserWarning, match="prev.pkl: scene 'scene-0103' .*has prev ''"):
        infos = load_infos(path)
    assert [len(v) for v in infos.values()] == [10, 30, 41]


def _bad(tmp_path, mini_raw, layout, edit):
    """Write the real frames in ``layout`` after ``edit(data)``; return the path."""
    data = scene_keyed(mini_raw) if layout == 'occworld' else copy.deepcopy(mini_raw)
    edit(data)
    path = str(tmp_path / 'bad.pkl')
    save_pickle(path, data)
    return path


def _set(scene, index, key, value):
    def edit(data):
        data['infos'][scene][index][key] = value
    return edit


@pytest.mark.parametrize('layout, edit, pattern', [
    ('occworld', lambda d: d['infos']['scene-0916'][3].pop('ego2global_rotation'),
     r"bad.pkl: scene 'scene-0916' frame 3: missing required key\(s\) \['ego2global_rotation'\]"),
    ('occworld', _set('scene-0103', 5, 'ego2global_translation', [1.0, np.nan, 0.0]),
     r"bad.pkl: scene 'scene-0103' frame 5: non-finite ego2global_translation"),
    ('occworld', _set('scene-0103', 6, 'lidar2ego_rotation', [0.0, 0.0, 0.0, 0.0]),
     r"bad.pkl: scene 'scene-0103' frame 6: zero-norm lidar2ego_rotation"),
    ('occworld', _set('scene-0103', 7, 'timestamp', 0),
     r"bad.pkl: scene 'scene-0103' frame 7: timestamps are not increasing"),
    ('occworld', _set('scene-0103', 8, 'ego2global_rotation', [1.0, 0.0, 0.0]),
     r"bad.pkl: scene 'scene-0103' frame 8: ego2global_rotation has 3 values, want 4"),
    ('i2world', lambda d: d['infos'][4].update(timestamp=d['infos'][3]['timestamp']),
     r"bad.pkl: infos\[4\] \(scene 'scene-0103'\): duplicate timestamp"),
    ('i2world', lambda d: d['infos'][2].pop('occ_path'),
     r"bad.pkl: infos\[2\] \(scene token fcbcc\w+\): missing required key\(s\) "
     r"\['occ_path'\] for layout 'i2world'"),
])
def test_bad_frames_named(tmp_path, mini_raw, layout, edit, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_infos(_bad(tmp_path, mini_raw, layout, edit))


def test_bad_mmdet3d_v2_matrix_named(tmp_path):
    path = str(tmp_path / 'v2.pkl')
    frame = dict(token='t', timestamp=1.5, ego2global=np.zeros((4, 4)).tolist(),
                 lidar_points=dict(lidar2ego=np.eye(4).tolist()))
    save_pickle(path, dict(metainfo={}, data_list=[frame]))
    with pytest.raises(ValueError, match=r'v2.pkl: data_list\[0\]: ego2global rotation block '
                                         r'is not a rotation'):
        load_infos(path)
    save_pickle(path, dict(metainfo={}, data_list=[dict(frame, lidar_points={})]))
    with pytest.raises(ValueError, match=r"v2.pkl: data_list\[0\]: missing .*lidar2ego"):
        load_infos(path)


def test_not_a_pickle_or_unknown_layout(tmp_path, mini_path):
    path = tmp_path / 'junk.pkl'
    path.write_bytes(b'not a pickle at all')
    with pytest.raises(ValueError, match='junk.pkl: not a readable pickle'):
        load_infos(str(path))
    with pytest.raises(FileNotFoundError, match='missing.pkl'):
        load_infos(str(tmp_path / 'missing.pkl'))
    save_pickle(str(path), dict(samples=[1, 2], meta={}))
    with pytest.raises(ValueError, match=r"junk.pkl: unknown info layout: found a dict with keys "
                                         r"\['meta', 'samples'\]\. Known layouts: occworld"):
        load_infos(str(path))
    save_pickle(str(path), [1, 2])
    with pytest.raises(ValueError, match='junk.pkl: unknown info layout: found a list'):
        load_infos(str(path))
    with pytest.raises(ValueError, match="layout 'mmdet3d_v2' requested, but the file is laid "
                                         "out as 'i2world'"):
        load_infos(mini_path, layout='mmdet3d_v2')


def test_scene_names_from_nuscenes_tables():
    root = shared_path('lyft_tables', 'v1.01-train')
    names = scene_names_from_nuscenes(root, 'v1.01-train')
    tables = {}
    for table in ('scene', 'sample'):
        with open(os.path.join(root, 'v1.01-train', f'{table}.json')) as f:
            tables[table] = json.load(f)
    scene, sample = tables['scene'][0], tables['sample'][0]
    assert names[scene['token']] == scene['name']
    assert sample['scene_token'] == scene['token'] and names[sample['token']] == scene['name']
