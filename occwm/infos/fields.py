"""Info pkl fields: the frame_info occwm writes and every reader normalises to.

Info pkl (the layout of OccWorld's ``nuscenes_infos_{train,val}_temporal_v3_scene.pkl``;
occwm writes this one and reads the other layouts in use through
``occwm.infos.layouts``)::

    {'metadata': {'version': str, ...},
     'infos': {scene_name: [frame_info, ...]}}   # frames in time order

    frame_info:
        token                  str    sample token (folder name under gts/<scene>/); the
                               nuScenes one, or for frames without one a stable hash
                               (``hashed_token``: frame format, synthetic scenes)
        timestamp              int    microseconds
        scene_name             str
        ego2global_translation (3,)   metres, global frame
        ego2global_rotation    (4,)   quaternion w, x, y, z
        lidar2ego_translation  (3,)   metres, ego frame
        lidar2ego_rotation     (4,)   quaternion w, x, y, z
        gt_ego_fut_trajs       (6, 2) float32  per-step x, y displacement of the ego
                               over the next 6 frames, current ego frame (UniAD / OccWorld
                               convention: cumsum gives positions)
        gt_ego_fut_masks       (6,)   float32  1 where the future frame exists
        gt_ego_his_trajs       (2, 2) float32  per-step displacements of the 2 past frames
        ego_fut_traj           (6, 3) float32  x, y (metres), yaw (radians) of the future
                               ego poses in the current ego frame (occwm addition)
        ego_his_traj           (4, 3) float32  the same for the 4 past frames, oldest first
        occ_path               str    'gts/<scene folder>/<token>' relative to the data root;
                               the folder is the scene name, or for a scene cut at a time
                               gap into '<scene>@1', ... still the original '<scene>'
"""
from __future__ import annotations

import hashlib
from typing import Dict, List

import numpy as np

from occwm.geometry import pose_matrix, trajectory_in_frame

NUM_FUT_TRAJ = 6
NUM_HIS_TRAJ = 4


def ego_trajectory_fields(ego2globals: np.ndarray, index: int) -> Dict[str, np.ndarray]:
    """The trajectory fields of frame ``index`` of a scene (see the module docstring).

    Args:
        ego2globals: ``(L, 4, 4) float64`` ego -> global poses of the whole scene.
        index: the current frame.
    """
    L = len(ego2globals)
    traj = trajectory_in_frame(ego2globals, index).astype(np.float32)  # (L, 3)
    fut = np.zeros((NUM_FUT_TRAJ, 3), np.float32)
    fut_mask = np.zeros(NUM_FUT_TRAJ, np.float32)
    n = min(NUM_FUT_TRAJ, L - 1 - index)
    fut[:n] = traj[index + 1:index + 1 + n]
    fut_mask[:n] = 1
    his = np.zeros((NUM_HIS_TRAJ, 3), np.float32)
    m = min(NUM_HIS_TRAJ, index)
    if m:
        his[NUM_HIS_TRAJ - m:] = traj[index - m:index]
    fut_pos = np.concatenate([np.zeros((1, 2), np.float32), fut[:, :2]])
    fut_delta = np.diff(fut_pos, axis=0) * fut_mask[:, None]
    his_pos = np.concatenate([his[-2:, :2], np.zeros((1, 2), np.float32)])
    his_delta = np.diff(his_pos, axis=0)
    his_delta[:max(0, 2 - m)] = 0
    return dict(gt_ego_fut_trajs=fut_delta.astype(np.float32), gt_ego_fut_masks=fut_mask,
                gt_ego_his_trajs=his_delta.astype(np.float32), ego_fut_traj=fut,
                ego_his_traj=his)


def hashed_token(*parts) -> str:
    """A 32-hex sample token (nuScenes-like) for a frame that has none: the first 32 hex
    digits of the SHA-1 of ``parts`` joined by ``/``, e.g. ``(version, scene_name,
    index)``; the same parts always give the same token."""
    return hashlib.sha1('/'.join(str(p) for p in parts).encode()).hexdigest()[:32]


def make_frame_info(scene_name: str, token: str, timestamp: int, ego2global_translation,
                    ego2global_rotation, lidar2ego_translation=(0.0, 0.0, 0.0),
                    lidar2ego_rotation=(1.0, 0.0, 0.0, 0.0)) -> dict:
    """A frame_info dict (module docstring) without the trajectory fields; add them
    with ``add_trajectories`` once the whole scene is known."""
    return dict(token=token, timestamp=int(timestamp), scene_name=scene_name,
                ego2global_translation=np.asarray(ego2global_translation, np.float64),
                ego2global_rotation=np.asarray(ego2global_rotation, np.float64),
                lidar2ego_translation=np.asarray(lidar2ego_translation, np.float64),
                lidar2ego_rotation=np.asarray(lidar2ego_rotation, np.float64),
                occ_path=f'gts/{scene_name}/{token}')


def ego2global_of(info: dict) -> np.ndarray:
    """``(4, 4) float64`` ego -> global pose of a frame_info."""
    return pose_matrix(info['ego2global_translation'], info['ego2global_rotation'])


def add_trajectories(frames: List[dict]) -> List[dict]:
    """Fill the trajectory fields of every frame_info of one time-ordered scene (in place)."""
    poses = np.stack([ego2global_of(f) for f in frames])
    for i, f in enumerate(frames):
        f.update(ego_trajectory_fields(poses, i))
    return frames
