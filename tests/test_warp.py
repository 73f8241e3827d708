"""occwm.warp: warp_bev (bilinear latents: identity, translation by one cell, 90 degree
yaw, valid mask, batching) and warp_planar (nearest occupancy columns, numpy in and out,
mirrors, broadcasting)."""
import math

import numpy as np
import pytest
import torch

from occwm.geometry import relative_se2
from occwm.warp import warp_bev, warp_planar
from tests.helpers import TINY_GRID

RANGE = (-4.0, -4.0, 4.0, 4.0)  # 8 x 8 cells of 1 m: cell i has its centre at i - 3.5 m


def _latent(B=2, C=3, H=8, W=8, seed=0):
    return torch.randn(B, C, H, W, generator=torch.Generator().manual_seed(seed))


def test_identity_pose_returns_input():
    lat = _latent()
    warped, valid = warp_bev(lat, torch.zeros(2, 3), RANGE)
    assert warped.shape == lat.shape and valid.shape == (2, 1, 8, 8)
    torch.testing.assert_close(warped, lat, atol=1e-6, rtol=0)
    assert torch.all(valid == 1)


def test_forward_translation_by_one_cell():
    """Driving d = 1 m (one cell) forward: a thing at x = +2.5 m (row 6) in the source is
    at x = +1.5 m (row 5) in the target; the last row comes from outside the source."""
    lat = _latent()
    pose = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    warped, valid = warp_bev(lat, pose, RANGE)
    torch.testing.assert_close(warped[:, :, :-1], lat[:, :, 1:], atol=1e-6, rtol=0)
    assert torch.all(warped[:, :, -1] == 0)
    assert torch.all(valid[:, :, :-1] == 1) and torch.all(valid[:, :, -1] == 0)
    # The same with the default range (80 m over 8 cells = 10 m per cell): x = +15 m
    # (row 5) appears at x = +5 m (row 4) after 10 m forward.
    hot = torch.zeros(1, 1, 8, 8)
    hot[0, 0, 5, 2] = 1.0
    warped, _ = warp_bev(hot, torch.tensor([[10.0, 0.0, 0.0]]))
    assert warped[0, 0].argmax().item() == 4 * 8 + 2
    torch.testing.assert_close(warped.sum(), torch.tensor(1.0))


def test_half_cell_translation_is_bilinear():
    lat = _latent(B=1)
    warped, _ = warp_bev(lat, torch.tensor([[0.0, 0.5, 0.0]]), RANGE)  # half a cell left
    torch.testing.assert_close(warped[..., :-1], 0.5 * (lat[..., :-1] + lat[..., 1:]),
                               atol=1e-6, rtol=0)


def test_yaw_90_degrees_rotates_a_hot_cell():
    """Turning left by 90 degrees: a thing ahead of the source ego (x = +2.5, y = +0.5;
    cell (6, 4)) is on the target ego's right, at p_t = R(-90) p_s = (0.5, -2.5):
    cell (4, 1)."""
    hot = torch.zeros(1, 1, 8, 8)
    hot[0, 0, 6, 4] = 1.0
    warped, valid = warp_bev(hot, torch.tensor([[0.0, 0.0, math.pi / 2]]), RANGE)
    expected = torch.zeros(1, 1, 8, 8)
    expected[0, 0, 4, 1] = 1.0
    torch.testing.assert_close(warped, expected, atol=1e-5, rtol=0)
    assert torch.all(valid == 1)  # a square range about the origin maps onto itself
    # And the whole grid turns: rot90 by -1 in (row = x, col = y).
    lat = _latent(B=1)
    warped, _ = warp_bev(lat, torch.tensor([[0.0, 0.0, math.pi / 2]]), RANGE)
    torch.testing.assert_close(warped, torch.rot90(lat, k=-1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_valid_mask_marks_cells_from_outside():
    lat = _latent(B=1)
    pose = torch.tensor([[-2.0, 3.0, 0.0]])  # 2 m back, 3 m left
    warped, valid = warp_bev(lat, pose, RANGE)
    # Source x = x_t - 2 is inside for target rows 2..7, source y = y_t + 3 for cols 0..4.
    expected = torch.zeros(1, 1, 8, 8)
    expected[..., 2:, :5] = 1.0
    torch.testing.assert_close(valid, expected)
    assert torch.all(warped * (1 - valid) == 0)
    torch.testing.assert_close(warped[..., 2:, :5], lat[..., :6, 3:], atol=1e-6, rtol=0)


def test_per_frame_poses_match_separate_calls():
    lat = _latent(B=2)
    g = torch.Generator().manual_seed(1)
    poses = torch.randn(2, 4, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0])  # (B, T, 3)
    warped, valid = warp_bev(lat, poses, RANGE)
    assert warped.shape == (2, 4, 3, 8, 8) and valid.shape == (2, 4, 1, 8, 8)
    for k in range(4):
        w_k, v_k = warp_bev(lat, poses[:, k], RANGE)
        torch.testing.assert_close(warped[:, k], w_k)
        torch.testing.assert_close(valid[:, k], v_k)
    for b in range(2):  # no mixing across the batch
        w_b, _ = warp_bev(lat[b:b + 1], poses[b:b + 1], RANGE)
        torch.testing.assert_close(warped[b:b + 1], w_b)
    with pytest.raises(ValueError, match='pose'):
        warp_bev(lat, torch.zeros(3, 3), RANGE)


# ----------------------------------------------------------------------------- warp_planar
def _occ(B=1, seed=0):
    """``(B, X, Y, Z) uint8`` random labels on the tiny grid (32 x 32 x 8 of 0.4 m)."""
    return np.random.default_rng(seed).integers(0, 18, (B, *TINY_GRID.shape)).astype(np.uint8)


def test_nearest_moves_whole_columns_and_fills_free():
    """0.8 m forward and 0.4 m left = 2 voxels in x, 1 in y: exact column shifts; the
    columns with no source are free and not valid; numpy in, numpy out."""
    occ, free = _occ(), TINY_GRID.free_label
    out, valid = warp_planar(occ, np.array([[0.8, 0.4, 0.0]]), TINY_GRID, fill=free)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == occ.shape
    np.testing.assert_array_equal(out[0, :-2, :-1], occ[0, 2:, 1:])
    assert (out[0, -2:] == free).all() and (out[0, :, -1] == free).all()
    assert valid.shape == (1, 32, 32) and valid[0, :-2, :-1].all()
    assert not valid[0, -2:].any() and not valid[0, :, -1].any()


def test_nearest_round_trip_and_quarter_turn():
    """A warp by a pose then by its inverse returns the valid part; a quarter turn about
    the ego on a symmetric grid is np.rot90 of the columns (turning left by 90 degrees
    moves things to the ego's right)."""
    occ = _occ()
    pose = np.array([1.2, -0.4, 0.0])
    there, v1 = warp_planar(occ, pose[None], TINY_GRID)
    back, v2 = warp_planar(there, relative_se2(pose, np.zeros(3))[None], TINY_GRID)
    assert v1.sum() == v2.sum() == 29 * 31  # 3 rows and 1 column have no source
    np.testing.assert_array_equal(back[0][v2[0]], occ[0][v2[0]])
    turned, valid = warp_planar(occ, np.array([[0.0, 0.0, math.pi / 2]]), TINY_GRID)
    np.testing.assert_array_equal(turned[0], np.rot90(occ[0], k=-1, axes=(0, 1)))
    assert valid.all()


def test_affine_mirror_and_pose_batching():
    occ = _occ(B=3, seed=1)
    mirror = np.array([[[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]])  # p_s = (x, -y)
    out, _ = warp_planar(occ, mirror, TINY_GRID, affine=True)  # one map for all 3 grids
    np.testing.assert_array_equal(out, occ[:, :, ::-1])
    poses = torch.tensor([[[0.4, 0.0, 0.0], [0.0, 0.0, 0.3]]])  # (1, T=2, 3) for every grid
    both, valid = warp_planar(torch.from_numpy(occ), poses, TINY_GRID, fill=17)
    assert both.shape == (3, 2, *TINY_GRID.shape) and valid.shape == (3, 2, 32, 32)
    for b in range(3):
        one, _ = warp_planar(torch.from_numpy(occ[b:b + 1]), poses[0], TINY_GRID, fill=17)
        assert torch.equal(both[b], one)
    with pytest.raises(ValueError, match='mode'):
        warp_planar(occ, poses, TINY_GRID, mode='cubic')
    with pytest.raises(ValueError, match='poses'):
        warp_planar(occ, torch.zeros(2, 3), TINY_GRID)


def test_nearest_and_bilinear_agree_on_whole_cells():
    lat = _latent(B=1).permute(0, 2, 3, 1)  # (1, H, W, C) channels last
    pose = torch.tensor([[2.0, -1.0, math.pi]])
    a, va = warp_planar(lat, pose, RANGE, 'nearest')
    b, vb = warp_planar(lat, pose, RANGE, 'bilinear')
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert torch.equal(va, vb)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    occ = torch.from_numpy(_occ(B=2))
    poses = torch.tensor([[[0.53, -0.31, 0.3], [1.0, 0.0, -0.1]]]).expand(2, 2, 3)
    cpu, v_cpu = warp_planar(occ, poses, TINY_GRID, fill=17)
    gpu, v_gpu = warp_planar(occ.cuda(), poses.cuda(), TINY_GRID, fill=17)
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu) and torch.equal(v_gpu.cpu(), v_cpu)
    lat = _latent()
    w_cpu, _ = warp_bev(lat, poses, RANGE)
    w_gpu, _ = warp_bev(lat.cuda(), poses.cuda(), RANGE)
    torch.testing.assert_close(w_gpu.cpu(), w_cpu, atol=1e-5, rtol=0)
