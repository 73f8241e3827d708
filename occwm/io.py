"""Small file helpers every layer uses: atomic writes, the Occ3D ``labels.npz`` of one
frame, pickles, and the default real-data folder. Every write is atomic (temporary
file, then ``os.replace``), so a failure never leaves a half-written file.

Occupancy (Occ3D-nuScenes, Tian et al. 2023)::

    <data_root>/gts/<scene_name>/<token>/labels.npz
        semantics   (X, Y, Z) uint8  labels 0..16, 17 = free, ego frame
        mask_lidar  (X, Y, Z) uint8  1 = observed by LiDAR
        mask_camera (X, Y, Z) uint8  1 = visible from a camera (optional here)

The info pkls that index these files are described in :mod:`occwm.infos.fields`.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from typing import Dict, Optional, Sequence

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid, check_occupancy


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the
    block succeeds, else delete it. Parent folders are created."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.splitext(path)[1])
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode of a new file
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def shared_data_dir() -> str:
    """The folder of real nuScenes-derived data used by tests and demos:
    ``$OCCWM_SHARED_DATA``, else ``shared/data`` beside the checkout (``../shared/data``)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # occwm/io.py -> repo
    return os.environ.get('OCCWM_SHARED_DATA',
                          os.path.join(os.path.dirname(repo), 'shared', 'data'))


def labels_path(data_root: str, scene_name: str, token: str) -> str:
    """``<data_root>/gts/<scene_name>/<token>/labels.npz`` (Occ3D-nuScenes)."""
    return os.path.join(data_root, 'gts', scene_name, token, 'labels.npz')


def save_labels(path: str, semantics: np.ndarray, mask_lidar: Optional[np.ndarray] = None,
                mask_camera: Optional[np.ndarray] = None, grid: OccGrid = DEFAULT_GRID) -> None:
    """Write an Occ3D ``labels.npz`` atomically (compressed).

    Args:
        path: the ``labels.npz`` path.
        semantics: ``(X, Y, Z)`` uint8 labels 0..17.
        mask_lidar, mask_camera: ``(X, Y, Z)`` bool/uint8; all ones when ``None``.

    Raises:
        ValueError: wrong shape, dtype or label range (the message names ``path``).
    """
    check_occupancy(semantics, grid, name=path)
    masks = {}
    for key, m in (('mask_lidar', mask_lidar), ('mask_camera', mask_camera)):
        m = np.ones(grid.shape, np.uint8) if m is None else np.asarray(m).astype(np.uint8)
        if m.shape != grid.shape:
            raise ValueError(f'{path}: {key} shape {m.shape} != grid shape {grid.shape}')
        masks[key] = m
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            np.savez_compressed(f, semantics=semantics.astype(np.uint8), **masks)


def load_labels(path: str, grid: OccGrid = DEFAULT_GRID, keys: Sequence[str] = ('semantics',)
                ) -> Dict[str, np.ndarray]:
    """Read an Occ3D ``labels.npz``.

    Returns:
        ``{key: (X, Y, Z) uint8}`` for each requested key (``semantics``,
        ``mask_lidar``, ``mask_camera``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a missing key, wrong shape / dtype, or labels out of range; the
            message names ``path``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'occupancy file not found: {path}')
    try:
        data = np.load(path)
    except Exception as e:  # zip or pickle errors
        raise ValueError(f'{path}: not a readable npz ({e})') from e
    out = {}
    with data:
        for key in keys:
            if key not in data.files:
                raise ValueError(f'{path}: missing key {key!r} (has {data.files})')
            arr = data[key]
            if key == 'semantics':
                check_occupancy(arr, grid, name=f'{path}[semantics]')
            elif arr.shape != grid.shape:
                raise ValueError(f'{path}: {key} shape {arr.shape} != grid shape {grid.shape}')
            out[key] = arr.astype(np.uint8, copy=False)
    return out


def save_pickle(path: str, obj) -> None:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def read_pickle(path: str):
    """Unpickle ``path``. Raises ``FileNotFoundError`` / ``ValueError`` naming ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'info pkl not found: {path}')
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except Exception as e:  # unpickling raises many types
        raise ValueError(f'{path}: not a readable pickle ({type(e).__name__}: {e})') from e
