"""Small file helpers every layer uses: atomic writes, the one ``.npz`` reader
(``read_npz``: every fault of a file, a damaged zip member included, is a one-line
``DataFileError`` naming it), the Occ3D ``labels.npz`` of one frame, pickles, and the
default real-data folder. Every write is atomic (temporary file, then ``os.replace``),
so a failure never leaves a half-written file.

Occupancy (Occ3D-nuScenes, Tian et al. 2023)::

    <data_root>/gts/<scene_name>/<token>/labels.npz
        semantics   (X, Y, Z) uint8  labels 0..16, 17 = free, ego frame
        mask_lidar  (X, Y, Z) uint8  1 = observed by LiDAR
        mask_camera (X, Y, Z) uint8  1 = visible from a camera (optional here)

The info pkls that index these files are described in :mod:`occwm.infos.fields`.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid, check_occupancy
from occwm.runtime import SetupError


class DataFileError(SetupError, ValueError):
    """A data file occwm cannot use (a damaged or foreign ``.npz``, a missing array, bad
    contents); the message is one line that names the file. A ``ValueError``, as every
    reader's errors, and a ``SetupError``, so that a tool prints it as ``error: <message>``
    wherever it surfaces, also from inside ``Runner.test``."""

    def __str__(self) -> str:
        text = super().__str__()
        if '\nOriginal Traceback' in text:  # re-raised by torch's DataLoader from a worker:
            last = text.strip().splitlines()[-1]  # 'occwm.io.DataFileError: <message>'
            return last.split(': ', 1)[-1]
        return text


def _one_line(text: str) -> str:
    return ' '.join(str(text).split())


def read_npz(path: str, keys: Optional[Sequence[str]] = None, optional: Sequence[str] = (),
             hint: str = '') -> Dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, read into memory: the one ``.npz`` reader of
    occwm, so that every fault of a file is one line naming it.

    Args:
        path: the ``.npz`` file.
        keys: arrays that must be there (``None``, the default: every array of the
            archive; ``()``: none, only the ``optional`` ones present).
        optional: arrays also read when the archive has them.
        hint: added to the message of a missing array (what the file should be).

    Returns:
        ``{key: array}`` of ``keys`` and the ``optional`` keys present.

    Raises:
        FileNotFoundError: no file at ``path``.
        DataFileError (a ``ValueError``) naming ``path``: not an npz archive (not a zip,
            truncated, a plain ``.npy``), a missing array of ``keys``, an object array
            (it would need pickle), or a damaged member (a zip CRC failure, a broken
            compressed stream): ``<path>: semantics: damaged archive member (BadZipFile:
            Bad CRC-32 for file 'semantics.npy'); the file is corrupt: write or copy it
            again``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # not a zip, truncated, a pickle
        raise DataFileError(_one_line(f'{path}: not a readable npz ({type(e).__name__}: '
                                      f'{e})')) from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataFileError(f'{path}: a single .npy array, not an npz archive of named arrays')
    out = {}
    with data:
        files = list(data.files)
        for key in keys or ():
            if key not in files:
                raise DataFileError(_one_line(f'{path}: missing key {key!r} (has {files})'
                                              f'{"; " + hint if hint else ""}'))
        wanted = files if keys is None else list(keys) + [k for k in optional if k in files]
        for key in wanted:
            try:
                out[key] = data[key]
            except Exception as e:  # BadZipFile (CRC), zlib.error, EOFError, object arrays
                if 'allow_pickle' in str(e):
                    raise DataFileError(f'{path}: {key}: an object array, which cannot be '
                                        f'read without pickle; store numbers or strings') from e
                raise DataFileError(_one_line(
                    f'{path}: {key}: damaged archive member ({type(e).__name__}: {e}); the '
                    f'file is corrupt: write or copy it again')) from e
    return out


def npz_keys(path: str) -> List[str]:
    """The names of the arrays of an ``.npz`` archive (its directory only; no array is
    read or checked).

    Raises:
        FileNotFoundError: no file; DataFileError naming ``path``: not an npz archive.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        with np.load(path, allow_pickle=False) as data:
            return list(data.files)
    except Exception as e:  # not a zip, a plain .npy (no context manager), truncated
        raise DataFileError(_one_line(f'{path}: not a readable npz ({type(e).__name__}: '
                                      f'{e})')) from e


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


LOCK_NAME = '.occwm.lock'      # the lock file a tool holds in its output folder
_LOCKS: Dict[str, 'OutputLock'] = {}


class OutputLock:
    """An exclusive ``fcntl.flock`` on ``<folder>/.occwm.lock``, held by this process
    until :meth:`release` or its exit (the kernel drops the lock of a killed process, so
    a stale lock file never blocks anyone). The file holds the holder's process id,
    start time and command, for the message another process gets."""

    def __init__(self, folder: str, fd: int):
        self.folder, self.fd = folder, fd

    def release(self) -> None:
        """Unlock and close (the lock file stays: removing it would race with a new
        holder)."""
        if self.fd is not None:
            os.close(self.fd)                                # closing drops the flock
            self.fd = None
            _LOCKS.pop(self.folder, None)


def _probe_write(folder: str) -> None:
    """Create and remove a temporary file in ``folder`` (the atomic writes do the same);
    raises ``OSError`` when that is impossible."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_probe_')
    os.close(fd)
    os.remove(tmp)


def check_writable(folder: str, flag: str = '--out') -> None:
    """``folder`` exists (created with its parents if needed) and this process can write
    in it (a temporary file is made and removed, as an atomic write does), so that a tool
    stops before its work rather than after it. (Folders below it are not checked: a
    shared parent such as ``/tmp`` holds other users' folders.)

    Raises:
        SetupError: one line naming ``folder`` (and ``flag``, the option that gave it)
            and the reason (``Permission denied``, ``Read-only file system``, a file in
            the way).
    """
    try:
        os.makedirs(folder, exist_ok=True)
        _probe_write(folder)
    except OSError as e:
        raise SetupError(f'cannot write to the output folder {folder} ({flag}): '
                         f'{e.strerror or type(e).__name__}; choose another folder or make '
                         f'it writable') from e


def lock_output_dir(folder: str, flag: str = '--out') -> OutputLock:
    """Check ``folder`` for writing (:func:`check_writable`) and take its exclusive lock
    at once (``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<folder>/.occwm.lock``), so that two
    tools never write into one folder together. Call it before the work starts. A
    second call for the same folder in the same process returns the same lock.

    Returns:
        The lock, held until ``release()`` or the end of the process.

    Raises:
        SetupError: the folder is not writable, or another process holds its lock (the
            message names that process: its id, start time and command).
    """
    key = os.path.realpath(folder)
    if key in _LOCKS:
        return _LOCKS[key]
    check_writable(folder, flag)
    path = os.path.join(folder, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise SetupError(f'cannot create the lock file {path} ({flag}): {e.strerror}') from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 4096, 0).decode(errors='replace').strip() or 'unknown'
        os.close(fd)
        raise SetupError(f'{folder} ({flag}) is in use by another process ({holder}); wait '
                         f'for it to finish or choose another output folder') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f'process {os.getpid()} since {time.strftime("%Y-%m-%d %H:%M:%S")}: '
                   + _one_line(' '.join([os.path.basename(sys.executable)] + sys.argv))
                   ).encode(), 0)
    _LOCKS[key] = lock = OutputLock(key, fd)
    return lock


def refuse_overwrite(existing: Sequence[str], overwrite: bool, what: str = 'outputs') -> None:
    """Stop before the work when earlier outputs would be replaced and ``overwrite``
    (``--overwrite``) was not given.

    Args:
        existing: the paths this run would write; those that exist count.

    Raises:
        SetupError: naming the first existing path and how many exist.
    """
    found = [p for p in existing if os.path.exists(p)]
    if found and not overwrite:
        more = f' and {len(found) - 1} more' if len(found) > 1 else ''
        raise SetupError(f'{found[0]}{more} already exist{"s" * (not more)}: pass --overwrite '
                         f'to replace the {what}, or choose another output folder')


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
        DataFileError (a ``ValueError``): not an npz, a damaged member (``read_npz``), a
            missing key, wrong shape / dtype, or labels out of range; the message names
            ``path``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'occupancy file not found: {path}')
    out = read_npz(path, (), optional=keys)
    for key in keys:  # in order: the first fault is reported
        if key not in out:
            raise DataFileError(f'{path}: missing key {key!r} (has {npz_keys(path)})')
        arr = out[key]
        if key == 'semantics':
            try:
                check_occupancy(arr, grid, name=f'{path}[semantics]')
            except ValueError as e:
                raise DataFileError(str(e)) from e
        elif arr.shape != grid.shape:
            raise DataFileError(f'{path}: {key} shape {arr.shape} != grid shape {grid.shape}')
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
