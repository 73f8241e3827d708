"""Every config file builds: its model, its evaluator, and its datasets on a tiny layout."""
import glob
import os

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from occwm.registry import DATASETS, METRICS, MODELS
from tests.conftest import REPO
from tests.helpers import write_tiny_scenes

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '*.py')))


def test_every_config_is_listed():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'vae.py', 'occ.py', 'occ_nuscenes.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_builds(path, tmp_path):
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
    ann = write_tiny_scenes(tmp_path, lengths=(12,))
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        ds_cfg = loader.dataset.copy()
        ds_cfg.update(data_root=str(tmp_path), ann_file=ann, pipeline=[])
        ds = DATASETS.build(ds_cfg)
        assert len(ds) >= 1


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_augmentation_in_train_pipeline_only(path):
    init_default_scope('occwm')
    import occwm.data  # noqa: F401
    from occwm.registry import TRANSFORMS
    cfg = Config.fromfile(path)
    train = [TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline]
    val = [TRANSFORMS.build(t) for t in cfg.val_dataloader.dataset.pipeline]
    assert any(type(t).__name__ == 'RandomFlipRotateOcc' for t in train)
    assert not any(type(t).__name__ == 'RandomFlipRotateOcc' for t in val)
