"""Compatibility shims for the pinned dependencies. Import ``spconv`` from here.

1. spconv 2.3.8 asks for the current CUDA stream in every op
   (``spconv.pytorch.cppcore.get_current_stream``), which raises
   "Torch not compiled with CUDA enabled" in the backward pass of a CPU-only torch.
   Without CUDA the stream is 0 (the host), which is what the CPU kernels expect.
2. torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10's
   resume calls ``torch.load(filename)`` on a checkpoint whose ``message_hub`` holds
   ``HistoryBuffer`` objects and numpy arrays. ``allow_mmengine_checkpoints`` adds
   exactly those types to torch's safe globals, so loading stays weights-only safe
   instead of falling back to arbitrary unpickling. ``HistoryBuffer.__getstate__``
   also pickles its class-level table of statistics functions (``min``, ``max``, ...),
   which needs ``builtins.getattr`` to unpickle, a global that must not be allowed;
   the table is rebuilt by ``__setstate__`` anyway (custom statistics are registered
   on the class when their module is imported), so occwm saves the buffer without it.
"""
from __future__ import annotations

import numpy as np
import torch

import spconv.pytorch as spconv  # noqa: F401  (re-exported)
from spconv.pytorch import cppcore as _cppcore

_orig_get_current_stream = _cppcore.get_current_stream


def _get_current_stream():
    """The CUDA stream handle when CUDA is available, else 0 (host)."""
    if torch.cuda.is_available():
        return _orig_get_current_stream()
    return 0


def _patch_spconv() -> None:
    import importlib
    for name in ('spconv.pytorch.cppcore', 'spconv.pytorch.ops', 'spconv.pytorch.hash',
                 'spconv.pytorch.utils'):
        mod = importlib.import_module(name)
        if hasattr(mod, 'get_current_stream'):
            mod.get_current_stream = _get_current_stream


def allow_mmengine_checkpoints() -> None:
    """Register the non-tensor types found in mmengine checkpoints as safe for
    ``torch.load(weights_only=True)`` (torch >= 2.6). Idempotent."""
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.config import ConfigDict
    safe = [HistoryBuffer, ConfigDict, np.ndarray, np.dtype,
            np.core.multiarray._reconstruct, np.core.multiarray.scalar]
    safe += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32,
                                          np.uint8, np.bool_)]
    torch.serialization.add_safe_globals(safe)


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer`` state without the class-level statistics functions."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def _patch_history_buffer() -> None:
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate


_patch_spconv()
_patch_history_buffer()
allow_mmengine_checkpoints()
