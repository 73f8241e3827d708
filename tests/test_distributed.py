"""Distributed training on torchrun: 2 CPU processes (gloo) train the forecaster as one
process does with the same global batch, and a distributed run resumes.

    torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch

Three runs of a tiny forecaster (4 iterations, global batch 4, 8 windows: an epoch per 2
iterations, shuffled by mmengine's DefaultSampler, whose 2 ranks share out each global
batch of the one process):

1. one process, batch 4, 4 iterations;
2. torchrun, 2 processes of batch 2, 2 iterations;
3. the same torchrun run resumed from its iteration-2 checkpoint (``--resume``) to 4.

Every window's loss at every iteration and the saved weights of 1 and 3 agree to
float32 rounding: the model (tests/dist_model.py) seeds its random draws per window, so
a window's loss does not depend on the rank it lands on, and DDP's gradient average over
the ranks equals the mean over the global batch; what is left is the order of float
additions (gloo's all-reduce of 2 half-batch gradients against one sum of 4), about
1e-7 relative per step. The tolerances (rtol 1e-4 on losses, 1e-5 + 1e-4 relative on
weights) leave room for Adam turning such differences into steps of ``lr`` on weights
whose gradient is near zero. Augmentation is off: its draws are per process.
"""
import json
import os
import socket
import subprocess
import sys
from collections import defaultdict

import pytest
import torch

from tests.conftest import REPO
from tests.helpers import TINY_GRID, write_tiny_scenes

CONFIG = """
_base_ = ['{repo}/configs/occ.py']
custom_imports = dict(imports=['occwm.compat', 'occwm.data', 'occwm.models', 'occwm.evaluation',
                               'occwm.engine', 'tests.dist_model'], allow_failed_imports=False)
tiny_grid = dict(point_cloud_range={pcr}, voxel_size={voxel}, z_offset={z_offset})
model = dict(type='PerWindowSeededForecaster', tokenizer_ckpt=None,
             tokenizer=dict(grid=tiny_grid, embed_dim=8, channels=(8, 16, 16),
                            hidden_channels=32, latent_channels=4),
             dit=dict(preset='tiny'), residual=dict(width=8))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{root}', ann_file='infos.pkl',
                                     pipeline=[dict(type='LoadOccWindow', grid=tiny_grid),
                                               dict(type='PackOccInputs')]))
train_cfg = dict(max_iters=4, val_interval=1000)
val_cfg = val_dataloader = val_evaluator = None
test_cfg = test_dataloader = test_evaluator = None
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=5), logger=dict(interval=1))
custom_hooks = [dict(type='EMAHook', momentum=0.1, update_buffers=True, priority=49),
                dict(type='TrustCalibrationHook')]
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _train(tmp_path, work, log, nproc, batch, iters, resume=False):
    config = tmp_path / 'tiny_forecaster.py'
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ['-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
                '--master_addr', '127.0.0.1', '--master_port', str(_free_port())]
    cmd += [os.path.join(REPO, 'tools', 'train.py'), str(config), '--work-dir', str(work),
            '--cfg-options', f'train_dataloader.batch_size={batch}', f'train_cfg.max_iters={iters}']
    if nproc > 1:
        cmd += ['--launcher', 'pytorch']
    if resume:
        cmd += ['--resume']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO, OCCWM_TEST_LOSS_LOG=str(log))
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout


def _losses(log):
    """``{(iteration, window): loss}`` from every rank's log."""
    out = {}
    for rank in (0, 1):
        path = f'{log}.rank{rank}'
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                for w in rec['windows']:
                    out[(rec['iter'], w['window'])] = w['loss']
    return out


def _weights(work, it):
    ckpt = torch.load(os.path.join(work, f'iter_{it}.pth'), map_location='cpu', weights_only=False)
    return ckpt['state_dict']


def test_two_processes_train_as_one(tmp_path):
    write_tiny_scenes(tmp_path / 'data', lengths=(18,), name='infos.pkl')  # 8 windows
    (tmp_path / 'tiny_forecaster.py').write_text(CONFIG.format(
        repo=REPO, root=str(tmp_path / 'data'), pcr=tuple(TINY_GRID.point_cloud_range),
        voxel=TINY_GRID.voxel_size, z_offset=TINY_GRID.z_offset))
    one, two = tmp_path / 'one', tmp_path / 'two'
    _train(tmp_path, one, tmp_path / 'loss_one', nproc=1, batch=4, iters=4)
    out = _train(tmp_path, two, tmp_path / 'loss_two', nproc=2, batch=2, iters=2)
    assert 'gloo' in out
    _train(tmp_path, two, tmp_path / 'loss_two', nproc=2, batch=2, iters=4, resume=True)

    l1, l2 = _losses(tmp_path / 'loss_one'), _losses(tmp_path / 'loss_two')
    per_iter = defaultdict(list)
    for (it, w) in l1:
        per_iter[it].append(w)
    assert sorted(per_iter) == [0, 1, 2, 3] and all(len(v) == 4 for v in per_iter.values())
    assert set(l2) == set(l1)  # the same windows at the same iterations, ranks together
    for key, v in l1.items():
        assert l2[key] == pytest.approx(v, rel=1e-4), key
    means = {it: (sum(l1[(it, w)] for w in ws) / 4, sum(l2[(it, w)] for w in ws) / 4)
             for it, ws in sorted(per_iter.items())}
    print('global-batch loss per iteration (1 process, 2 processes):', means)

    w1, w2, w0 = _weights(one, 4), _weights(two, 4), _weights(two, 2)
    assert w1.keys() == w2.keys()
    moved, worst = 0, 0.0
    for k in w1:
        if k.endswith('trust_ious'):  # a calibration statistic (geometric IoUs of thresholded
            # decodes), not a weight: one voxel flipped by another thread count moves it ~1e-4
            torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=1e-2, equal_nan=True, msg=k)
            assert not torch.isnan(w1[k]).all(), 'the trust check was calibrated'
            continue
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5, msg=k)
        moved += int(not torch.equal(w1[k], w0[k]))
        if w1[k].is_floating_point():
            worst = max(worst, float((w2[k] - w1[k]).abs().max()))
    print(f'saved weights after 4 iterations: largest difference {worst:.2e}')
    assert moved > 0  # iterations 3 and 4 changed the weights after the resume
