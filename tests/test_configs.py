"""Every config file builds: its model, its evaluators, and its train, val and test
dataloaders on a tiny layout written at the config's grid (one batch drawn from each)."""
import copy
import glob
import os

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
    # One scene of 14 frames: enough windows for a full batch of every loader (T = 11:
    # 4 windows, stride 3: 2, 'occworld' rule: 2; T = 1, stride 4: 4).
    write_tiny_scenes(tmp_path, lengths=(14,), grid=grid, name='tiny_infos.pkl')
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
