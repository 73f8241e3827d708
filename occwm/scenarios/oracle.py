"""Synthetic counterfactual ground truth: a "perfect model" that renders a SYNTHETIC
world (``occwm.synthetic.scenes``) at the planned ego poses, and a synthetic scene with a
parked car ahead of the ego, for tests and demos of the scenario tools.

The synthetic agents do not react to the ego, so the world rendered at a planned pose
is the exact counterfactual occupancy, which a recorded dataset cannot give.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional

import numpy as np
import torch

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.io import labels_path, save_labels, save_pickle
from occwm.synthetic.scenes import (CAR, NONE, ROAD, SIDEWALK, Agent, StaticMap,
                                  SyntheticSceneConfig, SyntheticWorld, render_occupancy,
                                  visibility_masks)
from occwm.geometry import compose_se2, se2_to_matrix, yaw_quaternion
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.window import OccWindow


class SyntheticOracle:
    """A stand-in forecaster with the ``OccForecaster`` inference interface whose
    forecast is the synthetic world rendered at the planned poses.

    Args:
        world: the synthetic world (``build_world`` or ``parked_car_world``).
        present: index of the world frame that is the present.
        grid: the occupancy grid.
        num_past, num_future: as the real forecaster (5, 6).
        clear_ego: clear the ego's own body as the data do (Occ3D convention), i.e.
            reproduce what a perfectly trained model would output; ``False`` keeps
            whatever the ego overlaps.
    """

    def __init__(self, world: SyntheticWorld, present: int, grid: OccGrid = DEFAULT_GRID,
                 num_past: int = 5, num_future: int = 6, clear_ego: bool = True):
        self.world, self.present, self.grid = world, present, grid
        self.num_past, self.num_future = num_past, num_future
        cfg = world.cfg if clear_ego else dataclasses.replace(world.cfg, ego_size=(0.0, 0.0, 0.0))
        self._world = dataclasses.replace(world, cfg=cfg)

    def rollout(self, past_occ: torch.Tensor, traj: torch.Tensor, num_future: int,
                generator=None, **kwargs) -> torch.Tensor:
        """``(B, P + num_future, 3)`` poses in the present ego frame to
        ``(B, num_future, X, Y, Z) uint8`` frames, frame ``j`` rendered at world time
        ``present + 1 + j`` in the ego frame of the planned pose (``past_occ``,
        ``generator`` and the sampler arguments are ignored: the oracle is exact).

        Raises:
            ValueError: the world has fewer than ``present + 1 + num_future`` frames.
        """
        P = traj.shape[1] - num_future
        if self.present + 1 + num_future > len(self.world.ego):
            raise ValueError(f'the synthetic world has {len(self.world.ego)} frames, '
                             f'need {self.present + 1 + num_future}')
        out = []
        for row in traj.double().cpu().numpy():
            ego = self.world.ego.copy()
            t = np.arange(self.present + 1, self.present + 1 + num_future)
            ego[t] = compose_se2(self.world.ego[self.present], row[P:])
            w = dataclasses.replace(self._world, ego=ego)
            out.append(np.stack([render_occupancy(w, int(i), self.grid) for i in t]))
        return torch.from_numpy(np.stack(out)).to(past_occ.device)

    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, generator=None,
                 **kwargs) -> torch.Tensor:
        """``rollout`` of ``num_future`` frames (the ``OccForecaster.forecast`` signature)."""
        return self.rollout(past_occ, traj, self.num_future)


def parked_car_world(distance: float = 20.0, lateral: float = 0.0, speed: float = 8.0,
                     decel: float = 4.0, num_past: int = 5, num_frames: int = 12,
                     grid: OccGrid = DEFAULT_GRID) -> SyntheticWorld:
    """A straight road with a car parked ahead of the ego, in the ego's lane.

    The road is driveable within ``|y| <= 7`` m of the ego's line, sidewalk beyond (a
    raised kerb). The ego drives along +x at ``speed`` m/s up to the present (world
    frame ``num_past - 1``, at the origin), then brakes at ``decel`` m/s^2 to a stop,
    so the recorded ego never reaches the car. The parked car (4.5 x 1.9 x 1.6 m)
    has its rear ``distance`` m ahead of the present rear-axle origin, centred
    ``lateral`` m to the left.
    """
    cfg = SyntheticSceneConfig()
    t = (np.arange(num_frames) - (num_past - 1)) * 0.5  # seconds from the present
    tf = np.clip(t, 0.0, speed / decel)
    x = np.where(t < 0, speed * t, speed * tf - 0.5 * decel * tf ** 2)
    ego = np.stack([x, np.zeros_like(x), np.zeros_like(x)], 1)  # (L, 3) global
    res, reach = cfg.map_resolution, 60.0
    origin = np.array([x.min() - reach, -reach])
    n = np.ceil(np.array([x.max() - x.min() + 2 * reach, 2 * reach]) / res).astype(int)
    gy = origin[1] + (np.arange(n[1]) + 0.5) * res  # (NY,) global y of the cell centres
    ground = np.where(np.abs(gy) <= 7.0, ROAD, SIDEWALK).astype(np.uint8)
    smap = StaticMap(origin, res, np.repeat(ground[None], n[0], 0), np.full(n, NONE, np.uint8),
                     np.zeros(n, np.float32), np.zeros(n, np.float32))
    size = (4.5, 1.9, 1.6)
    pose = np.array([distance + size[0] / 2, lateral, 0.0])
    car = Agent(CAR, size, np.repeat(pose[None], num_frames, 0), np.ones(num_frames, bool), 'parked')
    stamps = 1_600_000_000_000_000 + np.round((t - t[0]) * 1e6).astype(np.int64)
    return SyntheticWorld(0, cfg, [], smap, [car], ego, stamps, dict(kind='parked_car'))


def write_world(world: SyntheticWorld, out_dir: str, scene_name: str = 'synthetic-parked-car',
                grid: OccGrid = DEFAULT_GRID) -> Dict[str, str]:
    """Write a synthetic world in the layout of ``occwm.io`` and ``occwm.infos.fields`` (Occ3D
    ``gts/<scene>/<token>/labels.npz`` + an OccWorld-style info pkl).

    Returns:
        ``{'data_root', 'gts', 'infos'}`` paths.
    """
    from occwm.synthetic.scenes import synthetic_token
    frames = []
    for i in range(len(world.ego)):
        occ = render_occupancy(world, i, grid)
        lidar, camera = visibility_masks(occ, grid, world.cfg)
        token = synthetic_token(scene_name, i, world.seed)
        save_labels(labels_path(out_dir, scene_name, token), occ, lidar, camera, grid)
        T = se2_to_matrix(*world.ego[i])
        frames.append(make_frame_info(scene_name, token, int(world.timestamps[i]), T[:3, 3],
                                      yaw_quaternion(world.ego[i, 2])))
    infos = os.path.join(out_dir, f'{scene_name}_infos.pkl')
    save_pickle(infos, dict(metadata=dict(version='occwm-scenarios', synthetic=True),
                            infos={scene_name: add_trajectories(frames)}))
    return dict(data_root=out_dir, gts=os.path.join(out_dir, 'gts'), infos=infos)


def world_window(world: SyntheticWorld, present: int, num_past: int = 5,
                 horizon: Optional[int] = None, grid: OccGrid = DEFAULT_GRID):
    """The ``OccWindow`` of a synthetic world at ``present`` (past and recorded future
    rendered in their own ego frames; ``horizon`` future frames, default all left;
    tokens ``frame-<i>``)."""
    from occwm.geometry import relative_se2
    end = len(world.ego) if horizon is None else present + 1 + horizon
    idx = np.arange(present - num_past + 1, end)
    occ = np.stack([render_occupancy(world, int(i), grid) for i in idx])
    traj = relative_se2(world.ego[present], world.ego[idx]).astype(np.float32)
    return OccWindow(occ, traj, num_past, scene_name='synthetic-world',
                     tokens=[f'frame-{i}' for i in idx])
