"""Flow matching (rectified flow) as plain functions beside the network.

Convention: flow time ``t`` in [0, 1] with ``t = 0`` pure Gaussian noise and ``t = 1``
data. The straight path between a noise sample ``x_0 = eps`` and a data sample ``x_1``

    x_t = t * x_1 + (1 - t) * eps                                   (Liu et al. 2022, eq. 1;
                                                                     Lipman et al. 2022, eq. 22)

has the constant velocity ``dx_t / dt = x_1 - eps``, which the network ``v_theta(x_t, t)``
regresses (conditional flow matching loss ``E ||v_theta(x_t, t) - (x_1 - eps)||^2``,
Lipman et al. eq. 23). Sampling integrates ``dx/dt = v_theta(x, t)`` from ``t = 0`` to
``t = 1`` (``sample``). Training times follow SD3's logit-normal density
(Esser et al. 2024, eq. 19), which puts more weight on the middle of the path.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` times to ``(B, 1, ..., 1)`` broadcastable against ``like``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(t.shape + (1,) * (like.dim() - t.dim()))  # (B, 1, ..., 1)


def interpolate(x_data: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The point ``x_t = t * x_data + (1 - t) * noise`` of the straight path (Liu et al.
    2022, eq. 1). ``x_data``, ``noise``: ``(B, ...)``; ``t``: ``(B,)`` or scalar."""
    t = _expand(t, x_data)  # (B, 1, ..., 1)
    return t * x_data + (1 - t) * noise


def velocity_target(x_data: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target ``dx_t / dt = x_data - noise`` (Lipman et al. 2022, eq. 23)."""
    return x_data - noise


def sample_time(batch: int, generator: Optional[torch.Generator] = None,
                dist: str = 'logit_normal', mean: float = 0.0, std: float = 1.0,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """Training flow times ``(batch,) float32`` in (0, 1).

    ``dist='logit_normal'``: ``t = sigmoid(u)``, ``u ~ N(mean, std^2)`` (Esser et al.
    2024, eq. 19; note SD3 writes ``t`` for the noise level, i.e. ``1 - t`` here, and the
    density is symmetric for ``mean = 0``). ``dist='uniform'``: ``t ~ U(0, 1)``.
    """
    if dist == 'logit_normal':
        u = torch.randn(batch, generator=generator) * std + mean
        t = torch.sigmoid(u)
    elif dist == 'uniform':
        t = torch.rand(batch, generator=generator)
    else:
        raise ValueError(f"unknown time distribution {dist!r}: use 'logit_normal' or 'uniform'")
    return t.to(device) if device is not None else t


@torch.no_grad()
def sample(model_fn: ModelFn, noise: torch.Tensor, steps: int = 8, method: str = 'euler',
           cfg_scale: float = 1.0, t_start: float = 0.0, t_end: float = 1.0) -> torch.Tensor:
    """Integrate ``dx/dt = v(x, t)`` from noise at ``t_start`` to data at ``t_end``.

    Args:
        model_fn: ``model_fn(x (B', ...), t (B',), keep_traj (B',) bool) -> v (B', ...)``;
            ``keep_traj = False`` asks for the unconditional velocity.
        noise: ``(B, ...)`` the state at ``t_start`` (standard Gaussian).
        steps: number of uniform time steps.
        method: ``'euler'`` (``steps`` evaluations) or ``'heun'`` (2nd order,
            ``2 * steps - 1`` evaluations: the last step is Euler, as in EDM).
        cfg_scale: classifier-free guidance ``s``: ``v = v_u + s (v_c - v_u)`` (Ho &
            Salimans 2022, eq. 6, written for velocities). ``s = 1`` is the conditional
            model alone (one forward of ``B``); otherwise one forward of ``2B``.

    Returns:
        ``(B, ...)`` the state at ``t_end``.
    """
    if method not in ('euler', 'heun'):
        raise ValueError(f"unknown sampler {method!r}: use 'euler' or 'heun'")
    B = noise.shape[0]
    device = noise.device

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        t_b = torch.full((B,), t, dtype=x.dtype, device=device)  # (B,)
        if cfg_scale == 1.0:
            return model_fn(x, t_b, torch.ones(B, dtype=torch.bool, device=device))
        keep = torch.cat([torch.ones(B, dtype=torch.bool, device=device),
                          torch.zeros(B, dtype=torch.bool, device=device)])  # (2B,)
        v = model_fn(torch.cat([x, x]), torch.cat([t_b, t_b]), keep)  # (2B, ...)
        v_c, v_u = v.chunk(2)  # (B, ...) each
        return v_u + cfg_scale * (v_c - v_u)

    t_steps = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
    x = noise
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        h = t_next - t_cur
        # Euler step.
        d_cur = velocity(x, t_cur)
        x_next = x + h * d_cur
        # Heun correction: average the slopes at both ends (Karras et al. 2022, Alg. 1,
        # lines 6-8); EDM skips it on the last step, so do we.
        if method == 'heun' and i < steps - 1:
            d_next = velocity(x_next, t_next)
            x_next = x + h * 0.5 * (d_cur + d_next)
        x = x_next
    return x
