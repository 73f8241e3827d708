"""Forecasts stored on disk (anyone's): their layout, a checked reader, and a "model"
that serves them, so that scoring files is the same evaluation path as scoring a
checkpoint (``occwm.engine.evaluate.evaluate_files``; ``tools/eval_occ.py``).

Layout (what ``tools/forecast.py`` writes)::

    <pred_root>/<scene_name>/<token>.npz   semantics (T_f, X, Y, Z) uint8, the future
                                           frames in order; <token> = the window's
                                           present frame (its last past frame)
    <gt_root>/<scene_name>/<token>/labels.npz   Occ3D ground truth (data/nuscenes/gts)
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.model import BaseModel

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.io import DataFileError, read_npz
from occwm.registry import MODELS
from occwm.window import OccWindow


def prediction_path(pred_root: str, scene_name: str, present_token: str) -> str:
    """``<pred_root>/<scene_name>/<present_token>.npz``."""
    return os.path.join(pred_root, scene_name, f'{present_token}.npz')


def load_prediction(path: str, num_future: int, grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """``semantics`` of a prediction file, its first ``num_future`` frames.

    Returns:
        ``(num_future, X, Y, Z) uint8``.

    Raises:
        FileNotFoundError: no file. DataFileError (a ``ValueError``) naming ``path``: not
        a readable npz or a damaged member (``occwm.io.read_npz``), no ``semantics``,
        fewer frames, wrong grid shape, non-integer dtype or labels out of range.
    """
    sem = read_npz(path, ('semantics',), hint='want a tools/forecast.py output')['semantics']
    if sem.ndim != 4 or tuple(sem.shape[1:]) != tuple(grid.shape) or sem.shape[0] < num_future:
        raise DataFileError(f'{path}: semantics shape {sem.shape}, want ({num_future}, '
                            f'{", ".join(map(str, grid.shape))}) (future frames first)')
    if not np.issubdtype(sem.dtype, np.integer):
        raise DataFileError(f'{path}: semantics dtype {sem.dtype}, want uint8 labels')
    sem = sem[:num_future]
    if sem.size and (sem.min() < 0 or sem.max() > grid.free_label):
        raise DataFileError(f'{path}: labels {sem.min()}..{sem.max()} outside '
                            f'0..{grid.free_label}')
    return sem.astype(np.uint8, copy=False)


@MODELS.register_module()
class FileForecaster(BaseModel):
    """Serves the forecasts stored under ``pred_root`` as a model's predictions: window
    ``w`` gets ``<pred_root>/<w.scene_name>/<w.present_token>.npz``, its first ``T_f``
    frames (``T_f`` = the window's future frames).

    Args:
        pred_root: folder of ``<scene>/<present token>.npz``.
        grid: kwargs of the ``OccGrid`` the files are checked against (default Occ3D).

    Raises (in ``forward``):
        FileNotFoundError / ValueError naming the file: missing or malformed.
    """

    def __init__(self, pred_root: str, grid: Optional[dict] = None):
        super().__init__()
        self.pred_root = pred_root
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID

    def path_of(self, window: OccWindow) -> str:
        """The prediction file of ``window``."""
        return prediction_path(self.pred_root, window.scene_name, window.present_token)

    def forward(self, inputs: Dict[str, torch.Tensor], data_samples: Sequence[OccWindow] = (),
                mode: str = 'predict') -> List[Dict[str, torch.Tensor]]:
        """``[{'pred_occ': (T_f, X, Y, Z) uint8}]``, one per window (``mode='predict'``)."""
        if mode != 'predict':
            raise ValueError(f"FileForecaster only predicts (mode='predict'), got {mode!r}")
        out = []
        for w in data_samples:
            path = self.path_of(w)
            if not os.path.isfile(path):
                raise FileNotFoundError(f'prediction file missing: {path}')
            out.append(dict(pred_occ=torch.from_numpy(load_prediction(path, w.num_future, self.grid))))
        return out
