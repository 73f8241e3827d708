"""warp_bev: identity, translation by one cell, 90 degree yaw, valid mask, batching."""
import math

import pytest
import torch

from occwm.models.bev_warp import warp_bev

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
