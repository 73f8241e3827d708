"""Plausibility checks of info pkls (occwm.infos.checks, run by load_infos): duplicate
tokens, timestamps in another unit, ego poses no road vehicle reaches; each one line
naming the pkl, the scene and the frame. Real nuScenes frames pass with a wide margin."""
import pickle

import numpy as np
import pytest

from occwm.geometry import MAX_ACCEL, MAX_SPEED, pose_matrix
from occwm.infos.layouts import load_infos
from occwm.io import save_pickle
from tests.conftest import shared_path
from tests.helpers import write_tiny_scenes


@pytest.fixture
def tiny(tmp_path):
    """``(path, data)``: scenes tiny-0 (13 frames) and tiny-1 (5), 2 m/s at 2 Hz."""
    path = write_tiny_scenes(tmp_path)
    with open(path, 'rb') as f:
        return path, pickle.load(f)


def _load(path, data):
    save_pickle(path, data)
    return load_infos(path)


def test_the_tiny_scenes_pass(tiny):
    assert [len(v) for v in load_infos(tiny[0]).values()] == [13, 5]


def test_a_pose_jump_of_1e12_m_is_named(tiny):
    path, data = tiny
    data['infos']['tiny-0'][7]['ego2global_translation'] = np.array([1e12, 0.0, 0.0])
    with pytest.raises(ValueError) as e:
        _load(path, data)
    msg = str(e.value)
    assert msg.startswith(f"{path}: scene 'tiny-0' frame 7: ego2global_translation: speed "
                          f"2e+12 m/s over the 0.5 s before this pose, above 70 m/s")
    assert msg.endswith('(token tiny-0-007)') and '\n' not in msg


def test_an_acceleration_no_tyre_allows_is_named(tiny):
    path, data = tiny
    for f in data['infos']['tiny-0'][8:]:                         # +12 m from frame 8 on
        f['ego2global_translation'] = f['ego2global_translation'] + [12.0, 0.0, 0.0]
    # steps (1, 1.3) m then (13, 1.5) m, 0.5 s each: |dv| = |(24, 0.4)| m/s in 0.5 s
    with pytest.raises(ValueError, match=r"infos.pkl: scene 'tiny-0' frame 7: "
                                         r"ego2global_translation: acceleration 48 m/s\^2 "
                                         r"\(speed 3.28 m/s before this pose, 26.2 m/s after "
                                         r"it\), above 15 m/s\^2"):
        _load(path, data)


def test_duplicate_tokens_are_named(tiny):
    """Two frames of one token: eval_occ would score one window with another's forecast."""
    path, data = tiny
    data['infos']['tiny-1'][2]['token'] = 'tiny-0-004'
    with pytest.raises(ValueError, match=r"infos.pkl: scene 'tiny-1' frame 2: duplicate token "
                                         r"tiny-0-004 \(also at scene 'tiny-0' frame 4\)"):
        _load(path, data)


@pytest.mark.parametrize('scale, unit', [(1e-6, 's'), (1e-3, 'ms'), (1e3, 'ns')])
def test_timestamps_in_another_unit_are_named(tiny, scale, unit):
    """µs expected: seconds (int-rounded to duplicates), ms or ns each name their unit."""
    path, data = tiny
    for frames in data['infos'].values():
        for f in frames:
            f['timestamp'] = int(round((1_600_000_000_000_000 + f['timestamp']) * scale))
    with pytest.raises(ValueError, match=rf"infos.pkl: scene 'tiny-0' frame 0: timestamp: "
                                         rf"median frame period .* the timestamps are probably "
                                         rf"in {unit}, want µs"):
        _load(path, data)


def test_mmdet3d_v2_microseconds_where_seconds_belong(tmp_path):
    frames = [dict(token=f't{k}', timestamp=1_600_000_000_000_000 + 500_000 * k,   # µs!
                   ego2global=pose_matrix([2.0 * k, 0, 0], [1, 0, 0, 0]).tolist(),
                   lidar_points=dict(lidar2ego=np.eye(4).tolist()), scene_token='s')
              for k in range(4)]
    path = str(tmp_path / 'v2.pkl')
    save_pickle(path, dict(metainfo={}, data_list=frames))
    with pytest.raises(ValueError, match=r"v2.pkl: data_list\[0\] \(scene token s\): timestamp: .*"
                                         r"probably in µs, want s \(multiply by 1e-06\)"):
        load_infos(path)


def test_real_nuscenes_frames_pass_comfortably():
    """nuScenes v1.0-mini scene-0103 and scene-0916 (81 keyframes): at most 9 m/s and
    2.9 m/s^2, far inside the bounds."""
    infos = load_infos(shared_path('nuscenes_mini_meta', 'nuscenes_mini_infos_val.pkl'))
    for frames in infos.values():
        p = np.stack([f['ego2global_translation'] for f in frames])
        t = np.array([f['timestamp'] for f in frames]) * 1e-6
        v = np.diff(p, axis=0) / np.diff(t)[:, None]
        a = np.linalg.norm(np.diff(v, axis=0), axis=1) / np.maximum(np.diff(t[1:] + t[:-1]) / 2,
                                                                    0.4)
        assert np.linalg.norm(v, axis=1).max() < MAX_SPEED / 5 and a.max() < MAX_ACCEL / 4
