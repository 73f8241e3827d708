"""Data transforms (``transform(results: dict) -> dict``) and the collate function."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from occwm.io import load_labels
from occwm.data.occ_cache import OccCache
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.registry import FUNCTIONS, TRANSFORMS
from occwm.window import OccWindow


@TRANSFORMS.register_module()
class LoadOccWindow:
    """Load the occupancy of every frame of a window.

    Required Keys: ``occ_paths`` (T paths of ``labels.npz``).
    Added Keys: ``occ`` (T, X, Y, Z) uint8; with ``with_masks``: ``mask_lidar`` and
    ``mask_camera`` (T, X, Y, Z) uint8.

    Args:
        grid: kwargs of ``OccGrid`` (default Occ3D-nuScenes).
        with_masks: also load the visibility masks.
        cache_dir: read through the sparse occupancy cache in this folder
            (``occwm.data.occ_cache``: built on first use, rebuilt when a ``labels.npz``
            changes; same arrays, several times faster to load). ``None``: decode the
            ``labels.npz`` files every time.

    Raises:
        FileNotFoundError / ValueError naming the file (see ``occwm.io.load_labels``).
    """

    def __init__(self, grid: dict = None, with_masks: bool = False,
                 cache_dir: Optional[str] = None):
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        self.keys = ('semantics', 'mask_lidar', 'mask_camera') if with_masks else ('semantics',)
        self.cache = OccCache(cache_dir, self.grid) if cache_dir else None

    def load_frame(self, path: str) -> Dict[str, np.ndarray]:
        """``{key: (X, Y, Z) uint8}`` of one ``labels.npz`` (through the cache if any)."""
        if self.cache is not None:
            return self.cache.load(path, self.keys)
        return load_labels(path, self.grid, self.keys)

    def __call__(self, results: dict) -> dict:
        frames = [self.load_frame(p) for p in results['occ_paths']]
        results['occ'] = np.stack([f['semantics'] for f in frames])  # (T, X, Y, Z)
        for key in self.keys[1:]:
            results[key] = np.stack([f[key] for f in frames])
        return results


@TRANSFORMS.register_module()
class PackOccInputs:
    """Split a window into model ``inputs`` (tensors) and its ``OccWindow``.

    Required Keys: ``occ``, ``traj``, ``scene_name``, ``tokens``, ``timestamps``,
    ``num_past``. Optional: ``ego2global``, ``mask_lidar``, ``mask_camera``, ``aug``,
    ``sample_idx``.
    Added Keys: ``inputs`` = {``occ`` (T, X, Y, Z) uint8, ``traj`` (T, 3) float32} and
    ``data_samples`` = the window (``occwm.window.OccWindow``, torch tensors sharing
    ``inputs``' memory, masks as uint8 tensors when loaded).

    Args:
        num_past: give the model this many past frames: fewer are padded by repeating
            the oldest frame, more are cut (``OccWindow.with_num_past``); e.g. DOME's
            protocol scores 4 past frames with a 5-frame model. ``None``: as loaded.
    """

    def __init__(self, num_past: Optional[int] = None):
        self.num_past = num_past

    def __call__(self, results: dict) -> dict:
        tensors = dict(occ=torch.from_numpy(np.ascontiguousarray(results['occ'])),
                       traj=torch.from_numpy(np.asarray(results['traj'], np.float32)))
        for key in ('mask_lidar', 'mask_camera'):
            if key in results:
                tensors[key] = torch.from_numpy(np.ascontiguousarray(results[key]))
        window = OccWindow.from_results(dict(results, **tensors))
        if self.num_past is not None:
            window = window.with_num_past(self.num_past)
        return dict(inputs=dict(occ=window.occ, traj=window.traj), data_samples=window)


@FUNCTIONS.register_module()
def occ_collate(batch: Sequence[dict]) -> dict:
    """Stack ``inputs`` tensors to ``(B, ...)`` and keep ``data_samples`` as a list of
    B windows (``OccWindow``). Use as ``collate_fn=dict(type='occwm.occ_collate')``.

    The stacking is torch's ``default_collate``: in a dataloader worker it writes the
    batch straight into shared memory (no extra copy on the way to the main process).
    """
    inputs = default_collate([b['inputs'] for b in batch])  # {k: (B, ...)}
    samples: List[OccWindow] = [b['data_samples'] for b in batch]
    return dict(inputs=inputs, data_samples=samples)
