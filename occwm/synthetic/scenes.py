"""A procedural SYNTHETIC driving-scene generator: the embedded default data of occwm.

Everything here is made up (no real sensor data); scene names are ``synthetic-XXXX``
and the pkl metadata says ``'synthetic': True``. The output is the on-disk layout of
``occwm.io`` and ``occwm.infos.fields`` (Occ3D ``labels.npz`` + OccWorld-style scene-keyed info pkls).

This module holds the rasterisation of a world into occupancy grids
(``render_occupancy``), the visibility masks (``visibility_masks``), ``generate_scene``,
sample tokens and scene seeds, and ``write_synthetic_dataset``. The world model (roads,
static map, agents, the ego trajectory, ``build_world``, ``SyntheticSceneConfig`` and the
label ids) lives in ``occwm.synthetic.world`` and is re-exported here.

A frame transforms the grid's column centres with the ego pose, looks the world's
static map up and adds the agents as oriented boxes.

Vertical convention (``occwm.grid.OccGrid.z_offset``, Occ3D-nuScenes' own): the ego
frame has z = 0 on the road surface (as measured on the real nuScenes sequence in
``../shared/data``); the driveable surface is the voxel layer that contains
``cfg.ground_z`` (layer 0 of the default grid, ego z in [-0.2, 0.2), as in the
official Occ3D-nuScenes frames); sidewalks are raised by one voxel (two layers);
objects stand on the ground layer.
Ground is labelled only near the roads (within ``ground_extent`` of the sidewalk and
never under buildings), as Occ3D leaves never-observed ground free. The ego's own
body (``ego_size``) is cleared above the ground layer, as in Occ3D.

Visibility masks (``visibility_masks``) are a deliberately SIMPLE approximation, not
a ray cast: a free voxel is observed when nothing occupied lies above it in its column
("open sky"); an occupied voxel is observed when it is the top of its column or has an
open-sky horizontal neighbour; nothing below the ground layer is observed; all within
``lidar_range`` (mask_lidar) or ``camera_range`` (mask_camera) metres of the ego,
horizontally.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from occwm.geometry import apply_se2, relative_se2, se2_to_matrix, yaw_of, yaw_quaternion
from occwm.infos.fields import add_trajectories, hashed_token, make_frame_info
from occwm.io import labels_path, save_labels, save_pickle
from occwm.synthetic.world import (  # noqa: F401  (re-exported: the world model)
    BARRIER, BICYCLE, BUS, CAR, CONE, MANMADE, NONE, OTHER_FLAT, PEDESTRIAN, ROAD, SIDEWALK,
    TERRAIN, TRUCK, VEGETATION, Agent, Road, StaticMap, SyntheticSceneConfig, SyntheticWorld,
    build_world)
from occwm.grid import DEFAULT_GRID, OccGrid

SYNTHETIC_VERSION = 'occwm-synthetic-1.0'


def _ground_layer(grid: OccGrid, cfg: SyntheticSceneConfig) -> int:
    """z index of the driveable surface: the layer that contains ``cfg.ground_z``."""
    k = int(np.floor((cfg.ground_z - grid.origin[2]) / grid.voxel_size))
    if not 0 <= k < grid.shape[2] - 1:
        raise ValueError(f'ground_z={cfg.ground_z} m (ego frame) is outside the layers of {grid} '
                         f'(ego z from {grid.origin[2]:.2f} m)')
    return k


def render_occupancy(world: SyntheticWorld, t: int, grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """Rasterise frame ``t`` of ``world`` into the ego frame of that frame.

    Returns:
        ``(X, Y, Z) uint8`` labels 0..16, ``grid.free_label`` = free.
    """
    X, Y, Z = grid.shape
    vs, lo = grid.voxel_size, grid.origin
    kg = _ground_layer(grid, world.cfg)
    ex, ey = grid.column_centers()                           # (X,), (Y,) ego frame
    cells = np.stack(np.meshgrid(ex, ey, indexing='ij'), -1)  # (X, Y, 2) ego frame
    hz = lo[2] + (np.arange(Z) + 0.5) * vs - (lo[2] + (kg + 1) * vs)  # (Z,) above the ground top
    g = apply_se2(cells, world.ego[t])                       # (X, Y, 2) global
    ground, label, z0, z1 = world.static.lookup(g[..., 0], g[..., 1])  # (X, Y) each
    occ = np.full((X, Y, Z), grid.free_label, np.uint8)
    has = ground != NONE
    occ[..., kg][has] = ground[has]
    occ[..., kg + 1][ground == SIDEWALK] = SIDEWALK          # the kerb: sidewalks are raised
    obj = (label[..., None] != NONE) & (hz >= z0[..., None]) & (hz <= z1[..., None])  # (X, Y, Z)
    occ[obj] = np.broadcast_to(label[..., None], obj.shape)[obj]
    for a in world.agents:                                   # oriented boxes
        if not a.valid[t]:
            continue
        box = relative_se2(world.ego[t], a.poses[t])         # (3,) agent pose, ego frame
        rx, ry = box[:2]
        length, width, height = a.size
        r = 0.5 * np.hypot(length, width)
        i0, i1 = np.clip(np.floor((np.array([rx - r, rx + r]) - lo[0]) / vs).astype(int) + [0, 1], 0, X)
        j0, j1 = np.clip(np.floor((np.array([ry - r, ry + r]) - lo[1]) / vs).astype(int) + [0, 1], 0, Y)
        if i0 >= i1 or j0 >= j1:
            continue
        q = apply_se2(cells[i0:i1, j0:j1], box, inverse=True)  # (nx, ny, 2) box frame
        qx, qy = q[..., 0], q[..., 1]
        inside = (np.abs(qx) <= length / 2) & (np.abs(qy) <= width / 2)
        zin = (hz >= a.base) & (hz <= a.base + height)       # (Z,)
        if a.label == CAR:                                   # a body and a shorter cabin
            body = hz <= a.base + 0.55 * height
            cabin = inside & (qx >= -0.35 * length) & (qx <= 0.2 * length)
            m = (inside[..., None] & (zin & body)) | (cabin[..., None] & zin)
        else:
            m = inside[..., None] & zin
        occ[i0:i1, j0:j1][m] = a.label
    length, width, rear = world.cfg.ego_size                 # the ego's own body
    ix = (ex >= -rear) & (ex <= length - rear)
    iy = np.abs(ey) <= width / 2
    occ[np.ix_(ix, iy, np.arange(kg + 1, Z))] = grid.free_label
    return occ


def visibility_masks(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                     cfg: Optional[SyntheticSceneConfig] = None) -> Tuple[np.ndarray, np.ndarray]:
    """A SIMPLE visibility approximation (module docstring), not a ray cast.

    Args:
        occ: ``(..., X, Y, Z)`` labels, ego frame.

    Returns:
        ``mask_lidar, mask_camera``: ``(..., X, Y, Z) uint8``, 1 = observed.
    """
    cfg = cfg or SyntheticSceneConfig()
    occupied = occ != grid.free_label
    covered = np.flip(np.logical_or.accumulate(np.flip(occupied, -1), axis=-1), -1)  # self or above
    above = np.zeros_like(covered)
    above[..., :-1] = covered[..., 1:]                       # something occupied strictly above
    sky = ~covered                                           # free with nothing above
    side = np.zeros_like(sky)
    side[..., 1:, :, :] |= sky[..., :-1, :, :]
    side[..., :-1, :, :] |= sky[..., 1:, :, :]
    side[..., :, 1:, :] |= sky[..., :, :-1, :]
    side[..., :, :-1, :] |= sky[..., :, 1:, :]
    observed = sky | (occupied & (~above | side))
    observed[..., :_ground_layer(grid, cfg)] = False         # under the ground
    ex, ey = grid.column_centers()
    r = np.hypot(ex[:, None], ey[None, :])[..., None]       # (X, Y, 1) horizontal range
    lidar = observed & (r <= cfg.lidar_range)
    camera = observed & (r <= cfg.camera_range)
    return lidar.astype(np.uint8), camera.astype(np.uint8)


def generate_scene(seed: int, num_frames: int = 20, grid: OccGrid = DEFAULT_GRID,
                   cfg: Optional[SyntheticSceneConfig] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic scene, deterministic per ``seed``.

    Returns:
        ``occ`` ``(L, X, Y, Z) uint8`` labels in each frame's ego frame,
        ``ego2globals`` ``(L, 4, 4) float64`` planar ego -> global poses (z = 0),
        ``timestamps`` ``(L,) int64`` microseconds (``1 / cfg.frame_rate`` s apart).
    """
    world = build_world(seed, num_frames, grid, cfg)
    occ = np.stack([render_occupancy(world, t, grid) for t in range(num_frames)])
    poses = np.stack([se2_to_matrix(*p) for p in world.ego])
    return occ, poses, world.timestamps.copy()


def synthetic_token(scene_name: str, frame: int, seed: int) -> str:
    """A deterministic 32-hex sample token (nuScenes-like) for a synthetic frame."""
    return hashed_token(SYNTHETIC_VERSION, scene_name, seed, frame)


def scene_seed(seed: int, split: int, index: int) -> int:
    """Seed of scene ``index`` of split ``split`` (0 train, 1 val) of a data set ``seed``."""
    return int(np.random.SeedSequence([seed, split, index]).generate_state(1)[0])


def write_synthetic_dataset(out_dir: str, num_train: int = 24, num_val: int = 6,
                            num_frames: int = 20, seed: int = 0, grid: OccGrid = DEFAULT_GRID,
                            cfg: Optional[SyntheticSceneConfig] = None,
                            progress: bool = True,
                            scene_occupancy: Optional[Callable[[SyntheticWorld, str], Tuple[
                                np.ndarray, np.ndarray, np.ndarray]]] = None,
                            metadata: Optional[dict] = None) -> Dict[str, object]:
    """Write a SYNTHETIC data set in the layout of ``occwm.io`` and ``occwm.infos.fields``.

    Train scenes are ``synthetic-0000 ... synthetic-{num_train-1}``, val scenes the next
    ``num_val`` names, drawn from different seeds (``scene_seed``).

    Args:
        scene_occupancy: optional ``f(world, scene_name) -> (semantics, mask_lidar,
            mask_camera)``, each ``(L, X, Y, Z) uint8`` in the ego frames of the world's
            frames, in place of ``render_occupancy`` + ``visibility_masks`` (e.g. occupancy
            built from a simulated LiDAR, ``tools/make_synthetic.py --lidar``). The scenes,
            seeds, tokens, poses and splits are the same either way.
        metadata: extra keys for the info pkls' ``metadata`` (e.g. how occupancy was made).

    Returns:
        ``{'data_root', 'gts', 'train', 'val' (pkl paths), 'scenes': {split: [names]},
        'num_frames': frames written}``.
    """
    from tqdm import tqdm
    cfg = cfg or SyntheticSceneConfig()
    if num_frames < 1 or num_train < 0 or num_val < 0:
        raise ValueError(f'need num_frames >= 1 and non-negative scene counts, got '
                         f'{num_frames}, {num_train}, {num_val}')
    out = dict(data_root=out_dir, gts=os.path.join(out_dir, 'gts'), scenes={}, num_frames=0)
    bar = tqdm(total=(num_train + num_val) * num_frames, unit='frame', disable=not progress,
               desc='synthetic scenes')
    index = 0
    for split_id, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        infos = {}
        for i in range(count):
            name, sseed = f'synthetic-{index:04d}', scene_seed(seed, split_id, i)
            index += 1
            if scene_occupancy is None:
                occ, poses, stamps = generate_scene(sseed, num_frames, grid, cfg)
                lidar, camera = visibility_masks(occ, grid, cfg)
            else:
                world = build_world(sseed, num_frames, grid, cfg)
                occ, lidar, camera = scene_occupancy(world, name)
                poses = np.stack([se2_to_matrix(*p) for p in world.ego])
                stamps = world.timestamps
            frames = []
            for t in range(num_frames):
                token = synthetic_token(name, t, sseed)
                save_labels(labels_path(out_dir, name, token), occ[t], lidar[t], camera[t], grid)
                frames.append(make_frame_info(name, token, int(stamps[t]), poses[t, :3, 3],
                                              yaw_quaternion(yaw_of(poses[t]))))
                bar.update(1)
            infos[name] = add_trajectories(frames)
            out['num_frames'] += num_frames
        meta = dict(version=SYNTHETIC_VERSION, synthetic=True, seed=seed, split=split,
                    frame_rate=cfg.frame_rate, point_cloud_range=tuple(grid.point_cloud_range),
                    z_offset=grid.z_offset,
                    voxel_size=grid.voxel_size, **(metadata or {}))
        out[split] = os.path.join(out_dir, f'synthetic_infos_{split}.pkl')
        out['scenes'][split] = list(infos)
        save_pickle(out[split], dict(metadata=meta, infos=infos))
    bar.close()
    return out
