"""``TrustCalibrationHook``: sets the forecaster's ``trust_min_iou='auto'`` threshold
from training frames before the first training step (``OccForecaster.calibrate_trust``).

It runs in ``before_train``, after mmengine's ``EMAHook`` has copied the model
(``before_run``) and before that hook's first update copies the weights and buffers
into the average, so the averaged model (what validation and the checkpoints hold)
carries the threshold too. A resumed run loads the calibrated buffer with the weights
and skips it. The random states of torch, numpy and Python are restored afterwards (the
training pipeline's augmentation draws from them), so calibrating changes nothing
else of the run.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from occwm.registry import HOOKS


@HOOKS.register_module()
class TrustCalibrationHook(Hook):
    """Calibrate ``OccForecaster``'s trust check on evenly spaced training windows
    (``trust_calib_frames`` of them: their present frames). Does nothing for a model
    without ``trust_min_iou='auto'`` or one already calibrated."""

    priority = 'HIGH'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        buf = getattr(model, 'trust_ious', None)
        if getattr(model, 'trust_min_iou', None) != 'auto' or buf is None:
            return
        if not torch.isnan(buf).any():
            runner.logger.info(f'trust check: calibrated threshold {model.trust_threshold():.3f}')
            return
        dataset = runner.train_dataloader.dataset
        n = min(len(buf), len(dataset))
        if n == 0:
            return
        index = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            present = torch.stack([torch.as_tensor(dataset[int(i)]['inputs']['occ'][model.num_past - 1])
                                   for i in index])  # (n, X, Y, Z) uint8
        np.random.set_state(np_state)
        random.setstate(py_state)
        was_training = model.training
        model.eval()
        ious = model.calibrate_trust(present)
        model.train(was_training)
        runner.logger.info(
            f'trust check: tokenizer IoU on {len(ious)} training present frames '
            f'{float(ious.min()):.3f}-{float(ious.max()):.3f} -> threshold '
            f'{model.trust_threshold():.3f} (windows below it get no latent-based change: '
            f'untrusted={model.untrusted!r})')
