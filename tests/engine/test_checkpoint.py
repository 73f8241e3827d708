"""Training checkpoints (occwm/engine/checkpoint.py): atomic and verified writes that
keep the older checkpoints until the new one is complete, never a non-finite one, the
NaN guard (stop, or skip up to N steps), ``--resume``'s fallback to the newest intact
checkpoint, and an exact resume after SIGKILL (tools/train.py on a tiny forecaster in
subprocesses, one thread: the final weights, EMA and optimizer state equal an
uninterrupted run's bit for bit)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from torch.utils.data import Dataset

import occwm.compat  # noqa: F401  (weights-only loading of mmengine checkpoints)
from occwm.engine.checkpoint import TrainingDiverged, resume_checkpoint
from occwm.engine.runner import OccRunner
from occwm.models.checkpoint import non_finite_weights, read_checkpoint
from occwm.runtime import SetupError
from tests.conftest import REPO
from tests.helpers import TINY_GRID, write_tiny_scenes


class Toy(BaseModel):
    """Two loss terms; ``bad[i]`` makes iteration ``i`` (1-based) give a NaN loss term
    (``'loss'``) or a NaN gradient under finite losses (``'grad'``)."""

    def __init__(self, bad=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.bad = dict(bad or {})

    def forward(self, inputs, data_samples=None, mode='tensor'):
        hub = getattr(self, 'hub', None) or MessageHub.get_current_instance()  # its runner's
        it = hub.get_info('iter') + 1
        loss_fit = (self.w - inputs.float().mean()).square().sum()
        loss_reg = 0.01 * self.w.square().sum()
        if self.bad.get(it) == 'loss':
            loss_fit = loss_fit * float('nan')
        if self.bad.get(it) == 'grad':  # sqrt'(0) * 0: a NaN gradient of a zero term
            loss_reg = loss_reg + (self.w - self.w.detach()).abs().sqrt().sum()
        return {'loss_fit': loss_fit, 'loss_reg': loss_reg}


class Numbers(Dataset):
    metainfo = {}

    def __len__(self):
        return 64  # one epoch for every run here (no restart of the loader)

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i)]))


def train_toy(tmp_path, iters=6, interval=2, max_keep=2, nan_guard=0, bad=None):
    """Train the toy with the occwm checkpoint hook (and NaN guard with ``max_skips =
    nan_guard``; ``None``: no guard); returns the work dir."""
    work = tmp_path / 'work'
    hooks = dict(logger=dict(type='ProgressLoggerHook', interval=100),
                 checkpoint=dict(type='OccCheckpointHook', interval=interval, by_epoch=False,
                                 max_keep_ckpts=max_keep))
    if nan_guard is not None:
        hooks['nan_guard'] = dict(type='NanGuardHook', max_skips=nan_guard)
    model = Toy(bad)
    runner = OccRunner(
        model=model, work_dir=str(work), default_scope='occwm',
        experiment_name=f'ckpt_{os.getpid()}_{id(tmp_path)}',
        train_dataloader=dict(dataset=Numbers(), batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=hooks, log_processor=dict(by_epoch=False), cfg=dict())
    model.hub = runner.message_hub  # not "the current instance": another may be newer
    runner.train()
    return work


def files(work):
    """The checkpoints and ``last_checkpoint`` of ``work`` (not the temporary files)."""
    return sorted(f for f in os.listdir(work)
                  if (f.endswith('.pth') and not f.startswith('.')) or f == 'last_checkpoint')


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def intact(path, model):
    """``path`` reads back whole and ``model``'s weights in it are finite."""
    assert non_finite_weights(model, read_checkpoint(str(path))) is None, path


def last(work):
    with open(work / 'last_checkpoint') as f:
        return os.path.basename(f.read().strip())


def test_checkpoint_records_model_and_rng_and_loads_weights_only(tmp_path):
    work = train_toy(tmp_path, iters=6)
    assert files(work) == ['iter_4.pth', 'iter_6.pth', 'last_checkpoint']  # max_keep_ckpts 2
    assert last(work) == 'iter_6.pth'
    ckpt = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['occwm']['model_type'] == 'Toy' and ckpt['meta']['iter'] == 6
    assert len(ckpt['rng']['ranks']) == 1 and set(ckpt['rng']['ranks'][0]) >= {'torch', 'numpy',
                                                                                'python'}
    assert ckpt['rng']['sampler']['type'] == 'DefaultSampler'


def test_checkpoint_write_failure_keeps_the_older_ones(tmp_path, monkeypatch):
    put, writes = LocalBackend.put, []

    def failing_put(self, obj, filepath):
        writes.append(filepath)
        if len(writes) == 3:  # iter_6, half written: a full disk
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(28, 'No space left on device')
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', failing_put)
    with pytest.raises(OSError, match='No space left'):
        train_toy(tmp_path, iters=8)
    work = tmp_path / 'work'
    assert all(os.path.basename(w).startswith('.tmp_') for w in writes)  # never in place
    assert files(work) == ['iter_2.pth', 'iter_4.pth', 'last_checkpoint']  # nothing deleted
    assert last(work) == 'iter_4.pth'
    for name in ('iter_2.pth', 'iter_4.pth'):
        intact(work / name, Toy())
    assert not [f for f in os.listdir(work) if f.startswith('.tmp_')]


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged) as err:
        train_toy(tmp_path, iters=10, bad={5: 'loss'})
    msg = str(err.value)
    work = tmp_path / 'work'
    assert '\n' not in msg and 'iteration 5' in msg and 'loss_fit=nan' in msg
    assert 'loss_reg' not in msg  # only the non-finite terms
    assert f'the last good checkpoint is {work / "iter_4.pth"}' in msg
    assert files(work) == ['iter_2.pth', 'iter_4.pth', 'last_checkpoint']
    for name in ('iter_2.pth', 'iter_4.pth'):
        intact(work / name, Toy())


def test_nan_gradient_norm_stops_training(tmp_path):
    with pytest.raises(TrainingDiverged) as err:
        train_toy(tmp_path, iters=10, bad={3: 'grad'})
    msg = str(err.value)
    assert 'iteration 3' in msg and 'non-finite gradient norm nan' in msg
    assert 'losses finite' in msg and 'loss_fit=' in msg


def test_nan_guard_skips_up_to_max_skips_steps(tmp_path):
    work = train_toy(tmp_path, iters=6, interval=1, max_keep=-1, nan_guard=2,
                     bad={3: 'loss', 4: 'grad'})
    w = {i: weights(work / f'iter_{i}.pth')['w'] for i in range(1, 7)}
    assert torch.equal(w[2], w[3]) and torch.equal(w[3], w[4])  # no optimizer step
    assert not torch.equal(w[4], w[5]) and all(torch.isfinite(v).all() for v in w.values())
    with pytest.raises(TrainingDiverged) as err:  # a third bad step is one too many
        train_toy(tmp_path / 'again', iters=6, nan_guard=2, bad={2: 'loss', 3: 'loss', 5: 'loss'})
    assert 'iteration 5' in str(err.value)
    assert 'after skipping 2 bad steps (iterations 2, 3)' in str(err.value)


def test_non_finite_weights_are_never_written(tmp_path):
    """Without the NaN guard, the NaN step goes through; the checkpoint hook then refuses
    to save and deletes nothing."""
    with pytest.raises(TrainingDiverged) as err:
        train_toy(tmp_path, iters=10, nan_guard=None, bad={5: 'loss'})
    assert 'weights at iteration 6 are non-finite' in str(err.value)
    work = tmp_path / 'work'
    assert files(work) == ['iter_2.pth', 'iter_4.pth', 'last_checkpoint']
    assert not [f for f in os.listdir(work) if f.startswith('.tmp_')]


def test_resume_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    assert resume_checkpoint(str(tmp_path)) == (None, None)  # nothing yet: from the start
    work = train_toy(tmp_path, iters=6, max_keep=-1)
    newest, older = str(work / 'iter_6.pth'), str(work / 'iter_4.pth')
    assert resume_checkpoint(str(work)) == (newest, None)
    data = Path(newest).read_bytes()
    with open(newest, 'wb') as f:  # a partial file
        f.write(data[:len(data) // 3])
    for requested in (None, newest):  # auto (last_checkpoint) and explicit
        path, note = resume_checkpoint(str(work), requested)
        assert path == older
        assert newest in note and f'resuming from {older} instead' in note and '\n' not in note
    with pytest.raises(SetupError, match='not found'):
        resume_checkpoint(str(work), str(work / 'iter_99.pth'))
    for name in ('iter_2.pth', 'iter_4.pth'):
        (work / name).write_bytes(b'')
    with pytest.raises(SetupError, match='holds no intact checkpoint'):
        resume_checkpoint(str(work))


# --- tools/train.py on a tiny forecaster, in subprocesses ------------------------------
ITERS = 30
CONFIG = """
_base_ = ['{repo}/configs/occ.py']
custom_imports = dict(imports=['occwm.compat', 'occwm.data', 'occwm.models', 'occwm.evaluation',
                               'occwm.engine', 'tests.engine.faults'], allow_failed_imports=False)
tiny_grid = dict(point_cloud_range={pcr}, voxel_size={voxel}, z_offset={z_offset})
model = dict(tokenizer_ckpt=None, sampler=dict(steps=2),
             tokenizer=dict(grid=tiny_grid, embed_dim=8, channels=(8, 16, 16), hidden_channels=32,
                            latent_channels=4),
             dit=dict(preset='tiny'), residual=dict(width=8))
load = dict(type='LoadOccWindow', grid=tiny_grid)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='{root}', ann_file='infos.pkl', pipeline=[
                            load, dict(type='RandomFlipRotateOcc', grid=tiny_grid, flip_y_prob=0.5),
                            dict(type='PackOccInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root='{root}', ann_file='infos.pkl', stride=10,
                                   pipeline=[load, dict(type='PackOccInputs')]))
val_evaluator = dict(grid=tiny_grid)
test_dataloader = test_evaluator = test_cfg = None
train_cfg = dict(max_iters={iters}, val_interval=10)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
                   dict(type='CosineAnnealingLR', by_epoch=False, begin=5, end={iters},
                        eta_min=1e-5)]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2), logger=dict(interval=10))
custom_hooks = [dict(type='EMAHook', momentum=0.1, update_buffers=True, priority=49),
                dict(type='TrustCalibrationHook'), dict(type='FaultHook')]
"""


@pytest.fixture(scope='module')
def tiny_forecaster(tmp_path_factory):
    """A tiny forecaster config (random tokenizer, latent cache on, EMA): 30 windows of
    11 frames (an epoch of 15 iterations: the shuffled sampler restarts once in 30),
    random flips, validation every 10 iterations, a checkpoint every 5 (2 kept)."""
    tmp = tmp_path_factory.mktemp('tiny_forecaster')
    write_tiny_scenes(tmp / 'data', lengths=(40,), name='infos.pkl')
    config = tmp / 'tiny_forecaster.py'
    config.write_text(CONFIG.format(repo=REPO, root=str(tmp / 'data'), iters=ITERS,
                                    pcr=tuple(TINY_GRID.point_cloud_range),
                                    voxel=TINY_GRID.voxel_size, z_offset=TINY_GRID.z_offset))
    return str(config)


def train(config, work, *args, **env):
    env = dict(os.environ, OMP_NUM_THREADS='1', OCCWM_THREADS='1', PYTHONPATH=REPO, **env)
    return subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'train.py'), config,
                           '--work-dir', str(work), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_sigkill_during_a_checkpoint_write_then_resume_is_exact(tiny_forecaster, tmp_path):
    whole, killed = tmp_path / 'whole', tmp_path / 'killed'
    out = train(tiny_forecaster, whole)
    assert out.returncode == 0, out.stderr[-3000:]

    # SIGKILL half way through writing iter_20.pth (the 4th checkpoint)
    out = train(tiny_forecaster, killed, OCCWM_TEST_KILL_AT_WRITE='4')
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    assert files(killed) == ['iter_10.pth', 'iter_15.pth', 'last_checkpoint']
    assert last(killed) == 'iter_15.pth'  # the partial write never took a checkpoint's name
    assert [f for f in os.listdir(killed) if f.startswith('.tmp_')]
    # and the newest checkpoint damaged too: --resume falls back to iter_10
    newest = killed / 'iter_15.pth'
    newest.write_bytes(newest.read_bytes()[:1000])

    out = train(tiny_forecaster, killed, '--resume')
    assert out.returncode == 0, out.stderr[-3000:]
    note = [line for line in out.stdout.splitlines() if line.startswith('--resume:')]
    assert len(note) == 1 and f'resuming from {killed / "iter_10.pth"} instead' in note[0]

    a = torch.load(whole / f'iter_{ITERS}.pth', map_location='cpu', weights_only=True)
    b = torch.load(killed / f'iter_{ITERS}.pth', map_location='cpu', weights_only=True)
    worst = max(float((a['state_dict'][k].double() - b['state_dict'][k].double()).abs().nan_to_num()
                      .max()) for k in a['state_dict'])
    print(f'max |delta| of the final weights, resumed vs uninterrupted: {worst}')
    exact = dict(rtol=0, atol=0, equal_nan=True)  # bit for bit (a NaN buffer equals a NaN)
    for key in ('state_dict', 'ema_state_dict'):
        for k, v in a[key].items():
            torch.testing.assert_close(b[key][k], v, **exact, msg=k)
    for k, v in a['optimizer']['state'].items():
        for s in v:
            torch.testing.assert_close(b['optimizer']['state'][k][s], v[s], **exact, msg=k)


def test_nan_run_stops_with_one_line_and_keeps_checkpoints(tiny_forecaster, tmp_path):
    work = tmp_path / 'nan'
    out = train(tiny_forecaster, work, OCCWM_TEST_NAN_AT='12', OCCWM_TEST_NAN_TERM='loss_flow')
    assert out.returncode == 1
    msg = out.stderr.strip().splitlines()[-1]
    assert msg.startswith('error: training diverged at iteration 12: non-finite loss terms '
                          'loss_flow=nan, loss=nan;'), msg
    assert 'Traceback' not in out.stderr
    assert f'the last good checkpoint is {work / "iter_10.pth"}' in msg
    assert files(work) == ['iter_10.pth', 'iter_5.pth', 'last_checkpoint']
    from mmengine.config import Config

    from occwm.registry import MODELS
    model = MODELS.build(Config.fromfile(tiny_forecaster).model)
    for name in ('iter_5.pth', 'iter_10.pth'):
        intact(work / name, model)
