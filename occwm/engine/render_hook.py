"""``ForecastRenderHook``: a picture of every test window's forecast beside its ground
truth, written next to the forecast files (``tools/forecast.py``)."""
from __future__ import annotations

import os
from typing import Optional

from mmengine.hooks import Hook

from occwm.evaluation.from_files import prediction_path
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.registry import HOOKS
from occwm.runtime import require_open3d


@HOOKS.register_module()
class ForecastRenderHook(Hook):
    """After each test iteration, write ``<out_dir>/<scene>/<present token>.png``:
    the present frame, then ground truth | forecast | errors per future frame
    (``occwm.visualization.figures.render_comparison``).

    Args:
        out_dir: the output folder (that of ``DumpForecasts``).
        past_shown: observed frames shown before the future (default 1: the present).
        grid: keyword arguments of ``OccGrid`` (default Occ3D-nuScenes).

    Raises:
        occwm.runtime.SetupError: open3d cannot load (names the missing system library).
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, past_shown: int = 1, grid: Optional[dict] = None):
        require_open3d()  # a missing system library is said before the first forecast
        self.out_dir, self.past_shown = out_dir, past_shown
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        from occwm.visualization.figures import render_comparison
        for win, out in zip(data_batch['data_samples'], outputs or []):
            w = win.numpy()
            pred = out['pred_occ'].cpu().numpy()  # (T_f, X, Y, Z)
            if w.future is None or len(w.future) < len(pred):
                continue
            path = os.path.splitext(prediction_path(self.out_dir, w.scene_name,
                                                    w.present_token))[0] + '.png'
            render_comparison(w.future[:len(pred)], pred, out_path=path, past=w.past,
                              traj=w.traj, grid=self.grid,
                              past_shown=self.past_shown)
