"""OccRunner on a toy model: the terminal shows the progress lines (the first iteration
at once) and no config dump, hook table or registry warning; the log file keeps the
dumps; ``verbose`` brings them back."""
import glob
import os

import torch
from mmengine.model import BaseModel
from torch.utils.data import Dataset

from occwm.engine.runner import OccRunner


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': (self.w - inputs.float().mean()).square().sum()}


class Numbers(Dataset):
    metainfo = {}

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i)]))


def run(tmp_path, name, verbose=False, iters=5):
    runner = OccRunner(
        model=Toy(), work_dir=str(tmp_path / name), default_scope='occwm',
        experiment_name=f'{name}_{os.getpid()}_{id(tmp_path)}',
        train_dataloader=dict(dataset=Numbers(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='ProgressLoggerHook', interval=3),
                           checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False)),
        log_processor=dict(by_epoch=False),
        cfg=dict(verbose=verbose))
    runner.train()
    return glob.glob(str(tmp_path / name / '*' / '*.log'))[0]


def test_quiet_console_and_first_progress_line(tmp_path, capsys):
    log_file = run(tmp_path, 'quiet')
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    progress = [line for line in lines if 'Iter(train)' in line]
    # the first iteration, every `interval` (3), and the last
    assert [p.split('Iter(train) ')[1].split(']')[0] for p in progress] == ['[1/5', '[3/5', '[5/5']
    for text in ('System environment', 'Hooks will be executed', 'Failed to search registry',
                 'FileClient', 'Config:'):
        assert text not in out, text
    with open(log_file) as f:
        log = f.read()
    assert 'System environment' in log and 'Hooks will be executed' in log
    assert len(lines) <= 8, out


def test_verbose_shows_everything(tmp_path, capsys):
    run(tmp_path, 'verbose', verbose=True, iters=1)
    out = capsys.readouterr().out
    assert 'System environment' in out and 'Hooks will be executed' in out
    assert 'Failed to search registry' not in out  # occwm has a child of every registry
