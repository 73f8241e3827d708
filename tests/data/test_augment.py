"""RandomFlipRotateOcc: occupancy, trajectory and ego poses stay consistent."""
import numpy as np
import pytest

from occwm.data.augment import (RandomFlipRotateOcc, ego_map, flip_rot90_grid, resample_grid,
                                transform_trajectory)
from occwm.geometry import relative_pose, relative_se2, se2_to_matrix, trajectory_in_frame
from occwm.warp import warp_planar
from tests.helpers import TINY_GRID

GRID = dict(point_cloud_range=TINY_GRID.point_cloud_range, voxel_size=TINY_GRID.voxel_size)
FREE = TINY_GRID.free_label


def static_window():
    """A static random world seen by an ego that moves on the voxel lattice and turns by
    90 degrees, so that warping between frames is exact. Returns results of 4 frames,
    present = frame 3."""
    rng = np.random.default_rng(0)
    vs = TINY_GRID.voxel_size
    world = np.where(rng.random((100, 100, 8)) < 0.15, rng.integers(0, 17, (100, 100, 8)),
                     FREE).astype(np.uint8)               # cells of 0.4 m from (-20, -20, grid z)
    poses = np.stack([se2_to_matrix(x * vs, y * vs, yaw) for x, y, yaw in
                      [(0, 0, 0), (2, 0, 0), (4, 1, np.pi / 2), (4, 3, np.pi / 2)]])
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in TINY_GRID.shape], indexing='ij'), -1)
    centres = TINY_GRID.voxel_centers(idx.reshape(-1, 3))  # (X*Y*Z, 3) ego frame
    occ = []
    for E in poses:
        g = centres @ E[:3, :3].T + E[:3, 3]
        cell = np.floor((g - (-20.0, -20.0, TINY_GRID.origin[2])) / vs + 1e-6).astype(int)
        occ.append(world[tuple(cell.T)].reshape(TINY_GRID.shape))
    occ = np.stack(occ)                                   # (4, X, Y, Z)
    return dict(occ=occ, mask_lidar=(occ != FREE).astype(np.uint8), ego2global=poses,
                traj=trajectory_in_frame(poses, 3).astype(np.float32))


def assert_warp_consistent(res, present=3):
    """Every past frame warped into the present with the trajectory equals the present."""
    for t in range(present):
        pose = relative_se2(res['traj'][t], res['traj'][present])  # present in frame t
        warped, valid = warp_planar(res['occ'][t][None], pose[None], TINY_GRID, fill=FREE)
        warped, valid = warped[0], valid[0]                     # (X, Y, Z), (X, Y)
        assert valid.sum() * TINY_GRID.shape[2] > 1000
        np.testing.assert_array_equal(warped[valid], res['occ'][present][valid])
        # ego2global still relates the (augmented) ego frames: same relative pose.
        rel = relative_pose(res['ego2global'][present], res['ego2global'][t])
        np.testing.assert_allclose(rel, se2_to_matrix(*res['traj'][t]), atol=1e-5)


@pytest.mark.parametrize('params', [dict(flip_y=True), dict(flip_x=True), dict(rot90=1),
                                    dict(rot90=3, flip_y=True), dict(rot90=2, flip_x=True,
                                                                     flip_y=True)])
def test_warp_consistency_before_and_after(params):
    res = static_window()
    assert_warp_consistent(res)
    aug = RandomFlipRotateOcc(grid=GRID).apply(res, **params)
    assert aug['occ'].flags['C_CONTIGUOUS'] and aug['occ'].shape == (4, 32, 32, 8)
    assert_warp_consistent(aug)
    det = np.linalg.det(aug['ego2global'][:, :3, :3])
    mirrored = params.get('flip_x', False) != params.get('flip_y', False)
    np.testing.assert_allclose(det, -1.0 if mirrored else 1.0)
    np.testing.assert_array_equal(aug['mask_lidar'], (aug['occ'] != FREE).astype(np.uint8))


def test_y_flip_by_hand():
    occ = np.full((1, 32, 32, 8), FREE, np.uint8)
    occ[0, 20, 24, 3] = 4                      # a car at x = 1.8 m, y = +3.4 m
    E = se2_to_matrix(10.0, 5.0, 0.5)[None]
    res = dict(occ=occ, traj=np.array([[2.0, 1.0, 0.3]], np.float32), ego2global=E)
    out = RandomFlipRotateOcc(flip_y_prob=1.0, grid=GRID)(res)
    assert out['aug']['flip_y'] and not out['aug']['flip_x'] and out['aug']['rot90'] == 0
    assert np.argwhere(out['occ'][0] != FREE).tolist() == [[20, 7, 3]]   # y = -3.4 m
    np.testing.assert_allclose(TINY_GRID.voxel_centers([[20, 7, 3]])[0, :2], [1.8, -3.4])
    np.testing.assert_allclose(out['traj'], [[2.0, -1.0, -0.3]], atol=1e-6)
    np.testing.assert_allclose(out['ego2global'][0], E[0] @ np.diag([1.0, -1.0, 1.0, 1.0]))


def test_rot90_by_hand_and_composition():
    rng = np.random.default_rng(1)
    occ = rng.integers(0, 18, (2, 32, 32, 8)).astype(np.uint8)
    traj = np.array([[2.0, 1.0, 0.3], [0.0, 0.0, 0.0]], np.float32)
    one = RandomFlipRotateOcc(flip_y_prob=0, rot90_prob=1, rot90_k=(1,), grid=GRID)
    r1 = one(dict(occ=occ, traj=traj))
    # counter-clockwise: (x, y) -> (-y, x), voxel (i, j) -> (X - 1 - j, i); yaw unchanged
    assert r1['occ'][0, 31 - 24, 20, 3] == occ[0, 20, 24, 3]
    np.testing.assert_allclose(r1['traj'], [[-1.0, 2.0, 0.3], [0, 0, 0]], atol=1e-6)
    r2 = one(dict(occ=r1['occ'], traj=r1['traj']))
    np.testing.assert_array_equal(r2['occ'], flip_rot90_grid(occ, False, False, 2))
    r4 = one(one(dict(occ=r2['occ'], traj=r2['traj'])))
    np.testing.assert_array_equal(r4['occ'], occ)
    np.testing.assert_allclose(r4['traj'], traj, atol=1e-6)
    # a y-flip then a quarter turn equals one draw of both, and the flip x o flip y = rot 180
    both = RandomFlipRotateOcc(grid=GRID).apply(dict(occ=occ, traj=traj), flip_y=True, rot90=1)
    np.testing.assert_array_equal(both['occ'], one(dict(occ=occ[:, :, ::-1], traj=traj))['occ'])
    np.testing.assert_array_equal(flip_rot90_grid(occ, True, True, 0),
                                  flip_rot90_grid(occ, False, False, 2))


def test_nearest_resampling_matches_exact_quarter_turns_and_small_yaw():
    occ = np.random.default_rng(2).integers(0, 18, (1, 32, 32, 8)).astype(np.uint8)
    for fx, fy, k in [(False, False, 1), (True, False, 3), (False, True, 2), (True, True, 1)]:
        np.testing.assert_array_equal(resample_grid(occ, ego_map(fx, fy, k), FREE, TINY_GRID),
                                      flip_rot90_grid(occ, fx, fy, k))
    # small yaw: a voxel at (4.2, 0.2) m rotated by 0.1 rad lands at the nearest voxel
    one = np.full((1, 32, 32, 8), FREE, np.uint8)
    one[0, 26, 16, 0] = 4
    theta = 0.1
    out = RandomFlipRotateOcc(grid=GRID).apply(dict(occ=one, traj=np.zeros((1, 3), np.float32),
                                                    mask_lidar=np.ones_like(one)), yaw=theta)
    c, s = np.cos(theta), np.sin(theta)
    z0 = TINY_GRID.voxel_centers(np.zeros((1, 3)))[0, 2]  # layer 0, ego frame
    target, _ = TINY_GRID.points_to_voxels(np.array([[4.2 * c - 0.2 * s, 4.2 * s + 0.2 * c, z0]]))
    assert np.argwhere(out['occ'][0] == 4).tolist() == [target[0].tolist()]
    # corners have no source: free in occ, unobserved (0) in masks
    assert out['occ'][0, 0, 0, 0] == FREE and out['mask_lidar'][0, 0, 0, 0] == 0
    assert out['mask_lidar'][0, 16, 16, 0] == 1
    np.testing.assert_allclose(transform_trajectory(np.array([[1.0, 0.0, 0.2]]), ego_map(yaw=theta)),
                               [[c, s, 0.2]])


def test_reproducible_and_identity():
    res = static_window()
    kw = dict(flip_y_prob=0.5, flip_x_prob=0.5, rot90_prob=0.5, yaw_prob=0.5, grid=GRID)
    draws = [[RandomFlipRotateOcc(seed=7, **kw).draw() for _ in range(1)] for _ in range(2)]
    assert draws[0] == draws[1]
    a, b = RandomFlipRotateOcc(seed=7, **kw), RandomFlipRotateOcc(seed=7, **kw)
    seq_a, seq_b = [a.draw() for _ in range(20)], [b.draw() for _ in range(20)]
    assert seq_a == seq_b and len({str(d) for d in seq_a}) > 5
    np.random.seed(3)                               # default: numpy's global generator
    glob_a = [RandomFlipRotateOcc(**kw).draw() for _ in range(5)]
    np.random.seed(3)
    assert [RandomFlipRotateOcc(**kw).draw() for _ in range(5)] == glob_a
    ident = RandomFlipRotateOcc(flip_y_prob=0, grid=GRID)
    out = ident(dict(res))
    for key in ('occ', 'mask_lidar', 'traj', 'ego2global'):
        assert out[key] is res[key]
    assert out['aug'] == dict(flip_x=False, flip_y=False, rot90=0, yaw=0.0,
                              matrix=out['aug']['matrix'])
    np.testing.assert_array_equal(out['aug']['matrix'], np.eye(2))


def test_bad_arguments():
    with pytest.raises(ValueError, match='flip_y_prob'):
        RandomFlipRotateOcc(flip_y_prob=1.5)
    with pytest.raises(ValueError, match='rot90_k'):
        RandomFlipRotateOcc(rot90_k=(4,))
    lopsided = dict(point_cloud_range=(0.0, -6.4, -1.0, 12.8, 6.4, 2.2), voxel_size=0.4)
    with pytest.raises(ValueError, match='symmetric'):
        RandomFlipRotateOcc(flip_x_prob=0.5, flip_y_prob=0.0, grid=lopsided)
    RandomFlipRotateOcc(flip_y_prob=0.5, grid=lopsided)  # y is symmetric: fine
