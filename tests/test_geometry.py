import math

import numpy as np
import pytest
import torch

from occwm.geometry import (apply_se2, compose_se2, matrix_to_quaternion, matrix_to_se2, planar,
                            pose_matrix, record_pose_matrix, relative_pose, relative_se2,
                            se2_to_matrix, trajectory_in_frame, transform_points)


def quat_z(yaw):
    return (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))


def test_pose_matrix_rotation_about_z():
    T = pose_matrix((1.0, 2.0, 0.5), quat_z(np.pi / 2))
    np.testing.assert_allclose(transform_points(T, np.array([[1.0, 0, 0]])), [[1.0, 3.0, 0.5]],
                               atol=1e-12)
    with pytest.raises(ValueError, match='bad pose'):
        pose_matrix((np.nan, 0, 0), (1, 0, 0, 0))


def test_matrix_to_quaternion_inverts_pose_matrix():
    # 90 deg about +z: (cos 45 deg, 0, 0, sin 45 deg); the sign is fixed to w >= 0
    T = pose_matrix((1.0, 2.0, 3.0), quat_z(np.pi / 2))
    np.testing.assert_allclose(matrix_to_quaternion(T), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)],
                               atol=1e-12)
    q = np.array([-0.3, 0.5, -0.1, 0.8]) / np.linalg.norm([-0.3, 0.5, -0.1, 0.8])
    T = pose_matrix((0.0, 0.0, 0.0), q)
    np.testing.assert_allclose(matrix_to_quaternion(T), -q, atol=1e-12)           # w >= 0
    np.testing.assert_allclose(matrix_to_quaternion(T[:3, :3]), -q, atol=1e-12)   # (3, 3) too
    # float32-rounded matrices (mmdet3d info pkls) convert, to the nearest rotation
    np.testing.assert_allclose(matrix_to_quaternion(T.astype(np.float32)), -q, atol=1e-6)
    with pytest.raises(ValueError, match=r'not a rotation .*det -1'):
        matrix_to_quaternion(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match='singular values'):
        matrix_to_quaternion(np.diag([1.0, 1.0, 1.01]))


def test_record_pose_matrix():
    rec = dict(token='t', translation=[1.0, 2.0, 3.0], rotation=[2.0, 0.0, 0.0, 0.0])  # norm 2
    np.testing.assert_array_equal(record_pose_matrix(rec), pose_matrix((1.0, 2.0, 3.0),
                                                                       (1.0, 0.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match=r'pose\.npy: non-finite or zero pose'):
        record_pose_matrix(dict(rec, rotation=[0.0, 0.0, 0.0, 0.0]), 'pose.npy')
    with pytest.raises(ValueError, match=r'rec: translation must be \(3,\)'):
        record_pose_matrix(dict(rec, translation=[1.0, 2.0]), 'rec')
    with pytest.raises(ValueError, match="rec: expected a nuScenes record with keys"):
        record_pose_matrix(dict(token='t'), 'rec')


def test_planar_drops_pitch_and_z():
    pitched = pose_matrix((3.0, 4.0, 1.0), (0.999, 0.0, 0.045, 0.0))  # ~5 deg pitch
    P = planar(pitched)
    np.testing.assert_allclose(P[2, 3], 0.0)
    np.testing.assert_allclose(P[:3, :3] @ [0, 0, 1.0], [0, 0, 1.0], atol=1e-12)
    np.testing.assert_allclose(matrix_to_se2(P)[:2], [3.0, 4.0])


def test_relative_and_trajectory():
    # ego at origin heading +y, then 1 m further along +y, heading +y
    a = se2_to_matrix(0, 0, np.pi / 2)
    b = se2_to_matrix(0, 1, np.pi / 2)
    np.testing.assert_allclose(matrix_to_se2(relative_pose(a, b)), [1.0, 0.0, 0.0], atol=1e-12)
    traj = trajectory_in_frame(np.stack([a, b, se2_to_matrix(-1, 2, np.pi)]), ref=1)
    np.testing.assert_allclose(traj[0], [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(traj[1], [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(traj[2], [1, 1, np.pi / 2], atol=1e-12)


def test_relative_se2_torch_by_hand():
    # pose 1 at (1, 0) heading +y (left); pose 2 one metre further along +y
    traj = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, math.pi / 2], [1.0, 1.0, math.pi / 2]]])
    rel = relative_se2(traj[:, 1:2], traj)[0]  # (B, T, 3) in the frame of pose 1
    # in frame 1, +x is global +y and +y is global -x: the origin is at (0, 1), pose 2 at (1, 0)
    assert rel.dtype == torch.float32
    torch.testing.assert_close(rel, torch.tensor([[0.0, 1.0, -math.pi / 2], [0.0, 0.0, 0.0],
                                                  [1.0, 0.0, 0.0]]), atol=1e-6, rtol=0)


def test_compose_relative_apply_agree_with_matrices():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ab = compose_se2(a, b)
    np.testing.assert_allclose(relative_se2(a, ab), b, atol=1e-12)
    np.testing.assert_allclose(compose_se2(np.array([0, 0, np.pi / 2]), np.array([1.0, 0, 0])),
                               [0, 1, np.pi / 2], atol=1e-12)  # 1 m ahead of an ego facing +y
    for k in range(5):  # the same as the (4, 4) matrices
        np.testing.assert_allclose(se2_to_matrix(*ab[k]),
                                   se2_to_matrix(*a[k]) @ se2_to_matrix(*b[k]), atol=1e-12)
    pts = rng.normal(size=(5, 3))  # x, y, z: z is kept
    out = apply_se2(pts, a)
    for k in range(5):
        np.testing.assert_allclose(out[k], transform_points(se2_to_matrix(*a[k]), pts[k:k + 1])[0],
                                   atol=1e-12)
    np.testing.assert_allclose(apply_se2(out, a, inverse=True), pts, atol=1e-12)
    # torch: same numbers, broadcast batch dimensions
    t = apply_se2(torch.from_numpy(pts[:, None]), torch.from_numpy(a[None]))  # (5, 5, 3)
    assert t.shape == (5, 5, 3)
    np.testing.assert_allclose(t.numpy()[np.arange(5), np.arange(5)], out, atol=1e-12)
    np.testing.assert_allclose(compose_se2(torch.from_numpy(a), torch.from_numpy(b)).numpy(), ab,
                               atol=1e-12)


# ----------------------------------------------------------------- physical plausibility
def test_implausible_motion_hand_computed():
    from occwm.geometry import MAX_ACCEL, MAX_SPEED, implausible_motion
    t = 0.5 * np.arange(5)                                              # 2 Hz
    steady = np.stack([20.0 * t, np.zeros(5)], 1)                       # 20 m/s straight
    assert implausible_motion(steady, t) is None
    fast = steady * 4                                                   # 80 m/s > 70
    k, text = implausible_motion(fast, t)
    assert k == 1 and text.startswith('speed 80 m/s over the 0.5 s before this pose')
    assert '70 m/s (252 km/h)' in text
    jump = steady.copy()
    jump[3, 1] = 1e12                                                   # a 1e12 m pose jump
    k, text = implausible_motion(jump, t)
    assert k == 3 and 'speed 2e+12 m/s' in text
    # 20 m/s, then 30 m/s: |dv| = 10 m/s over 0.5 s between the step midpoints = 20 m/s^2
    brake = np.array([[0, 0], [10, 0], [25, 0], [40, 0]], float)
    k, text = implausible_motion(brake, t[:4])
    assert k == 1 and text.startswith('acceleration 20 m/s^2 (speed 20 m/s before this pose, '
                                      '30 m/s after it), above 15 m/s^2 (1.5 g)')
    # 10 Hz: 3 cm of pose noise would read 6 m/s^2 over 0.1 s; over ACCEL_MIN_DT it is 1.5
    t10 = 0.1 * np.arange(4)
    noisy = np.array([[0, 0], [1.0, 0], [2.03, 0], [3.0, 0]])
    assert implausible_motion(noisy, t10) is None
    assert MAX_SPEED == 70.0 and MAX_ACCEL == 15.0
    assert implausible_motion(np.zeros((1, 3)), np.zeros(1)) is None   # one pose: nothing


@pytest.mark.parametrize('values, unit, guess', [
    (1532402927.6 + 0.5 * np.arange(4), 's', None),                   # seconds, right
    (1532402927647951 + 500_000 * np.arange(4), 'µs', None),           # µs, right
    (500_000.0 * np.arange(4), 's', 'µs'),                             # µs where s expected
    (500.0 * np.arange(4), 's', 'ms'),                                 # ms where s expected
    (1532402927.6 + 0.5 * np.arange(4), 'µs', 's'),                    # s where µs expected
    (1532402927647 + 500 * np.arange(4), 'µs', 'ms'),                  # ms where µs expected
    (1.5e18 + 5e8 * np.arange(4), 'µs', 'ns'),                         # ns where µs expected
])
def test_timestamp_unit_mistake_names_the_unit(values, unit, guess):
    from occwm.geometry import timestamp_unit_mistake
    got = timestamp_unit_mistake(values, unit)
    if guess is None:
        assert got is None
    else:
        assert f'the timestamps are probably in {guess}, want {unit}' in got


def test_timestamp_unit_mistake_message_and_edge_cases():
    from occwm.geometry import timestamp_unit_mistake
    assert timestamp_unit_mistake(500_000.0 * np.arange(3), 's') == (
        'median frame period 5e+05 s (1e+06 x the expected ~0.5 s): the timestamps are '
        'probably in µs, want s (multiply by 1e-06)')
    assert timestamp_unit_mistake([3.0, 3.0], 's') is None              # no period to judge
    assert 'not a driving sequence' in timestamp_unit_mistake([0.0, 12.0, 24.0], 's')
    assert 'probably in ms' in timestamp_unit_mistake([0.0, 60.0, 120.0], 's')  # 16 Hz in ms
    assert timestamp_unit_mistake([0.0, 0.05, 0.1], 's') is None        # a 20 Hz LiDAR


def test_path_frame_straight_and_circular_by_hand():
    from occwm.geometry import PathFrame
    x = np.arange(0.0, 21.0)
    path = PathFrame(np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1))
    assert path.known == (100.0, 120.0)  # 100 m continued before the first pose
    s, d, h = path.project([5.0, 2.0])
    assert (s, d, h) == (105.0, 2.0, 0.0)
    p, hd = path.at(np.array([135.0]), -1.0)  # 15 m beyond the last pose, straight on
    np.testing.assert_allclose(p, [[35.0, -1.0]])
    # poses on a circle of radius 50 m (curvature 0.02 / m, the clip): continued along it
    a = np.linspace(0.0, 0.6, 13)
    path = PathFrame(np.stack([50 * np.sin(a), 50 * (1 - np.cos(a)), a], 1))
    p, hd = path.at(np.array([path.known[1] + 20.0]))  # arc angle 0.6 + 20 / 50
    np.testing.assert_allclose(p[0], [50 * np.sin(1.0), 50 * (1 - np.cos(1.0))], atol=2e-3)
    assert abs(hd[0] - 1.0) < 0.02
    # a standing ego (repeated poses) is a straight path along its heading
    path = PathFrame(np.zeros((4, 3)))
    assert path.project([3.0, -2.0])[:2] == pytest.approx((103.0, -2.0))
