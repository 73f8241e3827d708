import numpy as np
import pytest

from occwm.geometry import (matrix_to_se2, planar, pose_matrix, relative_pose, se2_to_matrix,
                            trajectory_in_frame, transform_points)


def quat_z(yaw):
    return (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))


def test_pose_matrix_rotation_about_z():
    T = pose_matrix((1.0, 2.0, 0.5), quat_z(np.pi / 2))
    np.testing.assert_allclose(transform_points(T, np.array([[1.0, 0, 0]])), [[1.0, 3.0, 0.5]],
                               atol=1e-12)
    with pytest.raises(ValueError, match='bad pose'):
        pose_matrix((np.nan, 0, 0), (1, 0, 0, 0))


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
