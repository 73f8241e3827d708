"""Data transforms (``transform(results: dict) -> dict``) and the collate function."""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from occwm.data.layout import load_labels
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.registry import FUNCTIONS, TRANSFORMS


@TRANSFORMS.register_module()
class LoadOccWindow:
    """Load the occupancy of every frame of a window.

    Required Keys: ``occ_paths`` (T paths of ``labels.npz``).
    Added Keys: ``occ`` (T, X, Y, Z) uint8; with ``with_masks``: ``mask_lidar`` and
    ``mask_camera`` (T, X, Y, Z) uint8.

    Args:
        grid: kwargs of ``OccGrid`` (default Occ3D-nuScenes).
        with_masks: also load the visibility masks.

    Raises:
        FileNotFoundError / ValueError naming the file (see ``layout.load_labels``).
    """

    def __init__(self, grid: dict = None, with_masks: bool = False):
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        self.keys = ('semantics', 'mask_lidar', 'mask_camera') if with_masks else ('semantics',)

    def __call__(self, results: dict) -> dict:
        frames = [load_labels(p, self.grid, self.keys) for p in results['occ_paths']]
        results['occ'] = np.stack([f['semantics'] for f in frames])  # (T, X, Y, Z)
        for key in self.keys[1:]:
            results[key] = np.stack([f[key] for f in frames])
        return results


@TRANSFORMS.register_module()
class PackOccInputs:
    """Split a window into model ``inputs`` (tensors) and ``data_samples`` (meta).

    Required Keys: ``occ``, ``traj``, ``scene_name``, ``tokens``, ``timestamps``, ``num_past``.
    Added Keys: ``inputs`` = {``occ`` (T, X, Y, Z) uint8, ``traj`` (T, 3) float32} and
    ``data_samples`` = dict of the meta keys (plus masks as tensors when loaded).
    """

    META_KEYS = ('scene_name', 'tokens', 'timestamps', 'num_past', 'ego2global')

    def __call__(self, results: dict) -> dict:
        inputs = dict(occ=torch.from_numpy(np.ascontiguousarray(results['occ'])),
                      traj=torch.from_numpy(np.asarray(results['traj'], np.float32)))
        meta = {k: results[k] for k in self.META_KEYS if k in results}
        for key in ('mask_lidar', 'mask_camera'):
            if key in results:
                meta[key] = torch.from_numpy(results[key])
        return dict(inputs=inputs, data_samples=meta)


@FUNCTIONS.register_module()
def occ_collate(batch: Sequence[dict]) -> dict:
    """Stack ``inputs`` tensors to ``(B, ...)`` and keep ``data_samples`` as a list of
    B meta dicts. Use as ``collate_fn=dict(type='occwm.occ_collate')``."""
    inputs = {k: torch.stack([b['inputs'][k] for b in batch]) for k in batch[0]['inputs']}
    samples: List[dict] = [b['data_samples'] for b in batch]
    return dict(inputs=inputs, data_samples=samples)
