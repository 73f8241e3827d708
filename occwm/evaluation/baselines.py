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


class BaselineForecaster:
    """A baseline in the place of a forecaster, for rollouts (``tools/generate_scenarios.py
    --baseline``): ``rollout(past_occ, traj, num_future)`` like ``OccForecaster.rollout``,
    the same forecast for every sample.

    Args:
        name: ``'copy_last'`` (the frozen present) or ``'warp'`` (the present warped along
            the given trajectory, static world).
        grid: the occupancy grid.
        num_past: past frames the windows must hold (the baselines read only the present).
        num_future: horizon of one step (any horizon is served in one step).

    Raises:
        ValueError: an unknown ``name``.
    """

    def __init__(self, name: str, grid: OccGrid = DEFAULT_GRID, num_past: int = 5, num_future: int = 6):
        if name not in BASELINES:
            raise ValueError(f'unknown baseline {name!r}; choose from {BASELINES}')
        self.name, self.grid, self.num_past, self.num_future = name, grid, num_past, num_future

    def rollout(self, past_occ: torch.Tensor, traj: torch.Tensor, num_future: int,
                **kwargs) -> torch.Tensor:
        """``(B, num_future, X, Y, Z) uint8`` from ``past_occ`` ``(B, T_p, X, Y, Z)`` and
        ``traj`` ``(B, T_p + num_future, 3)`` (x m, y m, yaw rad, present ego frame);
        sampler keywords (``generator``, ``steps``, ...) are ignored."""
        P = past_occ.shape[1]
        if self.name == 'copy_last':
            return torch.stack([copy_last(p[-1], num_future) for p in past_occ])
        return torch.stack([warp_static(p[-1], t[P:P + num_future], self.grid)
                            for p, t in zip(past_occ, traj)])
