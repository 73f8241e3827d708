"""OccForecaster: a frozen occupancy tokenizer plus a trajectory-conditioned latent DiT
trained by flow matching to forecast the future occupancy.

Frames: ``T = num_past + num_future``; frame ``num_past - 1`` is the present, whose ego
pose (trajectory row) is zero. The DiT sees the clean latents of the past frames and the
noisy latents of the future frames; only the future velocities enter the loss.

Ego-motion-compensated context (``warp_context``): every frame ``k`` also gets the
present latent warped into its own ego frame (``warp_bev`` with the pose ``traj[:, k]``)
and the mask of where that warp has data, as extra DiT input channels. Static scene
then needs no learning to follow the trajectory; the DiT learns the residual (moving
agents, newly seen space).
"""
from __future__ import annotations

import inspect
import os
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from occwm.models.bev_warp import warp_bev
from occwm.models.dit import OccDiT
from occwm.models.flow import interpolate, sample, sample_time, velocity_target
from occwm.registry import MODELS

TOKENIZER_MISSING = ('tokenizer checkpoint {} not found: train the tokenizer first with  '
                     'python tools/train.py configs/vae.py  (or set model.tokenizer_ckpt)')


def resolve_checkpoint(path: str) -> str:
    """``path`` itself, or for an mmengine work dir the checkpoint named in its
    ``last_checkpoint`` file (``mmengine.runner.find_latest_checkpoint``; a relative
    name that does not exist from the current folder is taken relative to the work dir)."""
    if not os.path.isdir(path):
        return path
    from mmengine.runner.checkpoint import find_latest_checkpoint
    ckpt = find_latest_checkpoint(path)
    if ckpt is None:
        return path
    return ckpt if os.path.isabs(ckpt) or os.path.isfile(ckpt) else os.path.join(path, ckpt)


def init_forecaster(model_cfg: dict, checkpoint: Optional[str] = None,
                    device: str = 'cpu') -> 'OccForecaster':
    """Build a forecaster from its config for inference, in eval mode on ``device``.

    The tokenizer weights come from ``checkpoint`` (a forecaster checkpoint holds them),
    so ``model_cfg['tokenizer_ckpt']`` is ignored; without ``checkpoint`` all weights
    are random (timing only).

    Raises:
        FileNotFoundError: ``checkpoint`` is given but no such file exists.
    """
    model_cfg = dict(model_cfg, tokenizer_ckpt=None)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} not found (train one with  '
                                    f'python tools/train.py configs/occ.py)')
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    return model.to(device).eval()


@MODELS.register_module()
class OccForecaster(BaseModel):
    """Latent flow-matching forecaster of future occupancy given the past and the ego
    trajectory.

    Args:
        tokenizer: config dict of the tokenizer (built with ``MODELS.build``); it has
            ``encode(occ (N, X, Y, Z) uint8) -> (mu, logvar)`` each ``(N, C, H, W)`` and
            ``decode(z (N, C, H, W)) -> (N, X, Y, Z) uint8``.
        tokenizer_ckpt: mmengine checkpoint whose ``state_dict`` holds the tokenizer's
            weights, or the tokenizer's work dir (its ``last_checkpoint`` is used);
            ``None`` keeps a random tokenizer (tests only).
        dit: keyword arguments of ``OccDiT`` (e.g. ``dict(preset='S')``);
            ``in_channels`` defaults to the tokenizer's ``latent_channels`` attribute
            and must match it; ``cond_channels`` is set here (``C + 1`` with
            ``warp_context``, else 0).
        num_past, num_future: context and forecast frames.
        latent_scale: the DiT works on ``latent_scale * mu``.
        traj_drop_prob: probability of replacing the trajectory by the null embedding
            in training (classifier-free guidance).
        time_dist: training time density, ``'logit_normal'`` or ``'uniform'``.
        sampler: ``dict(steps, method, cfg_scale)`` defaults of ``forecast``.
        predict_seed: seed of the noise drawn in ``mode='predict'`` (reproducible eval).
        warp_context: give the DiT, per frame, the present latent warped into that
            frame's ego frame plus its valid mask (``C + 1`` extra input channels).
        xy_range: ``(x_min, y_min, x_max, y_max)`` metres covered by the latent grid
            (for the warp); default: the tokenizer's ``grid.point_cloud_range`` if it
            has one, else ``(-40, -40, 40, 40)``.
        prior: the source distribution of the flow. ``'noise'``: standard Gaussian
            (rectified flow, Liu et al. 2022). ``'warp'`` (default): a data-dependent
            coupling (Albergo et al., "Stochastic interpolants with data-dependent
            couplings", ICML 2024): ``x_0 = warp(present latent -> future ego frame) +
            prior_noise * eps``, zeros where the warp has no data, so the flow starts
            from the ego-motion-compensated present and learns the change (moving
            agents, newly seen space) rather than the whole scene.
        prior_noise: ``sigma`` of the Gaussian added to the warped source.
        data_preprocessor: mmengine data preprocessor config (default: move to device).
    """

    def __init__(self, tokenizer: dict, tokenizer_ckpt: Optional[str] = None,
                 dit: Optional[dict] = None, num_past: int = 5, num_future: int = 6,
                 latent_scale: float = 1.0, traj_drop_prob: float = 0.1,
                 time_dist: str = 'logit_normal', sampler: Optional[dict] = None,
                 predict_seed: int = 0, warp_context: bool = True,
                 xy_range: Optional[Sequence[float]] = None, prior: str = 'warp',
                 prior_noise: float = 0.5, data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.tokenizer = MODELS.build(tokenizer)
        if tokenizer_ckpt is not None:
            tokenizer_ckpt = resolve_checkpoint(tokenizer_ckpt)
            if not os.path.isfile(tokenizer_ckpt):
                raise FileNotFoundError(TOKENIZER_MISSING.format(tokenizer_ckpt))
            import occwm.compat  # noqa: F401  (mmengine checkpoints load weights-only)
            from mmengine.runner import load_checkpoint
            load_checkpoint(self.tokenizer, tokenizer_ckpt, map_location='cpu', strict=True)
        self.tokenizer.requires_grad_(False)
        self.tokenizer.eval()

        dit = dict(dit or {})
        c_lat = getattr(self.tokenizer, 'latent_channels', None)
        if c_lat is not None:
            if dit.setdefault('in_channels', c_lat) != c_lat:
                raise ValueError(f"dit.in_channels={dit['in_channels']} but the tokenizer has "
                                 f'{c_lat} latent channels')
        c_in = dit.get('in_channels', inspect.signature(OccDiT).parameters['in_channels'].default)
        dit['cond_channels'] = c_in + 1 if warp_context else 0
        self.dit = OccDiT(**dit)
        self.warp_context = warp_context
        if xy_range is None:
            grid = getattr(self.tokenizer, 'grid', None)
            pcr = getattr(grid, 'point_cloud_range', None)
            xy_range = (pcr[0], pcr[1], pcr[3], pcr[4]) if pcr is not None else (-40., -40., 40., 40.)
        self.xy_range = tuple(float(v) for v in xy_range)
        if prior not in ('noise', 'warp'):
            raise ValueError(f"prior must be 'noise' or 'warp', got {prior!r}")
        self.prior, self.prior_noise = prior, float(prior_noise)
        self.num_past = num_past
        self.num_future = num_future
        self.latent_scale = latent_scale
        self.traj_drop_prob = traj_drop_prob
        self.time_dist = time_dist
        self.sampler = dict(steps=4, method='heun', cfg_scale=1.0)
        self.sampler.update(sampler or {})
        self.predict_seed = predict_seed

    def train(self, mode: bool = True) -> 'OccForecaster':
        """Set the DiT's mode; the frozen tokenizer always stays in eval mode."""
        super().train(mode)
        self.tokenizer.eval()
        return self

    @property
    def is_future(self) -> torch.Tensor:
        """``(T,) bool``: True on the ``num_future`` frames after the present."""
        return torch.arange(self.num_past + self.num_future) >= self.num_past

    @torch.no_grad()
    def encode(self, occ: torch.Tensor) -> torch.Tensor:
        """``(B, T, X, Y, Z) uint8`` to scaled latents ``(B, T, C, H, W) float32`` (mu)."""
        B, T = occ.shape[:2]
        mu, _ = self.tokenizer.encode(occ.flatten(0, 1))  # (B * T, C, H, W)
        return (mu.float() * self.latent_scale).unflatten(0, (B, T))  # (B, T, C, H, W)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``(B, T, C, H, W)`` to ``(B, T, X, Y, Z) uint8`` labels."""
        B, T = z.shape[:2]
        occ = self.tokenizer.decode(z.flatten(0, 1) / self.latent_scale)  # (B * T, X, Y, Z)
        return occ.unflatten(0, (B, T))  # (B, T, X, Y, Z)

    def warped_context(self, present: torch.Tensor, traj: torch.Tensor,
                       keep: torch.Tensor) -> torch.Tensor:
        """The DiT's extra input with ``warp_context``: per frame ``k``, the present
        latent warped into frame ``k``'s ego frame and the valid mask (``warp_bev``).
        Where the trajectory is dropped (``keep`` False) the present latent is used as
        it is, with valid 1, so the unconditional branch sees no trajectory.

        Args:
            present: ``(B, C, H, W)`` scaled latent of the present frame.
            traj: ``(B, T, 3)`` ego pose of each frame in the present frame (x m, y m, yaw rad).
            keep: ``(B,) bool`` trajectory kept.

        Returns:
            ``(B, T, C + 1, H, W)``: warped latent (channels ``:C``), valid mask (``C``).
        """
        warped, valid = warp_bev(present, traj, self.xy_range)  # (B, T, C, H, W), (B, T, 1, H, W)
        k = keep.to(present.device)[:, None, None, None, None]  # (B, 1, 1, 1, 1)
        warped = torch.where(k, warped, present[:, None])  # (B, T, C, H, W)
        valid = torch.where(k, valid, torch.ones_like(valid))  # (B, T, 1, H, W)
        return torch.cat([warped, valid], dim=2)  # (B, T, C + 1, H, W)

    def source(self, present: torch.Tensor, traj_fut: torch.Tensor,
               noise: torch.Tensor) -> torch.Tensor:
        """The flow's starting point ``x_0`` for the future frames (see ``prior``).

        Args:
            present: ``(B, C, H, W)`` scaled latent of the present frame.
            traj_fut: ``(B, T_f, 3)`` future ego poses in the present frame (x m, y m, yaw rad).
            noise: ``(B, T_f, C, H, W)`` standard Gaussian.

        Returns:
            ``(B, T_f, C, H, W)``: ``noise``, or the warped present + ``prior_noise * noise``.
        """
        if self.prior == 'noise':
            return noise
        warped, _ = warp_bev(present, traj_fut, self.xy_range)  # (B, T_f, C, H, W)
        return warped + self.prior_noise * noise

    def loss(self, occ: torch.Tensor, traj: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Flow-matching loss on the future frames (``occwm/models/flow.py``).

        Args:
            occ: ``(B, T, X, Y, Z) uint8`` past and future occupancy.
            traj: ``(B, T, 3) float32`` ego pose per frame (x m, y m, yaw rad), present frame.
        """
        P = self.num_past
        x_data = self.encode(occ)  # (B, T, C, H, W)
        B, device = x_data.shape[0], x_data.device
        future = x_data[:, P:]  # (B, T_f, C, H, W)
        noise = torch.randn_like(future)  # (B, T_f, C, H, W)
        t = sample_time(B, dist=self.time_dist, device=device)  # (B,)
        traj = traj.float().to(device)
        x0 = self.source(x_data[:, P - 1], traj[:, P:], noise)  # (B, T_f, C, H, W)
        x_in = torch.cat([x_data[:, :P], interpolate(future, x0, t)], dim=1)  # (B, T, C, H, W)
        keep = torch.rand(B, device=device) >= self.traj_drop_prob  # (B,)
        cond = self.warped_context(x_data[:, P - 1], traj, keep) if self.warp_context else None
        v = self.dit(x_in, t, traj, keep, self.is_future.to(device), cond)  # (B, T, C, H, W)
        return {'loss_flow': F.mse_loss(v[:, P:], velocity_target(future, x0))}

    @torch.no_grad()
    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, steps: Optional[int] = None,
                 cfg_scale: Optional[float] = None, generator: Optional[torch.Generator] = None,
                 method: Optional[str] = None) -> torch.Tensor:
        """Sample the future occupancy.

        Args:
            past_occ: ``(B, T_p, X, Y, Z) uint8`` the past frames, the last one the present.
            traj: ``(B, T, 3) float32`` ego pose of all ``T = T_p + T_f`` frames
                (x m, y m, yaw rad) in the present ego frame.
            steps, cfg_scale, method: override the ``sampler`` defaults.
            generator: a ``torch.Generator`` (any device) for the initial noise.

        Returns:
            ``(B, T_f, X, Y, Z) uint8`` forecast labels on ``past_occ``'s device.
        """
        if past_occ.shape[1] != self.num_past:
            raise ValueError(f'past_occ has {past_occ.shape[1]} frames, '
                             f'want num_past={self.num_past}')
        P, Tf = self.num_past, self.num_future
        if traj.shape[1] != P + Tf:
            raise ValueError(f'traj has {traj.shape[1]} frames, want {P + Tf}')
        context = self.encode(past_occ)  # (B, T_p, C, H, W)
        B, _, C, H, W = context.shape
        device = context.device
        noise_device = generator.device if generator is not None else device
        noise = torch.randn((B, Tf, C, H, W), generator=generator,
                            device=noise_device).to(device)  # (B, T_f, C, H, W)
        traj = traj.float().to(device)
        x0 = self.source(context[:, -1], traj[:, P:], noise)  # (B, T_f, C, H, W)
        # Per trajectory-keep pattern, once: the context's keys / values and the future
        # frames' warped conditioning (neither depends on the noise or the time).
        caches = {}

        def model_fn(x: torch.Tensor, t: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            r = x.shape[0] // B  # 2 under classifier-free guidance
            traj_r = traj.repeat(r, 1, 1)  # (r * B, T, 3)
            key = tuple(keep.tolist())
            if key not in caches:
                ctx_r = context.repeat(r, 1, 1, 1, 1)  # (r * B, T_p, C, H, W)
                cond = (self.warped_context(ctx_r[:, -1], traj_r, keep)
                        if self.warp_context else None)  # (r * B, T, C + 1, H, W)
                kv = self.dit.encode_context(ctx_r, traj_r[:, :P], keep,
                                             cond[:, :P] if cond is not None else None)
                caches[key] = (kv, cond[:, P:] if cond is not None else None)
            kv, cond_fut = caches[key]
            return self.dit.forward_future(x, t, traj_r[:, P:], keep, kv, cond_fut)  # (rB, T_f, ...)

        z = sample(model_fn, x0,
                   steps=steps or self.sampler['steps'],
                   method=method or self.sampler['method'],
                   cfg_scale=self.sampler['cfg_scale'] if cfg_scale is None else cfg_scale)
        return self.decode(z)  # (B, T_f, X, Y, Z)

    def forward(self, inputs: Dict[str, Union[torch.Tensor, List[torch.Tensor]]],
                data_samples: Optional[list] = None, mode: str = 'tensor'):
        """mmengine entry point.

        Args:
            inputs: ``{'occ': (B, T, X, Y, Z) uint8, 'traj': (B, T, 3) float32}`` (or lists
                of per-sample tensors), ``T = num_past + num_future``.
            mode: ``'loss'`` -> ``{'loss_flow'}``; ``'predict'`` -> a list of ``B`` dicts
                ``{'pred_occ', 'gt_occ', 'baselines': {'copy_last'}}``, each
                ``(T_f, X, Y, Z) uint8`` on the CPU; ``'tensor'`` -> ``(B, T_f, X, Y, Z)``
                forecast.
        """
        occ, traj = inputs['occ'], inputs['traj']
        occ = torch.stack(list(occ)) if isinstance(occ, (list, tuple)) else occ  # (B, T, X, Y, Z)
        traj = torch.stack(list(traj)) if isinstance(traj, (list, tuple)) else traj  # (B, T, 3)
        if mode == 'loss':
            return self.loss(occ, traj)
        P = self.num_past
        generator = torch.Generator().manual_seed(self.predict_seed)
        pred = self.forecast(occ[:, :P], traj, generator=generator)  # (B, T_f, X, Y, Z)
        if mode == 'tensor':
            return pred
        if mode != 'predict':
            raise ValueError(f"unknown mode {mode!r}: use 'loss', 'predict' or 'tensor'")
        Tf = self.num_future
        copy_last = occ[:, P - 1:P].expand(-1, Tf, -1, -1, -1)  # (B, T_f, X, Y, Z)
        return [dict(pred_occ=pred[i].to(torch.uint8).cpu(),
                     gt_occ=occ[i, P:].to(torch.uint8).cpu(),
                     baselines=dict(copy_last=copy_last[i].to(torch.uint8).contiguous().cpu()))
                for i in range(occ.shape[0])]
