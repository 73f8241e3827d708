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

Decoding (``decoder``): ``'residual'`` (default) builds each future frame on the present
occupancy warped into that frame at full resolution (the ``warp`` baseline; with
``agent_motion`` the agents the past frames show moving are first carried on at
their velocity, ``occwm.motion``) and lets ``occwm.models.residual.ResidualDecoder``
change only the BEV columns it gates open and the newly seen ones, reading the forecast
latent beside the warped present latent; a zero residual gives that base voxel for voxel
(the warp baseline when no agent moves). ``'tokenizer'`` decodes the latents from scratch with the
tokenizer's decoder (the earlier latent-only path, capped by the tokenizer's
reconstruction).
"""
from __future__ import annotations

import inspect
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel

from occwm.geometry import relative_se2
from occwm.grid import DEFAULT_GRID
from occwm.models.checkpoint import load_checkpoint
from occwm.models.dit import OccDiT
from occwm.models.flow import interpolate, sample, sample_time, velocity_target
from occwm.models.residual import ResidualDecoder
from occwm.motion import motion_warp
from occwm.registry import MODELS
from occwm.warp import warp_bev, warp_planar
from occwm.window import OccWindow

SAMPLE_STRIDE = 1_000_003  # seed offset between the samples of one window (predict_samples)
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
                    device: str = 'cpu', strict: bool = True) -> 'OccForecaster':
    """Build a forecaster from its config for inference, in eval mode on ``device``.

    The tokenizer weights come from ``checkpoint`` (a forecaster ``.pth``, or the work
    dir whose ``last_checkpoint`` names one; a forecaster checkpoint holds them), so
    ``model_cfg['tokenizer_ckpt']`` is ignored; without ``checkpoint`` all weights
    are random (timing only).

    Loading is strict (``occwm.models.checkpoint.load_checkpoint``): the checkpoint must
    be this config's forecaster, key for key and shape for shape, with finite weights.
    ``strict=False`` lets keys the model lacks or does not fill pass (a variant of the
    trained model built from the same weights, e.g. ``decoder='tokenizer'`` for a timing
    comparison); shapes and finiteness are still checked.

    Raises:
        FileNotFoundError: ``checkpoint`` is given but no such file exists.
        SetupError: it is unreadable (empty, truncated, not a checkpoint), of another
            model (e.g. the tokenizer's), grid or size, has missing / unexpected keys or
            non-finite weights; one line naming the file.
    """
    model_cfg = dict(model_cfg, tokenizer_ckpt=None)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        checkpoint = resolve_checkpoint(checkpoint)  # a work dir: its last checkpoint
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} not found (train one with  '
                                    f'python tools/train.py configs/occ.py)')
        load_checkpoint(model, checkpoint, map_location='cpu', strict=strict)
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
            ``None`` keeps a random tokenizer (tests only). Loaded strictly
            (``occwm.models.checkpoint``): ``SetupError`` for a checkpoint of another
            model or size, an unreadable file or non-finite weights;
            ``FileNotFoundError`` when it does not exist.
        dit: keyword arguments of ``OccDiT`` (e.g. ``dict(preset='S')``);
            ``in_channels`` defaults to the tokenizer's ``latent_channels`` attribute
            and must match it; ``cond_channels`` is set here (``C + 1`` with
            ``warp_context``, else 0).
        num_past, num_future: context and forecast frames.
        latent_scale: the DiT works on ``latent_scale * mu``.
        traj_drop_prob: probability of replacing the trajectory by the null embedding
            in training (classifier-free guidance).
        time_dist: training time density, ``'logit_normal'`` or ``'uniform'``.
        sampler: ``dict(steps, method, cfg_scale)`` defaults of ``forecast``, and
            ``agent_spread`` (default 1.0): the ``agent_spread`` of ``forecast`` that the
            extra samples of ``predict_samples`` are drawn with.
        predict_seed: seed of the noise drawn in ``mode='predict'`` (reproducible eval).
        warp_context: give the DiT, per frame, the present latent warped into that
            frame's ego frame plus its valid mask (``C + 1`` extra input channels).
        xy_range: ``(x_min, y_min, x_max, y_max)`` metres covered by the latent grid
            (for the warp); default: the tokenizer's ``grid.point_cloud_range`` if it
            has one, else the Occ3D grid's ``(-40, -40, 40, 40)``.
        prior: the source distribution of the flow. ``'noise'``: standard Gaussian
            (rectified flow, Liu et al. 2022). ``'warp'`` (default): a data-dependent
            coupling (Albergo et al., "Stochastic interpolants with data-dependent
            couplings", ICML 2024): ``x_0 = warp(present latent -> future ego frame) +
            prior_noise * eps``, zeros where the warp has no data, so the flow starts
            from the ego-motion-compensated present and learns the change (moving
            agents, newly seen space) rather than the whole scene.
        prior_noise: ``sigma`` of the Gaussian added to the warped source.
        decode_present: in ``mode='predict'``, also return the tokenizer's
            reconstruction of the present frame (``pred_present``; I²-World's "0 s").
        decoder: ``'residual'`` (warped present + ``ResidualDecoder``) or
            ``'tokenizer'`` (latent-only; see the module docstring).
        residual: keyword arguments of ``ResidualDecoder`` (``width``, ``gate_threshold``,
            ...); the grid and latent sizes come from the tokenizer.
        true_latent_prob: in training, the residual decoder reads the true future latent
            with this probability, else the DiT's one-step estimate ``x_t + (1 - t) v``
            (detached), so it learns how far to trust a forecast latent.
        loss_weights: ``{'loss_flow', 'loss_gate', 'loss_column'}`` multipliers.
        cache_latents: keep the frozen tokenizer's latent of every training frame (per
            frame token and flip / quarter-turn augmentation; windows with a continuous
            yaw augmentation are not cached) in memory, so a frame is encoded once, not
            on every step that sees it.
        agent_motion: the residual decoder's base moves the agents the past frames show
            moving on at their velocity before the warp (``occwm.motion``); off: the
            plain warp baseline.
        unseen: classes the residual decoder's base carries into newly seen columns
            (``occwm.motion.continue_unseen``: the ground bands the present shows at the
            same place relative to the ego); empty: free there, as the warp baseline.
        motion: keyword arguments of ``occwm.motion.track_agents`` (``max_speed``,
            ``tolerance``, ``min_speed``, ``max_area_ratio``, ``max_turn``).
        residual_frames: future frames (drawn at random each step) the residual decoder
            learns on per step; fewer is cheaper.
        trust_min_iou: with the residual decoder, a window whose present frame the
            tokenizer reconstructs with a geometric IoU below this (``latent_trust``: the
            scene is unlike those it was trained on, e.g. real LiDAR occupancy for a
            synthetic-trained tokenizer) gets no latent-based change: its forecast is
            ``untrusted``'s. ``None``: always trust. ``'auto'``: calibrated on the
            training frames: the present frames of ``trust_calib_frames`` training
            windows are reconstructed once before training (:meth:`calibrate_trust`,
            called by ``occwm.engine.TrustCalibrationHook``; a persistent buffer,
            ``trust_ious``, saved with the weights) and the threshold is
            ``trust_ratio`` times the lowest of those IoUs, so a briefly trained
            tokenizer gets a threshold that fits it (a fixed one would send every
            window to the warp).
        untrusted: the forecast of a window that fails the trust check: ``'warp'``
            (the warp baseline) or ``'motion'`` (the decoder's base without the learnt
            change and without ``unseen``: the warp with the tracked agents moved on,
            ``occwm.motion.motion_warp``).
        trust_ratio: see ``trust_min_iou='auto'``: 0.85 gives 0.79 for the clean
            synthetic tokenizer of configs/vae.py (training frames 0.93-0.97; real
            nuScenes seq11 0.30 falls under it) and 0.54 for the LiDAR-simulated one
            of configs/vae_lidar.py (training frames 0.64-0.79; PandaSet 0.68-0.70 is
            trusted, seq11 0.36-0.38 is not).
        trust_calib_frames: training windows whose present frame calibrates the
            threshold of ``trust_min_iou='auto'``.
        predict_samples: ``K``; with ``K > 1``, ``mode='predict'`` also returns
            ``pred_samples`` ``(K, T_f, X, Y, Z)``: ``K`` futures of the same past drawn
            with different noise, for ``occwm.evaluation.SampleAgreement``. The first
            is ``pred_occ`` (the agents as tracked); the others also draw the tracked
            agents' velocities (``sampler['agent_spread']``).
        data_preprocessor: mmengine data preprocessor config (default: move to device).
    """

    def __init__(self, tokenizer: dict, tokenizer_ckpt: Optional[str] = None,
                 dit: Optional[dict] = None, num_past: int = 5, num_future: int = 6,
                 latent_scale: float = 1.0, traj_drop_prob: float = 0.1,
                 time_dist: str = 'logit_normal', sampler: Optional[dict] = None,
                 predict_seed: int = 0, warp_context: bool = True,
                 xy_range: Optional[Sequence[float]] = None, prior: str = 'warp',
                 prior_noise: float = 0.5, decode_present: bool = False,
                 decoder: str = 'residual', residual: Optional[dict] = None,
                 true_latent_prob: float = 0.5, loss_weights: Optional[dict] = None,
                 cache_latents: bool = True, predict_samples: int = 1,
                 agent_motion: bool = True, unseen: Sequence[int] = (),
                 motion: Optional[dict] = None,
                 residual_frames: int = 3, trust_min_iou: Union[float, str, None] = None,
                 trust_ratio: float = 0.85, trust_calib_frames: int = 32,
                 untrusted: str = 'warp',
                 data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.tokenizer = MODELS.build(tokenizer)
        if tokenizer_ckpt is not None:
            tokenizer_ckpt = resolve_checkpoint(tokenizer_ckpt)
            if not os.path.isfile(tokenizer_ckpt):
                raise FileNotFoundError(TOKENIZER_MISSING.format(tokenizer_ckpt))
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
            xy_range = (pcr[0], pcr[1], pcr[3], pcr[4]) if pcr is not None else DEFAULT_GRID.xy_range
        self.xy_range = tuple(float(v) for v in xy_range)
        if prior not in ('noise', 'warp'):
            raise ValueError(f"prior must be 'noise' or 'warp', got {prior!r}")
        self.prior, self.prior_noise = prior, float(prior_noise)
        self.num_past = num_past
        self.num_future = num_future
        self.latent_scale = latent_scale
        self.traj_drop_prob = traj_drop_prob
        self.time_dist = time_dist
        self.sampler = dict(steps=4, method='heun', cfg_scale=1.0, agent_spread=1.0)
        self.sampler.update(sampler or {})
        self.predict_seed = predict_seed
        self.decode_present = decode_present
        if decoder not in ('residual', 'tokenizer'):
            raise ValueError(f"decoder must be 'residual' or 'tokenizer', got {decoder!r}")
        self.grid = getattr(self.tokenizer, 'grid', DEFAULT_GRID)
        self.residual = None
        if decoder == 'residual':
            latent_shape = getattr(self.tokenizer, 'latent_shape', None)
            if latent_shape is None:
                raise ValueError("decoder='residual' needs a tokenizer with latent_shape")
            self.residual = ResidualDecoder(c_in, self.grid.num_classes, tuple(self.grid.shape),
                                            tuple(latent_shape), **(residual or {}))
        self.agent_motion, self.motion = agent_motion, dict(motion or {})
        self.unseen = tuple(int(c) for c in unseen)
        self.residual_frames = int(residual_frames)
        if isinstance(trust_min_iou, str) and trust_min_iou != 'auto':
            raise ValueError(f"trust_min_iou must be a number, None or 'auto', got {trust_min_iou!r}")
        self.trust_min_iou, self.trust_ratio = trust_min_iou, float(trust_ratio)
        if untrusted not in ('warp', 'motion'):
            raise ValueError(f"untrusted must be 'warp' or 'motion', got {untrusted!r}")
        self.untrusted = untrusted
        self._warned_trust = False
        if trust_min_iou == 'auto':  # filled before the first training step (calibrate_trust)
            self.register_buffer('trust_ious', torch.full((int(trust_calib_frames),), float('nan')))
        self.true_latent_prob = float(true_latent_prob)
        self.loss_weights = dict(loss_flow=1.0, loss_gate=1.0, loss_column=1.0)
        self.loss_weights.update(loss_weights or {})
        self.cache_latents = cache_latents
        if predict_samples < 1:
            raise ValueError(f'predict_samples must be >= 1, got {predict_samples}')
        self.predict_samples = int(predict_samples)
        self._latents: Dict[tuple, torch.Tensor] = {}

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
    def encode_cached(self, occ: torch.Tensor, keys: Optional[Sequence[Optional[tuple]]]) -> torch.Tensor:
        """:meth:`encode` through the in-memory latent cache (``cache_latents``).

        Args:
            occ: ``(B, T, X, Y, Z) uint8``.
            keys: per frame in ``B * T`` order, a hashable key of its content (frame
                token plus augmentation) or ``None`` (not cacheable); ``None`` for all.

        Returns:
            ``(B, T, C, H, W) float32``, the same as :meth:`encode` up to float rounding.

        On the CPU the missing frames are encoded one at a time: a frame's cached latent
        is then the same whichever batch first brings it (a batch's size changes the
        order of float sums), so a resumed run, whose cache starts empty, refills it
        with the latents of the uninterrupted run, bit for bit at one thread
        (``occwm.engine.checkpoint``). On CUDA they are encoded together (spconv's CUDA
        reductions are not bit-reproducible anyway).
        """
        if not self.cache_latents or keys is None:
            return self.encode(occ)
        B, T = occ.shape[:2]
        flat = occ.flatten(0, 1)  # (B * T, X, Y, Z)
        missing = [i for i, k in enumerate(keys) if k is None or k not in self._latents]
        new = {}
        if missing:
            groups = [[i] for i in missing] if flat.device.type == 'cpu' else [missing]
            mu = torch.cat([self.encode(flat[g][:, None])[:, 0] for g in groups])  # (M, C, H, W)
            for i, m in zip(missing, mu):
                new[i] = m
                if keys[i] is not None:
                    self._latents[keys[i]] = m.cpu()
        out = [new[i] if i in new else self._latents[keys[i]].to(occ.device) for i in range(B * T)]
        return torch.stack(out).unflatten(0, (B, T))  # (B, T, C, H, W)

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

    def warp_present(self, past: torch.Tensor, traj: torch.Tensor,
                     agent_spread: Union[float, Sequence[float]] = 0.0,
                     rngs: Optional[Sequence[np.random.Generator]] = None):
        """The base of the residual decoder: the present occupancy warped into each
        future ego frame, exactly the ``warp`` baseline (``occwm.warp.warp_planar``,
        nearest voxel, free outside); with ``agent_motion`` the agents the past frames
        show moving are first moved on at their velocity (``occwm.motion.motion_warp``;
        no moving agent: the warp baseline voxel for voxel); with ``unseen`` the newly
        seen columns continue the present's ground bands (``occwm.motion.continue_unseen``).

        Args:
            past: ``(B, T_p, X, Y, Z) uint8``, the last one the present.
            traj: ``(B, T_p + T_f, 3)`` ego poses (x m, y m, yaw rad), present frame.
            agent_spread: > 0: each tracked agent's velocity is drawn around the tracked
                one (``occwm.motion.draw_motion``, ``agent_spread`` x its calibrated
                spread) from ``rngs`` (one per window): a sampled future of the agents;
                one number, or one per window.

        Returns:
            ``(B, T_f, X, Y, Z) uint8`` and ``valid (B, T_f, X, Y) bool``.
        """
        P = past.shape[1]
        if not self.agent_motion and not self.unseen:
            return warp_planar(past[:, -1], traj[:, P:], self.grid, fill=self.grid.free_label)
        rngs = list(rngs) if rngs is not None else [None] * len(past)
        spreads = _per_row(agent_spread, len(past))
        out = [motion_warp(p.cpu().numpy(), t.cpu().double().numpy(), self.grid,
                           agents=None if self.agent_motion else [], unseen=self.unseen,
                           spread=sp, rng=r, **self.motion)
               for p, t, r, sp in zip(past, traj, rngs, spreads)]
        warped = torch.from_numpy(np.stack([w for w, _ in out])).to(past.device)
        valid = torch.from_numpy(np.stack([v for _, v in out])).to(past.device)
        return warped, valid

    def untrusted_forecast(self, past: torch.Tensor, traj: torch.Tensor,
                           base: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                           ) -> torch.Tensor:
        """``(B, T_f, X, Y, Z) uint8``: the forecast of windows that fail the trust check
        (``untrusted``): the warp baseline, or the decoder's base (the warp with the
        tracked agents moved on) with its newly seen columns free again (no ``unseen``
        fill in an unfamiliar scene).

        Args:
            past: ``(B, T_p, X, Y, Z) uint8``, the last one the present.
            traj: ``(B, T_p + T_f, 3)`` ego poses (x m, y m, yaw rad), present frame.
            base: :meth:`warp_present` of the same windows, when already computed.
        """
        P = past.shape[1]
        if self.untrusted == 'warp' or not self.agent_motion:
            return warp_planar(past[:, -1], traj[:, P:], self.grid, fill=self.grid.free_label)[0]
        warped, valid = base if base is not None else self.warp_present(past, traj)
        if not self.unseen:
            return warped
        return warped.masked_fill(~valid[..., None], self.grid.free_label)  # (B, T_f, X, Y, Z)

    def _residual_inputs(self, past_occ: torch.Tensor, present_lat: torch.Tensor,
                         z: torch.Tensor, traj: torch.Tensor, frames: Optional[torch.Tensor] = None,
                         base: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        """Flattened ``(B * T_f', ...)`` arguments of ``ResidualDecoder`` for the future
        frames ``frames`` (indices into the ``T_f`` future frames; default all); ``base``:
        :meth:`warp_present` of the windows, when already computed."""
        P = past_occ.shape[1]
        warped, valid = base if base is not None else self.warp_present(past_occ, traj)  # (B, T_f, X, Y, Z), (B, T_f, X, Y)
        w, w_valid = warp_bev(present_lat, traj[:, P:], self.xy_range)  # (B, T_f, C, H, W), (B, T_f, 1, H, W)
        parts = (warped, valid, z.float(), w, w_valid)
        if frames is not None:
            parts = tuple(p[:, frames] for p in parts)
        return tuple(p.flatten(0, 1) for p in parts)

    def loss(self, occ: torch.Tensor, traj: torch.Tensor,
             keys: Optional[Sequence[Optional[tuple]]] = None) -> Dict[str, torch.Tensor]:
        """Flow-matching loss on the future frames (``occwm/models/flow.py``) and, with
        ``decoder='residual'``, the residual decoder's losses.

        Args:
            occ: ``(B, T, X, Y, Z) uint8`` past and future occupancy.
            traj: ``(B, T, 3) float32`` ego pose per frame (x m, y m, yaw rad), present frame.
            keys: latent cache keys, one per frame in ``B * T`` order (:meth:`encode_cached`).
        """
        P = self.num_past
        x_data = self.encode_cached(occ, keys)  # (B, T, C, H, W)
        B, device = x_data.shape[0], x_data.device
        future = x_data[:, P:]  # (B, T_f, C, H, W)
        noise = torch.randn_like(future)  # (B, T_f, C, H, W)
        t = sample_time(B, dist=self.time_dist, device=device)  # (B,)
        traj = traj.float().to(device)
        x0 = self.source(x_data[:, P - 1], traj[:, P:], noise)  # (B, T_f, C, H, W)
        x_t = interpolate(future, x0, t)  # (B, T_f, C, H, W)
        x_in = torch.cat([x_data[:, :P], x_t], dim=1)  # (B, T, C, H, W)
        keep = torch.rand(B, device=device) >= self.traj_drop_prob  # (B,)
        cond = self.warped_context(x_data[:, P - 1], traj, keep) if self.warp_context else None
        v = self.dit(x_in, t, traj, keep, self.is_future.to(device), cond)  # (B, T, C, H, W)
        w = self.loss_weights
        losses = {'loss_flow': w['loss_flow'] * F.mse_loss(v[:, P:], velocity_target(future, x0))}
        if self.residual is not None:
            x1_hat = (x_t + (1 - t)[:, None, None, None, None] * v[:, P:]).detach()  # (B, T_f, C, H, W)
            use_true = (torch.rand(B, device=device) < self.true_latent_prob)[:, None, None, None, None]
            z = torch.where(use_true, future, x1_hat)  # (B, T_f, C, H, W)
            T_f = future.shape[1]
            frames = torch.randperm(T_f, device=device)[:min(self.residual_frames, T_f)].sort().values
            args = self._residual_inputs(occ[:, :P], x_data[:, P - 1], z, traj, frames)
            res = self.residual.loss(*args, target=occ[:, P:][:, frames].flatten(0, 1))
            losses.update((k, w[k] * v_) for k, v_ in res.items())
        return losses

    @torch.no_grad()
    def forecast(self, past_occ: torch.Tensor, traj: torch.Tensor, steps: Optional[int] = None,
                 cfg_scale: Optional[float] = None, generator: Optional[torch.Generator] = None,
                 method: Optional[str] = None,
                 agent_spread: Union[float, Sequence[float]] = 0.0) -> torch.Tensor:
        """Sample the future occupancy.

        Args:
            past_occ: ``(B, T_p, X, Y, Z) uint8`` the past frames, the last one the present.
            traj: ``(B, T, 3) float32`` ego pose of all ``T = T_p + T_f`` frames
                (x m, y m, yaw rad) in the present ego frame.
            steps, cfg_scale, method: override the ``sampler`` defaults.
            generator: a ``torch.Generator`` (any device) for the initial noise, or a
                list of ``B``, one per window (a window's noise then does not depend on
                the others in the batch).
            agent_spread: 0 (default): the tracked agents move as tracked, the most likely
                future of each (what the metrics score); > 0: their velocities are drawn
                around that, ``agent_spread`` x the spread calibrated on the training
                scenes (``occwm.motion.AGENT_SPREAD``), from ``generator`` (after the
                latent noise), so futures drawn with other generators differ where the
                agents' motion is uncertain; one number, or one per window. Needs
                ``agent_motion``; the sampler's ``agent_spread`` is what
                ``predict_samples`` and the scenarios' samples after the first are drawn
                with.

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
        noise = _noise((B, Tf, C, H, W), generator, device)  # (B, T_f, C, H, W)
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
        if self.residual is None:
            return self.decode(z)  # (B, T_f, X, Y, Z)
        rngs = _numpy_rngs(generator, B) if any(_per_row(agent_spread, B)) else None
        # the tracker runs once
        base = self.warp_present(past_occ.to(device), traj, agent_spread, rngs)
        args = self._residual_inputs(past_occ.to(device), context[:, -1], z, traj, base=base)
        out = self.residual(*args).unflatten(0, (B, Tf))  # (B, T_f, X, Y, Z)
        threshold = self.trust_threshold()
        if threshold is None and self.trust_min_iou == 'auto' and not self._warned_trust:
            self._warned_trust = True
            print_log("trust check off: these weights carry no calibration of "
                      "trust_min_iou='auto' (trained before it, or never trained); set "
                      "model.trust_min_iou to a geometric IoU (e.g. 0.8) for a fixed one",
                      logger='current', level=logging.WARNING)
        if threshold is not None:  # an unfamiliar scene: untrusted_forecast
            trusted = self.latent_trust(past_occ[:, -1].to(device), context[:, -1]) >= threshold
            if not trusted.all():
                plain = self.untrusted_forecast(past_occ.to(device), traj, base)  # (B, T_f, X, Y, Z)
                out = torch.where(trusted[:, None, None, None, None], out, plain)
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint from before ``trust_min_iou='auto'`` has no ``trust_ious``: it
        loads uncalibrated (the trust check is then off, and :meth:`forecast` says so)."""
        key = prefix + 'trust_ious'
        if self.trust_min_iou == 'auto' and key not in state_dict:
            state_dict[key] = torch.full_like(self.trust_ious, float('nan'))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def trust_threshold(self) -> Optional[float]:
        """The geometric IoU under which a window is forecast by :meth:`untrusted_forecast`
        (``trust_min_iou``; ``'auto'``: ``trust_ratio`` x the lowest calibration IoU,
        ``None`` before any training step has calibrated it)."""
        if self.trust_min_iou != 'auto':
            return self.trust_min_iou
        seen = self.trust_ious[~torch.isnan(self.trust_ious)]
        return None if not len(seen) else self.trust_ratio * float(seen.min())

    @torch.no_grad()
    def calibrate_trust(self, present: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """Set the ``trust_min_iou='auto'`` threshold from training present frames
        (``occwm.engine.TrustCalibrationHook`` calls it before the first training step,
        so the EMA copy of the weights starts with it too).

        Args:
            present: ``(N, X, Y, Z) uint8`` present frames of training windows (at most
                ``trust_calib_frames`` are used).
            chunk: frames encoded and decoded at once.

        Returns:
            ``(N',) float32`` their :meth:`latent_trust`, now in ``trust_ious``.

        Raises:
            ValueError: the model was not built with ``trust_min_iou='auto'``.
        """
        if self.trust_min_iou != 'auto':
            raise ValueError(f"calibrate_trust needs trust_min_iou='auto', not {self.trust_min_iou!r}")
        device = self.trust_ious.device
        present = present[:len(self.trust_ious)]
        ious = []
        for part in present.split(chunk):
            part = part.to(device)
            ious.append(self.latent_trust(part, self.encode(part[:, None])[:, 0]))  # (n,)
        ious = torch.cat(ious).float()
        self.trust_ious.fill_(float('nan'))
        self.trust_ious[:len(ious)] = ious
        return ious

    @torch.no_grad()
    def latent_trust(self, present: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``(B,) float32``: the geometric IoU (occupied vs free) of the tokenizer's
        reconstruction of the present frame from its latent against the present frame,
        a measure of how familiar the scene is to the tokenizer (about 0.95 on the
        synthetic scenes it was trained on).

        Args:
            present: ``(B, X, Y, Z) uint8``.
            latent: ``(B, C, H, W)`` its scaled latent.
        """
        recon = self.decode(latent[:, None])[:, 0]  # (B, X, Y, Z)
        free = self.grid.free_label
        a, b = present != free, recon != free
        inter = (a & b).flatten(1).sum(1).float()
        union = (a | b).flatten(1).sum(1).float().clamp(min=1)
        return inter / union

    @torch.no_grad()
    def rollout(self, past_occ: torch.Tensor, traj: torch.Tensor, num_future: int,
                **kwargs) -> torch.Tensor:
        """Forecast ``num_future`` frames, any number (:func:`autoregressive_rollout`
        of :meth:`forecast`).

        Args:
            past_occ: ``(B, T_p, X, Y, Z) uint8``, the last one the present.
            traj: ``(B, T_p + num_future, 3)`` ego poses (x m, y m, yaw rad) in the
                present ego frame.
            num_future: frames to forecast (any ``>= 1``).
            **kwargs: ``steps``, ``cfg_scale``, ``method``, ``generator`` of :meth:`forecast`.

        Returns:
            ``(B, num_future, X, Y, Z) uint8``.
        """
        return autoregressive_rollout(self, past_occ, traj, num_future, **kwargs)

    def forward(self, inputs: Dict[str, Union[torch.Tensor, List[torch.Tensor]]],
                data_samples: Optional[Sequence[OccWindow]] = None, mode: str = 'tensor'):
        """mmengine entry point.

        Args:
            inputs: ``{'occ': (B, T, X, Y, Z) uint8, 'traj': (B, T, 3) float32}`` (or lists
                of per-sample tensors), ``T = num_past + T_f``; frame ``num_past - 1`` is
                the present. Training needs ``T_f = num_future``; prediction rolls out any
                ``T_f >= 1`` (:meth:`rollout`).
            data_samples: the windows (``occwm.window.OccWindow``, ``PackOccInputs``);
                in ``'predict'`` / ``'tensor'`` mode each window's ``seed`` (plus
                ``predict_seed``) seeds its noise, so a window gets the same forecast in
                any batch or on any rank. Without them all windows use ``predict_seed``.
            mode: ``'loss'`` -> ``{'loss_flow'}`` (+ ``loss_gate``, ``loss_column`` with the
                residual decoder); ``'predict'`` -> a list of ``B`` dicts
                ``{'pred_occ': (T_f, X, Y, Z) uint8}`` on the CPU, plus ``pred_present``
                ``(X, Y, Z)`` (the tokenizer's reconstruction of the present frame) with
                ``decode_present`` and ``pred_samples`` ``(K, T_f, X, Y, Z) uint8`` with
                ``predict_samples`` ``K > 1``; ``'tensor'`` -> ``(B, T_f, X, Y, Z)`` forecast.
                Scoring (ground truth, baselines, protocols) is the metric's job
                (``occwm.evaluation.OccMetric``).

        Raises:
            ValueError: unknown mode; windows with another number of past frames than
                ``num_past`` (``PackOccInputs(num_past=...)`` pads or cuts them).
        """
        occ, traj = inputs['occ'], inputs['traj']
        occ = torch.stack(list(occ)) if isinstance(occ, (list, tuple)) else occ  # (B, T, X, Y, Z)
        traj = torch.stack(list(traj)) if isinstance(traj, (list, tuple)) else traj  # (B, T, 3)
        if mode == 'loss':
            return self.loss(occ, traj, _cache_keys(data_samples, occ.shape[1]))
        if mode not in ('predict', 'tensor'):
            raise ValueError(f"unknown mode {mode!r}: use 'loss', 'predict' or 'tensor'")
        P = self.num_past
        for w in data_samples or []:
            if w.num_past != P:
                raise ValueError(f'window {w.scene_name}/{w.present_token} has {w.num_past} past '
                                 f'frames, the model {P}: pack it with PackOccInputs(num_past={P})')
        seeds = [w.seed for w in data_samples] if data_samples else [0] * occ.shape[0]
        samples = []
        for k in range(self.predict_samples if mode == 'predict' else 1):  # seed + k * SAMPLE_STRIDE
            generators = [torch.Generator(device=occ.device).manual_seed(
                self.predict_seed + int(s) + k * SAMPLE_STRIDE) for s in seeds]
            spread = self.sampler['agent_spread'] if k else 0.0  # sample 0: as tracked
            samples.append(self.rollout(occ[:, :P], traj, occ.shape[1] - P, generator=generators,
                                        agent_spread=spread))  # (B, T_f, X, Y, Z)
        pred = samples[0]
        if mode == 'tensor':
            return pred
        out = [dict(pred_occ=p.to(torch.uint8).cpu()) for p in pred]
        if self.predict_samples > 1:
            for b, d in enumerate(out):
                d['pred_samples'] = torch.stack([s_[b] for s_ in samples]).to(torch.uint8).cpu()
        if self.decode_present:
            recon = self.decode(self.encode(occ[:, P - 1:P]))[:, 0]  # (B, X, Y, Z)
            for d, r in zip(out, recon):
                d['pred_present'] = r.to(torch.uint8).cpu()
        return out


@torch.no_grad()
def autoregressive_rollout(model, past_occ: torch.Tensor, traj: torch.Tensor, num_future: int,
                           **kwargs) -> torch.Tensor:
    """The one rollout: forecast ``num_future`` frames with ``model.forecast`` (which
    forecasts ``model.num_future`` frames from ``model.num_past``), more than
    ``model.num_future`` by autoregressive extension: each further step forecasts
    ``model.num_future`` frames from the last ``num_past`` frames (forecast ones
    included) under the trajectory re-expressed in the ego frame of the last of them;
    the last step is shifted back so that it ends at frame ``num_future`` and only its
    new frames are kept. Fewer frames than ``model.num_future``: the last pose is held
    past the asked horizon and the forecast cut. Nothing is re-learnt: it is the
    simplest correct extension (decode, then re-encode the forecast frames).

    Args:
        model: anything with ``num_past``, ``num_future`` and
            ``forecast(past_occ (B, num_past, X, Y, Z), traj (B, num_past + num_future, 3),
            **kwargs) -> (B, num_future, X, Y, Z)`` (``OccForecaster``).
        past_occ: ``(B, T_p, X, Y, Z) uint8``, the last one the present.
        traj: ``(B, T_p + num_future, 3)`` ego poses (x m, y m, yaw rad) in the present
            ego frame.
        num_future: frames to forecast (any ``>= 1``).
        **kwargs: passed to ``forecast`` (``steps``, ``cfg_scale``, ``method``,
            ``generator``).

    Returns:
        ``(B, num_future, X, Y, Z) uint8``.

    Raises:
        ValueError: ``traj`` does not have ``num_past + num_future`` rows.
    """
    P, Tf = model.num_past, model.num_future
    if traj.shape[1] != P + num_future:
        raise ValueError(f'traj has {traj.shape[1]} frames, want num_past + num_future = '
                         f'{P + num_future}')
    if num_future <= Tf:
        pad = Tf - num_future  # the trajectory past the asked horizon is not known:
        traj_full = torch.cat([traj, traj[:, -1:].expand(-1, pad, -1)], 1)  # hold the last pose
        return model.forecast(past_occ, traj_full, **kwargs)[:, :num_future]
    frames = list(past_occ.unbind(1))  # T_p x (B, X, Y, Z); grows with the forecast
    done = 0
    while done < num_future:
        start = min(done, num_future - Tf)  # future frames before this step's present
        p = P - 1 + start  # this step's present, index into traj / frames
        ctx = torch.stack(frames[p - P + 1:p + 1], 1)  # (B, T_p, X, Y, Z)
        new = model.forecast(ctx, relative_se2(traj[:, p:p + 1], traj[:, p - P + 1:p + Tf + 1]),
                             **kwargs)  # (B, T_f, X, Y, Z)
        frames += list(new[:, done - start:].unbind(1))
        done = start + Tf
    return torch.stack(frames[P:], 1)  # (B, num_future, X, Y, Z)


def _per_row(value: Union[float, Sequence[float]], batch: int) -> List[float]:
    """``value`` for each of ``batch`` rows (one number, or a sequence of ``batch``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != batch:
            raise ValueError(f'{len(value)} agent spreads for a batch of {batch}')
        return [float(v) for v in value]
    return [float(value)] * batch


def _numpy_rngs(generator, batch: int) -> List[np.random.Generator]:
    """One numpy generator per batch row, seeded by a draw of ``generator`` (one, a
    list of one per row, or none: unseeded)."""
    gens = list(generator) if isinstance(generator, (list, tuple)) else [generator] * batch
    return [np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=g, device=g.device))
                                  if g is not None else None) for g in gens]


def _noise(shape, generator, device) -> torch.Tensor:
    """Standard Gaussian of ``shape`` on ``device`` from one generator, a list of one per
    batch row, or none."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f'{len(generator)} generators for a batch of {shape[0]}')
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device)
                            for g in generator]).to(device)
    noise_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=noise_device).to(device)


def _cache_keys(windows: Optional[Sequence[OccWindow]], num_frames: int) -> Optional[List[Optional[tuple]]]:
    """Latent cache keys of the ``B * T`` frames of ``windows`` (``OccForecaster.encode_cached``):
    ``(scene, token, flip_x, flip_y, rot90)``, or ``None`` for a frame whose content the token does
    not pin down (a continuous yaw augmentation, a padded past, no tokens)."""
    if not windows:
        return None
    keys: List[Optional[tuple]] = []
    for w in windows:
        aug = w.aug or {}
        tokens = list(w.tokens) if w.tokens is not None else []
        ok = len(tokens) == num_frames and not aug.get('yaw') and len(set(tokens)) == len(tokens)
        a = (bool(aug.get('flip_x')), bool(aug.get('flip_y')), int(aug.get('rot90') or 0))
        keys += ([(w.scene_name, str(tok)) + a for tok in tokens] if ok else [None] * num_frames)
    return keys
