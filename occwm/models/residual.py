"""ResidualDecoder: future occupancy as the warped present plus a learnt change.

The forecaster's future latents are not decoded from scratch. Each future frame starts
from the present occupancy warped into that frame's ego pose (``occwm.warp.warp_planar``,
nearest voxel: the ``warp`` baseline, exact on every static voxel), and this decoder
predicts only what changes, column by column of the BEV grid:

1. a BEV trunk at the latent resolution reads the forecast latent ``z``, the present
   latent warped the same way ``w`` (so ``z - w`` is the change the DiT forecast), where
   that warp has data, and the warped present occupancy itself (a learnt code of every
   column's labels, pooled); its features, upsampled, meet each column's own code at
   full resolution;
2. a **change gate** gives each BEV column ``(x, y)`` the logit that its 16 voxels differ
   from the warped present (moving agents, newly seen space, resampling errors);
3. only the gated columns and those where the warp has no data (newly seen space) are
   decoded: per voxel class logits from the column's feature plus a learnt bonus for
   keeping the warped label. Every other column is the warped present, unchanged.

So the cost of step 3 follows the changed and newly seen columns, and **with a zero
residual (gate closed, column head zero) the output is the warp baseline voxel for
voxel** (the keep bonus returns the warped label, the warp's free fill where it has no
data); both start so (gate weights 0, bias ``gate_init``; the column head's last layer
0), so training starts from the warp. Motion-compensated
prediction plus a residual is the video-codec recipe; in occupancy forecasting the same
idea appears as IR-WM's residual on the previous state (arXiv 2510.16729) and FSF-Net's
warp-then-correct fusion.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from occwm.grid import DYNAMIC_CLASSES
from occwm.models.tokenizer import ResBlock2d, _group_norm


class DilatedBlock(nn.Module):
    """``x + conv_d(act(norm(x)))``: a residual 3x3 convolution of dilation ``d`` on
    ``(N, D, H, W) float32`` (context aggregation as in Yu & Koltun, ICLR 2016)."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(_group_norm(dim), nn.SiLU(),
                                   nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, D, H, W)`` -> ``(N, D, H, W)``."""
        return x + self.block(x)


class ResidualDecoder(nn.Module):
    """Decode future occupancy as warped present + change (module docstring).

    Args:
        latent_channels: ``C`` of the latents.
        num_classes: labels incl. free (18 for Occ3D); free is the last.
        grid_shape: ``(X, Y, Z)`` of the occupancy (``X = f H``, ``Y = f W``).
        latent_shape: ``(H, W)`` of the latent grid.
        width: channels of the BEV trunk (latent resolution) and of the full-resolution
            column features, which the gate and the column head read.
        embed_dim: per-voxel class embedding of a gated column in the column head.
        gate_init: initial bias of the change gate (sigmoid(-6) ~ 0.0025: closed).
        gate_threshold: a column is decoded where ``sigmoid(gate) > gate_threshold``.
        max_train_columns: columns per frame decoded in training (a random choice among
            the changed ones and a share of the unchanged ones), to bound memory.
        unchanged_share: fraction of unchanged columns decoded in training (they teach
            the column head to reproduce the warped present where the gate fires wrongly).
        keep_agents: leave the movable classes (``occwm.grid.DYNAMIC_CLASSES``) to the
            agent tracker that moved them in the base (``occwm.motion``): a column of the
            base holding one is never decoded, and decoded columns never take one (its
            logits are masked; in training its voxels are ignored). The decoder then
            changes the static world only.
    """

    def __init__(self, latent_channels: int, num_classes: int = 18,
                 grid_shape: Tuple[int, int, int] = (200, 200, 16),
                 latent_shape: Tuple[int, int] = (50, 50), width: int = 32, embed_dim: int = 4,
                 gate_init: float = -6.0, gate_threshold: float = 0.5,
                 max_train_columns: int = 4096, unchanged_share: float = 0.05,
                 keep_agents: bool = False):
        super().__init__()
        X, Y, Z = grid_shape
        H, W = latent_shape
        if X % H or Y % W or X // H != Y // W:
            raise ValueError(f'grid {grid_shape} is not a whole multiple of the latent {latent_shape}')
        self.grid_shape, self.latent_shape = tuple(grid_shape), tuple(latent_shape)
        self.num_classes, self.free_label = num_classes, num_classes - 1
        self.factor = X // H
        self.gate_threshold = gate_threshold
        self.max_train_columns, self.unchanged_share = max_train_columns, unchanged_share
        agents = torch.zeros(num_classes, dtype=torch.bool)
        if keep_agents:
            agents[list(DYNAMIC_CLASSES)] = True
        self.register_buffer('agent_classes', agents, persistent=False)  # (K,) bool
        C, D, f = latent_channels, width, self.factor
        # a column (its Z labels) -> D features: a 1x1 conv of its class histogram, its
        # occupied voxels and whether the warp has data there (column_descriptor)
        self.column_code = nn.Conv2d(num_classes + Z + 1, D, 1)
        self.pool = nn.Conv2d(D, D, f, stride=f)  # full -> latent resolution
        # dilated blocks: a receptive field of about 45 latent cells (70 m at 1.6 m), so
        # newly seen space can be extrapolated from what the warp still shows
        self.trunk = nn.Sequential(nn.Conv2d(3 * C + 1 + D, D, 3, padding=1), ResBlock2d(D), ResBlock2d(D),
                                   DilatedBlock(D, 2), DilatedBlock(D, 4), DilatedBlock(D, 8))
        self.full = nn.Sequential(_group_norm(D), nn.SiLU(),
                                  nn.Conv2d(D, D, 3, padding=1, groups=D), nn.Conv2d(D, D, 1),
                                  _group_norm(D), nn.SiLU())  # depthwise-separable: cheap at X x Y
        self.gate = nn.Conv2d(D, 1, 1)
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.column = nn.Sequential(nn.Linear(D + Z * embed_dim, 2 * D), nn.SiLU(),
                                    nn.Linear(2 * D, Z * num_classes))
        self.keep_bonus = nn.Parameter(torch.tensor(2.0))
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, gate_init)
        nn.init.zeros_(self.column[-1].weight)  # a zero residual: the keep bonus decides
        nn.init.zeros_(self.column[-1].bias)

    def features(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
                 w: torch.Tensor, w_valid: torch.Tensor) -> torch.Tensor:
        """Full-resolution BEV features of each frame.

        Args:
            warped_occ: ``(N, X, Y, Z) uint8`` present occupancy warped into the frame.
            valid: ``(N, X, Y) bool`` where that warp has data.
            z: ``(N, C, H, W) float32`` forecast latent of the frame.
            w: ``(N, C, H, W) float32`` present latent warped into the frame.
            w_valid: ``(N, 1, H, W) float32`` where ``w`` has data.

        Returns:
            ``(N, D, X, Y) float32``.
        """
        col = self.column_code(self.column_descriptor(warped_occ, valid))  # (N, D, X, Y)
        lat = self.trunk(torch.cat([z, w, z - w, w_valid, self.pool(col)], 1))  # (N, D, H, W)
        up = F.interpolate(lat, scale_factor=self.factor, mode='nearest')  # (N, D, X, Y)
        return self.full(up + col)  # (N, D, X, Y)

    @torch.no_grad()
    def column_descriptor(self, occ: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(N, K + Z + 1, X, Y) float32``: per BEV column of ``occ`` ``(N, X, Y, Z) uint8``
        the count of each label (``K``), which voxels are occupied (``Z``) and ``valid``."""
        N, X, Y, Z = occ.shape
        labels = occ.long()
        hist = torch.zeros(N, X, Y, self.num_classes, device=occ.device)
        hist.scatter_add_(3, labels, torch.ones(labels.shape, device=occ.device))
        occupied = (labels != self.free_label).float()  # (N, X, Y, Z)
        out = torch.cat([hist / Z, occupied, valid[..., None].float()], 3)  # (N, X, Y, K + Z + 1)
        return out.permute(0, 3, 1, 2).contiguous()

    def column_logits(self, feat: torch.Tensor, warped_occ: torch.Tensor,
                      idx: torch.Tensor) -> torch.Tensor:
        """Class logits ``(M, Z, num_classes)`` of the columns ``idx`` ``(M, 3) long``
        ``(frame, x, y)``: the column head plus ``keep_bonus`` on the warped label."""
        n, x, y = idx.unbind(1)
        labels = warped_occ[n, x, y].long()  # (M, Z)
        f = torch.cat([feat[n, :, x, y], self.embed(labels).flatten(1)], 1)  # (M, D + Z * E)
        logits = self.column(f).unflatten(1, (self.grid_shape[2], self.num_classes))  # (M, Z, K)
        bonus = self.keep_bonus.to(logits.dtype).expand(labels.shape)[..., None]  # (M, Z, 1), logits' dtype
        logits = logits.scatter_add(2, labels[..., None], bonus)
        return logits.masked_fill(self.agent_classes, float('-inf'))  # tracker's classes

    def agent_columns(self, warped_occ: torch.Tensor) -> torch.Tensor:
        """``(N, X, Y) bool``: columns of ``warped_occ`` ``(N, X, Y, Z) uint8`` holding a
        class left to the agent tracker (none without ``keep_agents``)."""
        return self.agent_classes[warped_occ.long()].any(-1)

    def forward(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
                w: torch.Tensor, w_valid: torch.Tensor) -> torch.Tensor:
        """Future occupancy ``(N, X, Y, Z) uint8``: the warped present where the gate is
        closed, the column head's labels where it is open or where the warp has no data
        (newly seen space: the warp's fill there is no observation; a zero column head
        keeps the fill, so a zero residual is still the warp) (arguments:
        :meth:`features`)."""
        feat = self.features(warped_occ, valid, z, w, w_valid)
        out = warped_occ.clone()
        gate = self.gate(feat)[:, 0]  # (N, X, Y)
        open_ = (gate > torch.logit(torch.tensor(self.gate_threshold))) | ~valid.bool()  # (N, X, Y)
        idx = (open_ & ~self.agent_columns(warped_occ)).nonzero()  # (M, 3)
        if len(idx):
            labels = self.column_logits(feat, warped_occ, idx).argmax(-1)  # (M, Z)
            out[idx[:, 0], idx[:, 1], idx[:, 2]] = labels.to(out.dtype)
        return out

    def loss(self, warped_occ: torch.Tensor, valid: torch.Tensor, z: torch.Tensor,
             w: torch.Tensor, w_valid: torch.Tensor, target: torch.Tensor,
             generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        """Training losses against the true future ``target`` ``(N, X, Y, Z) uint8``.

        ``loss_gate``: binary cross-entropy of the change gate against "the column's
        labels differ from the warped present". ``loss_column``: cross-entropy of the
        voxel labels of up to ``max_train_columns`` columns per frame, drawn from the
        changed ones and a ``unchanged_share`` of the unchanged ones.
        """
        feat = self.features(warped_occ, valid, z, w, w_valid)
        changed = (target != warped_occ).any(-1)  # (N, X, Y)
        gate = self.gate(feat)[:, 0]  # (N, X, Y)
        loss_gate = F.binary_cross_entropy_with_logits(gate, changed.to(gate.dtype))
        pick = changed | (torch.rand(changed.shape, generator=generator, device=changed.device)
                          < self.unchanged_share)  # (N, X, Y)
        pick &= ~self.agent_columns(warped_occ)
        idx = pick.nonzero()  # (M, 3)
        cap = self.max_train_columns * changed.shape[0]
        if len(idx) > cap:
            idx = idx[torch.randperm(len(idx), generator=generator, device=idx.device)[:cap]]
        if not len(idx):
            return dict(loss_gate=loss_gate, loss_column=feat.sum() * 0)
        logits = self.column_logits(feat, warped_occ, idx)  # (M, Z, K)
        labels = target[idx[:, 0], idx[:, 1], idx[:, 2]].long()  # (M, Z)
        labels = labels.masked_fill(self.agent_classes[labels], -100)  # the tracker's: ignored
        if not (labels >= 0).any():
            return dict(loss_gate=loss_gate, loss_column=feat.sum() * 0)
        loss_column = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return dict(loss_gate=loss_gate, loss_column=loss_column)
