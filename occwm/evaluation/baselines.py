"""Forecasting baselines scored beside every model, under the same protocol.

* ``copy_last``: the present frame, repeated for every future frame.
* ``warp``: the present frame warped into each future ego frame with the conditioning
  trajectory, assuming a static world: nearest neighbour on voxel centres, planar
  motion (x, y, yaw; z unchanged), voxels whose source lies outside the grid -> free.

A forecaster that does not beat ``warp`` has learnt nothing beyond ego motion.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Union

import numpy as np
import torch

from occwm.grid import DEFAULT_GRID, OccGrid

ArrayLike = Union[np.ndarray, torch.Tensor]
BASELINES = ('copy_last', 'warp')


def copy_last(present: ArrayLike, num_future: int) -> torch.Tensor:
    """The present frame repeated: ``(X, Y, Z)`` -> ``(T_f, X, Y, Z)`` uint8."""
    present = torch.as_tensor(present).to(torch.uint8)
    return present[None].expand(num_future, *present.shape).contiguous()  # (T_f, X, Y, Z)


def warp_static(present: ArrayLike, poses: ArrayLike, grid: OccGrid = DEFAULT_GRID) -> torch.Tensor:
    """Warp the present occupancy into other ego frames (static-world assumption).

    Target voxel ``(i, j, k)`` takes the label of the source voxel whose centre is
    nearest to ``p_s = R(yaw) p_t + (x, y)`` (the voxel containing ``p_s``), where
    ``p_t`` is the target voxel centre (x, y metres, target ego frame) and ``(x, y,
    yaw)`` the target ego pose in the source ego frame; z is kept (planar motion). So
    with the ego ``d`` metres further forward, a static thing at ``x`` appears at
    ``x - d``. Target voxels whose ``p_s`` falls outside the grid are free. (The same
    convention as ``occwm.models.bev_warp.warp_bev``, nearest instead of bilinear.)

    Args:
        present: ``(X, Y, Z)`` uint8 labels in the source (present) ego frame.
        poses: ``(T, 3)`` target ego poses ``(x m, y m, yaw rad)`` in the source frame,
            e.g. the future rows of a window's ``traj``.
        grid: the occupancy grid (range, voxel size, free label).

    Returns:
        ``(T, X, Y, Z)`` uint8 on ``present``'s device.

    Raises:
        ValueError: ``present`` does not have the grid's shape, or ``poses`` is not (T, 3).
    """
    present = torch.as_tensor(present)
    if tuple(present.shape) != tuple(grid.shape):
        raise ValueError(f'present occupancy shape {tuple(present.shape)} != grid {grid.shape}')
    poses = torch.as_tensor(poses, dtype=torch.float64).to(present.device)
    if poses.dim() != 2 or poses.shape[1] != 3:
        raise ValueError(f'poses must be (T, 3) x, y, yaw, got {tuple(poses.shape)}')
    X, Y, _ = grid.shape
    x0, y0, vs = grid.point_cloud_range[0], grid.point_cloud_range[1], grid.voxel_size
    kw = dict(dtype=torch.float64, device=present.device)
    px = x0 + (torch.arange(X, **kw) + 0.5) * vs  # (X,) target voxel centres, metres
    py = y0 + (torch.arange(Y, **kw) + 0.5) * vs  # (Y,)
    px, py = torch.meshgrid(px, py, indexing='ij')  # (X, Y) each
    cos, sin = torch.cos(poses[:, 2]), torch.sin(poses[:, 2])  # (T,) each
    sx = cos[:, None, None] * px - sin[:, None, None] * py + poses[:, 0, None, None]  # (T, X, Y)
    sy = sin[:, None, None] * px + cos[:, None, None] * py + poses[:, 1, None, None]  # (T, X, Y)
    ix = torch.floor((sx - x0) / vs).long()  # (T, X, Y) source voxel index
    iy = torch.floor((sy - y0) / vs).long()  # (T, X, Y)
    valid = (ix >= 0) & (ix < X) & (iy >= 0) & (iy < Y)  # (T, X, Y)
    flat = present.to(torch.uint8).reshape(X * Y, -1)  # (X * Y, Z) columns
    src = (ix.clamp(0, X - 1) * Y + iy.clamp(0, Y - 1)).reshape(-1)  # (T * X * Y,)
    out = flat[src].reshape(*ix.shape, -1)  # (T, X, Y, Z)
    return torch.where(valid[..., None], out, torch.full_like(out, grid.free_label))


def baseline_forecasts(present: ArrayLike, traj_future: ArrayLike,
                       grid: OccGrid = DEFAULT_GRID) -> Dict[str, torch.Tensor]:
    """Both baselines for one window.

    Args:
        present: ``(X, Y, Z)`` uint8 present frame.
        traj_future: ``(T_f, 3)`` future ego poses (x m, y m, yaw rad) in the present
            ego frame (the future rows of the window's ``traj``).

    Returns:
        ``{'copy_last': (T_f, X, Y, Z) uint8, 'warp': (T_f, X, Y, Z) uint8}``.
    """
    traj_future = torch.as_tensor(traj_future)
    return OrderedDict(copy_last=copy_last(present, len(traj_future)),
                       warp=warp_static(present, traj_future, grid))
