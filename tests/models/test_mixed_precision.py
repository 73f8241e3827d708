"""Speed switches of the models, checked against float32 on the CPU: bfloat16 autocast
of the DiT and of the tokenizer's dense parts (the sparse convolutions stay float32 on
the CPU: spconv has no bfloat16), a whole forecaster step under the autocast that
mmengine's AmpOptimWrapper opens, PyTorch's scaled_dot_product_attention, and
torch.compile of the DiT blocks."""
import copy

import pytest
import torch
import torch.nn.functional as F

import occwm.compat  # noqa: F401
from occwm.geometry import trajectory_in_frame
from occwm.models import OccForecaster, OccVAE
from occwm.models import dit as dit_module
from occwm.models.dit import OccDiT
from occwm.synthetic.scenes import generate_scene
from tests.helpers import TINY_GRID

GRID = dict(point_cloud_range=TINY_GRID.point_cloud_range, voxel_size=TINY_GRID.voxel_size,
            z_offset=TINY_GRID.z_offset)
BF16 = torch.autocast('cpu', dtype=torch.bfloat16)


def rel_err(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


def _dit_inputs(B=2, T=5, C=4, H=8, W=8):
    g = torch.Generator().manual_seed(0)
    return dict(x=torch.randn(B, T, C, H, W, generator=g), t=torch.rand(B, generator=g),
                traj=torch.randn(B, T, 3, generator=g), traj_keep=torch.tensor([True, False]),
                is_future=torch.arange(T) >= 2, cond=torch.randn(B, T, C + 1, H, W, generator=g))


def _random_dit(**kwargs):
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, cond_channels=5, preset='tiny', **kwargs)
    with torch.no_grad():  # leave adaLN-Zero's zero start: a zero output compares nothing
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model


def test_dit_bf16_autocast_matches_fp32():
    ref = _random_dit()
    amp = _random_dit(autocast_dtype='bfloat16')
    inp = _dit_inputs()
    v32, v16 = ref(**inp), amp(**inp)
    assert v16.dtype == torch.float32
    assert rel_err(v16, v32) < 2e-2  # bf16 keeps 8 mantissa bits: ~0.4 % per op
    # the sampler's path (cached context, future frames only) under autocast
    P = 2
    cache = amp.encode_context(inp['x'][:, :P], inp['traj'][:, :P], inp['traj_keep'],
                               inp['cond'][:, :P])
    fut = amp.forward_future(inp['x'][:, P:], inp['t'], inp['traj'][:, P:], inp['traj_keep'],
                             cache, inp['cond'][:, P:])
    assert fut.dtype == torch.float32 and rel_err(fut, v32[:, P:]) < 2e-2
    v16.sum().backward()  # gradients flow in bf16 autocast
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in amp.parameters())
    with pytest.raises(ValueError, match='autocast_dtype'):
        OccDiT(preset='tiny', autocast_dtype='int8')


def test_dit_attention_is_scaled_dot_product_attention(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get('attn_mask') is not None)
        return sdpa(*args, **kwargs)
    model = _random_dit()
    monkeypatch.setattr(dit_module.F, 'scaled_dot_product_attention', counting)
    model(**_dit_inputs())
    # one call per block; time blocks (odd) carry the context-only mask
    assert calls == [i % 2 == 1 for i in range(model.depth)]


def test_dit_compile_keeps_outputs_and_checkpoints():
    ref = _random_dit()
    comp = _random_dit(compile=dict(backend='aot_eager'))  # inductor: the same, slower to build
    assert list(comp.state_dict()) == list(ref.state_dict())
    inp = _dit_inputs()
    torch.testing.assert_close(comp(**inp), ref(**inp))
    comp(**inp).sum().backward()
    twin = copy.deepcopy(comp)  # mmengine's EMAHook deep-copies the model
    torch.testing.assert_close(twin(**inp), ref(**inp))


def _occ(B=2, T=11):
    occ, poses, _ = generate_scene(0, num_frames=T, grid=TINY_GRID)
    traj = torch.from_numpy(trajectory_in_frame(poses, 4)).float()
    return torch.from_numpy(occ)[None].repeat(B, 1, 1, 1, 1), traj[None].repeat(B, 1, 1)


def test_tokenizer_bf16_dense_parts_sparse_fp32():
    torch.manual_seed(0)
    ref = OccVAE(grid=GRID)
    amp = OccVAE(grid=GRID, autocast_dtype='bfloat16')
    amp.load_state_dict(ref.state_dict())
    occ = _occ()[0][:, 0]  # (2, X, Y, Z)
    mu32, lv32 = ref.encode(occ)
    mu16, lv16 = amp.encode(occ)
    assert mu16.dtype == lv16.dtype == torch.float32
    assert rel_err(mu16, mu32) < 2e-2
    same = (amp.decode(mu32) == ref.decode(mu32)).float().mean()
    assert same > 0.99, same
    # under an outer autocast (AmpOptimWrapper) the sparse stages still run (float32)
    torch.manual_seed(1)
    l32 = ref.loss(occ)
    torch.manual_seed(1)
    with BF16:
        l16 = ref.loss(occ)
    for k in l32:
        a, b = float(l16[k].detach()), float(l32[k].detach())
        assert abs(a - b) < 2e-2 * abs(b) + 1e-4, (k, a, b)
    sum(l16.values()).backward()


def test_forecaster_step_and_forecast_under_bf16_autocast():
    torch.manual_seed(0)
    model = OccForecaster(tokenizer=dict(type='OccVAE', grid=GRID), dit=dict(preset='tiny'))
    with torch.no_grad():
        for p in model.dit.parameters():
            p.normal_(0, 0.05)
    occ, traj = _occ()
    torch.manual_seed(1)
    l32 = model.loss(occ, traj)
    torch.manual_seed(1)
    with BF16:
        l16 = model.loss(occ, traj)
    assert set(l16) == set(l32)
    for k in l32:
        a, b = float(l16[k].detach()), float(l32[k].detach())
        assert abs(a - b) < 2e-2 * abs(b) + 1e-3, (k, a, b)
    sum(l16.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.dit.parameters())
    gen = torch.Generator().manual_seed(0)
    f32 = model.forecast(occ[:, :5], traj, generator=gen)
    with BF16:
        f16 = model.forecast(occ[:, :5], traj, generator=torch.Generator().manual_seed(0))
    assert f16.dtype == torch.uint8 and f16.shape == f32.shape
    assert (f16 == f32).float().mean() > 0.99
