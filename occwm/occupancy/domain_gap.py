"""The domain gap between occupancy sets: simple statistics side by side.

Sets are any Occ3D-layout occupancy (``labels.npz`` with ``semantics`` ``(X, Y, Z)
uint8``, 17 = free, and optionally ``mask_lidar`` / ``mask_camera``): the clean synthetic
set, the LiDAR-simulated synthetic set, occupancy built from real LiDAR, official Occ3D.
Statistics are pooled over all frames of a set (summable counts, ``GapCounts``):

* ``nonfree``: share of the voxels that are occupied (label < 17);
* ``class_share``: share of the occupied voxels per class 0..16;
* ``isolated``: share of the occupied voxels with no occupied voxel among their 26
  neighbours (outside the grid counts as free): scattered returns;
* ``sparse``: per class the share of its voxels with at most ``SPARSE_MAX`` (4) occupied
  voxels among their 26 neighbours: loose foliage, thin posts and rough ground against
  solid surfaces (a voxel inside a flat layer has 8, in a solid block 26);
* ``observed``: share of the voxels with ``mask_lidar == 1`` (NaN when no frame has it);
* ``z``: per class the distribution over z index (``hist``, shares summing to 1), its
  ``mean`` z index and ``above_road``: the mean minus the set's most common
  driveable-surface z index (sets whose road sits at different heights, e.g. official
  Occ3D at z index 0 and occwm's ego frame at 2, compare on this one).

With a ``mask`` only the voxels inside it are counted (the neighbourhood test still looks
at the whole grid). ``occwm.occupancy.report`` holds per-frame build statistics of one
sequence (consistency over time, visibility against an Occ3D frame); this module compares
whole sets.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from occwm.grid import DEFAULT_GRID, OCC3D_CLASS_NAMES, OccGrid

HEIGHT_CLASSES: Tuple[int, ...] = (11, 4, 15, 16)   # driveable_surface, car, manmade, vegetation
ROAD = 11
SPARSE_MAX = 4  # occupied 26-neighbours of a "sparse" voxel, at most


@dataclass
class GapCounts:
    """Summable counts of one set (``+`` adds two).

    ``frames`` frames; ``voxels`` voxels counted; ``class_voxels`` ``(C,) int64`` voxels per
    label 0..C-1 (C = 18 with free); ``isolated`` occupied voxels without an occupied
    26-neighbour; ``z_hist`` ``(C - 1, Z) int64`` voxels per class and z index;
    ``observed`` voxels with ``mask_lidar == 1`` and ``mask_voxels`` voxels of frames that
    have a ``mask_lidar``; ``sparse`` ``(C - 1,) int64`` voxels per class with at most
    ``SPARSE_MAX`` occupied 26-neighbours.
    """
    num_classes: int = DEFAULT_GRID.num_classes
    num_z: int = DEFAULT_GRID.shape[2]
    frames: int = 0
    voxels: int = 0
    isolated: int = 0
    observed: int = 0
    mask_voxels: int = 0
    class_voxels: np.ndarray = field(default=None)
    z_hist: np.ndarray = field(default=None)
    sparse: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.class_voxels is None:
            self.class_voxels = np.zeros(self.num_classes, np.int64)
        if self.z_hist is None:
            self.z_hist = np.zeros((self.num_classes - 1, self.num_z), np.int64)
        if self.sparse is None:
            self.sparse = np.zeros(self.num_classes - 1, np.int64)

    def __add__(self, other: 'GapCounts') -> 'GapCounts':
        if (self.num_classes, self.num_z) != (other.num_classes, other.num_z):
            raise ValueError(f'cannot add counts of grids with {self.num_classes} classes x '
                             f'{self.num_z} z and {other.num_classes} x {other.num_z}')
        return GapCounts(self.num_classes, self.num_z, self.frames + other.frames,
                         self.voxels + other.voxels, self.isolated + other.isolated,
                         self.observed + other.observed, self.mask_voxels + other.mask_voxels,
                         self.class_voxels + other.class_voxels, self.z_hist + other.z_hist,
                         self.sparse + other.sparse)


def occupied_neighbours(occupied: np.ndarray) -> np.ndarray:
    """``(X, Y, Z) uint8``: how many of each voxel's 26 neighbours are occupied (voxels
    outside the grid count as free).

    Args:
        occupied: ``(X, Y, Z) bool``.
    """
    from scipy import ndimage
    occ = np.asarray(occupied, bool)
    count = ndimage.convolve(occ.astype(np.uint8), np.ones((3, 3, 3), np.uint8),
                             mode='constant', cval=0)                        # self + neighbours
    return count - occ.astype(np.uint8)


def isolated_voxels(occupied: np.ndarray) -> np.ndarray:
    """``(X, Y, Z) bool``: occupied voxels none of whose 26 neighbours is occupied
    (voxels outside the grid count as free).

    Args:
        occupied: ``(X, Y, Z) bool``.
    """
    return np.asarray(occupied, bool) & (occupied_neighbours(occupied) == 0)


def frame_counts(semantics: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                 mask: Optional[np.ndarray] = None,
                 mask_lidar: Optional[np.ndarray] = None) -> GapCounts:
    """``GapCounts`` of one frame.

    Args:
        semantics: ``(X, Y, Z) uint8`` labels, ``grid.free_label`` = free.
        mask: optional ``(X, Y, Z)``: count only the voxels where it is non-zero.
        mask_lidar: optional ``(X, Y, Z)`` for the ``observed`` share.

    Raises:
        ValueError: a shape other than ``grid.shape`` or labels above ``free_label``.
    """
    sem = np.asarray(semantics)
    if sem.shape != grid.shape:
        raise ValueError(f'semantics shape {sem.shape} != grid shape {grid.shape}')
    if sem.size and int(sem.max()) > grid.free_label:
        raise ValueError(f'labels must be 0..{grid.free_label}, got {int(sem.max())}')
    C, Z = grid.num_classes, grid.shape[2]
    occupied = sem != grid.free_label
    nb = occupied_neighbours(occupied)
    iso = occupied & (nb == 0)
    keep = np.ones(sem.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    if keep.shape != sem.shape:
        raise ValueError(f'mask shape {keep.shape} != grid shape {grid.shape}')
    labels = sem[keep].astype(np.int64)
    z = np.nonzero(keep)[2]
    occ = labels != grid.free_label
    sparse = np.bincount(labels[occ & (nb[keep] <= SPARSE_MAX)], minlength=C - 1)[:C - 1]
    z_hist = np.bincount(labels[occ] * Z + z[occ], minlength=(C - 1) * Z).reshape(C - 1, Z)
    out = GapCounts(C, Z, frames=1, voxels=int(keep.sum()), isolated=int((iso & keep).sum()),
                    class_voxels=np.bincount(labels, minlength=C).astype(np.int64),
                    z_hist=z_hist.astype(np.int64), sparse=sparse.astype(np.int64))
    if mask_lidar is not None:
        out.observed = int((np.asarray(mask_lidar).astype(bool) & keep).sum())
        out.mask_voxels = out.voxels
    return out


def gap_stats(counts: GapCounts, class_names: Sequence[str] = OCC3D_CLASS_NAMES,
              height_classes: Sequence[int] = HEIGHT_CLASSES) -> dict:
    """Shares of ``counts`` (module docstring).

    Returns:
        dict: ``frames``; ``nonfree``, ``isolated``, ``observed`` floats in [0, 1] (NaN
        when undefined); ``class_share`` ``{class name: share of the occupied voxels}``
        (classes 0..C-2); ``sparse`` ``{class name: share of its voxels with at most
        SPARSE_MAX occupied neighbours}`` (NaN for an absent class); ``z`` ``{class
        name: {'hist': (Z,) float64 shares, 'mean', 'above_road'}}`` for
        ``height_classes`` (NaN / zeros for an absent class);
        ``road_z``: the most common driveable-surface z index (-1 without road).
    """
    C = counts.num_classes
    occupied = int(counts.class_voxels[:C - 1].sum())
    nan = float('nan')
    road = counts.z_hist[ROAD] if ROAD < C - 1 else np.zeros(counts.num_z, np.int64)
    road_z = int(road.argmax()) if road.sum() else -1
    zs = np.arange(counts.num_z)
    heights = {}
    for c in height_classes:
        h = counts.z_hist[c]
        n = int(h.sum())
        mean = float((h * zs).sum() / n) if n else nan
        heights[class_names[c]] = dict(hist=h / n if n else np.zeros(counts.num_z), mean=mean,
                                       above_road=mean - road_z if n and road_z >= 0 else nan)
    return dict(frames=counts.frames,
                nonfree=occupied / counts.voxels if counts.voxels else nan,
                isolated=counts.isolated / occupied if occupied else nan,
                observed=counts.observed / counts.mask_voxels if counts.mask_voxels else nan,
                class_share={class_names[c]: (float(counts.class_voxels[c] / occupied)
                                              if occupied else nan) for c in range(C - 1)},
                sparse={class_names[c]: (float(counts.sparse[c] / counts.class_voxels[c])
                                         if counts.class_voxels[c] else nan) for c in range(C - 1)},
                z=heights, road_z=road_z)


# ----------------------------------------------------------------------------- sets
def label_files(spec: str) -> Tuple[str, List[str]]:
    """Resolve a set on disk to its ``labels.npz`` files.

    ``spec`` is ``[NAME=]PATH[,PKL]``: ``ROOT,PKL`` a data root and an info pkl of any
    layout (``occwm.infos.layouts``; frames at ``ROOT/<occ_path>/labels.npz``); ``PKL``
    alone (its folder is the data root); a folder (every ``labels.npz`` below it, e.g. a
    ``gts/`` folder); a glob pattern of ``labels.npz`` files.

    Returns:
        ``(name, paths)``: ``NAME`` or the path as given; sorted paths (pkl: in scene and
        time order).

    Raises:
        FileNotFoundError: nothing found (the message says what was looked for).
    """
    name, _, rest = spec.partition('=') if '=' in spec else ('', '', spec)
    path, _, pkl = rest.partition(',')
    if not pkl and path.endswith('.pkl'):
        path, pkl = os.path.dirname(path) or '.', path
    name = name or rest
    if pkl:
        from occwm.infos.layouts import load_scene_infos
        if not os.path.isfile(pkl):
            raise FileNotFoundError(f'{pkl}: info pkl not found (set {spec!r})')
        infos = load_scene_infos(pkl)
        paths = [os.path.join(path, f['occ_path'], 'labels.npz') for frames in infos.values()
                 for f in frames]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f'{missing[0]}: missing ({len(missing)} of {len(paths)} frames '
                                    f'of {pkl}; is {path} its data root?)')
        return name, paths
    if os.path.isdir(path):
        paths = sorted(glob.glob(os.path.join(path, '**', 'labels.npz'), recursive=True))
        where = f'{path}/**/labels.npz'
    else:
        paths, where = sorted(glob.glob(path)), path
    if not paths:
        raise FileNotFoundError(f'{where}: no labels.npz files (set {spec!r}: give ROOT,PKL, '
                                f'a pkl, a folder or a glob)')
    return name, paths


def set_counts(paths: Sequence[str], grid: OccGrid = DEFAULT_GRID, mask_key: Optional[str] = None,
               progress: bool = False, desc: str = 'frames') -> GapCounts:
    """Pooled ``GapCounts`` of ``labels.npz`` files; ``mask_key`` (``'mask_lidar'`` /
    ``'mask_camera'``) counts only the voxels inside that mask.

    Raises:
        FileNotFoundError / ValueError naming the file (``occwm.io.load_labels``).
    """
    from tqdm import tqdm
    from occwm.io import load_labels, npz_keys
    total = GapCounts(grid.num_classes, grid.shape[2])
    for p in tqdm(paths, desc=desc, unit='frame', disable=not progress, leave=False):
        has = set(npz_keys(p))
        keys = ('semantics',) + tuple(k for k in {mask_key, 'mask_lidar'} - {None} if k in has)
        if mask_key and mask_key not in has:
            raise ValueError(f'{p}: no {mask_key} (has {sorted(has)}); leave the mask out')
        lab = load_labels(p, grid, keys=keys)
        total = total + frame_counts(lab['semantics'], grid,
                                     lab.get(mask_key) if mask_key else None,
                                     lab.get('mask_lidar'))
    return total


# ----------------------------------------------------------------------------- table
def _pct(v: float, digits: int = 2) -> str:
    return '-' if v != v else f'{100 * v:.{digits}f}'


def format_gap_table(stats: Mapping[str, dict], min_share: float = 0.0) -> str:
    """Sets side by side: one column per set (``gap_stats`` dicts, by name), rows for the
    shares (percent), the class shares of the occupied voxels (classes over
    ``min_share`` in some set), then per height class the mean z index, the mean above
    the road and a line per set with the share (percent) in each z index."""
    names = list(stats)
    width = max(12, *(len(n) + 1 for n in names))
    head = f"{'':28s}" + ''.join(f'{n:>{width}s}' for n in names)
    rows = [head, '-' * len(head)]

    def row(label: str, cells: List[str]) -> None:
        rows.append(f'{label:28s}' + ''.join(f'{c:>{width}s}' for c in cells))

    row('frames', [str(stats[n]['frames']) for n in names])
    row('non-free % of voxels', [_pct(stats[n]['nonfree']) for n in names])
    row('isolated % of occupied', [_pct(stats[n]['isolated']) for n in names])
    row('mask_lidar observed %', [_pct(stats[n]['observed']) for n in names])
    row('road z index (mode)', [str(stats[n]['road_z']) for n in names])
    rows.append('class % of occupied')
    classes = list(next(iter(stats.values()))['class_share']) if stats else []
    for c in classes:
        shares = [stats[n]['class_share'][c] for n in names]
        if any(s == s and s > min_share for s in shares):
            row(f'  {c}', [_pct(s) for s in shares])
    rows.append(f'sparse (<= {SPARSE_MAX} of 26 neighbours occupied) % of the class')
    for c in classes:
        shares = [stats[n]['class_share'][c] for n in names]
        if any(s == s and s > max(min_share, 0.01) for s in shares):
            row(f'  {c}', [_pct(stats[n]['sparse'][c], 1) for n in names])
    for c in (next(iter(stats.values()))['z'] if stats else {}):
        rows.append(f'{c}: z index')
        row('  mean', [f"{stats[n]['z'][c]['mean']:.2f}" for n in names])
        row('  mean above road', [f"{stats[n]['z'][c]['above_road']:+.2f}" for n in names])
    for c in (next(iter(stats.values()))['z'] if stats else {}):
        Z = len(next(iter(stats.values()))['z'][c]['hist'])
        rows.append('')
        rows.append(f'{c}: % of its voxels in each z index')
        rows.append(f"  {'z index':24s}" + ''.join(f'{z:>4d}' for z in range(Z)))
        for n in names:
            rows.append(f'  {n[:24]:24s}' + ''.join(f'{100 * v:4.0f}' for v in
                                                   stats[n]['z'][c]['hist']))
    return '\n'.join(rows)
