"""The scene tokenizer: a sparse-convolution VAE that maps an occupancy grid
``(N, X, Y, Z) uint8`` to a continuous BEV latent ``(N, C_lat, H, W) float32`` with
``H = X / 2**S``, ``W = Y / 2**S`` (``S = len(channels) - 1`` downsamplings, 2 by
default: 200x200x16 -> 50x50x4 -> latent 50x50) and back.

Encoder: ``nn.Embedding`` of the non-free voxels -> sparse stages (``SubMConv3d``,
stride-2 ``SparseConv3d``) -> ``.dense()`` -> fold Z into channels -> 2D convs ->
``(mu, logvar)``. The cost grows with the number of occupied voxels, not the volume.

Decoder: 2D convs -> unfold channels into coarse 3D features -> a coarse-to-fine
sparse generative decoder: predict occupancy of every coarse voxel, keep the occupied
ones, upsample x2 with a generative ``SparseConvTranspose3d`` (every kept voxel makes
its 8 children), predict occupancy again, prune, ..., and at full resolution predict
class logits (free included). Voxels never reached are free. Sources: the generative
sparse transposed convolution and pruning of Gwak, Choy and Savarese, "Generative
Sparse Detection Networks for 3D Single-shot Object Detection" (ECCV 2020) and the
coarse-to-fine pruning of Choy et al. (MinkowskiEngine ``completion.py`` example);
the BEV VAE layout of OccWorld (Zheng et al., ECCV 2024) and OccSora/OccLLaMA;
the 2D blocks of LDM (Rombach et al., CVPR 2022).

Sparse coordinate order (see ``occwm.grid``): ``(batch_idx, x_idx, y_idx, z_idx)``.

Mixed precision: spconv has float32 and float16 kernels, no bfloat16. Under CUDA
autocast spconv casts its inputs to float16 itself; under any other device's autocast
(CPU bfloat16) the sparse stages run in float32 with autocast off (``_sparse_fp32``).
``autocast_dtype='bfloat16'`` runs the dense 2D parts (``enc_bev``, ``dec_bev`` and the
coarse head) under ``torch.autocast``; ``mu`` and ``logvar`` come back float32.
"""
from __future__ import annotations

import contextlib
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModel
from torch import nn

from occwm.compat import spconv
from occwm.grid import DEFAULT_GRID, OccGrid, build_sparse, dense_to_sparse, sparse_select, \
    sparse_to_dense
from occwm.models.losses import kl_standard_normal, lovasz_softmax, occupancy_bce
from occwm.registry import MODELS

# Model sizes. ``channels`` are the sparse 3D widths per resolution (full, /2, /4, ...);
# ``hidden_channels`` is the width of the 2D BEV trunks.
TOKENIZER_PRESETS: Dict[str, dict] = {
    'tiny': dict(embed_dim=8, channels=(8, 16, 16), hidden_channels=32, latent_channels=4),
    'small': dict(embed_dim=16, channels=(16, 16, 32), hidden_channels=64, latent_channels=8),
    'base': dict(embed_dim=16, channels=(16, 32, 32), hidden_channels=64, latent_channels=16),
}


def _sparse_fp32(device: torch.device):
    """Context for the sparse (spconv) stages: autocast off where it is on for a
    non-CUDA device (spconv has no bfloat16 kernels; on CUDA its own autocast casts to
    float16), else no context at all."""
    if device.type != 'cuda' and torch.is_autocast_enabled(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (the number of groups divides ``channels``)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock2d(nn.Module):
    """Pre-activation residual block ``x + conv(act(norm(conv(act(norm(x))))))`` on
    ``(N, D, H, W) float32`` (the LDM / DDPM ``ResnetBlock`` without time embedding)."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            _group_norm(dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1),
            _group_norm(dim), nn.SiLU(), nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D, H, W)`` -> ``(N, D, H, W)``."""
        return x + self.block(x)


def _subm_block(c_in: int, c_out: int, key: str) -> list:
    """``SubMConv3d(3) -> LayerNorm -> ReLU`` on the features of a sparse tensor."""
    return [spconv.SubMConv3d(c_in, c_out, 3, padding=1, bias=False, indice_key=key),
            nn.LayerNorm(c_out), nn.ReLU()]


@MODELS.register_module()
class OccVAE(BaseModel):
    """Sparse-convolution VAE scene tokenizer.

    Args:
        grid: keyword arguments of ``OccGrid``; ``None`` -> the Occ3D default
            (200x200x16, 18 classes, free = 17).
        embed_dim: width of the per-voxel class embedding.
        channels: sparse widths per resolution ``(c_full, c_/2, c_/4, ...)``; the
            number of stride-2 downsamplings is ``S = len(channels) - 1`` and ``Z`` must
            be divisible by ``2**S``.
        hidden_channels: width D of the 2D trunks of encoder and decoder.
        latent_channels: C_lat.
        kl_weight, lovasz_weight, occ_weight: loss weights (the CE weight is 1).
        occ_threshold: a voxel is kept when its occupancy logit is ``> occ_threshold``.
        full_res_subm: add a ``SubMConv3d`` at full resolution in the decoder. Off by
            default: the full-resolution voxels (8 per kept /2 voxel) are then decoded by
            the transposed convolution and a per-voxel MLP, which is ~3x cheaper.
        autocast_dtype: ``None`` (float32, the default) or ``'bfloat16'`` / ``'float16'``:
            the dense 2D parts run under ``torch.autocast`` of the input's device (the
            sparse stages as the module docstring says).
        data_preprocessor: mmengine data preprocessor config (default: move to device).
    """

    def __init__(self, grid: Optional[dict] = None, embed_dim: int = 16,
                 channels: Sequence[int] = (16, 32, 32), hidden_channels: int = 64,
                 latent_channels: int = 16, kl_weight: float = 1e-4,
                 lovasz_weight: float = 1.0, occ_weight: float = 1.0,
                 occ_threshold: float = 0.0, full_res_subm: bool = False,
                 autocast_dtype: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.grid = OccGrid(**grid) if grid is not None else DEFAULT_GRID
        self.num_classes = self.grid.num_classes
        self.free_label = self.grid.free_label
        self.channels = tuple(channels)
        self.num_down = len(self.channels) - 1
        X, Y, Z = self.grid.shape
        f = 2 ** self.num_down
        if X % f or Y % f or Z % f:
            raise ValueError(f'grid {self.grid.shape} is not divisible by 2**{self.num_down}')
        self.latent_shape = (X // f, Y // f)  # (H, W)
        self.coarse_z = Z // f  # Z_S
        self.latent_channels = latent_channels
        self.kl_weight, self.lovasz_weight, self.occ_weight = kl_weight, lovasz_weight, occ_weight
        self.occ_threshold = occ_threshold
        c, cs, D = self.channels, self.channels[-1], hidden_channels

        # Encoder.
        self.embed = nn.Embedding(self.num_classes, embed_dim)
        self.enc_stages = nn.ModuleList([spconv.SparseSequential(*_subm_block(embed_dim, c[0], 'enc0'))])
        for i in range(1, self.num_down + 1):
            self.enc_stages.append(spconv.SparseSequential(
                spconv.SparseConv3d(c[i - 1], c[i], 2, stride=2, bias=False),
                nn.LayerNorm(c[i]), nn.ReLU(), *_subm_block(c[i], c[i], f'enc{i}')))
        self.enc_bev = nn.Sequential(
            nn.Conv2d(cs * self.coarse_z, D, 3, padding=1), ResBlock2d(D),
            _group_norm(D), nn.SiLU(), nn.Conv2d(D, 2 * latent_channels, 1))

        # Decoder.
        self.dec_bev = nn.Sequential(
            nn.Conv2d(latent_channels, D, 3, padding=1), ResBlock2d(D),
            _group_norm(D), nn.SiLU(), nn.Conv2d(D, cs * self.coarse_z, 1))
        self.dec_coarse_head = nn.Linear(cs, 1)
        # dec_up[j] goes from resolution level S - j to S - j - 1 (level 0 = full).
        self.dec_up = nn.ModuleList()
        self.dec_occ_heads = nn.ModuleList()
        for i in range(self.num_down, 0, -1):
            subm = _subm_block(c[i - 1], c[i - 1], f'dec{i - 1}') if i > 1 or full_res_subm else []
            self.dec_up.append(spconv.SparseSequential(
                spconv.SparseConvTranspose3d(c[i], c[i - 1], 2, stride=2, bias=False),
                nn.LayerNorm(c[i - 1]), nn.ReLU(), *subm))
            if i > 1:
                self.dec_occ_heads.append(nn.Linear(c[i - 1], 1))
        self.dec_cls_head = nn.Sequential(nn.Linear(c[0], c[0]), nn.ReLU(),
                                          nn.Linear(c[0], self.num_classes))
        self.initialize_weights()
        if autocast_dtype not in (None, 'float32', 'bfloat16', 'float16'):
            raise ValueError(f"autocast_dtype must be None, 'bfloat16' or 'float16', got {autocast_dtype!r}")
        self.autocast_dtype = None if autocast_dtype in (None, 'float32') else getattr(torch, autocast_dtype)

    def _dense_autocast(self, device: torch.device):
        """``torch.autocast`` of ``autocast_dtype`` for the dense 2D parts, or no context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def initialize_weights(self) -> None:
        """Occupancy heads start at a prior of ~12% occupied (bias -2, as the prior
        initialisation of Lin et al., "Focal Loss", ICCV 2017), so that an untrained
        decoder does not keep half of all voxels and training starts cheap."""
        for head in [self.dec_coarse_head, *self.dec_occ_heads]:
            nn.init.constant_(head.bias, -2.)

    # ------------------------------------------------------------------ encoder
    def _check_occ(self, occ: torch.Tensor) -> torch.Tensor:
        if occ.dim() != 4 or tuple(occ.shape[1:]) != self.grid.shape:
            raise ValueError(f'occ must be (N, X, Y, Z) = (N, {self.grid.shape}), got '
                             f'{tuple(occ.shape)}')
        return occ.long()

    def encode_sparse(self, occ: torch.Tensor) -> list:
        """The sparse encoder stages.

        Args:
            occ: ``(N, X, Y, Z)`` uint8/int64 labels.

        Returns:
            A list of ``S + 1`` ``SparseConvTensor``; entry ``i`` has spatial shape
            ``(X, Y, Z) / 2**i`` and ``channels[i]`` features. Entry 0 is active exactly
            at the non-free voxels.
        """
        occ = self._check_occ(occ)
        feats = []
        with _sparse_fp32(occ.device):
            x = dense_to_sparse(occ, self.embed, self.free_label)  # (M, embed_dim) at non-free voxels
            for stage in self.enc_stages:
                x = stage(x)
                feats.append(x)
        return feats

    def encode(self, occ: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Occupancy to the latent Gaussian.

        Args:
            occ: ``(N, X, Y, Z)`` uint8/int64 labels ``0..num_classes-1`` (free = last).

        Returns:
            ``mu``, ``logvar``: each ``(N, C_lat, H, W) float32``, H = X / 2**S,
            W = Y / 2**S.
        """
        N = occ.shape[0]
        x = self.encode_sparse(occ)[-1].dense()  # (N, C_S, H, W, Z_S)
        x = x.permute(0, 1, 4, 2, 3).reshape(N, -1, *self.latent_shape)  # (N, C_S * Z_S, H, W)
        with self._dense_autocast(x.device):
            mu, logvar = self.enc_bev(x).chunk(2, dim=1)  # each (N, C_lat, H, W)
        return mu.float(), logvar.float().clamp(-30., 20.)

    # ------------------------------------------------------------------ decoder
    def _level_targets(self, occ: torch.Tensor) -> List[torch.Tensor]:
        """Per-level occupancy targets: entry ``l`` is ``(N, X/2**l, Y/2**l, Z/2**l)``
        bool, true where the cell holds any non-free voxel (``l = 0..S``)."""
        N, X, Y, Z = occ.shape
        c = torch.nonzero(occ != self.free_label).long()  # (M, 4) (batch, x, y, z)
        out = []
        for lvl in range(self.num_down + 1):
            s = 2 ** lvl
            t = torch.zeros(N, X // s, Y // s, Z // s, dtype=torch.bool, device=occ.device)
            t[c[:, 0], c[:, 1] // s, c[:, 2] // s, c[:, 3] // s] = True
            out.append(t)
        return out

    def decode_sparse(self, z: torch.Tensor, gt_occ: Optional[torch.Tensor] = None) -> dict:
        """The coarse-to-fine sparse decoding, returning what the losses need.

        Args:
            z: ``(N, C_lat, H, W) float32`` latent.
            gt_occ: optional ``(N, X, Y, Z)`` labels. When given (training), the kept
                voxels at every level are the union of the predicted-occupied and the
                ground-truth-occupied ones, and targets are returned.

        Returns:
            dict with
            ``occ_logits``: list of S tensors, coarsest first: ``(N*H*W*Z_S,)`` for the
            dense coarsest level, then ``(M_l,)`` for the sparse intermediate levels;
            ``occ_targets``: matching bool tensors (only with ``gt_occ``);
            ``cls_logits``: ``(M_0, num_classes) float32`` at the surviving full-resolution
            voxels; ``coords``: ``(M_0, 4) int32`` (batch, x, y, z) of those voxels;
            ``cls_targets``: ``(M_0,) int64`` labels there (free included; only with
            ``gt_occ``).
        """
        N = z.shape[0]
        H, W = self.latent_shape
        targets = self._level_targets(self._check_occ(gt_occ)) if gt_occ is not None else None
        out = {'occ_logits': [], 'occ_targets': []}

        # Coarsest level: dense, every voxel gets an occupancy logit.
        with self._dense_autocast(z.device):
            x = self.dec_bev(z)  # (N, C_S * Z_S, H, W)
            x = x.reshape(N, self.channels[-1], self.coarse_z, H, W)  # (N, C_S, Z_S, H, W)
            x = x.permute(0, 3, 4, 2, 1)  # (N, H, W, Z_S, C_S)
            logits = self.dec_coarse_head(x).squeeze(-1)  # (N, H, W, Z_S)
        keep = logits > self.occ_threshold
        out['occ_logits'].append(logits.reshape(-1))  # (N*H*W*Z_S,)
        if targets is not None:
            keep = keep | targets[-1]
            out['occ_targets'].append(targets[-1].reshape(-1))
        coords = torch.nonzero(keep).int()  # (M, 4) (batch, x, y, z)
        with _sparse_fp32(z.device):
            x = build_sparse(x[keep].float(), coords, (H, W, self.coarse_z), N)  # features (M, C_S)
            self._decode_levels(x, z, targets, out)
        if targets is not None:
            c = out['coords'].long()
            out['cls_targets'] = gt_occ.long()[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]  # (M_0,)
        return out

    def _decode_levels(self, x, z: torch.Tensor, targets: Optional[List[torch.Tensor]],
                       out: dict) -> None:
        """The sparse part of :meth:`decode_sparse` from the kept coarsest voxels ``x``:
        fills ``out``'s ``occ_logits`` / ``occ_targets`` of the finer levels,
        ``cls_logits`` and ``coords``."""
        # Upsample x2, predict occupancy, prune; at full resolution predict classes.
        for j, up in enumerate(self.dec_up):
            lvl = self.num_down - j - 1  # resolution level of the output
            if x.indices.shape[0] == 0:
                break
            x = up(x)  # generative: 8 children per kept voxel
            if lvl == 0:
                break
            logits = self.dec_occ_heads[j](x.features).squeeze(-1)  # (M_l,)
            keep = logits > self.occ_threshold
            out['occ_logits'].append(logits)
            if targets is not None:
                c = x.indices.long()  # (M_l, 4)
                t = targets[lvl][c[:, 0], c[:, 1], c[:, 2], c[:, 3]]  # (M_l,) bool
                keep = keep | t
                out['occ_targets'].append(t)
            x = sparse_select(x, keep)

        reached = x.indices.shape[0] > 0 and list(x.spatial_shape) == list(self.grid.shape)
        if reached:
            out['cls_logits'] = self.dec_cls_head(x.features)  # (M_0, num_classes)
            out['coords'] = x.indices  # (M_0, 4) int32
        else:  # nothing survived: an empty, all-free scene
            out['cls_logits'] = z.new_zeros(0, self.num_classes)
            out['coords'] = torch.zeros(0, 4, dtype=torch.int32, device=z.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent to occupancy labels.

        Args:
            z: ``(N, C_lat, H, W) float32``.

        Returns:
            ``(N, X, Y, Z) uint8``: argmax labels at the surviving voxels, free elsewhere.
        """
        out = self.decode_sparse(z)
        labels = out['cls_logits'].argmax(dim=1)  # (M_0,)
        return sparse_to_dense(out['coords'], labels, z.shape[0], self.grid.shape,
                               self.free_label)

    # ------------------------------------------------------------------ mmengine
    def loss(self, occ: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Weighted losses of one batch of frames ``occ`` ``(N, X, Y, Z)``; their sum is
        the training objective (mmengine sums every key containing ``'loss'``)."""
        mu, logvar = self.encode(occ)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation
        out = self.decode_sparse(z, gt_occ=occ)
        occ_losses = [occupancy_bce(l, t) for l, t in zip(out['occ_logits'], out['occ_targets'])]
        ce = nn.functional.cross_entropy(out['cls_logits'], out['cls_targets']) \
            if out['cls_targets'].numel() else out['cls_logits'].sum() * 0.
        return {
            'loss_occ': self.occ_weight * torch.stack(occ_losses).mean(),
            'loss_ce': ce,
            'loss_lovasz': self.lovasz_weight * lovasz_softmax(out['cls_logits'], out['cls_targets']),
            'loss_kl': self.kl_weight * kl_standard_normal(mu, logvar),
        }

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """mmengine entry point.

        Args:
            inputs: dict with ``'occ'``: ``(B, T, X, Y, Z) uint8`` (a bare tensor is
                accepted too); frames are flattened to ``N = B * T``.
            data_samples: unused.
            mode: ``'loss'`` -> dict of scalar losses (``loss_occ``, ``loss_ce``,
                ``loss_lovasz``, ``loss_kl``); ``'predict'`` -> list of B dicts
                ``{'pred_occ', 'gt_occ'}``, each ``(T, X, Y, Z) uint8`` on the CPU
                (reconstruction from ``mu``); ``'tensor'`` -> ``mu`` ``(B*T, C_lat, H, W)``.
        """
        occ = inputs['occ'] if isinstance(inputs, dict) else inputs
        B, T = occ.shape[:2]
        flat = occ.reshape(B * T, *occ.shape[2:])  # (B*T, X, Y, Z)
        if mode == 'loss':
            return self.loss(flat)
        if mode == 'predict':
            pred = self.decode(self.encode(flat)[0])  # (B*T, X, Y, Z) uint8
            pred = pred.reshape(B, T, *pred.shape[1:]).cpu()  # (B, T, X, Y, Z)
            gt = occ.to(torch.uint8).cpu()
            return [{'pred_occ': pred[b], 'gt_occ': gt[b]} for b in range(B)]
        if mode == 'tensor':
            return self.encode(flat)[0]
        raise ValueError(f'mode must be loss, predict or tensor, got {mode!r}')


def build_tokenizer(preset: str = 'base', **kwargs) -> OccVAE:
    """``OccVAE`` of a named preset in ``TOKENIZER_PRESETS``; ``kwargs`` override it."""
    return OccVAE(**{**TOKENIZER_PRESETS[preset], **kwargs})
