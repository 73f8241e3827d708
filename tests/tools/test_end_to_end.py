"""End to end on CPU: synthetic data -> tokenizer -> forecaster (with resume) -> test ->
forecast files, through the real tools and config files with tiny model sizes."""
import json
import os

import numpy as np
import pytest
import torch

from occwm.synthetic.scenes import write_synthetic_dataset
from tests.conftest import REPO

TINY_VAE = ['model.embed_dim=8', 'model.channels=[8,16,16]', 'model.hidden_channels=32',
            'model.latent_channels=4']


def data_options(root):
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}/', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    return opts


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    # 13 frames: one window under the OccWorld test protocol (L - 12)
    write_synthetic_dataset(str(root), num_train=1, num_val=1, num_frames=13, seed=3,
                            progress=False)
    return str(root)


@pytest.mark.slow
def test_train_resume_test_forecast(synthetic_root, tmp_path, monkeypatch):
    from tools import forecast, test, train
    monkeypatch.chdir(REPO)
    torch.manual_seed(0)
    vae_dir, occ_dir = str(tmp_path / 'vae'), str(tmp_path / 'occ')

    common = data_options(synthetic_root) + ['default_hooks.logger.interval=1',
                                             'default_hooks.checkpoint.interval=2']
    train.main(['configs/vae.py', '--work-dir', vae_dir, '--cfg-options',
                'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
                'val_dataloader.dataset.stride=6', *TINY_VAE, *common])
    vae_ckpt = os.path.join(vae_dir, 'iter_3.pth')
    assert os.path.isfile(vae_ckpt)

    occ_opts = ['model.dit.preset=tiny', 'model.sampler.steps=2',
                *[o.replace('model.', 'model.tokenizer.') for o in TINY_VAE], *common]
    # the tokenizer checkpoint is required, with a message that says how to make it
    with pytest.raises(SystemExit, match='configs/vae.py'):
        train.main(['configs/occ.py', '--work-dir', occ_dir, '--cfg-options',
                    f'model.tokenizer_ckpt={tmp_path}/missing.pth', *occ_opts])
    # the tokenizer's work dir resolves to its last checkpoint
    train.main(['configs/occ.py', '--work-dir', occ_dir, '--cfg-options',
                'train_cfg.max_iters=2', f'model.tokenizer_ckpt={vae_dir}', *occ_opts])
    assert os.path.isfile(os.path.join(occ_dir, 'iter_2.pth'))
    # resume on torch >= 2.6 (weights-only loading) continues from iter 2
    train.main(['configs/occ.py', '--work-dir', occ_dir, '--resume', '--cfg-options',
                'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                f'model.tokenizer_ckpt={vae_dir}', *occ_opts])
    ckpt = torch.load(os.path.join(occ_dir, 'iter_4.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 4

    out_json = str(tmp_path / 'metrics.json')
    test.main(['configs/occ.py', os.path.join(occ_dir, 'iter_4.pth'), '--work-dir',
               str(tmp_path / 'test'), '--out-json', out_json, '--cfg-options', *occ_opts])
    metrics = json.load(open(out_json))
    for key in ('IoU@1s', 'mIoU@3s', 'copy_last/IoU@2s', 'copy_last/mIoU_avg',
                'dynamic_mIoU@1s', 'warp/dynamic_mIoU_avg'):
        assert 0.0 <= metrics[key] <= 100.0
    # K sampled futures: their agreement on the dynamic and the static voxels
    test.main(['configs/occ.py', os.path.join(occ_dir, 'iter_4.pth'), '--work-dir',
               str(tmp_path / 'test2'), '--out-json', out_json, '--samples', '2',
               '--cfg-options', *occ_opts])
    metrics = json.load(open(out_json))
    agree = metrics['sample_agreement']
    assert len(agree['agreement_static_per_frame']) == 6 and agree['num_windows'] == 1
    assert 0.0 <= metrics['agreement_static_avg'] <= 100.0

    out = tmp_path / 'forecast'
    forecast.main(['configs/occ.py', os.path.join(occ_dir, 'iter_4.pth'), '--out', str(out),
                   '--data-root', synthetic_root, '--infos',
                   os.path.join(synthetic_root, 'synthetic_infos_val.pkl'), '--windows', '0',
                   '--cfg-options', *occ_opts])
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    npz = [f for f in files if f.endswith('.npz')]
    assert len(npz) == 1 and any(f.endswith('.png') for f in files)
    pred = np.load(npz[0])['semantics']
    assert pred.shape == (6, 200, 200, 16) and pred.dtype == np.uint8 and pred.max() <= 17
    # scoring the files on disk goes the same path and gives the same numbers
    from tools import eval_occ
    scored = str(tmp_path / 'eval.json')
    eval_occ.main(['--infos', os.path.join(synthetic_root, 'synthetic_infos_val.pkl'),
                   '--gt-root', os.path.join(synthetic_root, 'gts'), '--pred-root', str(out),
                   '--allow-missing', '--out-json', scored, '--work-dir', str(tmp_path / 'eval')])
    a, b = json.load(open(out / 'metrics.json')), json.load(open(scored))
    assert a['num_windows'] == b['num_windows'] == 1
    for key in ('iou_per_frame', 'miou_per_frame'):
        np.testing.assert_allclose(a[key], b[key])
        for name in ('copy_last', 'warp'):
            np.testing.assert_allclose(a['baselines'][name][key], b['baselines'][name][key])
