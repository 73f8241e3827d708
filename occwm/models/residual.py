"""ResidualDecoder: future occupancy as the warped present plus a learnt change.

The forecaster's future latents are not decoded from scratch. Each future frame starts
from the present occupancy warped into that frame's ego pose (``occwm.warp.warp_planar``,
nearest voxel: the ``warp`` baseline, exact on every static voxel), and this decoder
predicts only what changes, column by column of the BEV grid:

1. a BEV trunk reads the forecast latent ``z``, the present latent warped the same way
   ``w`` (so ``z - w`` is the change the DiT forecast), where that warp has data, and the
   warped present occupancy itself (per-voxel class embeddings stacked over z);
2. a **change gate** gives each BEV column ``(x, y)`` the logit that its 16 voxels differ
   from the warped present (moving agents, newly seen space, resampling errors);
3. only the gated columns are decoded: per voxel class logits from the column's
   feature plus a learnt bonus for keeping the warped label. Every other column is the
   warped present, unchanged.

So the cost of step 3 follows the changed columns, and **with a zero residual (no column
gated) the output is the warp baseline voxel for voxel**; the gate starts closed
(weights 0, bias ``gate_init``), so training starts from the warp. Motion-compensated
prediction plus a residual is the video-codec recipe; in occupancy forecasting the same
idea appears as IR-WM's residual on the previous state (arXiv 2510.16729) and FSF-Net's
warp-then-correct fusion.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from occwm.models.tokenizer import ResBlock2d, _group_norm


class ResidualDecoder(nn.Module):
    """Decode future occupancy as warped present + change (module docstring).

    Args:
        latent_channels: ``C`` of the latents.
        num_classes: labels incl. free (18 for Occ3D); free is the last.
        grid_shape: ``(X, Y, Z)`` of the occupancy (X, Y divisible by the latent grid's
            ``(H, W)`` times 1, 2 or 4).
        latent_shape: ``(H, W)`` of the latent grid.
        embed_dim: per-voxel class embedding of the warped present.
        width: channels of the BEV trunk at half resolution (``X/2 x Y/2``) and latent
            resolution.
        full_width: channels of the full-resolution features (``X x Y``), which the gate
            and the column head read.
        gate_init: initial bias of the change gate (sigmoid(-6) ~ 0.0025: closed).
        gate_threshold: a column is decoded where ``sigmoid(gate) > gate_threshold``.
        max_train_columns: columns per frame decoded in training (changed ones first,
            then a random share of unchanged ones), to bound memory.
        unchanged_share: fraction of unchanged columns decoded in training (they teach
            the column head to reproduce the warped present where the gate fires wrongly).
    """

    def __init__(self, latent_channels: int, num_classes: int = 18,
                 grid_shape: Tuple[int, int, int] = (200, 200, 16),
                 latent_shape: Tuple[int, int] = (50, 50), embed_dim: int = 8, width: int = 32,
                 full_width: int = 32, gate_init: float = -6.0, gate_threshold: float = 0.5,
                 max_train_columns: int = 6144, unchanged_share: float = 0.05):
        super().__init__()
        X, Y, Z = grid_shape
        H, W = latent_shape
        if X % H or Y % W or X // H != Y // W or (X // H) not in (1, 2, 4):
            raise ValueError(f'grid {grid_shape} and latent {latent_shape} need a common '
                             f'factor of 1, 2 or 4')
        self.grid_shape, self.latent_shape = tuple(grid_shape), tuple(latent_shape)
        self.num_classes, self.free_label = num_classes, num_classes - 1
        self.factor = X // H
        self.gate_threshold = gate_threshold
        self.max_train_columns, self.unchanged_share = max_train_columns, unchanged_share
        C, D, Dh = latent_channels, width, full_width
        self.embed = nn.Embedding(num_classes, embed_dim)
        # full resolution: the warped present's columns (+ where the warp has data)
        self.occ_in = nn.Conv2d(Z * embed_dim + 1, Dh, 1)
        self.occ_down = nn.Sequential(nn.SiLU(), nn.Conv2d(Dh, D, 3, stride=2, padding=1))
        # latent resolution: forecast latent, warped present latent, their change, valid
        self.lat_in = nn.Sequential(nn.Conv2d(3 * C + 1, D, 3, padding=1), ResBlock2d(D), ResBlock2d(D))
        self.fuse = nn.Sequential(nn.Conv2d(2 * D, D, 3, padding=1), ResBlock2d(D))
        self.up = nn.ConvTranspose2d(D, Dh, 2, stride=2)
        self.full = nn.Sequential(_group_norm(Dh), nn.SiLU(),
                                  nn.Conv2d(Dh, Dh, 3, padding=1, groups=Dh), nn.Conv2d(Dh, Dh, 1),
                                  _group_norm(Dh), nn.SiLU())  # depthwise-separable: cheap at X x Y
        self.gate = nn.Conv2d(Dh, 1, 1)
        self.column = nn.Sequential(nn.Linear(Dh + Z * embed_dim, 2 * Dh), nn.SiLU(),
                                    nn.Linear(2 * Dh, Z * num_classes))
        self.keep_bonus = nn.Parameter(torch.tensor(2.0))
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, gate_init)

    def features(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
                 w: torch.Tensor, w_valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """BEV features of each frame.

        Args:
            warped_occ: ``(N, X, Y, Z) uint8`` present occupancy warped into the frame.
            valid: ``(N, X, Y) bool`` where that warp has data.
            z: ``(N, C, H, W) float32`` forecast latent of the frame.
            w: ``(N, C, H, W) float32`` present latent warped into the frame.
            w_valid: ``(N, 1, H, W) float32`` where ``w`` has data.

        Returns:
            ``feat (N, D_full, X, Y)`` and the column embedding ``(N, X, Y, Z * E)``.
        """
        emb = self.embed(warped_occ.long()).flatten(3)  # (N, X, Y, Z * E)
        occ = torch.cat([emb.permute(0, 3, 1, 2), valid[:, None].to(emb.dtype)], 1)  # (N, Z*E+1, X, Y)
        full = self.occ_in(occ)  # (N, D_full, X, Y)
        half = self.occ_down(full)  # (N, D, X/2, Y/2)
        lat = self.lat_in(torch.cat([z, w, z - w, w_valid], 1))  # (N, D, H, W)
        lat = F.interpolate(lat, size=half.shape[-2:], mode='nearest')  # (N, D, X/2, Y/2)
        half = self.fuse(torch.cat([half, lat], 1))  # (N, D, X/2, Y/2)
        feat = self.full(self.up(half) + full)  # (N, D_full, X, Y)
        return feat, emb

    def column_logits(self, feat: torch.Tensor, emb: torch.Tensor, warped_occ: torch.Tensor,
                      idx: torch.Tensor) -> torch.Tensor:
        """Class logits ``(M, Z, num_classes)`` of the columns ``idx`` ``(M, 3) long``
        ``(frame, x, y)``."""
        n, x, y = idx.unbind(1)
        f = torch.cat([feat[n, :, x, y], emb[n, x, y]], 1)  # (M, D_full + Z * E)
        logits = self.column(f).unflatten(1, (self.grid_shape[2], self.num_classes))  # (M, Z, K)
        keep = F.one_hot(warped_occ[n, x, y].long(), self.num_classes).to(logits.dtype)  # (M, Z, K)
        return logits + self.keep_bonus * keep

    def forward(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
                w: torch.Tensor, w_valid: torch.Tensor) -> torch.Tensor:
        """Future occupancy ``(N, X, Y, Z) uint8``: the warped present where the gate is
        closed, the column head's labels where it is open (arguments: :meth:`features`)."""
        feat, emb = self.features(warped_occ, valid, z, w, w_valid)
        out = warped_occ.clone()
        gate = self.gate(feat)[:, 0]  # (N, X, Y)
        idx = (torch.sigmoid(gate) > self.gate_threshold).nonzero()  # (M, 3)
        if len(idx):
            labels = self.column_logits(feat, emb, warped_occ, idx).argmax(-1)  # (M, Z)
            out[idx[:, 0], idx[:, 1], idx[:, 2]] = labels.to(out.dtype)
        return out

    def loss(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
             w: torch.Tensor, w_valid: torch.Tensor, target: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Training losses against the true future ``target`` ``(N, X, Y, Z) uint8``.

        ``loss_gate``: binary cross-entropy of the change gate against "the column's
        labels differ from the warped present". ``loss_column``: cross-entropy of the
        voxel labels of the changed columns (at most ``max_train_columns`` per batch
        frame) and a ``unchanged_share`` of the unchanged ones.
        """
        feat, emb = self.features(warped_occ, valid, z, w, w_valid)
        changed = (target != warped_occ).any(-1)  # (N, X, Y)
        gate = self.gate(feat)[:, 0]  # (N, X, Y)
        loss_gate = F.binary_cross_entropy_with_logits(gate, changed.to(gate.dtype))
        pick = changed | (torch.rand(changed.shape, generator=generator, device=changed.device)
                          < self.unchanged_share)  # (N, X, Y)
        idx = pick.nonzero()  # (M, 3)
        cap = self.max_train_columns * changed.shape[0]
        if len(idx) > cap:
            idx = idx[torch.randperm(len(idx), generator=generator, device=idx.device)[:cap]]
        if not len(idx):
            return dict(loss_gate=loss_gate, loss_column=feat.sum() * 0)
        logits = self.column_logits(feat, emb, warped_occ, idx)  # (M, Z, K)
        labels = target[idx[:, 0], idx[:, 1], idx[:, 2]].long()  # (M, Z)
        loss_column = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return dict(loss_gate=loss_gate, loss_column=loss_column)
