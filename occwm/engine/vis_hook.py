"""``OccVisHook``: pictures of one fixed validation window during training, written
through mmengine's ``Visualizer`` to every configured vis backend (``LocalVisBackend``:
``<work_dir>/<timestamp>/vis_data/vis_image/<name>_<iter>.png``;
``TensorboardVisBackend``: the Images tab).

The hook renders what the validation loop already computed (the model's ``predict``
outputs of that window), so it costs no extra forward pass; it does nothing when no
validation runs.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from occwm.registry import HOOKS


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

    The image (``(H, W, 3) uint8`` RGB) goes to ``runner.visualizer.add_image(name,
    image, step=runner.iter)``. The model's ``predict`` outputs must hold ``pred_occ``
    and ``gt_occ`` (``(T_f, X, Y, Z)``, as ``OccForecaster`` and ``OccVAE`` give); a
    prediction as long as the input window is drawn as a reconstruction.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, window_index: int = 0, view: str = 'bev',
                 panel_size: Tuple[int, int] = (256, 256),
                 future_shown: Optional[Sequence[int]] = (1, 3, 5), past_shown: int = 1,
                 name: str = 'val_forecast', grid: Optional[dict] = None):
        from occwm.grid import DEFAULT_GRID, OccGrid
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval, self.window_index, self.view = interval, window_index, view
        self.panel_size, self.future_shown = tuple(panel_size), future_shown
        self.past_shown, self.name = past_shown, name
        self._rounds = 0
        self._target = None  # (scene_name, first token) of the window
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
        self._target = (info['scene_name'], info['tokens'][0])

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._target or not self._due() or self._captured is not None or not outputs:
            return
        for j, meta in enumerate(data_batch['data_samples']):
            if (meta.get('scene_name'), meta.get('tokens', [None])[0]) != self._target:
                continue
            out = outputs[j]
            if not isinstance(out, dict) or 'pred_occ' not in out or 'gt_occ' not in out:
                runner.logger.warning('OccVisHook: predict outputs hold no pred_occ / gt_occ; '
                                      'no pictures')
                self._target = False
                return
            inputs = data_batch['inputs']
            self._captured = dict(
                occ=_np(inputs['occ'][j]), traj=_np(inputs['traj'][j]),
                pred=_np(out['pred_occ']), gt=_np(out['gt_occ']),
                mask=_np(meta['mask_camera']) if 'mask_camera' in meta else None)
            return

    def after_val_epoch(self, runner, metrics=None) -> None:
        due, self._rounds = self._due(), self._rounds + 1
        if not due or self._captured is None or not is_main_process():
            return
        image = self.render(**self._captured)
        runner.visualizer.add_image(self.name, image, step=runner.iter)
        self._captured = None

    def render(self, occ: np.ndarray, traj: np.ndarray, pred: np.ndarray, gt: np.ndarray,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
        """The picture of one window.

        Args:
            occ: ``(T, X, Y, Z)`` the window's frames (past then future).
            traj: ``(T, 3)`` ego waypoints in the present ego frame.
            pred, gt: ``(T_f, X, Y, Z)`` forecast and its ground truth (``T_f = T``:
                a reconstruction of every frame).
            mask: optional ``(T, X, Y, Z)`` camera masks.

        Returns:
            ``(H, W, 3) uint8`` RGB.
        """
        from occwm.visualization.figures import Window, window_image
        tf = len(pred)
        if tf == len(occ):  # a reconstruction of the whole window
            win = Window(future=gt, preds=[pred], traj=traj, masks=mask, present=0,
                         pred_name='Reconstruction')
            future_shown = None
        else:
            win = Window(past=occ[:len(occ) - tf], future=gt, preds=[pred], traj=traj,
                         masks=mask)
            future_shown = [f for f in (self.future_shown or range(tf)) if f < tf]
        return window_image(win, self.view, self.panel_size, past_shown=self.past_shown,
                            future_shown=future_shown, grid=self.grid)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)
