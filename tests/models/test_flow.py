"""Flow matching: path, target, time sampling and the Euler / Heun / CFG sampler."""
import pytest
import torch

from occwm.models.flow import interpolate, sample, sample_time, velocity_target


def test_interpolate_endpoints_and_target():
    g = torch.Generator().manual_seed(0)
    x1, eps = torch.randn(3, 2, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    torch.testing.assert_close(interpolate(x1, eps, torch.zeros(3)), eps)
    torch.testing.assert_close(interpolate(x1, eps, torch.ones(3)), x1)
    t = torch.tensor([0.25, 0.5, 0.75])
    torch.testing.assert_close(interpolate(x1, eps, t)[1], 0.5 * (x1[1] + eps[1]))
    # d x_t / dt is the target, by finite difference.
    dt = 1e-3
    fd = (interpolate(x1, eps, t + dt) - interpolate(x1, eps, t)) / dt
    torch.testing.assert_close(fd, velocity_target(x1, eps), atol=1e-2, rtol=1e-2)


def test_sample_time():
    g = torch.Generator().manual_seed(0)
    for dist in ('logit_normal', 'uniform'):
        t = sample_time(20000, generator=g, dist=dist)
        assert t.shape == (20000,) and t.dtype == torch.float32
        assert 0 < t.min() and t.max() < 1
        assert abs(t.mean().item() - 0.5) < 0.01
    # logit-normal concentrates on the middle: std(sigmoid(N(0,1))) ~ 0.21 < 1/sqrt(12).
    assert sample_time(20000, generator=g).std() < 0.23
    a = sample_time(5, generator=torch.Generator().manual_seed(1))
    b = sample_time(5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        sample_time(3, dist='cosine')


def test_euler_exact_on_point_mass_field():
    """For data = a single point x1, the flow's velocity is v(x, t) = (x1 - x) / (1 - t),
    linear in x with straight trajectories: Euler lands on x1 exactly for any step count."""
    x1 = torch.tensor([[3.0, -2.0, 0.5]])
    noise = torch.tensor([[0.1, 0.7, -1.2]])
    calls = []

    def model_fn(x, t, keep):
        calls.append(x.shape[0])
        return (x1 - x) / (1 - t[:, None])

    for steps in (1, 3, 8):
        calls.clear()
        out = sample(model_fn, noise, steps=steps, method='euler')
        torch.testing.assert_close(out, x1)
        assert calls == [1] * steps  # cfg_scale 1: one forward of B per step


def test_heun_exact_on_constant_and_time_linear_field():
    noise = torch.zeros(2, 3)
    c = torch.tensor([1.0, 2.0, -3.0])
    out = sample(lambda x, t, k: c.expand_as(x), noise, steps=4, method='heun')
    torch.testing.assert_close(out, noise + c)
    # v = 2 t: Heun (trapezoid) is exact on every step but the last Euler one.
    n_eval = []

    def ramp(x, t, k):
        n_eval.append(1)
        return 2 * t[:, None].expand_as(x)

    out = sample(ramp, noise, steps=4, method='heun', t_end=1.0)
    # exact trapezoid from 0 to 0.75 gives 0.5625, the last Euler step adds 0.25 * 1.5.
    torch.testing.assert_close(out, torch.full_like(noise, 0.5625 + 0.25 * 1.5))
    assert len(n_eval) == 2 * 4 - 1


def test_cfg():
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    v_c, v_u = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 1.0])
    batches = []

    def model_fn(x, t, keep):
        batches.append(x.shape[0])
        return torch.where(keep[:, None], v_c, v_u).expand_as(x)

    cond = sample(model_fn, noise, steps=2, cfg_scale=1.0)
    torch.testing.assert_close(cond, noise + v_c)
    assert batches == [2, 2]
    batches.clear()
    guided = sample(model_fn, noise, steps=2, cfg_scale=3.0)
    torch.testing.assert_close(guided, noise + v_u + 3.0 * (v_c - v_u))
    assert batches == [4, 4]  # one forward of 2B per evaluation
    # Scale 1 through the 2B path (scale given as 1 + tiny) equals conditional.
    torch.testing.assert_close(sample(model_fn, noise, steps=2, cfg_scale=1.0 + 1e-12), cond)
    unc = sample(model_fn, noise, steps=2, cfg_scale=0.0)
    torch.testing.assert_close(unc, noise + v_u)


def test_bad_method():
    with pytest.raises(ValueError):
        sample(lambda x, t, k: x, torch.zeros(1, 2), steps=2, method='rk4')
