"""OccDiT: shapes, adaLN-Zero initialisation, trajectory conditioning."""
import pytest
import torch

from occwm.models.dit import DIT_PRESETS, OccDiT


def _inputs(B=2, T=5, C=4, H=8, W=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, H, W, generator=g)
    t = torch.rand(B, generator=g)
    traj = torch.randn(B, T, 3, generator=g)
    keep = torch.ones(B, dtype=torch.bool)
    is_future = torch.arange(T) >= 2
    return x, t, traj, keep, is_future


def test_presets_complete():
    for name, size in DIT_PRESETS.items():
        assert set(size) == {'depth', 'hidden_size', 'num_heads'}, name
        assert size['hidden_size'] % size['num_heads'] == 0, name
        assert size['hidden_size'] % 4 == 0, name


def test_output_shape_and_zero_init():
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, patch_size=2, preset='tiny')
    x, t, traj, keep, is_future = _inputs()
    v = model(x, t, traj, keep, is_future)
    assert v.shape == x.shape and v.dtype == torch.float32
    # adaLN-Zero and a zero final layer: the initial prediction is exactly zero.
    assert torch.count_nonzero(v) == 0


def test_batched_is_future_and_bad_size():
    model = OccDiT(in_channels=4, patch_size=2, preset='tiny')
    x, t, traj, keep, is_future = _inputs()
    v = model(x, t, traj, keep, is_future[None].expand(2, -1))
    assert v.shape == x.shape
    with pytest.raises(ValueError, match='multiple of patch size'):
        model(x[..., :7], t, traj, keep, is_future)


def test_explicit_size_overrides_preset():
    model = OccDiT(in_channels=4, preset=None, depth=3, hidden_size=16, num_heads=2)
    assert (model.depth, model.hidden_size, len(model.blocks)) == (3, 16, 3)
    assert [b.axis for b in model.blocks] == ['space', 'time', 'space']
    with pytest.raises(ValueError):
        OccDiT(in_channels=4, preset=None, depth=2)


def _train_steps(model, x, t, traj, keep, is_future, steps=3):
    """A few Adam steps. Under adaLN-Zero the first step only moves the final linear
    layer (every other gradient passes through its zero weight), so take three."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    target = torch.randn_like(x, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(x, t, traj, keep, is_future) - target) ** 2).mean()
        loss.backward()
        opt.step()


def test_trajectory_conditioning_after_training():
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, patch_size=2, preset='tiny')
    x, t, traj, keep, is_future = _inputs()
    _train_steps(model, x, t, traj, keep, is_future)
    with torch.no_grad():
        v_cond = model(x, t, traj, keep, is_future)
        v_uncond = model(x, t, traj, ~keep, is_future)
        v_other = model(x, t, traj + 1.0, keep, is_future)
        # Without a trajectory the pose values do not matter.
        v_uncond_other = model(x, t, traj + 1.0, ~keep, is_future)
    assert (v_cond - v_uncond).abs().max() > 1e-3
    assert (v_cond - v_other).abs().max() > 1e-3
    torch.testing.assert_close(v_uncond, v_uncond_other)


def test_mixed_keep_matches_separate_calls():
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, patch_size=2, preset='tiny')
    x, t, traj, keep, is_future = _inputs()
    _train_steps(model, x, t, traj, keep, is_future)
    mixed = torch.tensor([True, False])
    with torch.no_grad():
        v = model(x, t, traj, mixed, is_future)
        v0 = model(x[:1], t[:1], traj[:1], mixed[:1], is_future)
        v1 = model(x[1:], t[1:], traj[1:], mixed[1:], is_future)
    torch.testing.assert_close(v, torch.cat([v0, v1]), atol=1e-5, rtol=1e-5)


def test_time_attention_mixes_frames_space_attention_does_not():
    """A change in one frame reaches other frames only through the time blocks."""
    torch.manual_seed(0)
    x, t, traj, keep, is_future = _inputs(B=1)
    for depth, crosses in ((1, False), (2, True)):
        model = OccDiT(in_channels=4, preset=None, depth=depth, hidden_size=32, num_heads=2)
        for p in model.parameters():  # leave adaLN-Zero so outputs depend on inputs
            torch.nn.init.normal_(p, std=0.1)
        x2 = x.clone()
        x2[:, 0] += 1.0
        with torch.no_grad():
            d = (model(x, t, traj, keep, is_future) - model(x2, t, traj, keep, is_future)).abs()
        assert d[:, 0].max() > 1e-4
        assert (d[:, 1:].max() > 1e-6) == crosses


def _random_model(depth=3):
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, preset=None, depth=depth, hidden_size=32, num_heads=2)
    for p in model.parameters():  # leave adaLN-Zero so outputs depend on inputs
        torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def test_context_does_not_see_the_future():
    model = _random_model()
    x, t, traj, keep, is_future = _inputs()
    x2 = x.clone()
    x2[:, 3] += 1.0  # a future frame
    with torch.no_grad():
        d = (model(x, t, traj, keep, is_future) - model(x2, t, traj, keep, is_future)).abs()
        d_t = (model(x, t, traj, keep, is_future) - model(x, t * 0.5, traj, keep, is_future)).abs()
    assert d[:, :2].max() == 0 and d[:, 2:].max() > 1e-4
    assert d_t[:, :2].max() == 0 and d_t[:, 2:].max() > 1e-4


@pytest.mark.parametrize('depth', [1, 2, 3])
def test_cached_context_matches_full_forward(depth):
    model = _random_model(depth)
    x, t, traj, keep, is_future = _inputs()
    keep = torch.tensor([True, False])
    P = 2
    with torch.no_grad():
        full = model(x, t, traj, keep, is_future)[:, P:]
        cache = model.encode_context(x[:, :P], traj[:, :P], keep)
        fut = model.forward_future(x[:, P:], t, traj[:, P:], keep, cache)
    assert fut.shape == full.shape
    torch.testing.assert_close(fut, full, atol=1e-5, rtol=1e-5)


def test_cond_channels_extra_input():
    """``cond`` is concatenated to ``x`` before the patch embedding; the output keeps
    ``in_channels``, starts at zero, and depends on ``cond`` once the weights move."""
    x, t, traj, keep, is_future = _inputs()
    cond = torch.randn(2, 5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    model = OccDiT(in_channels=4, patch_size=2, preset='tiny', cond_channels=3)
    assert model.x_embedder.in_channels == 7
    v = model(x, t, traj, keep, is_future, cond)
    assert v.shape == x.shape and torch.count_nonzero(v) == 0
    with pytest.raises(ValueError, match='cond must be'):
        model(x, t, traj, keep, is_future)
    with pytest.raises(ValueError, match='cond_channels=0'):
        OccDiT(in_channels=4, preset='tiny')(x, t, traj, keep, is_future, cond)
    torch.manual_seed(0)
    model = OccDiT(in_channels=4, preset=None, depth=3, hidden_size=32, num_heads=2,
                   cond_channels=3)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    model.eval()
    keep = torch.tensor([True, False])
    P = 2
    with torch.no_grad():
        full = model(x, t, traj, keep, is_future, cond)
        other = model(x, t, traj, keep, is_future, cond + 1.0)
        cache = model.encode_context(x[:, :P], traj[:, :P], keep, cond[:, :P])
        fut = model.forward_future(x[:, P:], t, traj[:, P:], keep, cache, cond[:, P:])
    assert (full - other).abs().max() > 1e-4
    torch.testing.assert_close(fut, full[:, P:], atol=1e-5, rtol=1e-5)
