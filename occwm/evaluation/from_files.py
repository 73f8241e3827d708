"""Score forecasts stored on disk (anyone's) under a protocol, beside the baselines.

Layout (what ``tools/forecast.py`` writes)::

    <pred_root>/<scene_name>/<token>.npz   semantics (T_f, X, Y, Z) uint8, the future
                                           frames in order; <token> = the window's
                                           present frame (its last past frame)
    <gt_root>/<scene_name>/<token>/labels.npz   Occ3D ground truth (data/nuscenes/gts)

The windows come from the info pkl and the protocol (``protocols.window_starts``). The
pkl may be of any layout ``occwm.infos.layouts.load_infos`` reads (OccWorld's,
DOME's, I²-World's, ...), scenes taken whole as the protocols do; a frame needs only
``token``, ``timestamp`` and the ``ego2global`` / ``lidar2ego`` poses (the trajectory
of the warp baseline is computed from the ego poses).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, List, Optional

import numpy as np
import torch

from occwm.infos.layouts import load_infos
from occwm.infos.fields import ego2global_of
from occwm.io import load_labels
from occwm.evaluation.baselines import baseline_forecasts
from occwm.evaluation.occ_metric import OccMetric
from occwm.evaluation.protocols import NO_GAP_CUT_S, check_mask, get_protocol, window_starts
from occwm.geometry import trajectory_in_frame
from occwm.grid import DEFAULT_GRID, OccGrid


@dataclass
class Window:
    """One evaluation window: ``frames`` (the scene's frame infos), ``start`` (first
    frame), ``num_past``, ``num_future``, ``pred_path``."""
    scene: str
    frames: list
    start: int
    num_past: int
    num_future: int
    pred_path: str

    @property
    def present(self) -> int:
        """Index of the present frame in the scene."""
        return self.start + self.num_past - 1


def prediction_path(pred_root: str, scene_name: str, present_token: str) -> str:
    """``<pred_root>/<scene_name>/<present_token>.npz``."""
    return os.path.join(pred_root, scene_name, f'{present_token}.npz')


def list_windows(infos_path: str, pred_root: str, protocol: str = 'occworld',
                 num_future: Optional[int] = None) -> List[Window]:
    """The protocol's windows of every scene of an info pkl, scenes in pkl order.

    Raises:
        FileNotFoundError / ValueError naming the pkl (``info_layouts.load_infos``).
    """
    p = get_protocol(protocol)
    P, T_f = p['num_past'], num_future or p['num_future']
    out = []
    for scene, frames in load_infos(infos_path, max_gap_s=NO_GAP_CUT_S).items():
        for s in window_starts(len(frames), P + T_f, p['window_rule']):
            token = frames[s + P - 1]['token']
            out.append(Window(scene, frames, s, P, T_f, prediction_path(pred_root, scene, token)))
    return out


def load_prediction(path: str, num_future: int, grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """``semantics`` of a prediction file, its first ``num_future`` frames.

    Returns:
        ``(num_future, X, Y, Z) uint8``.

    Raises:
        ValueError naming ``path``: not a readable npz, no ``semantics``, fewer frames,
        wrong grid shape, non-integer dtype or labels out of range.
    """
    try:
        with np.load(path) as data:
            if 'semantics' not in data.files:
                raise ValueError(f"{path}: no 'semantics' array (has {data.files})")
            sem = data['semantics']
    except ValueError:
        raise
    except Exception as e:  # zip / pickle errors
        raise ValueError(f'{path}: not a readable npz ({e})') from e
    if sem.ndim != 4 or tuple(sem.shape[1:]) != tuple(grid.shape) or sem.shape[0] < num_future:
        raise ValueError(f'{path}: semantics shape {sem.shape}, want ({num_future}, '
                         f'{", ".join(map(str, grid.shape))}) (future frames first)')
    if not np.issubdtype(sem.dtype, np.integer):
        raise ValueError(f'{path}: semantics dtype {sem.dtype}, want uint8 labels')
    sem = sem[:num_future]
    if sem.size and (sem.min() < 0 or sem.max() > grid.free_label):
        raise ValueError(f'{path}: labels {sem.min()}..{sem.max()} outside 0..{grid.free_label}')
    return sem.astype(np.uint8, copy=False)


def _scene_frames(gt_root: str, w: Window, keys, grid: OccGrid, cache: dict) -> Iterator[dict]:
    """Ground-truth frames of a window, read once per scene (``cache``)."""
    if cache.get('scene') != w.scene:
        cache.clear()
        cache['scene'] = w.scene
    for k in range(w.start + w.num_past - 1, w.start + w.num_past + w.num_future):
        if k not in cache:
            folder, token = w.frames[k]['occ_path'].split('/')[-2:]  # 'gts/<scene>/<token>'
            cache[k] = load_labels(os.path.join(gt_root, folder, token, 'labels.npz'), grid, keys)
        yield cache[k]


def evaluate_files(infos_path: str, gt_root: str, pred_root: str, protocol: str = 'occworld',
                   mask: Optional[str] = None, num_future: Optional[int] = None,
                   allow_missing: bool = False, grid: OccGrid = DEFAULT_GRID,
                   progress: bool = True) -> dict:
    """Score the prediction files of every window beside the copy-last and warp baselines.

    Args:
        infos_path: OccWorld-layout scene-keyed info pkl.
        gt_root: folder of ``<scene>/<token>/labels.npz``.
        pred_root: folder of ``<scene>/<present token>.npz``.
        protocol, mask: see ``occwm.evaluation.protocols``.
        num_future: future frames scored (default: the protocol's, 6).
        allow_missing: skip windows without a prediction file (the report's
            ``missing_windows`` says how many) instead of raising.

    Returns:
        The report (``occwm.evaluation.report``) plus ``missing_windows`` and
        ``missing_examples``. The present frame ("0 s") is not in files, so it is not
        reported.

    Raises:
        FileNotFoundError: prediction files missing (count and the first expected
            paths) without ``allow_missing``; no window at all.
        ValueError: a malformed prediction or ground-truth file (named).
    """
    mask = check_mask(mask)
    windows = list_windows(infos_path, pred_root, protocol, num_future)
    if not windows:
        raise FileNotFoundError(f'{infos_path}: no scene is long enough for one {protocol} window')
    missing = [w for w in windows if not os.path.isfile(w.pred_path)]
    if missing and not allow_missing:
        first = '\n  '.join(w.pred_path for w in missing[:5])
        raise FileNotFoundError(f'{len(missing)} of {len(windows)} prediction files are missing '
                                f'under {pred_root}, e.g.\n  {first}\n(--allow-missing skips them)')
    todo = [w for w in windows if os.path.isfile(w.pred_path)]
    if not todo:
        raise FileNotFoundError(f'none of the {len(windows)} prediction files exists under {pred_root}')
    metric = OccMetric(protocol=protocol, mask=mask, present_frame=False,
                       class_names=grid.class_names)
    keys = ('semantics',) + ((f'mask_{mask}',) if mask else ())
    cache: dict = {}
    it = todo
    if progress:
        from tqdm import tqdm
        it = tqdm(todo, desc=f'eval {protocol}')
    for w in it:
        frames = list(_scene_frames(gt_root, w, keys, grid, cache))  # present + future
        pred = load_prediction(w.pred_path, w.num_future, grid)
        poses = np.stack([ego2global_of(f) for f in w.frames[w.present:w.present + w.num_future + 1]])
        traj = trajectory_in_frame(poses, 0)[1:]  # (T_f, 3) future poses, present frame
        sample = dict(pred_occ=torch.from_numpy(pred),
                      gt_occ=torch.from_numpy(np.stack([f['semantics'] for f in frames[1:]])),
                      baselines=baseline_forecasts(torch.from_numpy(frames[0]['semantics']),
                                                   torch.from_numpy(traj), grid))
        if mask:
            sample[f'mask_{mask}'] = torch.from_numpy(np.stack([f[f'mask_{mask}'] for f in frames[1:]]))
        metric.process(None, [sample])
    metric.compute_metrics(metric.results)
    report = metric.last_report
    report['missing_windows'] = len(missing)
    report['missing_examples'] = [w.pred_path for w in missing[:5]]
    return report
