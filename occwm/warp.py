"""Planar warps of grids between ego frames: the one resampler of occwm.

Occupancy and its masks (nearest voxel, whole z columns move), BEV latents (bilinear)
and the augmentation's mirrors and rotations all go through ``warp_planar``.

Convention (stated once, here). A grid covers ``xy_range = (x_min, y_min, x_max,
y_max)`` metres of its ego frame (x forward, y left) with ``X x Y`` cells; cell
``(i, j)`` has its centre at ``occwm.grid.cell_centers``:
``x = x_min + (i + 0.5) (x_max - x_min) / X``, ``y = y_min + (j + 0.5) (y_max - y_min) / Y``.
A pose ``(x, y, yaw)`` (metres, radians, yaw counter-clockwise about +z) is the TARGET
ego pose in the SOURCE ego frame, e.g. a future row of a window's ``traj`` when the
source is the present frame. Target cell centre ``p_t`` (target frame) reads the source
at ``p_s = R(yaw) p_t + (x, y)`` (``occwm.geometry.apply_se2``); so a static thing at
``x = +10`` m in the source appears at ``x = +10 - d`` in a target driven ``d`` metres
forward. Where ``p_s`` falls outside the source grid the target cell gets ``fill``
(free for occupancy, 0 for masks and latents) and ``valid = False``. Motion is planar: z
(the trailing axes) is unchanged.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from occwm.geometry import apply_se2
from occwm.grid import DEFAULT_GRID, OccGrid, cell_centers

GridLike = Union[OccGrid, Sequence[float]]
MODES = ('nearest', 'bilinear')


def _xy_range(grid: GridLike) -> Tuple[float, float, float, float]:
    if isinstance(grid, OccGrid):
        return grid.xy_range
    if len(grid) != 4:
        raise ValueError(f'xy_range must be (x_min, y_min, x_max, y_max), got {tuple(grid)}')
    return tuple(float(v) for v in grid)


def warp_planar(values, poses, grid: GridLike = DEFAULT_GRID, mode: str = 'nearest',
                fill: float = 0, affine: bool = False):
    """Resample grids from a SOURCE ego frame into TARGET ego frames (module docstring).

    Args:
        values: ``(B, X, Y, *F)`` grids in the source frame, numpy or torch, any dtype:
            occupancy ``(B, X, Y, Z) uint8``, masks, or channels-last latents
            ``(B, H, W, C) float``. The trailing axes ``F`` move with their cell.
        poses: ``(B, 3)`` one target pose per grid, or ``(B, T, 3)`` ``T`` targets per
            grid; ``B`` may be 1 to use the same poses for every grid (and ``values``
            may have ``B = 1`` for one grid seen from every pose). With ``affine=True``:
            ``(B, [T,] 2, 3)`` maps ``[M | t]``, ``p_s = M p_t + t`` (e.g. mirrors).
        grid: an ``OccGrid`` or ``(x_min, y_min, x_max, y_max)`` metres covered by
            ``values``' ``X x Y`` cells.
        mode: ``'nearest'`` (the source cell containing ``p_s``; labels and masks
            stay exact) or ``'bilinear'`` (``F.grid_sample``, ``align_corners=False``,
            zero padding; float values).
        fill: value of target cells whose ``p_s`` lies outside the source grid.
        affine: read ``poses`` as ``[M | t]`` maps (see ``poses``).

    Returns:
        ``warped`` ``(B, [T,] X, Y, *F)`` of ``values``' type and dtype, and ``valid``
        ``(B, [T,] X, Y) bool``: ``p_s`` inside the source grid. Coordinates are
        computed in ``float64`` on ``values``' device.

    Raises:
        ValueError: an unknown ``mode``, poses of the wrong shape or batch size.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    is_numpy = not isinstance(values, torch.Tensor)
    values = torch.from_numpy(np.ascontiguousarray(values)) if is_numpy else values
    B, X, Y = values.shape[:3]
    kw = dict(dtype=torch.float64, device=values.device)
    poses = torch.as_tensor(poses).to(**kw)
    tail = (2, 3) if affine else (3,)
    per_frame = poses.dim() == len(tail) + 2
    if tuple(poses.shape[-len(tail):]) != tail or poses.dim() not in (len(tail) + 1, len(tail) + 2) \
            or poses.shape[0] not in (1, B) and B != 1:
        want = '(B, [T,] 2, 3)' if affine else '(B, 3) or (B, T, 3)'
        raise ValueError(f'poses must be {want} with B = {B} (or 1), got {tuple(poses.shape)}')
    if not per_frame:
        poses = poses.unsqueeze(1)                                     # (B', 1, ...)
    Bp, T = poses.shape[:2]
    x0, y0, x1, y1 = _xy_range(grid)

    # Target cell centres p_t and their source points p_s, metres.
    cx, cy = (torch.from_numpy(c).to(**kw) for c in cell_centers((x0, y0, x1, y1), (X, Y)))
    p_t = torch.stack(torch.meshgrid(cx, cy, indexing='ij'), -1)        # (X, Y, 2)
    if affine:
        M, t = poses[..., :2], poses[..., 2]                           # (B', T, 2, 2), (B', T, 2)
        p_s = torch.einsum('btij,xyj->btxyi', M, p_t) + t[:, :, None, None]  # (B', T, X, Y, 2)
    else:
        p_s = apply_se2(p_t, poses[:, :, None, None])                  # (B', T, X, Y, 2)
    u = (p_s[..., 0] - x0) / ((x1 - x0) / X)                           # (B', T, X, Y) in cells
    v = (p_s[..., 1] - y0) / ((y1 - y0) / Y)
    ix, iy = torch.floor(u).long(), torch.floor(v).long()
    valid = (ix >= 0) & (ix < X) & (iy >= 0) & (iy < Y)               # (B', T, X, Y)
    NB = max(B, Bp)
    valid = valid.expand(NB, T, X, Y)

    feat = values.shape[3:]
    if mode == 'nearest':
        b = torch.arange(B, device=values.device)[:, None, None, None] if B > 1 else 0
        src = (b * X + ix.clamp(0, X - 1)) * Y + iy.clamp(0, Y - 1)  # (NB, T, X, Y) flat cell
        flat = values.reshape(B * X * Y, -1)                           # (B * X * Y, prod F)
        out = flat.index_select(0, src.expand(NB, T, X, Y).reshape(-1))  # (NB * T * X * Y, prod F)
        out = out.reshape(NB, T, X, Y, *feat)
        out[~valid] = fill
    else:
        # Cells to grid_sample's [-1, 1] (align_corners=False: -1 and 1 are the outer
        # edges of the first and last cells); grid[..., 0] indexes W (= y), [..., 1] H (= x).
        g = torch.stack([2 * v / Y - 1, 2 * u / X - 1], -1)           # (B', T, X, Y, 2)
        g = g.expand(NB, T, X, Y, 2).reshape(NB, T * X, Y, 2).to(values.dtype)
        chw = values.reshape(B, X, Y, -1).permute(0, 3, 1, 2)          # (B, C, X, Y)
        out = F.grid_sample(chw.expand(NB, *chw.shape[1:]), g, mode='bilinear',
                            padding_mode='zeros', align_corners=False)  # (NB, C, T * X, Y)
        out = out.reshape(NB, -1, T, X, Y).permute(0, 2, 3, 4, 1)      # (NB, T, X, Y, C)
        out = torch.where(valid[..., None], out, torch.full_like(out, fill))
        out = out.reshape(NB, T, X, Y, *feat)
    if not per_frame:
        out, valid = out[:, 0], valid[:, 0]                            # (NB, X, Y, *F), (NB, X, Y)
    return (out.numpy(), valid.numpy()) if is_numpy else (out, valid)


def warp_bev(latent: torch.Tensor, pose: torch.Tensor,
             xy_range: Sequence[float] = DEFAULT_GRID.xy_range
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``warp_planar`` for channels-first BEV latents, bilinear, 0 outside.

    Args:
        latent: ``(B, C, H, W)`` float in the source frame (rows ``H`` along x, columns
            ``W`` along y).
        pose: ``(B, 3)`` or ``(B, T, 3)`` target poses in the source frame.
        xy_range: ``(x_min, y_min, x_max, y_max)`` metres covered by the latent.

    Returns:
        ``warped`` ``(B, [T,] C, H, W)`` and ``valid`` ``(B, [T,] 1, H, W)`` of
        ``latent``'s dtype (1 where ``p_s`` lies inside the source range).
    """
    warped, valid = warp_planar(latent.permute(0, 2, 3, 1), pose, xy_range, 'bilinear')
    return warped.movedim(-1, -3), valid.unsqueeze(-3).to(latent.dtype)
