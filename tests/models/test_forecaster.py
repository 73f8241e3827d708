"""OccForecaster with a small fake tokenizer (same API as ``OccVAE``) on toy grids."""
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner import save_checkpoint

from occwm.evaluation.baselines import warp_static
from occwm.grid import OccGrid
from occwm.models.flow import sample
from occwm.models.forecaster import OccForecaster
from occwm.registry import MODELS


FREE = 17
X, Y, Z = 16, 16, 2
VOXEL = 0.4  # metres
XY_RANGE = (-X * VOXEL / 2, -Y * VOXEL / 2, X * VOXEL / 2, Y * VOXEL / 2)  # (-3.2, -3.2, 3.2, 3.2)
P, TF = 3, 3
TOY_GRID = OccGrid(point_cloud_range=XY_RANGE[:2] + (-1.0,) + XY_RANGE[2:] + (-1.0 + Z * VOXEL,),
                   voxel_size=VOXEL)


@MODELS.register_module(force=True)
class FakeTokenizer(nn.Module):
    """Occupied fraction average-pooled by ``f`` to ``(N, 1, X/f, Y/f)``, lifted to
    ``latent_channels`` by a 1x1 conv; decoded by argmax of a linear layer per voxel."""

    def __init__(self, latent_channels: int = 4, factor: int = 4, z: int = Z):
        super().__init__()
        self.latent_channels, self.factor, self.z = latent_channels, factor, z
        self.grid = TOY_GRID
        self.latent_shape = (X // factor, Y // factor)
        self.enc = nn.Conv2d(1, latent_channels, 1)
        self.dec = nn.Conv2d(latent_channels, 18 * z, 1)
        self.drop = nn.Dropout(0.5)  # would make encode random in train mode

    def encode(self, occ):
        occupied = (occ != FREE).float().mean(-1)[:, None]  # (N, 1, X, Y)
        mu = self.drop(self.enc(F.avg_pool2d(occupied, self.factor)))  # (N, C, H, W)
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        logits = self.dec(F.interpolate(z, scale_factor=self.factor))  # (N, 18 * Z, X, Y)
        N, _, Xs, Ys = logits.shape
        logits = logits.reshape(N, 18, self.z, Xs, Ys)  # (N, 18, Z, X, Y)
        return logits.argmax(1).permute(0, 2, 3, 1).to(torch.uint8)  # (N, X, Y, Z)


def build(**kwargs):
    cfg = dict(tokenizer=dict(type='FakeTokenizer'), tokenizer_ckpt=None,
               dit=dict(preset='tiny', patch_size=1), num_past=P, num_future=TF,
               sampler=dict(steps=2, method='euler'), xy_range=XY_RANGE)
    cfg.update(kwargs)
    return OccForecaster(**cfg)


def toy_batch(B: int, generator: torch.Generator):
    """A static 4x4 block seen from an ego car that drives along x at one speed up to
    the present and at another, random one afterwards: the future position of the
    block follows the trajectory, which the past alone does not tell."""
    T = P + TF
    k = torch.arange(T) - (P - 1)  # frame offsets, 0 at the present
    v_past = torch.randint(-1, 2, (B,), generator=generator).float()
    v_fut = torch.randint(-2, 3, (B,), generator=generator).float()
    ego_x = torch.where(k[None] <= 0, v_past[:, None] * k, v_fut[:, None] * k)  # (B, T) voxels
    bx = torch.randint(6, 10, (B,), generator=generator)
    by = torch.randint(2, 10, (B,), generator=generator)
    occ = torch.full((B, T, X, Y, Z), FREE, dtype=torch.uint8)
    for b in range(B):
        for f in range(T):
            x0 = int(bx[b] - ego_x[b, f])
            occ[b, f, max(x0, 0):max(x0 + 4, 0), by[b]:by[b] + 4, 0] = 4
    traj = torch.zeros(B, T, 3)
    traj[..., 0] = ego_x * VOXEL  # metres
    return {'occ': occ, 'traj': traj}


def test_frozen_tokenizer_and_gradients():
    torch.manual_seed(0)
    model = build()
    model.train()
    assert model.training and model.dit.training and not model.tokenizer.training
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(('dit.', 'residual.')) for n in trainable)
    losses = model(toy_batch(2, torch.Generator().manual_seed(0)), mode='loss')
    assert set(losses) == {'loss_flow', 'loss_gate', 'loss_column'}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.tokenizer.parameters())
    assert all(p.grad is not None for p in model.dit.parameters())
    assert all(p.grad is not None for p in model.residual.parameters())


def test_train_step_with_mmengine_optim_wrapper():
    torch.manual_seed(0)
    model = build()
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.AdamW(params, lr=1e-3))
    tok_before = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    log = model.train_step({'inputs': toy_batch(2, torch.Generator().manual_seed(0))}, wrapper)
    assert 'loss_flow' in log and torch.isfinite(log['loss'])
    for k, v in model.tokenizer.state_dict().items():
        torch.testing.assert_close(v, tok_before[k])


def test_predict_shapes_and_determinism():
    torch.manual_seed(0)
    model = build()
    model.eval()
    batch = toy_batch(2, torch.Generator().manual_seed(0))
    out = model(batch, mode='predict')
    assert len(out) == 2
    for res in out:  # forecasts only: scoring them is the metric's job
        assert set(res) == {'pred_occ'}
        v = res['pred_occ']
        assert v.shape == (TF, X, Y, Z) and v.dtype == torch.uint8 and v.device.type == 'cpu'
    again = model(batch, mode='predict')
    for a, b in zip(out, again):
        assert torch.equal(a['pred_occ'], b['pred_occ'])


def test_forecast_standalone():
    torch.manual_seed(0)
    model = build(sampler=dict(steps=2, method='heun', cfg_scale=2.0))
    batch = toy_batch(1, torch.Generator().manual_seed(0))
    run = lambda: model.forecast(batch['occ'][:, :P], batch['traj'],
                                 generator=torch.Generator().manual_seed(3))
    pred = run()
    assert pred.shape == (1, TF, X, Y, Z) and pred.dtype == torch.uint8
    assert torch.equal(pred, run())
    fast = model.forecast(batch['occ'][:, :P], batch['traj'], steps=1, cfg_scale=1.0)
    assert fast.shape == pred.shape
    with pytest.raises(ValueError, match='num_past'):
        model.forecast(batch['occ'], batch['traj'])


@pytest.mark.parametrize('warp_context,prior', [(False, 'noise'), (True, 'noise'), (True, 'warp')])
def test_forecast_equals_sampling_the_full_network(warp_context, prior):
    """``forecast`` runs the context once (cached keys / values and warped conditioning);
    the result equals the sampler over the plain full-sequence DiT forward, with and
    without guidance."""
    torch.manual_seed(0)
    model = build(warp_context=warp_context, prior=prior, decoder='tokenizer').eval()
    assert model.dit.cond_channels == (5 if warp_context else 0)  # C + 1 with C = 4
    for p in model.dit.parameters():  # leave adaLN-Zero so the velocity is not zero
        torch.nn.init.normal_(p, std=0.1)
    batch = toy_batch(2, torch.Generator().manual_seed(0))
    past, traj = batch['occ'][:, :P], batch['traj']
    model.decode = lambda z: z  # compare latents, not argmax labels
    for cfg in (1.0, 2.5):
        pred = model.forecast(past, traj, steps=3, method='heun', cfg_scale=cfg,
                              generator=torch.Generator().manual_seed(7))
        ctx = model.encode(past)  # (B, P, C, H, W)
        noise = torch.randn((2, TF, *ctx.shape[2:]), generator=torch.Generator().manual_seed(7))
        x0 = model.source(ctx[:, -1], traj[:, P:], noise)

        def model_fn(x, t, keep):
            r = x.shape[0] // 2
            x_in = torch.cat([ctx.repeat(r, 1, 1, 1, 1), x], dim=1)
            traj_r = traj.repeat(r, 1, 1)
            cond = (model.warped_context(ctx[:, -1].repeat(r, 1, 1, 1), traj_r, keep)
                    if warp_context else None)
            return model.dit(x_in, t, traj_r, keep, model.is_future, cond)[:, P:]

        z = sample(model_fn, x0, steps=3, method='heun', cfg_scale=cfg)
        torch.testing.assert_close(pred, z, atol=1e-5, rtol=1e-5)


def test_tokenizer_checkpoint(tmp_path):
    missing = str(tmp_path / 'vae.pth')
    with pytest.raises(FileNotFoundError, match='train the tokenizer first with  python tools/'
                                                'train.py configs/vae.py'):
        build(tokenizer_ckpt=missing)
    torch.manual_seed(1)
    tok = FakeTokenizer()
    save_checkpoint({'state_dict': tok.state_dict(), 'meta': {}}, missing)
    assert os.path.isfile(missing)
    model = build(tokenizer_ckpt=missing)
    for k, v in tok.state_dict().items():
        torch.testing.assert_close(model.tokenizer.state_dict()[k], v)
    with pytest.raises(ValueError, match='latent channels'):
        build(dit=dict(preset='tiny', in_channels=7))


def test_toy_training_reduces_loss():
    torch.manual_seed(0)
    model = build(traj_drop_prob=0.1)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(100):
        loss = model(toy_batch(8, g), mode='loss')['loss_flow']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    print(f'toy flow loss {first:.4f} -> {last:.4f}')
    assert last < 0.5 * first
    # The trajectory helps: same data, noise and times, with and without it.
    batch = toy_batch(64, torch.Generator().manual_seed(5))
    held_out = {}
    for drop in (0.0, 1.0):
        model.traj_drop_prob = drop
        torch.manual_seed(1)
        with torch.no_grad():
            held_out[drop] = model(batch, mode='loss')['loss_flow'].item()
    assert held_out[0.0] < held_out[1.0]


def test_warped_context_follows_the_trajectory():
    """With one latent cell per voxel the present latent warped by the trajectory is the
    future latent wherever the warp has data; a dropped trajectory gives the present
    latent itself with valid 1, whatever the poses."""
    torch.manual_seed(0)
    model = build(tokenizer=dict(type='FakeTokenizer', factor=1)).eval()
    batch = toy_batch(8, torch.Generator().manual_seed(2))
    z = model.encode(batch['occ'])  # (B, T, C, X, Y)
    keep = torch.ones(8, dtype=torch.bool)
    cond = model.warped_context(z[:, P - 1], batch['traj'], keep)  # (B, T, C + 1, X, Y)
    assert cond.shape == (8, P + TF, 5, X, Y)
    warped, valid = cond[:, :, :4], cond[:, :, 4:]
    assert valid.min() == 0  # the ego moved: some cells come from outside
    inside = valid.expand_as(warped) > 0
    torch.testing.assert_close(warped[:, P - 1], z[:, P - 1], atol=1e-5, rtol=0)  # present
    torch.testing.assert_close(warped[inside], z[inside], atol=1e-5, rtol=0)
    copy_err = (z[:, P:] - z[:, P - 1:P]).abs()[inside[:, P:]].max()
    assert copy_err > 0.1  # the block moved, so copying the present is wrong
    # Dropped trajectory: no pose information in the conditioning.
    drop = ~keep
    null = model.warped_context(z[:, P - 1], batch['traj'], drop)
    torch.testing.assert_close(null, model.warped_context(z[:, P - 1], batch['traj'] + 3.0, drop))
    torch.testing.assert_close(null[:, :, :4], z[:, P - 1:P].expand(-1, P + TF, -1, -1, -1))
    assert torch.all(null[:, :, 4] == 1)
    mixed = torch.tensor([True, False] * 4)
    both = model.warped_context(z[:, P - 1], batch['traj'], mixed)
    torch.testing.assert_close(both[mixed], cond[mixed])
    torch.testing.assert_close(both[~mixed], null[~mixed])


def _train_toy(warp_context: bool, steps: int) -> list:
    torch.manual_seed(0)
    model = build(traj_drop_prob=0.1, warp_context=warp_context)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        loss = model(toy_batch(8, g), mode='loss')['loss_flow']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_toy_training_with_and_without_warped_context():
    """Both variants train on the moving-block toy. (Which is lower after a few hundred
    steps depends on the seed here: the toy's flow loss is dominated by the noise, not
    by the block's motion.)"""
    for warp_context in (False, True):
        losses = _train_toy(warp_context, steps=100)
        first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
        print(f'warp_context={warp_context}: toy flow loss {first:.4f} -> {last:.4f}')
        assert last < 0.5 * first


def test_warp_prior_source():
    """With ``prior='warp'`` the flow starts at the present latent warped into each
    future ego frame plus ``prior_noise`` times the noise; with ``'noise'`` at the noise."""
    model = build(prior='warp', prior_noise=0.0)
    present = torch.zeros(1, 4, 8, 8)
    present[0, :, 5, 3] = 1.0  # one hot cell
    cell = (XY_RANGE[2] - XY_RANGE[0]) / 8  # metres per latent cell
    traj_fut = torch.tensor([[[cell, 0.0, 0.0], [2 * cell, 0.0, 0.0]]])  # 1 and 2 cells forward
    noise = torch.randn(1, 2, 4, 8, 8)
    x0 = model.source(present, traj_fut, noise)
    assert x0[0, 0, 0, 4, 3] == pytest.approx(1.0) and x0[0, 1, 0, 3, 3] == pytest.approx(1.0)
    assert x0[0, 0].abs().sum() == pytest.approx(4.0)
    assert torch.equal(build(prior='noise').source(present, traj_fut, noise), noise)
    with pytest.raises(ValueError, match='prior'):
        build(prior='gaussian')


def test_zero_residual_is_the_warp_baseline_voxel_for_voxel():
    """A freshly built residual forecaster (gate closed) returns the warp baseline
    exactly, whatever the DiT's weights; so does mode='predict'."""
    torch.manual_seed(0)
    model = build().eval()
    for p in model.dit.parameters():  # a DiT that forecasts something
        torch.nn.init.normal_(p, std=0.1)
    batch = toy_batch(3, torch.Generator().manual_seed(1))
    pred = model.forecast(batch['occ'][:, :P], batch['traj'])  # (B, T_f, X, Y, Z)
    for b in range(3):
        want = warp_static(batch['occ'][b, P - 1], batch['traj'][b, P:], TOY_GRID)
        assert torch.equal(pred[b], want)
    assert (pred != batch['occ'][:, P - 1:P]).any()  # the toy ego moves: warp != copy-last


def test_open_gate_decodes_changed_columns():
    """Gate open everywhere: every column comes from the column head; with a zero head
    the keep bonus reproduces the warped present, with a strong class bias that class."""
    torch.manual_seed(0)
    model = build().eval()
    res = model.residual
    torch.nn.init.constant_(res.gate.bias, 10.0)
    for p in res.column.parameters():
        torch.nn.init.zeros_(p)
    batch = toy_batch(2, torch.Generator().manual_seed(2))
    warp = model.forecast(batch['occ'][:, :P], batch['traj'])
    want = torch.stack([warp_static(batch['occ'][b, P - 1], batch['traj'][b, P:], TOY_GRID)
                        for b in range(2)])
    assert torch.equal(warp, want)
    bias = res.column[-1].bias.data.view(Z, 18)
    bias[:, 4] = 5.0  # car everywhere beats the keep bonus (2)
    assert (model.forecast(batch['occ'][:, :P], batch['traj']) == 4).all()


def test_latent_cache_encodes_each_frame_once():
    """Windows with tokens: a frame is encoded on its first step only (one at a time on
    the CPU: its latent does not depend on the batch); a flipped copy is another key;
    the cached latents equal fresh ones."""
    from occwm.models.forecaster import _cache_keys
    from occwm.window import OccWindow
    torch.manual_seed(0)
    model = build()
    batch = toy_batch(2, torch.Generator().manual_seed(3))
    wins = [OccWindow(occ=batch['occ'][b].numpy(), traj=batch['traj'][b].numpy(), num_past=P,
                      scene_name='s', tokens=[f'{b}-{k}' for k in range(P + TF)]) for b in range(2)]
    calls = []
    enc = model.tokenizer.encode
    model.tokenizer.encode = lambda occ: (calls.append(len(occ)), enc(occ))[1]
    keys = _cache_keys(wins, P + TF)
    a = model.encode_cached(batch['occ'], keys)
    b = model.encode_cached(batch['occ'], keys)
    assert calls == [1] * (2 * (P + TF)) and torch.equal(a, b)
    torch.testing.assert_close(a, model.encode(batch['occ']))
    wins[0].aug = dict(flip_y=True)
    calls.clear()
    model.encode_cached(batch['occ'], _cache_keys(wins, P + TF))
    assert calls == [1] * (P + TF)  # only the flipped window's frames are new
    wins[0].aug = dict(yaw=0.1)  # continuous augmentation: never cached
    assert _cache_keys(wins, P + TF)[:P + TF] == [None] * (P + TF)


def test_residual_training_learns_the_change():
    """On the toy scene (ego moving, static block), the residual decoder's losses fall
    when trained alone; the warp is not perfect there (the block leaves the grid)."""
    torch.manual_seed(0)
    model = build()
    model.train()
    opt = torch.optim.Adam(model.residual.parameters(), lr=3e-3)
    batch = toy_batch(4, torch.Generator().manual_seed(4))
    first = None
    for _ in range(40):
        losses = model(batch, mode='loss')
        loss = losses['loss_gate'] + losses['loss_column']
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_untrusted_latents_keep_the_base():
    """A present frame the tokenizer cannot reconstruct (trust below the threshold)
    gets the warp baseline even with the gate wide open."""
    torch.manual_seed(0)
    batch = toy_batch(2, torch.Generator().manual_seed(5))
    past, traj = batch['occ'][:, :P], batch['traj']
    for min_iou, expect_warp in ((None, False), (1.01, True)):
        model = build(trust_min_iou=min_iou).eval()
        torch.nn.init.constant_(model.residual.gate.bias, 10.0)
        torch.nn.init.constant_(model.residual.column[-1].bias, 0.0)
        model.residual.column[-1].bias.data.view(Z, 18)[:, 4] = 5.0  # car everywhere
        pred = model.forecast(past, traj)
        want = torch.stack([warp_static(past[b, -1], traj[b, P:], TOY_GRID) for b in range(2)])
        assert torch.equal(pred, want) == expect_warp
    trust = model.latent_trust(past[:, -1], model.encode(past[:, -1:])[:, 0])
    assert trust.shape == (2,) and ((trust >= 0) & (trust <= 1)).all()


def test_auto_trust_is_calibrated_on_the_training_frames():
    """trust_min_iou='auto': TrustCalibrationHook stores the tokenizer's reconstruction
    IoU of training present frames before the first step (a buffer saved with the
    weights, random states untouched); the threshold is trust_ratio x the lowest; none
    before calibration, and a calibrated model is left alone."""
    import random
    from types import SimpleNamespace

    import numpy as np

    from occwm.engine import TrustCalibrationHook
    torch.manual_seed(0)
    batch = toy_batch(3, torch.Generator().manual_seed(6))
    model = build(trust_min_iou='auto', trust_ratio=0.5, trust_calib_frames=3)
    assert model.trust_threshold() is None
    dataset = [dict(inputs=dict(occ=o)) for o in batch['occ']]
    logs = []
    runner = SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=dataset),
                             logger=SimpleNamespace(info=logs.append))
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    TrustCalibrationHook().before_train(runner)
    assert torch.equal(states[0], torch.get_rng_state())
    assert (states[1] == np.random.get_state()[1]).all() and states[2] == random.getstate()
    present = batch['occ'][:, P - 1]
    want = model.latent_trust(present, model.encode(present[:, None])[:, 0])
    assert torch.allclose(model.trust_ious, want)
    assert model.trust_threshold() == pytest.approx(0.5 * float(want.min()))
    assert 'threshold' in logs[-1]
    model.trust_ious[0] = 2.0  # calibrated: the hook keeps it
    TrustCalibrationHook().before_train(runner)
    assert float(model.trust_ious[0]) == 2.0
    again = build(trust_min_iou='auto', trust_ratio=0.5, trust_calib_frames=3)
    again.load_state_dict(model.state_dict())  # saved and restored with the weights
    assert again.trust_threshold() == pytest.approx(model.trust_threshold())
    with pytest.raises(ValueError, match='auto'):
        build(trust_min_iou='sometimes')
    with pytest.raises(ValueError, match='auto'):
        build(trust_min_iou=0.5).calibrate_trust(present)


def test_weights_from_before_auto_trust_load_uncalibrated():
    old = build(trust_min_iou=0.5)
    model = build(trust_min_iou='auto', trust_calib_frames=3)
    model.load_state_dict(old.state_dict())  # no trust_ious in it: not an error
    assert torch.isnan(model.trust_ious).all() and model.trust_threshold() is None


def moving_car_window():
    """``occ (1, P + TF, X, Y, Z) uint8``: a road on z = 0 and a car 2 cells long moving
    one cell a frame along x; ``traj (1, P + TF, 3)``: a standing ego."""
    T = P + TF
    occ = torch.full((1, T, X, Y, Z), 17, dtype=torch.uint8)
    occ[..., 0] = 11  # road
    for t in range(T):
        occ[0, t, 2 + t:4 + t, 4:6, 1] = 4
    return occ, torch.zeros(1, T, 3)


def test_untrusted_windows_get_the_tracked_agents_with_untrusted_motion():
    """untrusted='motion': a window failing the trust check is the warp with the tracked
    agents moved on (occwm.motion.motion_warp, no unseen fill); 'warp': the warp."""
    from occwm.motion import motion_warp
    occ, traj = moving_car_window()
    past = occ[:, :P]
    for untrusted in ('motion', 'warp'):
        model = build(trust_min_iou=1.01, untrusted=untrusted, unseen=(11,),
                      motion=dict(classes=(4,), min_speed=0.1)).eval()
        torch.nn.init.constant_(model.residual.gate.bias, 10.0)
        pred = model.forecast(past, traj)
        if untrusted == 'motion':
            want, _ = motion_warp(past[0].numpy(), traj[0].double().numpy(), TOY_GRID,
                                  classes=(4,), min_speed=0.1)
            assert torch.equal(pred[0], torch.from_numpy(want))
            assert torch.equal(pred[0], occ[0, P:])  # the car where it drove on to
        else:
            assert torch.equal(pred[0], warp_static(past[0, -1], traj[0, P:], TOY_GRID))
    with pytest.raises(ValueError, match='untrusted'):
        build(untrusted='freeze')


def test_predict_samples_draw_the_tracked_agents_motion():
    """predict_samples K: sample 0 is pred_occ with the agents as tracked; the other
    samples draw each agent's velocity (sampler['agent_spread']) and differ on it only;
    agent_spread=0 is the point forecast."""
    occ, traj = moving_car_window()
    model = build(predict_samples=4, motion=dict(classes=(4,), min_speed=0.1),
                  sampler=dict(steps=2, method='euler', agent_spread=4.0)).eval()
    with torch.no_grad():
        out = model({'occ': occ, 'traj': traj}, mode='predict')[0]
        point = model.forecast(occ[:, :P], traj, generator=torch.Generator().manual_seed(0))
        point0 = model.forecast(occ[:, :P], traj, generator=torch.Generator().manual_seed(9),
                                agent_spread=0.0)
    samples = out['pred_samples']  # (K, T_f, X, Y, Z)
    assert torch.equal(samples[0], out['pred_occ'])
    assert torch.equal(point, point0)  # no spread: the generator does not move the agents
    moved = [(s != samples[0]) for s in samples[1:]]
    assert any(m.any() for m in moved)
    for m, s in zip(moved, samples[1:]):  # only the car's voxels and the free it leaves
        assert set(s[m].tolist()) | set(samples[0][m].tolist()) <= {4, 17}
        assert not m[..., 0].any()  # the road layer is the same in every sample
