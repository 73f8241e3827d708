"""``OccVisHook``: pictures of one fixed validation window during training, written
through mmengine's ``Visualizer`` to every configured vis backend (``LocalVisBackend``:
``<work_dir>/<timestamp>/vis_data/vis_image/<name>_<iter>.png``;
``TensorboardVisBackend``: the Images tab).

The hook renders what the validation loop already computed (the model's ``predict``
outputs of that window), so it costs no extra forward pass; it does nothing when no
validation runs.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from occwm.registry import HOOKS
from occwm.window import OccWindow, to_numpy


@HOOKS.register_module()
class OccVisHook(Hook):
    """Render ground truth | forecast | errors of validation window ``window_index``
    every ``interval`` validation rounds.

    Args:
        interval: render every ``interval``-th validation round (1: every round).
        window_index: index of the window in the validation dataset.
        view: camera preset (``'bev'``, ``'chase'``, ``'orbit'``).
        panel_size: ``(w, h)`` of one panel, pixels.
        future_shown: future frames shown (indices; default ``(1, 3, 5)``: +1 s, +2 s,
            +3 s at 2 Hz); ``None``: all.
        past_shown: past frames shown before them (default 1: the present).
        name: image name in the vis backends.
        grid: keyword arguments of ``OccGrid`` (default Occ3D-nuScenes).

    Raises:
        occwm.runtime.SetupError: open3d cannot load (names the missing system library).

    The image (``(H, W, 3) uint8`` RGB) goes to ``runner.visualizer.add_image(name,
    image, step=runner.iter)``. The batch's ``data_samples`` are the windows
    (``OccWindow``, as ``PackOccInputs`` gives); the model's ``predict`` outputs must
    hold ``pred_occ`` (``(T_f, X, Y, Z)``, ``OccForecaster``), compared with the window's
    recorded future, or with the output's own ``gt_occ`` when it has one (``OccVAE``: a
    reconstruction of every frame, drawn as such).
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, window_index: int = 0, view: str = 'bev',
                 panel_size: Tuple[int, int] = (256, 256),
                 future_shown: Optional[Sequence[int]] = (1, 3, 5), past_shown: int = 1,
                 name: str = 'val_forecast', grid: Optional[dict] = None):
        from occwm.grid import DEFAULT_GRID, OccGrid
        from occwm.runtime import require_open3d
        require_open3d()  # a missing system library is said now, not after training
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval, self.window_index, self.view = interval, window_index, view
        self.panel_size, self.future_shown = tuple(panel_size), future_shown
        self.past_shown, self.name = past_shown, name
        self._rounds = 0
        self._target = None  # (scene_name, present token) of the window
        self._captured = None

    def _due(self) -> bool:
        return (self._rounds + 1) % self.interval == 0

    def before_val_epoch(self, runner) -> None:
        self._captured = None
        if not self._due() or self._target is not None:
            return
        dataset = runner.val_loop.dataloader.dataset
        if not 0 <= self.window_index < len(dataset):
            runner.logger.warning(f'OccVisHook: window_index {self.window_index} out of range '
                                  f'({len(dataset)} validation windows); no pictures')
            self._target = False
            return
        info = dataset.get_data_info(self.window_index)
        self._target = (info['scene_name'], info['tokens'][info['num_past'] - 1])

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._target or not self._due() or self._captured is not None or not outputs:
            return
        for j, win in enumerate(data_batch['data_samples']):
            if (win.scene_name, win.present_token) != self._target:
                continue
            out = outputs[j]
            if not isinstance(out, dict) or 'pred_occ' not in out:
                runner.logger.warning('OccVisHook: predict outputs hold no pred_occ; no pictures')
                self._target = False
                return
            self._captured = dict(win=win.numpy(), pred=to_numpy(out['pred_occ']),
                                  gt=to_numpy(out.get('gt_occ')))
            return

    def after_val_epoch(self, runner, metrics=None) -> None:
        due, self._rounds = self._due(), self._rounds + 1
        if not due or self._captured is None or not is_main_process():
            return
        image = self.render(**self._captured)
        runner.visualizer.add_image(self.name, image, step=runner.iter)
        self._captured = None

    def render(self, win: OccWindow, pred: np.ndarray, gt: Optional[np.ndarray] = None
               ) -> np.ndarray:
        """The picture of one window.

        Args:
            win: the window (past, recorded future, trajectory, camera masks).
            pred: ``(T_f, X, Y, Z)`` forecast of its last ``T_f`` frames: the future, or
                every recorded frame (a tokenizer's reconstruction, drawn as such).
            gt: optional ``(T_f, X, Y, Z)`` ground truth of ``pred``'s frames (default the
                window's recorded frames).

        Returns:
            ``(H, W, 3) uint8`` RGB.
        """
        from occwm.visualization.figures import window_image
        win, pred = win.numpy(), to_numpy(pred)
        T_r, tf = win.num_recorded, len(pred)
        if gt is not None:
            gt = to_numpy(gt)
            if len(gt) != tf or tf > T_r:
                raise ValueError(f'gt has {len(gt)} frames, pred {tf}, the window {T_r}')
            win = replace(win, occ=np.concatenate([win.occ[:T_r - tf], gt]))
        if tf == T_r:  # a reconstruction of the whole window; times stay around the present
            return window_image(replace(win, num_past=0), [pred], pred_name='Reconstruction',
                                time_origin=win.num_past - 1, view=self.view,
                                panel_size=self.panel_size, grid=self.grid)
        future_shown = [f for f in (self.future_shown or range(tf)) if f < tf]
        return window_image(win, [pred], view=self.view, panel_size=self.panel_size,
                            past_shown=self.past_shown, future_shown=future_shown,
                            grid=self.grid)
