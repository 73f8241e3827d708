"""occwm.api on a tiny forecaster (random weights) over a tiny synthetic set: the
README's "Python API" example runs as written, forecasts have the documented shapes,
and a newcomer's mistakes end in one-line errors."""
import os
import re

import numpy as np
import pytest
import torch

from occwm.api import WorldModel, checkpoint_config, load_window
from occwm.runtime import SetupError
from tests.conftest import REPO

TINY = {'model.tokenizer.embed_dim': 8, 'model.tokenizer.channels': [8, 16, 16],
        'model.tokenizer.hidden_channels': 32, 'model.tokenizer.latent_channels': 4,
        'model.dit.preset': 'tiny', 'model.sampler.steps': 2}


def save_tiny_model(work_dir, config='configs/occ.py', options=TINY) -> str:
    """A checkpoint as mmengine's Runner writes it (``meta['cfg']``, ``state_dict``) of
    the config's model with ``options``, random weights, and the work dir's
    ``last_checkpoint``; returns the .pth path."""
    from mmengine.config import Config

    from occwm.registry import MODELS
    cfg = Config.fromfile(os.path.join(REPO, config))
    cfg.merge_from_dict(dict(options))
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, tokenizer_ckpt=None) if 'tokenizer_ckpt' in cfg.model
                         else cfg.model)
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(str(work_dir), 'iter_1.pth')
    torch.save({'meta': {'cfg': cfg.pretty_text, 'iter': 1}, 'state_dict': model.state_dict()},
               path)
    with open(os.path.join(str(work_dir), 'last_checkpoint'), 'w') as f:
        f.write(path)
    return path


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A folder laid out as the repository after the quickstart: ``data/synthetic``
    (one train, one val scene of 17 frames) and ``work_dirs/occ`` (a tiny forecaster)."""
    from occwm.synthetic.scenes import write_synthetic_dataset
    root = tmp_path_factory.mktemp('project')
    write_synthetic_dataset(str(root / 'data' / 'synthetic'), num_train=1, num_val=1,
                            num_frames=17, seed=3, progress=False)
    save_tiny_model(root / 'work_dirs' / 'occ')
    return root


@pytest.fixture(scope='module')
def wm(project):
    return WorldModel.load(str(project / 'work_dirs' / 'occ'))


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    section = text.split('\n## Python API\n', 1)[1].split('\n## ', 1)[0]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


@pytest.mark.slow
def test_readme_example_runs(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    exec(compile(readme_example(), 'README.md (Python API)', 'exec'), {})
    out = capsys.readouterr().out
    for name in ('model', 'copy_last', 'warp'):
        assert re.search(rf'^{name} \[', out, re.M), out
    assert os.path.getsize(project / 'outputs' / 'api_forecast.png') > 1000
    assert 'outputs/api_forecast.png' in out


def test_forecast_shapes_seed_and_rollout(project, wm):
    assert (wm.num_past, wm.num_future) == (5, 6) and wm.grid.shape == (200, 200, 16)
    w = load_window(str(project / 'data' / 'synthetic'),
                    str(project / 'data' / 'synthetic' / 'synthetic_infos_val.pkl'), 0,
                    num_future=7)
    assert w.past.shape == (5, 200, 200, 16) and w.traj.shape == (12, 3)
    np.testing.assert_allclose(w.traj[4], 0.0, atol=1e-6)  # the present ego frame
    a = wm.forecast(w.past, w.traj[:11], seed=1)
    assert a.shape == (6, 200, 200, 16) and a.dtype == np.uint8 and a.max() <= 17
    np.testing.assert_array_equal(a, wm.forecast(torch.from_numpy(w.past), w.traj[:11], seed=1))
    b = wm.forecast(w.past, w.traj)  # 7 frames: one more than a step, rolled out
    assert b.shape == (7, 200, 200, 16)
    base = wm.baselines(w.past, w.traj[:11])
    assert set(base) == {'copy_last', 'warp'}
    np.testing.assert_array_equal(base['copy_last'][3], w.past[-1])
    s = wm.score(base['copy_last'], base['copy_last'])
    assert s['iou'] == [100.0] * 6 and s['miou'] == [100.0] * 6


def test_input_errors(wm):
    past = np.full((5, 200, 200, 16), 17, np.uint8)
    traj = np.zeros((11, 3), np.float32)
    with pytest.raises(ValueError, match=r'past must be \(T_p=5'):
        wm.forecast(past[:4], traj)
    with pytest.raises(ValueError, match='traj must be'):
        wm.forecast(past, traj[:5])
    with pytest.raises(ValueError, match='label 40 out of range'):
        wm.forecast(np.full_like(past, 40), traj)


def test_load_errors(tmp_path, project):
    with pytest.raises(SetupError, match='python tools/train.py configs/occ.py'):
        WorldModel.load(str(tmp_path / 'work_dirs' / 'occ'))  # nothing there
    os.makedirs(tmp_path / 'empty')  # a work dir whose training saved nothing yet
    with pytest.raises(SetupError, match='no trained world model'):
        WorldModel.load(str(tmp_path / 'empty'))
    vae = save_tiny_model(tmp_path / 'vae', 'configs/vae.py',
                          {k.replace('model.tokenizer.', 'model.'): v for k, v in TINY.items()
                           if k.startswith('model.tokenizer.')})
    with pytest.raises(SetupError, match='OccVAE checkpoint, not a world model'):
        WorldModel.load(vae)
    assert checkpoint_config(vae).model.type == 'OccVAE'
    with pytest.raises(SetupError, match='make_synthetic.py'):
        load_window(str(tmp_path), str(tmp_path / 'none.pkl'), 0)
