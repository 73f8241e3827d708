"""Trajectory files (schema and errors), ego-state estimation, the kinematic bicycle
model's limits and the built-in generators."""
import json

import numpy as np
import pytest

from occwm.scenarios.search import perturb, risk_score
from occwm.scenarios.trajectories import (SUBSTEPS, EgoState, KinematicLimits,
                                          builtin_trajectories, estimate_ego_state,
                                          load_trajectories, random_feasible,
                                          save_trajectories, simulate_bicycle)


def straight(v, n=6, dt=0.5):
    return np.array([[v * dt * (k + 1), 0.0, 0.0] for k in range(n)], np.float32)


def past_at(v, yaw_rate=0.0, P=5, dt=0.5):
    """Past poses of an ego on a circle (or line) at speed v, present frame."""
    t = (np.arange(P) - (P - 1)) * dt
    if abs(yaw_rate) < 1e-9:
        return np.stack([v * t, 0 * t, 0 * t], 1)
    r = v / yaw_rate
    yaw = yaw_rate * t
    return np.stack([r * np.sin(yaw), r * (1 - np.cos(yaw)), yaw], 1)


def test_load_json_and_npz_roundtrip(tmp_path):
    trajs = {'a': straight(4.0), 'b': straight(2.0)}
    save_trajectories(str(tmp_path / 't.json'), trajs)
    got = load_trajectories(str(tmp_path / 't.json'), horizon=6)
    assert list(got) == ['a', 'b'] and got['a'].dtype == np.float32
    np.testing.assert_allclose(got['b'], trajs['b'], atol=1e-4)
    np.savez(tmp_path / 't.npz', **trajs)
    np.testing.assert_allclose(load_trajectories(str(tmp_path / 't.npz'))['a'], trajs['a'])


@pytest.mark.parametrize('content, fault', [
    ('{"a": [[1, 2, 0]', 'not valid JSON'),
    ('[[1, 2, 0]]', 'mapping of trajectory names'),
    ('{}', 'empty'),
    ('{"a": [[1, 2], [3, 4]]}', 'shape (2, 2)'),
    ('{"a": [[1, 2, 0], [3, NaN, 0]]}', 'non-finite value at row 1'),
    ('{"a": "fast"}', "trajectory 'a'"),
    ('{"a": [[1, 0, 0]], "b": [[1, 0, 0], [2, 0, 0]]}', 'different lengths'),
])
def test_malformed_files_name_the_file_and_fault(tmp_path, content, fault):
    path = tmp_path / 'plans.json'
    path.write_text(content)
    with pytest.raises(ValueError) as e:
        load_trajectories(str(path))
    assert str(path) in str(e.value) and fault in str(e.value)


def test_wrong_horizon_and_missing_file(tmp_path):
    path = tmp_path / 'plans.json'
    path.write_text(json.dumps({'a': straight(1.0, 4).tolist()}))
    with pytest.raises(ValueError, match=r'plans.json: trajectory .a. has 4 poses, want the horizon of 6'):
        load_trajectories(str(path), horizon=6)
    with pytest.raises(FileNotFoundError, match='nothing.json'):
        load_trajectories(str(tmp_path / 'nothing.json'))
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='bad.npz: not a readable npz'):
        load_trajectories(str(bad))


def test_estimate_ego_state():
    st = estimate_ego_state(past_at(8.0))
    assert st.speed == pytest.approx(8.0) and st.curvature == 0.0 and st.accel == pytest.approx(0.0)
    st = estimate_ego_state(past_at(10.0, yaw_rate=0.2))  # radius 50 m
    assert st.speed == pytest.approx(10.0)  # the arc, not the chord
    assert st.curvature == pytest.approx(0.02)
    # accelerating 2 m/s^2: speeds over the last two steps 7.5 and 8.5 m/s
    x = np.array([-(8.5 + 7.5 + 6.5 + 5.5) * 0.5, -(8.5 + 7.5 + 6.5) * 0.5, -(8.5 + 7.5) * 0.5,
                  -8.5 * 0.5, 0.0])
    st = estimate_ego_state(np.stack([x, 0 * x, 0 * x], 1))
    assert st.speed == pytest.approx(8.5) and st.accel == pytest.approx(2.0)
    assert estimate_ego_state(np.zeros((1, 3))).speed == 0.0


def test_bicycle_limits_hold_under_extreme_commands():
    lim = KinematicLimits()
    rng = np.random.default_rng(0)
    for v0 in (0.0, 5.0, 15.0):
        a_cmd = rng.uniform(-20, 20, 200)
        k_cmd = rng.uniform(-1, 1, 200)
        h = 0.5 / SUBSTEPS
        r = simulate_bicycle(EgoState(v0, 0.0), lambda t, s: a_cmd[int(t / h)],
                             lambda t, s: k_cmd[int(t / h)], 20, limits=lim)
        assert r.poses.shape == (20, 3)
        assert (r.speed >= 0).all() and (r.speed <= lim.max_speed + 1e-9).all()
        assert (r.accel <= lim.max_accel + 1e-9).all() and (r.accel >= -lim.max_decel - 1e-9).all()
        assert (np.abs(r.curvature) <= lim.max_curvature + 1e-12).all()
        dk = np.diff(np.concatenate([[0.0], r.curvature])) / h
        assert (np.abs(dk) <= lim.max_curvature_rate + 1e-9).all()
        assert (r.speed ** 2 * np.abs(r.curvature) <= lim.max_lateral_accel + 1e-6).all()


def test_random_feasible_respects_limits_at_2hz():
    lim = KinematicLimits()
    trajs = random_feasible(EgoState(10.0, 0.0), 12, 6, seed=3, limits=lim)
    assert list(trajs) == [f'random_{i:02d}' for i in range(6)]
    again = random_feasible(EgoState(10.0, 0.0), 12, 6, seed=3, limits=lim)
    for name, t in trajs.items():
        np.testing.assert_array_equal(t, again[name])  # reproducible from the seed
        p = np.concatenate([np.zeros((1, 3)), t])
        v = np.linalg.norm(np.diff(p[:, :2], axis=0), axis=1) / 0.5  # (12,) mean speeds
        assert (v <= lim.max_speed + 1e-3).all()
        assert (np.abs(np.diff(v)) / 0.5 <= lim.max_decel + 1e-3).all()
        yaw_rate = np.abs(np.diff(np.unwrap(p[:, 2]))) / 0.5
        assert (yaw_rate <= np.maximum(v, 1e-6) * lim.max_curvature + 1e-3).all()


def test_builtin_set():
    trajs = builtin_trajectories(past_at(8.0), horizon=6, num_random=2)
    assert list(trajs) == ['keep_lane', 'brake', 'accelerate', 'stop', 'lane_change_left',
                           'lane_change_right', 'swerve_left', 'swerve_right', 'random_00',
                           'random_01']
    np.testing.assert_allclose(trajs['keep_lane'], straight(8.0), atol=1e-4)
    # stop at 6 m/s^2 from 8 m/s: 8^2 / 12 = 5.33 m
    assert trajs['stop'][-1, 0] == pytest.approx(64 / 12, abs=0.02)
    # brake at 2.5 m/s^2 for 3 s: 8 * 3 - 2.5 * 9 / 2
    assert trajs['brake'][-1, 0] == pytest.approx(24 - 11.25, abs=0.02)
    left, right = trajs['lane_change_left'], trajs['lane_change_right']
    assert left[-1, 1] == pytest.approx(3.5, abs=0.3) and abs(left[-1, 2]) < 0.05
    np.testing.assert_allclose(right * [1, -1, -1], left, atol=1e-5)  # mirror images
    assert trajs['swerve_left'][:, 1].max() > 1.2 and abs(trajs['swerve_left'][-1, 1]) < 0.6
    standing = builtin_trajectories(np.zeros((5, 3)), horizon=4, num_random=0)
    assert np.abs(standing['keep_lane']).max() == 0 and standing['accelerate'][-1, 0] > 3.0


def test_perturb_and_risk():
    t = straight(4.0)
    np.testing.assert_allclose(perturb(t), t, atol=1e-6)
    p = perturb(t, lateral_m=1.2, scale=1.5)
    np.testing.assert_allclose(p[:, 0], 1.5 * t[:, 0], atol=1e-4)  # re-timed, past the end too
    np.testing.assert_allclose(p[:, 1], 1.2 * np.arange(1, 7) / 6, atol=1e-4)
    assert risk_score(dict(collision=True, at_fault_collision=True, offroad=True,
                           min_clearance_m=0.0, min_ttc_s=0.0)) == 6.0
    assert risk_score(dict(collision=False, offroad=False, min_clearance_m=1.0,
                           min_ttc_s=None)) == 0.5
