"""occwm.engine.checks: the one-line messages of a missing config, data set or tokenizer
checkpoint, and the hint to run from the repository root."""
import os

import pytest
from mmengine.config import Config

from occwm.engine import checks
from occwm.runtime import SetupError


def data_cfg(root, ann='synthetic_infos_train.pkl'):
    return Config(dict(train_dataloader=dict(dataset=dict(data_root=root, ann_file=ann)),
                       val_dataloader=dict(dataset=dict(data_root=root, ann_file=ann))))


def test_no_data(tmp_path, monkeypatch):
    monkeypatch.setattr(checks, 'REPO', str(tmp_path))  # a fresh clone, run from its root
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SetupError, match='python tools/make_synthetic.py data/synthetic'):
        checks.check_data(data_cfg('data/synthetic/'))
    with pytest.raises(SetupError, match='tools/create_data.py'):
        checks.check_data(data_cfg('data/nuscenes/', 'nuscenes_infos_train.pkl'))
    os.makedirs('data/synthetic')
    open('data/synthetic/synthetic_infos_train.pkl', 'wb').close()
    checks.check_data(data_cfg('data/synthetic/'))  # found: no error


def test_wrong_folder(tmp_path, monkeypatch):
    repo = tmp_path / 'repo'  # a repository holding the data and configs
    (repo / 'data' / 'synthetic').mkdir(parents=True)
    (repo / 'data' / 'synthetic' / 'synthetic_infos_train.pkl').write_bytes(b'')
    (repo / 'configs').mkdir()
    (repo / 'configs' / 'vae.py').write_text('x = 1\n')
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.setattr(checks, 'REPO', str(repo))
    monkeypatch.chdir(tmp_path / 'elsewhere')
    with pytest.raises(SetupError, match=f'run the tools from the repository root \\(cd {repo}\\)'):
        checks.check_data(data_cfg('data/synthetic/'))
    with pytest.raises(SetupError, match='repository root'):
        checks.load_config('configs/vae.py')
    with pytest.raises(SetupError, match='config configs/none.py not found'):
        checks.load_config('configs/none.py')


def test_no_tokenizer(tmp_path, capsys):
    os.makedirs(tmp_path / 'vae')  # a work dir whose training saved no checkpoint yet
    for path in (tmp_path / 'vae', tmp_path / 'none.pth'):
        cfg = Config(dict(model=dict(type='OccForecaster', tokenizer_ckpt=str(path))))
        with pytest.raises(SetupError, match='python tools/train.py configs/vae.py'):
            checks.check_tokenizer(cfg)
    assert 'Did not find last_checkpoint' not in capsys.readouterr().out
    checks.check_tokenizer(Config(dict(model=dict(type='OccVAE'))))  # nothing to check


def test_model_checkpoint_from_a_file_or_a_work_dir(tmp_path):
    from occwm.engine.checks import model_checkpoint
    from occwm.runtime import SetupError
    ckpt = tmp_path / 'iter_10.pth'
    ckpt.write_bytes(b'x')
    assert model_checkpoint(str(ckpt)) == str(ckpt)
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    assert model_checkpoint(str(tmp_path)) == str(ckpt)
    with pytest.raises(SetupError, match='nope.pth not found'):
        model_checkpoint(str(tmp_path / 'nope.pth'))
