"""A per-frame cache of sparse occupancy: fast loading of Occ3D ``labels.npz``.

Decoding a compressed ``labels.npz`` (zlib) dominates the data loading of a window
(``tools/benchmark_loader.py``). The cache keeps, per frame, the occupied voxels
and the visibility masks as bits in one uncompressed ``.npy`` that reads in a few
tens of microseconds and expands back to the dense grids exactly.

Cache file (one per source ``labels.npz``)::

    <cache_dir>/<scene>/<token>.<sha1(abs source path)[:10]>.npy
        (nbytes,) uint8 in np.save format (never pickled), the concatenation of
        header  (16,) int64: MAGIC, CACHE_VERSION, X, Y, Z, free_label, N, flags
                (bit 0 mask_lidar, bit 1 mask_camera), source size (bytes),
                source mtime (ns), source inode, 0 ... (little-endian)
        index   (N,) int32   flat C-order index over (X, Y, Z) of the non-free voxels
        labels  (N,) uint8   their labels 0..16
        masks   (ceil(X*Y*Z / 8),) uint8 each, np.packbits of mask_lidar then mask_camera
                (flat C order), those present in the source

``<scene>/<token>`` are the two folders above ``labels.npz`` (readable), the hash keeps
two data roots with equal names apart.

Validity: a cache file is used only when its header matches the grid and the source's
current size, mtime and inode (``os.stat``); otherwise it is rebuilt from the source
(stale). A file that cannot be read or parsed (corrupt, truncated, wrong magic) is also
rebuilt, with a ``UserWarning`` naming it: the source is the truth, and the cache is
disposable. Writes are atomic (``occwm.io.atomic_path``), so concurrent
dataloader workers building the same frame are safe. The source must exist.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Dict, Sequence, Tuple

import numpy as np

from occwm.io import atomic_path, load_labels, npz_keys
from occwm.grid import DEFAULT_GRID, OccGrid

MAGIC = int.from_bytes(b'OCCWMSPC', 'little')
CACHE_VERSION = 1
HEADER_LEN = 16  # int64 values
MASK_KEYS: Tuple[str, ...] = ('mask_lidar', 'mask_camera')


class CorruptCacheError(ValueError):
    """A cache file that cannot be parsed (the message names it)."""


def source_stamp(src: str) -> Tuple[int, int, int]:
    """``(size, mtime_ns, inode)`` of a source file.

    Raises:
        FileNotFoundError: no file at ``src``.
    """
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise FileNotFoundError(f'occupancy file not found: {src}') from None
    return st.st_size, st.st_mtime_ns, st.st_ino


def encode_sparse(frame: Dict[str, np.ndarray], stamp: Tuple[int, int, int],
                  grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """Dense ``{'semantics', 'mask_lidar'?, 'mask_camera'?}`` ``(X, Y, Z) uint8`` grids
    to the ``(nbytes,) uint8`` cache buffer (module docstring)."""
    sem = frame['semantics']
    index = np.flatnonzero(sem.ravel() != grid.free_label).astype(np.int32)  # (N,)
    labels = sem.ravel()[index].astype(np.uint8)
    flags = sum(1 << i for i, k in enumerate(MASK_KEYS) if k in frame)
    header = np.zeros(HEADER_LEN, '<i8')
    header[:11] = [MAGIC, CACHE_VERSION, *grid.shape, grid.free_label, len(index), flags, *stamp]
    parts = [header.view(np.uint8), index.astype('<i4').view(np.uint8), labels]
    parts += [np.packbits(frame[k].ravel() != 0) for k in MASK_KEYS if k in frame]
    return np.concatenate(parts)


def decode_sparse(buf: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                  keys: Sequence[str] = ('semantics',), name: str = 'cache'
                  ) -> Tuple[Dict[str, np.ndarray], Tuple[int, int, int]]:
    """The cache buffer to dense grids.

    Returns:
        ``({key: (X, Y, Z) uint8}, source stamp)`` for the requested keys that the
        buffer holds (masks as 0 / 1).

    Raises:
        CorruptCacheError: wrong magic / version / grid, wrong length, or an index or
            label out of range (the message names ``name``).
    """
    if buf.dtype != np.uint8 or buf.ndim != 1 or buf.size < HEADER_LEN * 8:
        raise CorruptCacheError(f'{name}: not an occwm occupancy cache buffer')
    h = buf[:HEADER_LEN * 8].view('<i8')
    magic, version, X, Y, Z, free, n, flags = (int(v) for v in h[:8])
    if magic != MAGIC or version != CACHE_VERSION:
        raise CorruptCacheError(f'{name}: bad magic or version {version} (want {CACHE_VERSION})')
    if (X, Y, Z) != grid.shape or free != grid.free_label:
        raise CorruptCacheError(f'{name}: grid {(X, Y, Z)} / free {free} != '
                                f'{grid.shape} / {grid.free_label}')
    size = X * Y * Z
    packed = (size + 7) // 8
    present = [k for i, k in enumerate(MASK_KEYS) if flags >> i & 1]
    start = HEADER_LEN * 8
    if n < 0 or n > size or buf.size != start + 5 * n + packed * len(present):
        raise CorruptCacheError(f'{name}: length {buf.size} does not match its header')
    index = buf[start:start + 4 * n].view('<i4')
    labels = buf[start + 4 * n:start + 5 * n]
    out = {}
    if 'semantics' in keys:
        if n and (int(labels.max()) > grid.free_label or int(index.max()) >= size
                  or int(index.min()) < 0):
            raise CorruptCacheError(f'{name}: voxel index or label out of range')
        sem = np.full(size, grid.free_label, np.uint8)
        sem[index] = labels
        out['semantics'] = sem.reshape(X, Y, Z)
    offset = start + 5 * n
    for k in present:
        if k in keys:
            out[k] = np.unpackbits(buf[offset:offset + packed], count=size).reshape(X, Y, Z)
        offset += packed
    return out, tuple(int(v) for v in h[8:11])


class OccCache:
    """Load ``labels.npz`` grids through a sparse cache in ``cache_dir`` (module docstring).

    Args:
        cache_dir: the cache folder (created on first write).
        grid: the occupancy grid.

    ``load(src, keys)`` returns the same ``{key: (X, Y, Z) uint8}`` as
    ``occwm.io.load_labels(src, grid, keys)``, building the cache file on a
    miss, a stale entry or a corrupt one (warning).
    """

    def __init__(self, cache_dir: str, grid: OccGrid = DEFAULT_GRID):
        self.cache_dir = cache_dir
        self.grid = grid

    def path_for(self, src: str) -> str:
        """The cache file of source ``src``."""
        src = os.path.abspath(src)
        token_dir = os.path.dirname(src)
        key = hashlib.sha1(src.encode()).hexdigest()[:10]
        return os.path.join(self.cache_dir, os.path.basename(os.path.dirname(token_dir)),
                            f'{os.path.basename(token_dir)}.{key}.npy')

    def is_fresh(self, src: str) -> bool:
        """Whether the cache file of ``src`` exists, parses and matches the source's
        current stamp and the grid (reads the header only)."""
        try:
            buf = np.load(self.path_for(src), mmap_mode='r', allow_pickle=False)
            h = np.asarray(buf[:HEADER_LEN * 8]).view('<i8')
        except Exception:  # missing or unreadable
            return False
        return (buf.dtype == np.uint8 and h.size == HEADER_LEN
                and [int(v) for v in h[:6]] == [MAGIC, CACHE_VERSION, *self.grid.shape,
                                                 self.grid.free_label]
                and tuple(int(v) for v in h[8:11]) == source_stamp(src))

    def build(self, src: str) -> Tuple[str, Dict[str, np.ndarray]]:
        """(Re)write the cache file of ``src`` from the source; returns its path and
        every grid the source holds.

        Raises:
            FileNotFoundError / ValueError naming ``src`` (``load_labels``).
        """
        stamp = source_stamp(src)  # before reading: a later change makes the entry stale
        files = npz_keys(src)
        frame = load_labels(src, self.grid, ('semantics',) + tuple(k for k in MASK_KEYS
                                                                    if k in files))
        path = self.path_for(src)
        with atomic_path(path) as tmp:
            with open(tmp, 'wb') as f:
                np.save(f, encode_sparse(frame, stamp, self.grid))
        return path, frame

    def load(self, src: str, keys: Sequence[str] = ('semantics',)) -> Dict[str, np.ndarray]:
        """``{key: (X, Y, Z) uint8}`` of ``src`` from the cache, built when missing,
        stale or corrupt.

        Raises:
            FileNotFoundError / ValueError naming ``src``: the source is missing or bad,
            or lacks a requested key.
        """
        stamp = source_stamp(src)
        path = self.path_for(src)
        out = None
        try:
            buf = np.load(path, allow_pickle=False)
            out, cached_stamp = decode_sparse(buf, self.grid, keys, name=path)
            if cached_stamp != stamp:
                out = None  # stale
        except FileNotFoundError:
            pass
        except Exception as e:  # truncated / garbage files, CorruptCacheError
            warnings.warn(f'{path}: corrupt occupancy cache ({e}); rebuilding it from {src}')
        if out is None:
            _, frame = self.build(src)
            out = {k: frame[k] for k in keys if k in frame}
        missing = [k for k in keys if k not in out]
        if missing:
            raise ValueError(f'{src}: missing key {missing[0]!r} (has {sorted(out)})')
        return out
