"""What the pictures show, read from disk as a :class:`figures.Window`:

* a single ``labels.npz`` frame (Occ3D layout: ``semantics`` ``(X, Y, Z)``, optional
  ``mask_camera``);
* a window of a data set (``--window``) or a whole scene (``--scene``): frames, camera
  masks and the ego trajectory, through ``OccForecastDataset`` and its info pkl;
* forecasts written by ``tools/forecast.py`` (``OUT/<scene>/<token>.npz`` with
  ``semantics`` ``(T_f, X, Y, Z)``, ``<token>`` the present frame), with their ground
  truth and past frames found in the data set when it is given; several forecasts of
  the same window are samples of its future.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from occwm.io import load_labels
from occwm.geometry import trajectory_in_frame
from occwm.grid import DEFAULT_GRID, OccGrid, check_occupancy
from occwm.visualization.figures import Window


def load_npz(path: str, grid: OccGrid = DEFAULT_GRID) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``semantics`` (``(X, Y, Z)`` or ``(T, X, Y, Z)`` uint8) and ``mask_camera`` (same
    shape, or ``None`` when absent) of an occupancy / forecast npz.

    Raises:
        FileNotFoundError / ValueError naming ``path``: missing file, not an npz, no
        ``semantics``, wrong shape or labels.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        data = np.load(path)
    except Exception as e:  # zip / pickle errors
        raise ValueError(f'{path}: not a readable npz ({e})') from e
    with data:
        if 'semantics' not in data.files:
            raise ValueError(f"{path}: no 'semantics' array (has {data.files}); want an Occ3D "
                             f'labels.npz or a tools/forecast.py output')
        sem = data['semantics']
        mask = data['mask_camera'] if 'mask_camera' in data.files else None
    if sem.ndim not in (3, 4):
        raise ValueError(f'{path}: semantics has shape {sem.shape}, want (X, Y, Z) or (T, X, Y, Z)')
    check_occupancy(sem, grid, name=f'{path}[semantics]')
    if mask is not None and mask.shape != sem.shape:
        raise ValueError(f'{path}: mask_camera shape {mask.shape} != semantics {sem.shape}')
    return sem.astype(np.uint8, copy=False), mask


class FrameTable:
    """Every frame of an info pkl in time order per scene, through
    ``OccForecastDataset`` (one-frame windows), so every pkl layout it reads works.

    Args:
        data_root: folder holding ``gts/``.
        infos: info pkl (absolute, or relative to the current folder).

    Attributes:
        scenes: ``{scene_name: [frame dict]}``, frame dict = ``token``, ``occ_path``
            (the ``labels.npz``), ``ego2global`` ``(4, 4)``.
    """

    def __init__(self, data_root: str, infos: str, grid: OccGrid = DEFAULT_GRID):
        from occwm.data.occ_dataset import OccForecastDataset
        self.data_root, self.infos, self.grid = data_root, os.path.abspath(infos), grid
        ds = OccForecastDataset(ann_file=self.infos, data_root=data_root, num_past=1,
                                num_future=0, serialize_data=False)
        self.scenes: Dict[str, List[dict]] = {}
        for info in ds.data_list:
            self.scenes.setdefault(info['scene_name'], []).append(dict(
                token=info['tokens'][0], occ_path=info['occ_paths'][0],
                ego2global=np.asarray(info['ego2global'][0], np.float64)))

    def locate(self, scene: str, token: str) -> int:
        """Index of frame ``token`` in ``scene``. Raises ``KeyError`` naming the pkl."""
        if scene not in self.scenes:
            raise KeyError(f'{self.infos}: no scene {scene!r} (scenes: '
                           f'{", ".join(list(self.scenes)[:8])}{" ..." * (len(self.scenes) > 8)})')
        for i, f in enumerate(self.scenes[scene]):
            if f['token'] == token:
                return i
        raise KeyError(f'{self.infos}: scene {scene!r} has no frame {token!r}')

    def load(self, scene: str, start: int, stop: int, present: int
             ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames ``[start, stop)`` of ``scene`` (clipped to the recorded ones).

        Returns:
            ``occ`` ``(T, X, Y, Z) uint8``, ``mask_camera`` ``(T, X, Y, Z) uint8`` (ones
            when a file has none) and ``traj`` ``(T, 3) float64`` (x, y, yaw of each
            frame in the ego frame of frame ``present``, an index of the scene).
        """
        frames = self.scenes[scene]
        start, stop = max(0, start), min(len(frames), stop)
        occ, masks = [], []
        for f in frames[start:stop]:
            try:
                lab = load_labels(f['occ_path'], self.grid, ('semantics', 'mask_camera'))
            except ValueError as e:
                if 'mask_camera' not in str(e):
                    raise
                lab = load_labels(f['occ_path'], self.grid)
                lab['mask_camera'] = np.ones_like(lab['semantics'])
            occ.append(lab['semantics'])
            masks.append(lab['mask_camera'])
        poses = np.stack([f['ego2global'] for f in frames])  # (L, 4, 4)
        traj = trajectory_in_frame(poses, present)[start:stop]  # (T, 3)
        return np.stack(occ), np.stack(masks), traj


def dataset_window(data_root: str, infos: str, index: int, num_past: int = 5,
                   num_future: int = 6, grid: OccGrid = DEFAULT_GRID) -> Tuple[Window, str]:
    """Window ``index`` of ``OccForecastDataset`` (stride 1): its past and ground-truth
    future frames, camera masks and trajectory; and a title.

    Raises:
        IndexError: ``index`` is out of range (the message gives the number of windows).
    """
    from occwm.data.occ_dataset import OccForecastDataset
    ds = OccForecastDataset(ann_file=os.path.abspath(infos), data_root=data_root,
                            num_past=num_past, num_future=num_future, serialize_data=False)
    if not 0 <= index < len(ds):
        raise IndexError(f'{infos}: window {index} out of range: {len(ds)} windows of '
                         f'{num_past}+{num_future} frames')
    info = ds.data_list[index]
    table = FrameTable(data_root, infos, grid)
    scene = info['scene_name']
    start = table.locate(scene, info['tokens'][0])
    occ, masks, traj = table.load(scene, start, start + num_past + num_future,
                                  start + num_past - 1)
    win = Window(past=occ[:num_past], future=occ[num_past:], traj=traj, masks=masks,
                 traj_start=0)
    return win, f'{scene} window {index}'


def scene_sequence(data_root: str, infos: str, scene: str, grid: OccGrid = DEFAULT_GRID
                   ) -> Tuple[Window, str]:
    """Every recorded frame of ``scene`` (time 0 = its first frame) with masks and the
    trajectory in the first frame's ego frame; and a title."""
    table = FrameTable(data_root, infos, grid)
    if scene not in table.scenes:
        table.locate(scene, '')  # raises a KeyError listing the scenes
    occ, masks, traj = table.load(scene, 0, len(table.scenes[scene]), 0)
    return Window(past=occ, traj=traj, masks=masks, traj_start=0, present=0), scene


def forecast_window(paths: Sequence[str], data_root: Optional[str] = None,
                    infos: Optional[str] = None, num_past: int = 5,
                    grid: OccGrid = DEFAULT_GRID) -> Tuple[Window, str]:
    """Forecast sample(s) ``OUT/<scene>/<token>.npz`` of one window, with the past
    frames, ground truth, masks and trajectory from the data set when ``data_root``
    and ``infos`` are given (frames past the end of the scene have no ground truth).

    Raises:
        ValueError: the files are not forecasts of the same window / length.
        KeyError: the scene or token is not in ``infos``.
    """
    preds = [load_npz(p, grid)[0] for p in paths]
    for p, sem in zip(paths, preds):
        if sem.ndim != 4:
            raise ValueError(f'{p}: a single frame (X, Y, Z), not a forecast (T, X, Y, Z)')
    keys = {(os.path.basename(os.path.dirname(os.path.abspath(p))),
             os.path.splitext(os.path.basename(p))[0]) for p in paths}
    if len(keys) > 1:
        raise ValueError(f'forecasts of different windows (scene, token): {sorted(keys)}; '
                         f'samples of one window share OUT*/<scene>/<token>.npz')
    scene, token = keys.pop()
    title = f'{scene} forecast from {token[:8]}' + (f' ({len(preds)} samples)'
                                                    if len(preds) > 1 else '')
    if not (data_root and infos):
        return Window(preds=preds), title
    table = FrameTable(data_root, infos, grid)
    present = table.locate(scene, token)
    tf = len(preds[0])
    occ, masks, traj = table.load(scene, present - num_past + 1, present + 1 + tf, present)
    n_past = min(num_past, present + 1)
    win = Window(past=occ[:n_past], future=occ[n_past:], preds=preds, traj=traj, masks=masks,
                 traj_start=0)
    return win, title
