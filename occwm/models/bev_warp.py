"""Ego-motion warping of BEV latents between ego frames.

Latent layout (as everywhere in occwm): ``(B, C, H, W)`` with rows ``H`` along ego
``x`` (forward) and columns ``W`` along ego ``y`` (left), covering the metric range
``xy_range = (x_min, y_min, x_max, y_max)``; cell ``(i, j)`` has its centre at
``x = x_min + (i + 0.5) * (x_max - x_min) / H``, ``y = y_min + (j + 0.5) * (y_max - y_min) / W``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F


def warp_bev(latent: torch.Tensor, pose: torch.Tensor,
             xy_range: Sequence[float] = (-40.0, -40.0, 40.0, 40.0)
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample a BEV latent from a SOURCE ego frame into a TARGET ego frame.

    ``pose = (x, y, yaw)`` (metres, radians, yaw counter-clockwise about +z) is the
    target ego pose in the source ego frame, e.g. a future frame's row of the
    trajectory when the source is the present. Each target cell centre ``p_t`` (metres,
    target frame) reads the source at ``p_s = R(yaw) p_t + (x, y)``, bilinearly
    (``F.grid_sample``, ``align_corners=False``, zero padding). So a static thing at
    ``x = +10`` m in the source appears at ``x = +10 - d`` in a target driven ``d``
    metres forward.

    Args:
        latent: ``(B, C, H, W)`` float, in the source frame.
        pose: ``(B, 3)`` target pose(s) in the source frame, or ``(B, T, 3)`` for ``T``
            targets of the same latent.
        xy_range: ``(x_min, y_min, x_max, y_max)`` metres covered by the latent grid.

    Returns:
        ``warped``: ``(B, C, H, W)`` (or ``(B, T, C, H, W)``) in the target frame;
        ``valid``: ``(B, 1, H, W)`` (or ``(B, T, 1, H, W)``) float, 1 where ``p_s`` lies
        inside the source range, 0 where the target cell comes from outside it.
    """
    B, C, H, W = latent.shape
    per_frame = pose.dim() == 3
    if pose.shape[0] != B or pose.shape[-1] != 3 or pose.dim() not in (2, 3):
        raise ValueError(f'pose must be (B, 3) or (B, T, 3) with B={B}, got {tuple(pose.shape)}')
    T = pose.shape[1] if per_frame else 1
    pose = pose.reshape(B * T, 3).to(latent.device, latent.dtype)  # (B * T, 3)
    x_min, y_min, x_max, y_max = (float(v) for v in xy_range)

    # Target cell centres in metres.
    kw = dict(device=latent.device, dtype=latent.dtype)
    xs = x_min + (torch.arange(H, **kw) + 0.5) * ((x_max - x_min) / H)  # (H,)
    ys = y_min + (torch.arange(W, **kw) + 0.5) * ((y_max - y_min) / W)  # (W,)
    px, py = torch.meshgrid(xs, ys, indexing='ij')  # (H, W) each

    # p_s = R(yaw) p_t + (x, y).
    cos, sin = torch.cos(pose[:, 2]), torch.sin(pose[:, 2])  # (B * T,) each
    sx = cos[:, None, None] * px - sin[:, None, None] * py + pose[:, 0, None, None]  # (B * T, H, W)
    sy = sin[:, None, None] * px + cos[:, None, None] * py + pose[:, 1, None, None]  # (B * T, H, W)

    # Metres to grid_sample's [-1, 1] (align_corners=False: -1 and 1 are the outer edges
    # of the first and last cells); grid[..., 0] indexes W (= y), grid[..., 1] H (= x).
    gx = 2 * (sx - x_min) / (x_max - x_min) - 1  # (B * T, H, W)
    gy = 2 * (sy - y_min) / (y_max - y_min) - 1  # (B * T, H, W)
    grid = torch.stack([gy, gx], dim=-1)  # (B * T, H, W, 2)
    valid = ((gx.abs() <= 1) & (gy.abs() <= 1)).to(latent.dtype)[:, None]  # (B * T, 1, H, W)

    # One sample call for all T targets: stack their grids along H, so the latent is
    # not copied T times.
    grid = grid.reshape(B, T * H, W, 2)  # (B, T * H, W, 2)
    warped = F.grid_sample(latent, grid, mode='bilinear', padding_mode='zeros',
                           align_corners=False)  # (B, C, T * H, W)
    warped = warped.reshape(B, C, T, H, W).transpose(1, 2)  # (B, T, C, H, W)
    valid = valid.reshape(B, T, 1, H, W)  # (B, T, 1, H, W)
    if per_frame:
        return warped, valid
    return warped[:, 0], valid[:, 0]  # (B, C, H, W), (B, 1, H, W)
