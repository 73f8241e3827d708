"""Checkpoints that cannot be confused (occwm/models/checkpoint.py): strict loading,
one-line errors naming the file for the wrong model, another size or grid, missing
keys, non-finite weights and damaged files; older checkpoints still load."""
import os
import zipfile
from pathlib import Path

import pytest
import torch
from mmengine.model import BaseModel

from occwm.models.checkpoint import describe_model, load_checkpoint, read_checkpoint
from occwm.models.forecaster import init_forecaster
from occwm.registry import MODELS
from occwm.runtime import SetupError
from tests.helpers import TINY_GRID

GRID = dict(point_cloud_range=tuple(TINY_GRID.point_cloud_range), voxel_size=0.4, z_offset=0.0)
TOKENIZER = dict(type='OccVAE', grid=GRID, embed_dim=8, channels=(8, 16, 16), hidden_channels=32,
                 latent_channels=4)
FORECASTER = dict(type='OccForecaster', tokenizer=TOKENIZER, tokenizer_ckpt=None,
                  dit=dict(preset='tiny'), residual=dict(width=8))


def build(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg)


def save(path, model, meta=True, **extra):
    """A checkpoint as training writes it (``meta['occwm']`` unless ``meta=False``:
    one of the checkpoints from before it)."""
    ckpt = {'meta': {'iter': 1, **({'occwm': describe_model(model, 'cfg')} if meta else {})},
            'state_dict': model.state_dict(), **extra}
    torch.save(ckpt, path)
    return str(path)


def one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    msg = str(err.value)
    assert '\n' not in msg, msg
    for p in parts:
        assert p in msg, msg
    return msg


@pytest.fixture(scope='module')
def models():
    return build(TOKENIZER), build(FORECASTER)


def test_describe_model_records_type_grid_and_sizes(models):
    tok, fc = models
    info = describe_model(fc, 'some config')
    assert info['model_type'] == 'OccForecaster' and info['tokenizer_type'] == 'OccVAE'
    assert info['grid']['shape'] == [32, 32, 8] and info['latent_channels'] == 4
    assert info['dit'] == dict(depth=2, hidden_size=32, num_heads=2, patch_size=2, in_channels=4)
    assert len(info['config_digest']) == 16
    assert describe_model(tok)['model_type'] == 'OccVAE' and 'dit' not in describe_model(tok)


@pytest.mark.parametrize('meta', [True, False], ids=['meta', 'older checkpoint'])
def test_tokenizer_checkpoint_given_as_forecaster_and_back(tmp_path, models, meta):
    tok, fc = models
    tok_path = save(tmp_path / 'vae.pth', tok, meta)
    with pytest.raises(SetupError) as err:
        init_forecaster(FORECASTER, tok_path)
    one_line(err, tok_path, 'OccVAE (the tokenizer)', 'OccForecaster')
    fc_path = save(tmp_path / 'occ.pth', fc, meta)
    with pytest.raises(SetupError) as err:
        load_checkpoint(build(TOKENIZER), fc_path)
    one_line(err, fc_path, 'OccForecaster' if meta else '`tokenizer.`', 'OccVAE')


def test_forecaster_checkpoint_loads_strictly_older_ones_too(tmp_path, models):
    _, fc = models
    for meta in (True, False):
        path = save(tmp_path / f'occ_{meta}.pth', fc, meta)
        loaded = init_forecaster(FORECASTER, path)
        for k, v in fc.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k


def test_size_mismatch_names_a_key_and_both_shapes(tmp_path, models):
    _, fc = models
    path = save(tmp_path / 'occ.pth', fc)
    other = dict(FORECASTER, dit=dict(preset='tiny', hidden_size=64))
    with pytest.raises(SetupError) as err:
        init_forecaster(other, path)
    one_line(err, path, 'another model size', 'first dit.blocks.0.',  # adaLN: 6 x width
             '(192,) in the checkpoint, (384,) in the model',
             'checkpoint: OccForecaster (DiT depth 2, width 32',
             'this config: OccForecaster (DiT depth 2, width 64')


def test_missing_and_unexpected_keys(tmp_path, models):
    _, fc = models
    state = fc.state_dict()
    dropped = [k for k in state if k.startswith('dit.blocks.1.')]
    model = build(FORECASTER)
    for meta in (True, False):
        ckpt = {'meta': {'occwm': describe_model(fc)} if meta else {},
                'state_dict': {**{k: v for k, v in state.items() if k not in dropped},
                               'extra.weight': torch.zeros(2)}}
        path = str(tmp_path / f'partial_{meta}.pth')
        torch.save(ckpt, path)
        with pytest.raises(SetupError) as err:
            load_checkpoint(model, path)
        one_line(err, path, f'{len(dropped)} missing keys (dit.blocks.1.',
                 '1 unexpected keys (extra.weight)')
        load_checkpoint(model, path, strict=False)  # non-strict: what fits is loaded


def test_another_grid_is_refused(tmp_path, models):
    tok, _ = models
    path = save(tmp_path / 'vae.pth', tok)
    shifted = dict(GRID, point_cloud_range=(-3.2, -6.4, -1.0, 9.6, 6.4, 2.2))  # same shape
    with pytest.raises(SetupError) as err:
        load_checkpoint(build(dict(TOKENIZER, grid=shifted)), path)
    one_line(err, path, 'another grid')


def test_non_finite_weights_are_refused_buffers_may_hold_nan(tmp_path, models):
    _, fc = models
    state = fc.state_dict()
    key = next(k for k in state if k.startswith('dit.') and state[k].is_floating_point())
    path = str(tmp_path / 'nan.pth')
    nan = torch.full_like(state[key], float('nan'))
    torch.save({'meta': {}, 'state_dict': {**state, key: nan}}, path)
    with pytest.raises(SetupError) as err:
        init_forecaster(FORECASTER, path)
    one_line(err, path, 'non-finite weights (state_dict: 1 of', f'first: {key}')
    # a buffer's NaN is a sentinel, not a diverged weight: an uncalibrated trust threshold
    auto = build(dict(FORECASTER, trust_min_iou='auto'))
    assert torch.isnan(auto.trust_ious).all()
    init_forecaster(dict(FORECASTER, trust_min_iou='auto'), save(tmp_path / 'auto.pth', auto))


def _damaged(tmp_path, good):
    data = Path(good).read_bytes()
    files = {'empty': b'', 'truncated': data[:len(data) // 2],
             'random bytes': os.urandom(4096), 'text': b'not a checkpoint\n'}
    for name, content in files.items():
        (tmp_path / f'{name}.pth').write_bytes(content)
    with zipfile.ZipFile(tmp_path / 'npz.pth', 'w') as zf:  # a zip of another kind
        zf.writestr('a.npy', b'\x93NUMPY')
    torch.save([1, 2, 3], tmp_path / 'list.pth')  # a torch file that is no checkpoint
    flipped = bytearray(data)  # one bit flipped in the tensor data: a CRC failure
    with zipfile.ZipFile(good) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size // 2
    flipped[at] ^= 0x10
    (tmp_path / 'crc.pth').write_bytes(bytes(flipped))
    return {**{k: tmp_path / f'{k}.pth' for k in files},
            'zip of another kind': tmp_path / 'npz.pth', 'no state_dict': tmp_path / 'list.pth',
            'bit flip': tmp_path / 'crc.pth'}


def test_damaged_files_give_one_line_naming_the_file(tmp_path, models):
    tok, _ = models
    good = save(tmp_path / 'good.pth', tok)
    read_checkpoint(good)
    for what, path in _damaged(tmp_path, good).items():
        with pytest.raises(SetupError) as err:
            load_checkpoint(build(TOKENIZER), str(path))
        msg = one_line(err, str(path))
        print(f'{what}: {msg}')


class Toy(BaseModel):
    def __init__(self, n=2):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return {'loss': self.w.sum()}


class ToyV2(Toy):
    """Toy plus a buffer older checkpoints lack, filled by its own load hook."""

    def __init__(self, n=2):
        super().__init__(n)
        self.register_buffer('scale', torch.ones(1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + 'scale', torch.ones(1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def test_older_layouts_a_module_accepts_still_load(tmp_path):
    old = save(tmp_path / 'old.pth', Toy(2), meta=False)
    load_checkpoint(ToyV2(2), old)  # its load hook fills the new buffer

    class ToyV3(Toy):  # the same new buffer without a hook: refused
        def __init__(self):
            super().__init__(2)
            self.register_buffer('scale', torch.ones(1))

    with pytest.raises(SetupError) as err:
        load_checkpoint(ToyV3(), old)
    one_line(err, old, '1 missing keys (scale)')


def test_runner_load_from_is_strict(tmp_path):
    """``OccRunner.load_checkpoint`` (``load_from`` of tools/test.py and forecast.py)."""
    from occwm.engine.runner import OccRunner
    path = save(tmp_path / 'toy3.pth', Toy(3))
    runner = OccRunner(model=Toy(2), work_dir=str(tmp_path / 'work'), default_scope='occwm',
                       experiment_name=f'load_{os.getpid()}_{id(tmp_path)}', load_from=path)
    with pytest.raises(SetupError) as err:
        runner.load_or_resume()
    one_line(err, path, 'another model size', 'w: (3,) in the checkpoint, (2,) in the model')
