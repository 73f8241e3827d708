"""``DumpForecasts``: a metric that writes every window's forecast to disk in the layout
``occwm.evaluation.from_files`` reads (``tools/forecast.py`` puts it beside
``OccMetric``)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from occwm.evaluation.from_files import prediction_path
from occwm.io import atomic_path
from occwm.registry import METRICS


@METRICS.register_module()
class DumpForecasts(BaseMetric):
    """Write ``<out_dir>/<scene_name>/<present token>.npz`` (``semantics`` ``(T_f, X, Y,
    Z) uint8``, future frames in order) for every window, atomically (temporary file,
    then rename), on the rank that forecast it.

    The windows come from ``data_batch['data_samples']`` (``occwm.window.OccWindow``),
    the forecasts from the model's ``pred_occ``. ``compute_metrics`` gives
    ``forecasts_written``, the number of files over all ranks.

    Args:
        out_dir: the output folder.
        overwrite: replace files that exist (default); ``False`` raises instead.

    Raises:
        FileExistsError: a file exists and ``overwrite`` is False.
    """

    default_prefix: Optional[str] = ''

    def __init__(self, out_dir: str, overwrite: bool = True, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_dir, self.overwrite = out_dir, overwrite

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Write one file per window; append its path."""
        for win, out in zip(data_batch['data_samples'], data_samples):
            path = prediction_path(self.out_dir, win.scene_name, win.present_token)
            if not self.overwrite and os.path.exists(path):
                raise FileExistsError(f'{path} exists (DumpForecasts(overwrite=False))')
            pred = out['pred_occ']
            pred = pred.cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
            with atomic_path(path) as tmp, open(tmp, 'wb') as f:
                np.savez_compressed(f, semantics=pred.astype(np.uint8))
            self.results.append(path)

    def compute_metrics(self, results: List[str]) -> Dict[str, float]:
        """``{'forecasts_written': n}``."""
        return dict(forecasts_written=float(len(results)))
