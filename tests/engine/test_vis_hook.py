"""OccVisHook on a tiny mmengine Runner: a copy-last toy forecaster over tiny scenes;
the hook writes one picture through LocalVisBackend every `interval` validation rounds."""
import glob
import os

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from PIL import Image

from occwm.data import LoadOccWindow, OccForecastDataset, PackOccInputs, occ_collate
from occwm.engine import OccVisHook
from occwm.window import OccWindow
from tests.helpers import TINY_GRID, write_tiny_scenes
from tests.visualization.test_render import renderer  # noqa: F401  (skips without a headless context)

GRID = dict(point_cloud_range=TINY_GRID.point_cloud_range, voxel_size=TINY_GRID.voxel_size)
P = 5


class CopyLast(BaseModel):
    """Forecasts the present frame for every future frame (outputs: ``pred_occ`` only,
    as ``OccForecaster``; the ground truth is the batch's windows)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        occ = inputs['occ']  # (B, T, X, Y, Z)
        if mode == 'loss':
            return {'loss': (self.w - 1.0).square().sum()}
        pred = occ[:, P - 1:P].expand(-1, occ.shape[1] - P, -1, -1, -1)  # (B, T_f, X, Y, Z)
        return [dict(pred_occ=pred[i]) for i in range(occ.shape[0])]


class NoMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(0.0)

    def compute_metrics(self, results):
        return {'none': 0.0}


def dataset(root, ann):
    return OccForecastDataset(ann_file=ann, data_root=str(root), test_mode=True,
                              pipeline=[LoadOccWindow(grid=GRID), PackOccInputs()])


def test_hook_writes_every_second_round(tmp_path, renderer):  # noqa: F811
    ann = write_tiny_scenes(tmp_path)  # a 13-frame scene: 3 windows of 11
    loader = dict(batch_size=2, num_workers=0, collate_fn=occ_collate,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    runner = Runner(
        model=CopyLast(), work_dir=str(tmp_path / 'work'), default_scope='occwm',
        experiment_name=f'vis_hook_{os.getpid()}_{id(tmp_path)}',  # own Visualizer instance
        train_dataloader=dict(dataset=dataset(tmp_path, ann), **loader),
        val_dataloader=dict(dataset=dataset(tmp_path, ann), **loader),
        val_evaluator=[NoMetric()], val_cfg=dict(type='ValLoop'),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='OccVisHook', interval=2, window_index=2, grid=GRID,
                           panel_size=(64, 64))],
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]))
    runner.train()
    images = glob.glob(os.path.join(runner.log_dir, 'vis_data', 'vis_image', '*.png'))
    assert [os.path.basename(p) for p in images] == ['val_forecast_2.png']  # round 2 only
    img = np.asarray(Image.open(images[0]).convert('RGB'))
    # 3 rows (truth, forecast, errors) of 1 past + 3 future panels (+1 s, +2 s, +3 s)
    assert img.shape[0] > 3 * 64 and img.shape[1] > 4 * 64


def test_hook_render_direct_and_out_of_range(renderer):  # noqa: F811
    hook = OccVisHook(grid=GRID, panel_size=(64, 64), future_shown=None)
    occ = np.full((3, *TINY_GRID.shape), 17, np.uint8)
    occ[:, 10:14, 10:14, 2] = 4
    win = OccWindow(occ=torch.from_numpy(occ), traj=torch.zeros(3, 3), num_past=1)
    img = hook.render(win, pred=occ[1:])  # 1 past, 2 future: truth from the window
    assert img.dtype == np.uint8 and img.shape[1] > 3 * 64
    assert img.shape[0] > 3 * 64  # truth, forecast and error rows
    recon = hook.render(win, pred=occ, gt=occ)  # a tokenizer: all frames, its own gt_occ
    assert recon.shape[1] > 3 * 64
    with pytest.raises(ValueError, match='frames'):
        hook.render(win, pred=occ[1:], gt=occ)
    with pytest.raises(ValueError, match='interval'):
        OccVisHook(interval=0)
