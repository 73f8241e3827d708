"""OccDiT: a trajectory-conditioned diffusion transformer over occupancy latents.

The network only maps ``(x_t, t, trajectory) -> velocity``; the flow-matching process
(interpolation, target, time sampling, sampler) lives in ``occwm/models/flow.py``.

Layout follows facebookresearch/DiT ``models.py`` (Peebles & Xie, ICCV 2023): small
classes ``TimestepEmbedder``, ``DiTBlock``, ``FinalLayer``, adaLN-Zero conditioning and
one ``initialize_weights()``. Space and time are factorised as in Latte (Ma et al., 2024)
and DOME (Gu et al., 2024): blocks alternate attention within a frame (over its
``N = H * W / p ** 2`` tokens) and attention across the ``T`` frames at each token position.

Conditioning is per frame: ``c = t_embed(t_frame) + traj_embed(pose_frame)`` ``(B, T, D)``,
with ``t_frame = t`` on future (noisy) frames and ``1`` (clean data) on context frames.
A dropped trajectory (``traj_keep = False``) is replaced by one learned null embedding,
which classifier-free guidance needs. Optional dense per-frame conditioning ``cond``
``(B, T, cond_channels, H, W)`` (e.g. the present latent warped into each frame's ego
frame, ``occwm.warp.warp_bev``) is concatenated to the latents before the patch
embedding.

In time attention a context frame attends to context frames only (a future frame to
all), so the context's features do not depend on the noise: a sampler runs the context
once (``encode_context``) and then only the future frames per step (``forward_future``).

Speed switches (all off by default): attention is PyTorch's
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU; the time
blocks' mask leaves them the memory-efficient one); ``autocast_dtype='bfloat16'`` runs
the network under ``torch.autocast`` on the input's device and returns float32;
``compile=True`` compiles every block with ``torch.compile`` (``nn.Module.compile``:
the state dict keeps its keys).
"""
from __future__ import annotations

import contextlib
import math
from functools import lru_cache
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

# Model sizes; depth counts blocks (half space, half time). Params for C = 16, p = 2.
DIT_PRESETS: Dict[str, dict] = {
    'tiny': dict(depth=2, hidden_size=32, num_heads=2),   # 0.05 M, tests
    'S': dict(depth=4, hidden_size=128, num_heads=4),     # 1.3 M, default (~0.6 s forecast, 2 CPUs)
    'B': dict(depth=8, hidden_size=256, num_heads=4),     # 9.8 M, ~7x the cost of S
    'L': dict(depth=12, hidden_size=384, num_heads=6),    # 32.7 M, GPU
}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: ``x * (1 + scale) + shift``; shift/scale broadcast over tokens."""
    return torch.addcmul(shift, x, 1 + scale)  # one fused kernel


@lru_cache(maxsize=16)
def sincos_2d_pos_embed(dim: int, h: int, w: int) -> torch.Tensor:
    """``(h * w, dim)`` fixed 2D sine-cosine embedding (MAE / DiT), row-major over (h, w)."""
    assert dim % 4 == 0, f'hidden size {dim} must be a multiple of 4 for 2D sincos'
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing='ij')  # (h, w) each
    emb_h = sincos_1d(dim // 2, gy.reshape(-1))  # (h * w, dim / 2)
    emb_w = sincos_1d(dim // 2, gx.reshape(-1))  # (h * w, dim / 2)
    return torch.cat([emb_h, emb_w], dim=1).float()  # (h * w, dim)


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """``(M, dim)`` sine-cosine embedding of positions ``pos`` ``(M,)`` (Vaswani et al.)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))  # (dim / 2,)
    out = pos.double()[:, None] * omega[None]  # (M, dim / 2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # (M, dim)


class TimestepEmbedder(nn.Module):
    """Scalar flow time ``t`` in [0, 1] to a ``D`` vector: sinusoid of ``1000 t`` then MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(),
            nn.Linear(hidden_size, hidden_size))
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000) -> torch.Tensor:
        """``t`` ``(...,)`` to ``(..., dim)`` sinusoids (DiT / GLIDE)."""
        half = dim // 2
        k = torch.arange(half, dtype=torch.float32, device=t.device)  # (dim / 2,)
        freqs = torch.exp(-math.log(max_period) * k / half)  # (dim / 2,)
        args = t[..., None].float() * freqs  # (..., dim / 2)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (..., dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t_freq = self.timestep_embedding(t * 1000.0, self.frequency_embedding_size)  # (..., F)
        return self.mlp(t_freq)  # (..., D)


class TrajectoryEmbedder(nn.Module):
    """Per-frame ego pose ``(x, y, yaw)`` (metres, radians; present ego frame) to ``D``.

    Features ``(x / s, y / s, sin yaw, cos yaw)`` with ``s = pos_scale`` metres, then an
    MLP. ``null`` is the learned embedding used where the trajectory is dropped.
    """

    def __init__(self, hidden_size: int, pos_scale: float = 10.0):
        super().__init__()
        self.pos_scale = pos_scale
        self.mlp = nn.Sequential(nn.Linear(4, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))
        self.null = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, traj: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``traj`` ``(B, T, 3)``, ``keep`` ``(B,) bool`` -> ``(B, T, D)``."""
        yaw = traj[..., 2]
        feats = torch.stack([traj[..., 0] / self.pos_scale, traj[..., 1] / self.pos_scale,
                             torch.sin(yaw), torch.cos(yaw)], dim=-1)  # (B, T, 4)
        emb = self.mlp(feats.float())  # (B, T, D)
        return torch.where(keep[:, None, None], emb, self.null.to(emb.dtype))  # (B, T, D)


class Attention(nn.Module):
    """Multi-head self-attention over the middle axis of ``(B', L, D)``; optional keys
    and values ``kv_prefix`` (cached context) are put before those of ``x``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        assert dim % num_heads == 0, f'hidden size {dim} not divisible by {num_heads} heads'
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def split_qkv(self, x: torch.Tensor):
        B, L, _ = x.shape
        qkv = self.qkv(x).reshape(B, L, 3, self.num_heads, -1)  # (B', L, 3, nh, hs)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # q, k, v each (B', nh, L, hs)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                kv_prefix: Optional[tuple] = None) -> torch.Tensor:
        """``x`` ``(B', L, D)``; ``mask`` bool ``(B', 1, L, L)``, True = may attend;
        ``kv_prefix`` ``(k, v)`` each ``(B', nh, L0, hs)``."""
        B, L, D = x.shape
        q, k, v = self.split_qkv(x)  # each (B', nh, L, hs)
        if kv_prefix is not None:
            k = torch.cat([kv_prefix[0], k], dim=2)  # (B', nh, L0 + L, hs)
            v = torch.cat([kv_prefix[1], v], dim=2)  # (B', nh, L0 + L, hs)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B', nh, L, hs)
        x = x.transpose(1, 2).reshape(B, L, D)  # (B', L, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate='tanh')
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    """A DiT block with adaLN-Zero whose attention runs along one axis.

    ``axis='space'``: attention among the ``N`` tokens of each frame;
    ``axis='time'``: attention among the ``T`` frames at each token position.
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0,
                 axis: str = 'space'):
        super().__init__()
        assert axis in ('space', 'time'), axis
        self.axis = axis
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def _attend(self, h: torch.Tensor, time_mask: Optional[torch.Tensor] = None,
                kv_prefix: Optional[tuple] = None) -> torch.Tensor:
        B, T, N, D = h.shape
        if self.axis == 'space':
            h = self.attn(h.reshape(B * T, N, D))  # (B * T, N, D)
            return h.reshape(B, T, N, D)  # (B, T, N, D)
        h = h.transpose(1, 2).reshape(B * N, T, D)  # (B * N, T, D)
        h = self.attn(h, time_mask, kv_prefix)  # (B * N, T, D)
        return h.reshape(B, N, T, D).transpose(1, 2)  # (B, T, N, D)

    def time_kv(self, x: torch.Tensor, c: torch.Tensor) -> tuple:
        """Keys and values ``(B * N, nh, T, hs)`` of a time block's attention for tokens
        ``x`` ``(B, T, N, D)`` under ``c`` ``(B, T, D)`` (the context cache)."""
        B, T, N, D = x.shape
        shift_msa, scale_msa = self.adaLN_modulation(c).unsqueeze(2).chunk(6, dim=-1)[:2]
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, T, N, D)
        _, k, v = self.attn.split_qkv(h.transpose(1, 2).reshape(B * N, T, D))  # (B * N, nh, T, hs)
        return k, v

    def forward(self, x: torch.Tensor, c: torch.Tensor, time_mask: Optional[torch.Tensor] = None,
                kv_prefix: Optional[tuple] = None) -> torch.Tensor:
        """``x`` ``(B, T, N, D)`` tokens, ``c`` ``(B, T, D)`` per-frame conditioning;
        ``time_mask`` / ``kv_prefix``: see ``Attention`` (time blocks only)."""
        mod = self.adaLN_modulation(c).unsqueeze(2)  # (B, T, 1, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.chunk(6, dim=-1)
        h = self._attend(modulate(self.norm1(x), shift_msa, scale_msa), time_mask, kv_prefix)
        x = torch.addcmul(x, gate_msa, h)
        x = torch.addcmul(x, gate_mlp, self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp)))
        return x


class FinalLayer(nn.Module):
    """adaLN then a linear map of each token to its ``p * p * C`` patch values."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).unsqueeze(2).chunk(2, dim=-1)  # (B, T, 1, D) each
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, T, N, p * p * C)


class OccDiT(nn.Module):
    """Space-time DiT predicting the flow velocity of every frame's latent.

    Args:
        in_channels: latent channels ``C``.
        patch_size: ``p``; ``H`` and ``W`` must be multiples of it.
        hidden_size, depth, num_heads, mlp_ratio: transformer width ``D``, number of
            blocks (alternating space, time, space, ...), heads, MLP expansion.
        traj_pos_scale: metres dividing the trajectory ``x, y`` before the MLP.
        cond_channels: channels of the extra per-frame input ``cond`` ``(B, T,
            cond_channels, H, W)`` concatenated to ``x`` before the patch embedding
            (0: none). The output keeps ``in_channels``.
        preset: a key of ``DIT_PRESETS``; its values fill ``depth / hidden_size /
            num_heads`` unless given explicitly.
        autocast_dtype: ``None`` (float32, the default) or ``'bfloat16'`` /
            ``'float16'``: ``forward``, ``encode_context`` and ``forward_future`` run under
            ``torch.autocast`` of the input's device type with this dtype (LayerNorm,
            softmax and reductions stay float32 by autocast's rules) and return float32.
        compile: ``False`` (default), ``True`` or keyword arguments of
            ``torch.compile`` (e.g. ``dict(mode='max-autotune')``): compile every block in
            place (``nn.Module.compile``), so checkpoints are unchanged.
    """

    def __init__(self, in_channels: int = 16, patch_size: int = 2,
                 hidden_size: Optional[int] = None, depth: Optional[int] = None,
                 num_heads: Optional[int] = None, mlp_ratio: float = 4.0,
                 traj_pos_scale: float = 10.0, cond_channels: int = 0,
                 preset: Optional[str] = 'S', autocast_dtype: Optional[str] = None,
                 compile: Union[bool, dict] = False):
        super().__init__()
        size = dict(DIT_PRESETS[preset]) if preset is not None else {}
        for k, v in (('hidden_size', hidden_size), ('depth', depth), ('num_heads', num_heads)):
            if v is not None:
                size[k] = v
        missing = {'hidden_size', 'depth', 'num_heads'} - set(size)
        if missing:
            raise ValueError(f'OccDiT: give preset= or all of {sorted(missing)}')
        self.in_channels = in_channels
        self.cond_channels = cond_channels
        self.patch_size = patch_size
        self.hidden_size = D = size['hidden_size']
        self.depth = size['depth']
        self.num_heads = size['num_heads']

        self.x_embedder = nn.Conv2d(in_channels + cond_channels, D, kernel_size=patch_size,
                                    stride=patch_size)
        self.t_embedder = TimestepEmbedder(D)
        self.traj_embedder = TrajectoryEmbedder(D, traj_pos_scale)
        self.frame_type_embed = nn.Parameter(torch.zeros(2, D))  # row 0 context, row 1 future
        self.blocks = nn.ModuleList([
            DiTBlock(D, self.num_heads, mlp_ratio, axis='space' if i % 2 == 0 else 'time')
            for i in range(self.depth)])
        self.final_layer = FinalLayer(D, patch_size, in_channels)
        self.initialize_weights()
        if autocast_dtype not in (None, 'float32', 'bfloat16', 'float16'):
            raise ValueError(f"autocast_dtype must be None, 'bfloat16' or 'float16', got {autocast_dtype!r}")
        self.autocast_dtype = None if autocast_dtype in (None, 'float32') else getattr(torch, autocast_dtype)
        if compile:
            # The blocks share one code object: space / time axis x grad mode x cached
            # context x shapes can pass dynamo's default limit of 8 recompilations.
            from torch._dynamo import config as cfg
            for name in ('recompile_limit', 'cache_size_limit'):
                if hasattr(cfg, name):
                    setattr(cfg, name, max(getattr(cfg, name), 64))
            for block in self.blocks:
                block.compile(**(compile if isinstance(compile, dict) else {}))

    def _autocast(self, device: torch.device):
        """``torch.autocast`` of ``autocast_dtype`` on ``device``'s type, or no context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def initialize_weights(self):
        # Transformer linears: xavier uniform, zero bias.
        def _basic_init(module):
            if isinstance(module, nn.Linear):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0)
        self.apply(_basic_init)

        # Patch embedding like nn.Linear (instead of nn.Conv2d).
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.constant_(self.x_embedder.bias, 0)

        # Timestep MLP as in DiT; the trajectory MLP keeps xavier (an O(1) pose signal
        # from the start); null and frame-type embeddings small.
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        nn.init.normal_(self.traj_embedder.null, std=0.02)
        nn.init.normal_(self.frame_type_embed, std=0.02)

        # adaLN-Zero: zero the modulation of every block, so each block starts as identity.
        for block in self.blocks:
            nn.init.constant_(block.adaLN_modulation[-1].weight, 0)
            nn.init.constant_(block.adaLN_modulation[-1].bias, 0)

        # Zero the output layer: the initial prediction is exactly zero.
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].weight, 0)
        nn.init.constant_(self.final_layer.adaLN_modulation[-1].bias, 0)
        nn.init.constant_(self.final_layer.linear.weight, 0)
        nn.init.constant_(self.final_layer.linear.bias, 0)

    def unpatchify(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``(B, T, N, p * p * C)`` to ``(B, T, C, H, W)`` with ``N = h * w`` patches."""
        B, T = x.shape[:2]
        p, C = self.patch_size, self.in_channels
        x = x.reshape(B, T, h, w, p, p, C)  # (B, T, h, w, p, p, C)
        x = torch.einsum('bthwpqc->btchpwq', x)  # (B, T, C, h, p, w, p)
        return x.reshape(B, T, C, h * p, w * p)  # (B, T, C, H, W)

    def _tokens(self, x: torch.Tensor, is_future: torch.Tensor, first_frame: int = 0,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Latents ``(B, T, C, H, W)`` (and ``cond`` ``(B, T, C_cond, H, W)``) to tokens
        ``(B, T, N, D)`` with the spatial, frame (indices ``first_frame ..``) and
        context/future embeddings added."""
        B, T, C, H, W = x.shape
        p = self.patch_size
        h, w = H // p, W // p
        if h * p != H or w * p != W:
            raise ValueError(f'latent size {H}x{W} is not a multiple of patch size {p}')
        if self.cond_channels:
            if cond is None or cond.shape != (B, T, self.cond_channels, H, W):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f'cond must be {(B, T, self.cond_channels, H, W)} '
                                 f'(cond_channels={self.cond_channels}), got {got}')
            x = torch.cat([x, cond.to(x)], dim=2)  # (B, T, C + C_cond, H, W)
        elif cond is not None:
            raise ValueError('cond given but the model has cond_channels=0')
        x = self.x_embedder(x.flatten(0, 1))  # (B * T, D, h, w)
        x = x.flatten(2).transpose(1, 2).reshape(B, T, h * w, -1)  # (B, T, N, D), N = H W / p^2
        D = x.shape[-1]
        pos = sincos_2d_pos_embed(D, h, w).to(x)  # (N, D)
        frame_pos = sincos_1d(D, torch.arange(first_frame, first_frame + T)).to(x)  # (T, D)
        frame_type = self.frame_type_embed[is_future.long()]  # (B, T, D)
        return x + pos[None, None] + (frame_pos[None] + frame_type)[:, :, None]  # (B, T, N, D)

    def _cond(self, t: torch.Tensor, traj: torch.Tensor, traj_keep: torch.Tensor,
              is_future: torch.Tensor) -> torch.Tensor:
        """Per-frame conditioning ``(B, T, D)``: flow time (1 on context frames, which
        are data) plus trajectory (or null) embedding."""
        t = t.to(traj.device, torch.float32).reshape(-1, 1)  # (B, 1)
        t_frame = torch.where(is_future, t, torch.ones_like(t))  # (B, T)
        keep = traj_keep.to(traj.device)
        return self.t_embedder(t_frame) + self.traj_embedder(traj.float(), keep)  # (B, T, D)

    def forward(self, x: torch.Tensor, t: torch.Tensor, traj: torch.Tensor,
                traj_keep: torch.Tensor, is_future: torch.Tensor,
                cond: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict the velocity of every frame.

        Args:
            x: ``(B, T, C, H, W) float32`` latents: clean context frames and noisy
                future frames ``x_t``.
            t: ``(B,) float`` flow time in [0, 1] of the future frames (1 = data).
            traj: ``(B, T, 3) float32`` ego pose per frame ``(x m, y m, yaw rad)`` in the
                present ego frame.
            traj_keep: ``(B,) bool``; False replaces the trajectory by the null embedding.
            is_future: ``(T,)`` or ``(B, T)`` bool; True on noisy (future) frames. In
                time attention context frames attend to context frames only, so their
                features do not depend on the noise (``encode_context`` caches them).
            cond: ``(B, T, cond_channels, H, W) float32`` extra per-frame input, required
                iff ``cond_channels > 0``.

        Returns:
            ``(B, T, C, H, W) float32`` velocity (only future frames are meaningful).
        """
        with self._autocast(x.device):
            return self._forward(x, t, traj, traj_keep, is_future, cond).float()

    def _forward(self, x, t, traj, traj_keep, is_future, cond):
        B, T, C, H, W = x.shape
        is_future = is_future.to(x.device, torch.bool).expand(B, T)  # (B, T)
        x = self._tokens(x, is_future, cond=cond)  # (B, T, N, D)
        N = x.shape[2]
        c = self._cond(t, traj.to(x), traj_keep, is_future)  # (B, T, D)
        # Time mask: a future query attends to every frame, a context query to context.
        allowed = is_future[:, :, None] | ~is_future[:, None, :]  # (B, T, T)
        time_mask = allowed[:, None].expand(B, N, T, T).reshape(B * N, 1, T, T)  # (B * N, 1, T, T)
        for block in self.blocks:
            x = block(x, c, time_mask if block.axis == 'time' else None)  # (B, T, N, D)
        x = self.final_layer(x, c)  # (B, T, N, p * p * C)
        p = self.patch_size
        return self.unpatchify(x, H // p, W // p)  # (B, T, C, H, W)

    @torch.no_grad()
    def encode_context(self, x_ctx: torch.Tensor, traj_ctx: torch.Tensor,
                       traj_keep: torch.Tensor, cond_ctx: Optional[torch.Tensor] = None) -> dict:
        """Run the context frames alone and keep, for every time block, the keys and
        values that future frames attend to. Sampling then runs only the future frames
        (``forward_future``), about ``T / T_f`` times cheaper per step.

        Args:
            x_ctx: ``(B, T_p, C, H, W)`` clean context latents (frames ``0 .. T_p - 1``).
            traj_ctx: ``(B, T_p, 3)`` their poses; ``traj_keep``: ``(B,) bool``.
            cond_ctx: ``(B, T_p, cond_channels, H, W)`` their extra input (if any).

        Returns:
            ``{'num_frames': T_p, 'kv': [...]}``, per block ``(k, v)`` each
            ``(B * N, nh, T_p, hs)`` (time blocks) or ``None`` (space blocks).
        """
        with self._autocast(x_ctx.device):
            return self._encode_context(x_ctx, traj_ctx, traj_keep, cond_ctx)

    def _encode_context(self, x_ctx, traj_ctx, traj_keep, cond_ctx):
        B, Tp = x_ctx.shape[:2]
        is_future = torch.zeros(B, Tp, dtype=torch.bool, device=x_ctx.device)  # (B, T_p)
        x = self._tokens(x_ctx, is_future, cond=cond_ctx)  # (B, T_p, N, D)
        t = torch.ones(B, device=x.device)  # (B,) unused: context frames are data
        c = self._cond(t, traj_ctx.to(x), traj_keep, is_future)  # (B, T_p, D)
        kv = []
        for block in self.blocks:
            kv.append(block.time_kv(x, c) if block.axis == 'time' else None)
            x = block(x, c)  # (B, T_p, N, D)
        return {'num_frames': Tp, 'kv': kv}

    def forward_future(self, x_fut: torch.Tensor, t: torch.Tensor, traj_fut: torch.Tensor,
                       traj_keep: torch.Tensor, cache: dict,
                       cond_fut: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The future part of ``forward``, given the context cache of ``encode_context``:
        equals ``forward(cat(x_ctx, x_fut), ...)[:, T_p:]``.

        Args:
            x_fut: ``(B, T_f, C, H, W)`` noisy future latents; ``t``: ``(B,)``;
            traj_fut: ``(B, T_f, 3)``; ``traj_keep``: ``(B,) bool`` (as for the cache);
            cond_fut: ``(B, T_f, cond_channels, H, W)`` (if any).

        Returns:
            ``(B, T_f, C, H, W)`` velocity.
        """
        with self._autocast(x_fut.device):
            return self._forward_future(x_fut, t, traj_fut, traj_keep, cache, cond_fut).float()

    def _forward_future(self, x_fut, t, traj_fut, traj_keep, cache, cond_fut):
        B, Tf, C, H, W = x_fut.shape
        Tp = cache['num_frames']
        is_future = torch.ones(B, Tf, dtype=torch.bool, device=x_fut.device)  # (B, T_f)
        x = self._tokens(x_fut, is_future, first_frame=Tp, cond=cond_fut)  # (B, T_f, N, D)
        c = self._cond(t, traj_fut.to(x), traj_keep, is_future)  # (B, T_f, D)
        for block, kv in zip(self.blocks, cache['kv']):
            x = block(x, c, kv_prefix=kv)  # (B, T_f, N, D)
        x = self.final_layer(x, c)  # (B, T_f, N, p * p * C)
        p = self.patch_size
        return self.unpatchify(x, H // p, W // p)  # (B, T_f, C, H, W)
