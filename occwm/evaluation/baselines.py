"""Forecasting baselines scored beside every model, under the same protocol.

* ``copy_last``: the present frame, repeated for every future frame.
* ``warp``: the present frame warped into each future ego frame with the conditioning
  trajectory, assuming a static world (``occwm.warp.warp_planar``: nearest voxel,
  planar motion, z unchanged, voxels whose source lies outside the grid -> free).

A forecaster that does not beat ``warp`` has learnt nothing beyond ego motion.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Union

import numpy as np
import torch

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.warp import warp_planar

ArrayLike = Union[np.ndarray, torch.Tensor]
BASELINES = ('copy_last', 'warp')


def copy_last(present: ArrayLike, num_future: int) -> torch.Tensor:
    """The present frame repeated: ``(X, Y, Z)`` -> ``(T_f, X, Y, Z)`` uint8."""
    present = torch.as_tensor(present).to(torch.uint8)
    return present[None].expand(num_future, *present.shape).contiguous()  # (T_f, X, Y, Z)


def warp_static(present: ArrayLike, poses: ArrayLike, grid: OccGrid = DEFAULT_GRID) -> torch.Tensor:
    """The present occupancy warped into other ego frames (static world):
    ``occwm.warp.warp_planar``, nearest voxel, z unchanged, free where the source lies
    outside the grid.

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
    present = torch.as_tensor(present).to(torch.uint8)
    if tuple(present.shape) != tuple(grid.shape):
        raise ValueError(f'present occupancy shape {tuple(present.shape)} != grid {grid.shape}')
    poses = torch.as_tensor(poses)
    if poses.dim() != 2 or poses.shape[1] != 3:
        raise ValueError(f'poses must be (T, 3) x, y, yaw, got {tuple(poses.shape)}')
    return warp_planar(present[None], poses[None], grid, fill=grid.free_label)[0][0]  # (T, X, Y, Z)


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
