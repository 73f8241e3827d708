"""Window augmentation that keeps occupancy, trajectory and ego poses consistent.

One draw per window: the same planar map ``A`` of the ego frame (flips, rotations by
multiples of 90 degrees, optionally a small yaw) is applied to every frame's grid, to
the trajectory and to the ego poses, so that warping a past frame into the present
with the augmented trajectory gives the augmented present frame.

The map acts on ego-frame points (metres) as ``p_aug = A p`` with ``A`` a ``(2, 2)``
orthogonal matrix on (x, y) (z unchanged)::

    A = R(yaw) @ R(90 deg * k) @ diag(sx, sy)      sx = -1: flip x, sy = -1: flip y

- occupancy ``(T, X, Y, Z)``: ``occ_aug(p) = occ(A^-1 p)``; flips and quarter turns are
  exact index permutations when the grid is symmetric about the ego (x and y ranges
  ``[-r, r]``, and ``X == Y`` for odd quarter turns); a small yaw resamples each column
  with the nearest voxel, and voxels whose source lies outside the grid become free
  (masks: 0, not observed).
- trajectory ``(T, 3)`` x, y, yaw of each frame's ego pose in the present ego frame:
  every ego frame is mapped by ``A``, so a relative pose ``P`` becomes ``A P A^-1``:
  ``xy -> A xy`` and ``yaw -> yaw`` for rotations, ``yaw -> -yaw`` for mirrors (the
  conjugate of a rotation by a reflection is the inverse rotation).
- ``ego2global`` ``(T, 4, 4)``: ``E -> E @ inv(A4)`` (``A4`` = ``A`` on x, y, 1 on z),
  so that it still maps augmented ego points to the global frame and
  ``inv(E'_ref) @ E'_t = A4 inv(E_ref) E_t A4^-1``. With a mirror the result has
  determinant -1: it is not a rigid pose, and pose tools that assume a rotation
  (``pyquaternion``, ``occwm.geometry.planar`` / ``yaw_of`` / ``trajectory_in_frame``)
  must not be applied to it; ``occwm.geometry.relative_pose`` stays valid.

Convention of flips as in mmdetection3d's ``RandomFlip3D`` on LiDAR/ego points:
``flip_y`` ("horizontal" BEV flip) negates y, a left-right mirror with the ego still
driving forward; ``flip_x`` ("vertical") negates x.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import numpy as np

from occwm.geometry import wrap_angle
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.registry import TRANSFORMS
from occwm.warp import warp_planar

# Grids of a window that the augmentation moves (where a small yaw leaves a voxel without a
# source: free in occ, 0 = not observed in the masks).
GRID_KEYS: Tuple[str, ...] = ('occ', 'mask_lidar', 'mask_camera')


def ego_map(flip_x: bool = False, flip_y: bool = False, rot90: int = 0,
            yaw: float = 0.0) -> np.ndarray:
    """The ``(2, 2) float64`` orthogonal map ``A = R(yaw) R(90 deg * rot90) diag(sx, sy)``
    of ego-frame (x, y) (see the module docstring). Quarter turns are exact integers."""
    F = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0])
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][rot90 % 4]
    R90 = np.array([[c, -s], [s, c]], np.float64)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array([[cy, -sy], [sy, cy]]) @ R90 @ F


def _columns(arr: np.ndarray) -> np.ndarray:
    """``(T, X, Y, Z)`` grids as ``(T, X, Y)`` opaque z columns (one void element per
    column, a view when ``arr`` is C-contiguous): moving whole columns is ~10x faster
    than moving ``Z`` single bytes."""
    arr = np.ascontiguousarray(arr)
    return arr.view(np.dtype((np.void, arr.shape[-1] * arr.itemsize)))[..., 0]


def _from_columns(cols: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Inverse of ``_columns``: ``(T, X, Y)`` columns to a C-contiguous ``(T, X, Y, Z)``."""
    return np.ascontiguousarray(cols).view(like.dtype).reshape(*cols.shape, like.shape[-1])


def flip_rot90_grid(arr: np.ndarray, flip_x: bool, flip_y: bool, rot90: int) -> np.ndarray:
    """Exact flip then counter-clockwise quarter turns of ``(T, X, Y, Z)`` grids about
    the ego (grid symmetric about the ego; ``X == Y`` for odd ``rot90``).

    Returns a C-contiguous ``(T, X, Y, Z)`` array of ``arr``'s dtype (new, or ``arr``
    itself for the identity), ``occ_aug(p) = occ(A^-1 p)`` with
    ``A = ego_map(flip_x, flip_y, rot90)``.
    """
    cols = _columns(arr)                                      # (T, X, Y) z columns
    if flip_x:
        cols = cols[:, ::-1]
    if flip_y:
        cols = cols[:, :, ::-1]
    # np.rot90 over (x, y): out[i, j] = in[j, X - 1 - i], i.e. (x, y) -> (-y, x).
    cols = np.rot90(cols, rot90 % 4, axes=(1, 2))
    return _from_columns(cols, arr)                           # (T, X, Y, Z)


def resample_grid(arr: np.ndarray, A: np.ndarray, fill: int, grid: OccGrid = DEFAULT_GRID
                  ) -> np.ndarray:
    """Nearest-voxel resampling of ``(T, X, Y, Z)`` grids under the planar map ``A``
    (any grid, any angle): ``out(p) = arr(A^-1 p)``, ``fill`` where the source column
    is outside the grid (``occwm.warp.warp_planar`` with the map ``[A^T | 0]``).
    Returns a new C-contiguous array of ``arr``'s dtype."""
    M = np.concatenate([np.asarray(A, np.float64).T, np.zeros((2, 1))], 1)  # (2, 3) A^-1 = A^T
    return warp_planar(arr, M[None], grid, fill=fill, affine=True)[0]        # (T, X, Y, Z)


def transform_trajectory(traj: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Planar trajectory ``(T, 3)`` x, y (metres), yaw (radians) of relative poses ``P``
    to those of ``A P A^-1`` (same dtype, yaw wrapped to ``[-pi, pi)``)."""
    traj = np.asarray(traj)
    out = np.array(traj, dtype=np.float64, copy=True)
    out[:, :2] = traj[:, :2] @ A.T                            # (T, 2) A xy
    c, s = np.cos(traj[:, 2]), np.sin(traj[:, 2])
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    R = A @ R @ A.T                                           # (T, 2, 2) A R A^-1
    out[:, 2] = wrap_angle(np.arctan2(R[:, 1, 0], R[:, 0, 0]))
    return out.astype(traj.dtype)


def transform_ego2global(ego2global: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``(..., 4, 4)`` ego -> global poses ``E`` to ``E @ inv(A4)`` (determinant -1 for
    a mirror: not a rigid pose, see the module docstring)."""
    A4_inv = np.eye(4)
    A4_inv[:2, :2] = A.T
    return np.asarray(ego2global) @ A4_inv


def _symmetric(lo: float, hi: float) -> bool:
    return abs(lo + hi) < 1e-6


@TRANSFORMS.register_module()
class RandomFlipRotateOcc:
    """Random flips / rotations of the ego frame of a whole window (one draw per window).

    Apply after ``LoadOccWindow`` and before ``PackOccInputs``; training pipelines only.

    Required Keys: ``occ`` (T, X, Y, Z) uint8, ``traj`` (T, 3) float32.
    Modified Keys: ``occ``, ``traj``, and when present ``mask_lidar``, ``mask_camera``
    (T, X, Y, Z) uint8 and ``ego2global`` (T, 4, 4) float64 (see the module docstring).
    Added Keys: ``aug`` dict: ``flip_x``, ``flip_y`` bool, ``rot90`` int (quarter turns,
    counter-clockwise), ``yaw`` float radians, ``matrix`` (2, 2) float64 ``A``
    (``p_aug = A p``, ego frame). When nothing is drawn the arrays are returned as they
    are (no copy).

    Randomness: with ``seed=None`` (default) the draws come from numpy's global
    generator, the mmdetection3d convention: mmengine seeds it in the main process and
    in every dataloader worker (``randomness=dict(seed=...)``, worker seed = seed +
    worker id + rank * workers), so a run is reproducible for a fixed number of workers
    (with ``persistent_workers=True``; non-persistent workers are re-seeded each epoch
    and repeat their draws). With ``seed=<int>`` the transform owns a
    ``numpy.random.Generator`` seeded with ``(seed, rank, worker id)`` on first use in
    each process, independent of the global state (tests, standalone use).

    Args:
        flip_y_prob: probability of ``y -> -y`` (left-right mirror about the ego x axis).
        flip_x_prob: probability of ``x -> -x`` (front-back mirror: the ego drives backwards).
        rot90_prob: probability of a quarter-turn rotation by ``k * 90`` degrees, ``k``
            drawn uniformly from ``rot90_k`` (the ego then drives sideways or backwards,
            a distribution shift for a forecaster: off by default).
        rot90_k: allowed quarter turns, a subset of ``(1, 2, 3)``.
        yaw_prob: probability of an extra small rotation by ``U(-max_yaw, max_yaw)``
            radians, resampled to the nearest voxel (not exact; borders become free).
        max_yaw: radians.
        grid: kwargs of ``OccGrid`` (default Occ3D-nuScenes).
        seed: see Randomness.
        free_label: fill of ``occ`` where a small yaw has no source (default: the grid's).

    Raises:
        ValueError: a probability outside [0, 1], ``rot90_k`` not in 1..3, a negative
            ``max_yaw``, or a grid not symmetric about the ego for the exact flips /
            quarter turns that have a non-zero probability.
    """

    def __init__(self, flip_y_prob: float = 0.5, flip_x_prob: float = 0.0,
                 rot90_prob: float = 0.0, rot90_k: Sequence[int] = (1, 2, 3),
                 yaw_prob: float = 0.0, max_yaw: float = np.pi / 36, grid: dict = None,
                 seed: Optional[int] = None, free_label: Optional[int] = None):
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        probs = dict(flip_y_prob=flip_y_prob, flip_x_prob=flip_x_prob, rot90_prob=rot90_prob,
                     yaw_prob=yaw_prob)
        for name, p in probs.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f'RandomFlipRotateOcc: {name}={p} is not in [0, 1]')
        self.rot90_k = tuple(int(k) for k in rot90_k)
        if not self.rot90_k or any(k not in (1, 2, 3) for k in self.rot90_k):
            raise ValueError(f'RandomFlipRotateOcc: rot90_k={rot90_k} must be a non-empty '
                             f'subset of (1, 2, 3)')
        if max_yaw < 0:
            raise ValueError(f'RandomFlipRotateOcc: max_yaw={max_yaw} < 0')
        r = self.grid.point_cloud_range
        sym_x, sym_y = _symmetric(r[0], r[3]), _symmetric(r[1], r[4])
        square = sym_x and sym_y and self.grid.shape[0] == self.grid.shape[1]
        for name, ok in (('flip_x_prob', sym_x), ('flip_y_prob', sym_y),
                         ('rot90_prob', square or set(self.rot90_k) == {2} and sym_x and sym_y)):
            if probs[name] > 0 and not ok:
                raise ValueError(f'RandomFlipRotateOcc: {name} > 0 needs a grid symmetric '
                                 f'about the ego (and square for odd quarter turns); got '
                                 f'range {r}, shape {self.grid.shape}')
        self.flip_y_prob, self.flip_x_prob = flip_y_prob, flip_x_prob
        self.rot90_prob, self.yaw_prob, self.max_yaw = rot90_prob, yaw_prob, max_yaw
        self.free_label = self.grid.free_label if free_label is None else free_label
        self.seed = seed
        self._rng, self._rng_pid = None, None

    def _generator(self):
        """numpy's global RandomState, or this process's own Generator (``seed`` set)."""
        if self.seed is None:
            return np.random
        if self._rng is None or self._rng_pid != os.getpid():  # first use in this process
            import torch.distributed as dist
            from torch.utils.data import get_worker_info
            info = get_worker_info()
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._rng = np.random.default_rng([self.seed, rank, info.id + 1 if info else 0])
            self._rng_pid = os.getpid()
        return self._rng

    def draw(self) -> dict:
        """One draw: ``{'flip_x', 'flip_y', 'rot90', 'yaw'}``. Always consumes the same
        number of random values, whatever the probabilities."""
        rng = self._generator()
        u = rng.uniform(size=4)
        k = int(rng.choice(self.rot90_k))
        yaw = float(rng.uniform(-self.max_yaw, self.max_yaw))
        return dict(flip_x=bool(u[0] < self.flip_x_prob), flip_y=bool(u[1] < self.flip_y_prob),
                    rot90=k if u[2] < self.rot90_prob else 0,
                    yaw=yaw if u[3] < self.yaw_prob else 0.0)

    def apply(self, results: dict, flip_x: bool = False, flip_y: bool = False,
              rot90: int = 0, yaw: float = 0.0) -> dict:
        """Apply a given augmentation to ``results`` (keys as in the class docstring)."""
        A = ego_map(flip_x, flip_y, rot90, yaw)
        results['aug'] = dict(flip_x=flip_x, flip_y=flip_y, rot90=rot90, yaw=yaw, matrix=A)
        if not (flip_x or flip_y or rot90 % 4 or yaw):
            return results
        for key in GRID_KEYS:
            if key not in results:
                continue
            arr = results[key]
            if yaw:
                fill = self.free_label if key == 'occ' else 0
                results[key] = resample_grid(arr, A, fill, self.grid)
            else:
                results[key] = flip_rot90_grid(arr, flip_x, flip_y, rot90)
        results['traj'] = transform_trajectory(results['traj'], A)
        if 'ego2global' in results:
            results['ego2global'] = transform_ego2global(results['ego2global'], A)
        return results

    def __call__(self, results: dict) -> dict:
        return self.apply(results, **self.draw())

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(flip_y_prob={self.flip_y_prob}, flip_x_prob='
                f'{self.flip_x_prob}, rot90_prob={self.rot90_prob}, rot90_k={self.rot90_k}, '
                f'yaw_prob={self.yaw_prob}, max_yaw={self.max_yaw}, seed={self.seed})')
