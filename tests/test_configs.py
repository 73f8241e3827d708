"""Every config file builds: its model, its evaluators, and its train, val and test
dataloaders on a tiny layout written at the config's grid (one batch drawn from each)."""
import copy
import glob
import os

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from occwm.grid import OccGrid
from occwm.registry import METRICS, MODELS
from tests.conftest import REPO
from tests.helpers import write_tiny_scenes

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '*.py')))


def test_every_config_is_listed():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'vae.py', 'occ.py', 'occ_nuscenes.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds(path):
    init_default_scope('occwm')
    import occwm.data  # noqa: F401
    import occwm.evaluation  # noqa: F401
    import occwm.models  # noqa: F401
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'occwm'
    if 'tokenizer_ckpt' in cfg.model:
        cfg.model.tokenizer_ckpt = None
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    METRICS.build(cfg.val_evaluator)
    METRICS.build(cfg.test_evaluator)


def leaf_datasets(ds_cfg):
    """The OccForecastDataset configs inside ``ds_cfg`` (ConcatDataset, RepeatDataset)."""
    if 'datasets' in ds_cfg:
        return [leaf for d in ds_cfg['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in ds_cfg:
        return leaf_datasets(ds_cfg['dataset'])
    return [ds_cfg]


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_dataloaders(path, tmp_path):
    """The config's own pipelines, samplers and collate function; only the data location
    and the worker processes (none: fast) are changed."""
    init_default_scope('occwm')
    import occwm.data  # noqa: F401
    cfg = Config.fromfile(path)
    grid = OccGrid(**cfg.grid)
    # One scene long enough for a full batch of every loader: at least 14 frames (T = 11:
    # 4 windows, stride 3: 2, 'occworld' rule: 2; T = 1, stride 4: 4), more for the
    # GPU configs' batches of 8: (B - 1) strides + T frames, + a stride for the
    # 'occworld' rule (it drops a scene's last window).
    need = 14
    for split in ('train', 'val', 'test'):
        loader_cfg = cfg[f'{split}_dataloader']
        for leaf in leaf_datasets(loader_cfg.dataset):
            T = leaf.get('num_past', 5) + leaf.get('num_future', 6)
            stride = leaf.get('stride', 1)
            need = max(need, (loader_cfg.batch_size - 1) * stride + T + stride)
    write_tiny_scenes(tmp_path, lengths=(need,), grid=grid, name='tiny_infos.pkl')
    for split in ('train', 'val', 'test'):
        loader_cfg = copy.deepcopy(cfg[f'{split}_dataloader'])
        loader_cfg.update(num_workers=0, persistent_workers=False)
        for leaf in leaf_datasets(loader_cfg.dataset):
            leaf.update(data_root=str(tmp_path), ann_file='tiny_infos.pkl')
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        ds = loader.dataset
        first = ds
        while not hasattr(first, 'num_past'):  # ConcatDataset / RepeatDataset
            first = first.datasets[0] if hasattr(first, 'datasets') else first.dataset
        B, T = loader_cfg.batch_size, first.num_past + first.num_future
        assert len(ds) >= B, f'{split}: {len(ds)} windows, batch size {B}'
        batch = next(iter(loader))
        occ, traj = batch['inputs']['occ'], batch['inputs']['traj']
        assert occ.shape == (B, T, *grid.shape) and occ.dtype == torch.uint8, split
        assert traj.shape == (B, T, 3) and traj.dtype == torch.float32, split
        assert len(batch['data_samples']) == B, split


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_augmentation_in_train_pipeline_only(path):
    init_default_scope('occwm')
    import occwm.data  # noqa: F401
    from occwm.registry import TRANSFORMS
    cfg = Config.fromfile(path)
    train = [TRANSFORMS.build(t) for leaf in leaf_datasets(cfg.train_dataloader.dataset)
             for t in leaf.pipeline]
    val = [TRANSFORMS.build(t) for t in cfg.val_dataloader.dataset.pipeline]
    assert any(type(t).__name__ == 'RandomFlipRotateOcc' for t in train)
    assert not any(type(t).__name__ == 'RandomFlipRotateOcc' for t in val)


def _with_grid(node, grid: dict):
    """``node`` (config dicts and lists) with every ``grid`` entry replaced by ``grid``."""
    if isinstance(node, dict):
        return {k: (dict(grid) if k == 'grid' else _with_grid(v, grid)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(_with_grid(v, grid) for v in node)
    return node


@pytest.mark.parametrize('name', ['vae_nuscenes.py', 'occ_nuscenes.py'])
def test_nuscenes_config_trains_one_step(name, tmp_path, monkeypatch):
    """The GPU configs as they are (model sizes, mmengine's AmpOptimWrapper in bfloat16,
    gradient clipping, the schedule, EMA, auto_scale_lr) train one step with mmengine's
    Runner on the CPU at batch 2 on a tiny grid. The checks for CUDA (the wrapper's, and
    tools/train.py's, which swaps the wrapper for a plain one without CUDA) are bypassed:
    its bfloat16 autocast runs on the CPU (torch's GradScaler disables itself there).
    --auto-scale-lr scales the learning rate to the global batch of 2."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
    import tools.train
    from tests.helpers import TINY_GRID
    from tools.train import build_config, parse_args
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(tools.train, '_cuda', lambda: True)  # keep the AmpOptimWrapper
    init_default_scope('occwm')
    cfg = build_config(parse_args([os.path.join(REPO, 'configs', name), '--auto-scale-lr',
                                   '--work-dir', str(tmp_path / 'work')]))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.clip_grad.max_norm > 0 and cfg.auto_scale_lr.enable
    assert any(h['type'] == 'EMAHook' for h in cfg.custom_hooks)
    if name == 'occ_nuscenes.py':  # the nuScenes tokenizer, not the quickstart's
        assert cfg.model.tokenizer_ckpt == 'work_dirs/vae_nuscenes'
        vae = Config.fromfile(os.path.join(REPO, 'configs', 'vae_nuscenes.py'))
        assert cfg.model.tokenizer == vae.model
    tiny = dict(point_cloud_range=TINY_GRID.point_cloud_range, voxel_size=TINY_GRID.voxel_size,
                z_offset=TINY_GRID.z_offset)
    write_tiny_scenes(tmp_path, lengths=(14,), name='tiny_infos.pkl')
    loader = _with_grid(cfg.train_dataloader.to_dict(), tiny)
    loader.update(batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False)
    loader['dataset'].update(data_root=str(tmp_path), ann_file='tiny_infos.pkl')
    cfg.merge_from_dict(dict(model=_with_grid(cfg.model.to_dict(), tiny), train_dataloader=loader))
    cfg.model.pop('tokenizer_ckpt', None)
    cfg.train_cfg.update(max_iters=1, val_interval=10)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    base_lr = cfg.optim_wrapper.optimizer.lr
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    lr = runner.optim_wrapper.param_groups[0]['initial_lr']
    assert lr == pytest.approx(base_lr * 2 / cfg.auto_scale_lr.base_batch_size)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss), loss
    assert os.path.isfile(tmp_path / 'work' / 'iter_1.pth')


def test_gpu_configs_on_a_cpu_and_auto_scale_lr(monkeypatch):
    """Without CUDA tools/train.py swaps mmengine's AmpOptimWrapper (CUDA only) for a plain
    one; --auto-scale-lr needs the config's base batch."""
    import tools.train
    from occwm.runtime import SetupError
    from tools.train import build_config, parse_args
    monkeypatch.setattr(tools.train, '_cuda', lambda: False)
    cfg = build_config(parse_args([os.path.join(REPO, 'configs', 'occ_nuscenes.py')]))
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'dtype' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0 and not cfg.auto_scale_lr.enable
    with pytest.raises(SetupError, match='auto_scale_lr.base_batch_size'):
        build_config(parse_args([os.path.join(REPO, 'configs', 'occ.py'), '--auto-scale-lr']))
