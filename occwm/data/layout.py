"""The on-disk layout occwm reads and writes: Occ3D-nuScenes ``labels.npz`` and
OccWorld-style scene-keyed info pkls. Every write is atomic (temporary file, then
``os.replace``), so a failure never leaves a half-written file.

Occupancy (Occ3D-nuScenes, Tian et al. 2023)::

    <data_root>/gts/<scene_name>/<token>/labels.npz
        semantics   (X, Y, Z) uint8  labels 0..16, 17 = free, ego frame
        mask_lidar  (X, Y, Z) uint8  1 = observed by LiDAR
        mask_camera (X, Y, Z) uint8  1 = visible from a camera (optional here)

Info pkl (the layout of OccWorld's ``nuscenes_infos_{train,val}_temporal_v3_scene.pkl``;
occwm writes this one and reads the other layouts in use through
``occwm.data.info_layouts``)::

    {'metadata': {'version': str, ...},
     'infos': {scene_name: [frame_info, ...]}}   # frames in time order

    frame_info:
        token                  str    sample token (folder name under gts/<scene>/)
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

import contextlib
import os
import pickle
import tempfile
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.geometry import pose_matrix, trajectory_in_frame
from occwm.grid import DEFAULT_GRID, OccGrid, check_occupancy

NUM_FUT_TRAJ = 6
NUM_HIS_TRAJ = 4


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the
    block succeeds, else delete it. Parent folders are created."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.splitext(path)[1])
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode of a new file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def shared_data_dir() -> str:
    """The folder of real nuScenes-derived data used by tests and demos:
    ``$OCCWM_SHARED_DATA``, else ``shared/data`` beside the checkout (``../shared/data``)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get('OCCWM_SHARED_DATA',
                          os.path.join(os.path.dirname(repo), 'shared', 'data'))


def labels_path(data_root: str, scene_name: str, token: str) -> str:
    """``<data_root>/gts/<scene_name>/<token>/labels.npz`` (Occ3D-nuScenes)."""
    return os.path.join(data_root, 'gts', scene_name, token, 'labels.npz')


def save_labels(path: str, semantics: np.ndarray, mask_lidar: Optional[np.ndarray] = None,
                mask_camera: Optional[np.ndarray] = None, grid: OccGrid = DEFAULT_GRID) -> None:
    """Write an Occ3D ``labels.npz`` atomically (compressed).

    Args:
        path: the ``labels.npz`` path.
        semantics: ``(X, Y, Z)`` uint8 labels 0..17.
        mask_lidar, mask_camera: ``(X, Y, Z)`` bool/uint8; all ones when ``None``.

    Raises:
        ValueError: wrong shape, dtype or label range (the message names ``path``).
    """
    check_occupancy(semantics, grid, name=path)
    masks = {}
    for key, m in (('mask_lidar', mask_lidar), ('mask_camera', mask_camera)):
        m = np.ones(grid.shape, np.uint8) if m is None else np.asarray(m).astype(np.uint8)
        if m.shape != grid.shape:
            raise ValueError(f'{path}: {key} shape {m.shape} != grid shape {grid.shape}')
        masks[key] = m
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            np.savez_compressed(f, semantics=semantics.astype(np.uint8), **masks)


def load_labels(path: str, grid: OccGrid = DEFAULT_GRID, keys: Sequence[str] = ('semantics',)
                ) -> Dict[str, np.ndarray]:
    """Read an Occ3D ``labels.npz``.

    Returns:
        ``{key: (X, Y, Z) uint8}`` for each requested key (``semantics``,
        ``mask_lidar``, ``mask_camera``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a missing key, wrong shape / dtype, or labels out of range; the
            message names ``path``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'occupancy file not found: {path}')
    try:
        data = np.load(path)
    except Exception as e:  # zip or pickle errors
        raise ValueError(f'{path}: not a readable npz ({e})') from e
    out = {}
    with data:
        for key in keys:
            if key not in data.files:
                raise ValueError(f'{path}: missing key {key!r} (has {data.files})')
            arr = data[key]
            if key == 'semantics':
                check_occupancy(arr, grid, name=f'{path}[semantics]')
            elif arr.shape != grid.shape:
                raise ValueError(f'{path}: {key} shape {arr.shape} != grid shape {grid.shape}')
            out[key] = arr.astype(np.uint8, copy=False)
    return out


def save_pickle(path: str, obj) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_scene_infos(path: str, layout: str = 'auto', scene_names: Optional[Dict[str, str]] = None
                     ) -> Dict[str, List[dict]]:
    """Read an info pkl of any supported layout (OccWorld, DOME, I²-World, mmdet3d 0.x /
    UniAD flat lists, mmdet3d 1.x) as ``{scene_name: [frame_info, ...]}``, frames in time
    order; ``occwm.data.info_layouts.load_infos`` with its defaults.

    Raises:
        FileNotFoundError / ValueError naming ``path`` (see ``load_infos``): the file is
        missing, not a pickle or of no known layout, a frame misses keys or has a bad
        pose, or a scene-keyed scene's timestamps are not increasing.
    """
    from occwm.data.info_layouts import load_infos  # info_layouts imports this module
    return load_infos(path, layout=layout, scene_names=scene_names)


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
