"""What the pictures show, read from disk as an :class:`occwm.window.OccWindow` (and
forecasts of its future):

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

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from occwm.geometry import trajectory_in_frame
from occwm.grid import DEFAULT_GRID, OccGrid, check_occupancy
from occwm.io import npz_keys, read_npz
from occwm.window import OccWindow


def load_npz(path: str, grid: OccGrid = DEFAULT_GRID) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """``semantics`` (``(X, Y, Z)`` or ``(T, X, Y, Z)`` uint8) and ``mask_camera`` (same
    shape, or ``None`` when absent) of an occupancy / forecast npz.

    Raises:
        FileNotFoundError / ValueError naming ``path``: missing file, not an npz or a
        damaged member (``occwm.io.read_npz``), no ``semantics``, wrong shape or labels.
    """
    arrays = read_npz(path, ('semantics',), optional=('mask_camera',),
                      hint='want an Occ3D labels.npz or a tools/forecast.py output')
    sem, mask = arrays['semantics'], arrays.get('mask_camera')
    if sem.ndim not in (3, 4):
        raise ValueError(f'{path}: semantics has shape {sem.shape}, want (X, Y, Z) or (T, X, Y, Z)')
    check_occupancy(sem, grid, name=f'{path}[semantics]')
    if mask is not None and mask.shape != sem.shape:
        raise ValueError(f'{path}: mask_camera shape {mask.shape} != semantics {sem.shape}')
    return sem.astype(np.uint8, copy=False), mask


def _has_masks(paths: Sequence[str]) -> bool:
    """Whether every ``labels.npz`` of ``paths`` holds both visibility masks (the
    archive's names are read, not its arrays; a missing file is left to the loader)."""
    for p in paths:
        if not os.path.isfile(p):
            continue
        if not {'mask_camera', 'mask_lidar'} <= set(npz_keys(p)):
            return False
    return True


def _load_window(results: dict, grid: OccGrid) -> OccWindow:
    """The ``OccWindow`` of a data info (``occ_paths``, ``traj``, ``num_past``, ...):
    ``LoadOccWindow`` with the masks when every file has them (else semantics only: no
    pale voxels), then :meth:`OccWindow.from_results`."""
    from occwm.data.transforms import LoadOccWindow
    load = LoadOccWindow(grid=dataclasses.asdict(grid),
                         with_masks=_has_masks(results['occ_paths']))
    return OccWindow.from_results(load(dict(results)))


def _dataset(data_root: str, infos: str, num_past: int, num_future: int):
    """``OccForecastDataset`` of the info pkl (any layout it reads), no pipeline."""
    from occwm.data.occ_dataset import OccForecastDataset
    return OccForecastDataset(ann_file=os.path.abspath(infos), data_root=data_root,
                              num_past=num_past, num_future=num_future, serialize_data=False)


def _scene_frames(data_root: str, infos: str, scene: str) -> List[dict]:
    """The data infos of one-frame windows of ``scene``, in time order.

    Raises:
        KeyError: no such scene (the message lists the scenes).
    """
    ds = _dataset(data_root, infos, 1, 0)
    frames = [info for info in ds.data_list if info['scene_name'] == scene]
    if not frames:
        names = list(dict.fromkeys(info['scene_name'] for info in ds.data_list))
        raise KeyError(f'{infos}: no scene {scene!r} (scenes: '
                       f'{", ".join(names[:8])}{" ..." * (len(names) > 8)})')
    return frames


def _stretch(frames: List[dict], start: int, stop: int, present: int, grid: OccGrid
             ) -> OccWindow:
    """Frames ``[start, stop)`` of a scene's one-frame infos (clipped to the recorded
    ones) as a window whose present is scene frame ``present``: the trajectory in its
    ego frame, the frames up to it observed."""
    start, stop = max(0, start), min(len(frames), stop)
    part = frames[start:stop]
    poses = np.stack([f['ego2global'][0] for f in frames])  # (L, 4, 4)
    results = dict(scene_name=part[0]['scene_name'],
                   tokens=[f['tokens'][0] for f in part],
                   timestamps=np.concatenate([f['timestamps'] for f in part]),
                   occ_paths=[f['occ_paths'][0] for f in part],
                   ego2global=poses[start:stop],
                   traj=trajectory_in_frame(poses, present)[start:stop],  # (T, 3)
                   num_past=present - start + 1)
    return _load_window(results, grid)


def dataset_window(data_root: str, infos: str, index: int, num_past: int = 5,
                   num_future: int = 6, grid: OccGrid = DEFAULT_GRID
                   ) -> Tuple[OccWindow, str]:
    """Window ``index`` of ``OccForecastDataset`` (stride 1): its past and ground-truth
    future frames, camera masks (when the files have them) and trajectory; and a title.

    Raises:
        IndexError: ``index`` is out of range (the message gives the number of windows).
    """
    ds = _dataset(data_root, infos, num_past, num_future)
    if not 0 <= index < len(ds):
        raise IndexError(f'{infos}: window {index} out of range: {len(ds)} windows of '
                         f'{num_past}+{num_future} frames')
    win = _load_window(ds.get_data_info(index), grid)
    return win, f'{win.scene_name} window {index}'


def scene_sequence(data_root: str, infos: str, scene: str, grid: OccGrid = DEFAULT_GRID
                   ) -> Tuple[OccWindow, str]:
    """Every recorded frame of ``scene`` as one window whose present is its first frame
    (time 0; the others are its recorded future), with masks and the trajectory in the
    first frame's ego frame; and a title.

    Raises:
        KeyError: no such scene in ``infos`` (the message lists the scenes).
    """
    frames = _scene_frames(data_root, infos, scene)
    return _stretch(frames, 0, len(frames), 0, grid), scene


def forecast_window(paths: Sequence[str], data_root: Optional[str] = None,
                    infos: Optional[str] = None, num_past: int = 5,
                    grid: OccGrid = DEFAULT_GRID
                    ) -> Tuple[OccWindow, List[np.ndarray], str]:
    """Forecast sample(s) ``OUT/<scene>/<token>.npz`` of one window, with the past
    frames, ground truth, masks and trajectory from the data set when ``data_root``
    and ``infos`` are given (frames past the end of the scene have no ground truth).

    Returns:
        ``(window, preds, title)``: the recorded frames (none without a data set), the
        samples ``(T_f, X, Y, Z)`` and a title.

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
        empty = np.zeros((0, *preds[0].shape[1:]), np.uint8)  # no recorded frame
        return OccWindow(occ=empty, num_past=0, scene_name=scene), preds, title
    frames = _scene_frames(data_root, infos, scene)
    present = next((i for i, f in enumerate(frames) if f['tokens'][0] == token), None)
    if present is None:
        raise KeyError(f'{infos}: scene {scene!r} has no frame {token!r}')
    win = _stretch(frames, present - num_past + 1, present + 1 + len(preds[0]), present, grid)
    return win, preds, title
