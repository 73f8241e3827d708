"""What an occwm checkpoint is, and reading one without being fooled.

A checkpoint is the file mmengine's ``Runner.save_checkpoint`` writes (a torch zip
archive of ``{'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'}``);
the training hook ``occwm.engine.checkpoint.OccCheckpointHook`` adds
``meta['occwm']`` (:func:`describe_model`: what the weights belong to) and ``rng`` (the
random states of an exact resume). Every reader of weights goes through
:func:`read_checkpoint` and :func:`check_checkpoint` (``load_checkpoint`` here,
``init_forecaster``, ``OccRunner.load_checkpoint`` under ``tools/test.py``,
``tools/forecast.py`` and ``--resume``), so every fault ends in one
:class:`~occwm.runtime.SetupError` line that names the file:

* unreadable: missing, empty, truncated, random bytes, not a torch archive, a CRC
  failure, objects that weights-only loading refuses, no ``state_dict``;
* the wrong model: an ``OccVAE`` (tokenizer) checkpoint given as an ``OccForecaster``
  or the other way round (from ``meta['occwm']``, or for older checkpoints without it
  from the keys: they are exactly one part's keys, or hold the model under a prefix),
  another grid;
* another size: the first tensor whose shape differs, both shapes and both models'
  sizes (DiT depth / width, latent channels);
* missing or unexpected keys (strict by default): their count and the first few (keys
  a module's own ``_load_from_state_dict`` fills or maps for an older layout are fine);
* non-finite weights (a diverged training; the model's parameters, not its buffers).

Older checkpoints (no ``meta['occwm']``) load when their keys and shapes fit.
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
import zipfile
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch

from occwm.runtime import SetupError

FORMAT = 1  # meta['occwm']['format']
REVISE_KEYS = ((r'^module\.', ''),)  # DDP's prefix, as mmengine strips it
ROLES = {'OccVAE': 'the tokenizer', 'OccForecaster': 'the forecaster'}
SHOW = 3  # keys named in a message


def _a(name: str) -> str:
    """``name`` with its indefinite article: ``an OccVAE``, ``a Toy``."""
    return ('an ' if name[:1].upper() in 'AEIOU' else 'a ') + name


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= limit else line[:limit] + '...'


def _names(keys: Sequence[str]) -> str:
    keys = sorted(keys)
    more = f', ... {len(keys) - SHOW} more' if len(keys) > SHOW else ''
    return ', '.join(keys[:SHOW]) + more


def describe_model(model: torch.nn.Module, cfg_text: Optional[str] = None) -> dict:
    """What a model's weights are: ``meta['occwm']`` of the checkpoints training writes.

    Returns:
        ``{'format', 'model_type', 'model_types'`` (its classes, most derived first,
        torch / mmengine bases left out), ``'grid'`` (``shape``, ``point_cloud_range``,
        ``voxel_size``, ``z_offset``), ``'latent_channels'``, ``'tokenizer_type'``,
        ``'dit'`` (``depth``, ``hidden_size``, ``num_heads``, ``patch_size``,
        ``in_channels``), ``'config_digest'`` (first 16 hex digits of the SHA-256 of
        the config text)``}``; a key is left out where the model has no such part.
    """
    types = [c.__name__ for c in type(model).__mro__
             if c is not object and not c.__module__.startswith(('torch', 'mmengine'))]
    info = dict(format=FORMAT, model_type=type(model).__name__, model_types=types)
    tokenizer = getattr(model, 'tokenizer', None)
    grid = getattr(model, 'grid', None) or getattr(tokenizer, 'grid', None)
    if grid is not None and hasattr(grid, 'point_cloud_range'):
        info['grid'] = dict(shape=[int(s) for s in grid.shape],
                            point_cloud_range=[float(v) for v in grid.point_cloud_range],
                            voxel_size=float(grid.voxel_size),
                            z_offset=float(getattr(grid, 'z_offset', 0.0)))
    c_lat = getattr(model, 'latent_channels', None) or getattr(tokenizer, 'latent_channels', None)
    if c_lat is not None:
        info['latent_channels'] = int(c_lat)
    if isinstance(tokenizer, torch.nn.Module):
        info['tokenizer_type'] = type(tokenizer).__name__
    dit = getattr(model, 'dit', None)
    if dit is not None:
        info['dit'] = {k: int(getattr(dit, k)) for k in
                       ('depth', 'hidden_size', 'num_heads', 'patch_size', 'in_channels')
                       if hasattr(dit, k)}
    if cfg_text:
        info['config_digest'] = hashlib.sha256(cfg_text.encode()).hexdigest()[:16]
    return info


def summary(info: Optional[dict]) -> str:
    """``OccForecaster (DiT depth 4, width 128; 16 latent channels; grid 200x200x16)``
    from :func:`describe_model`'s dict; ``'a checkpoint without occwm metadata'`` for
    ``None``."""
    if not info:
        return 'a checkpoint without occwm metadata'
    parts = []
    if 'dit' in info:
        d = info['dit']
        parts.append(f"DiT depth {d.get('depth')}, width {d.get('hidden_size')}")
    if 'latent_channels' in info:
        parts.append(f"{info['latent_channels']} latent channels")
    if 'grid' in info:
        parts.append('grid ' + 'x'.join(str(s) for s in info['grid']['shape']))
    return info.get('model_type', '?') + (f" ({'; '.join(parts)})" if parts else '')


def read_checkpoint(path: str, map_location='cpu', mmap: bool = False) -> dict:
    """Read a checkpoint file weights-only (``torch.load(weights_only=True)``, with
    ``occwm.compat``'s safe mmengine types), after checking its zip CRCs.

    Args:
        path: a local ``.pth`` (URLs go to mmengine's reader unchecked).
        map_location: as ``torch.load``.
        mmap: map the file instead of reading it (cheap reads of ``meta``).

    Returns:
        The checkpoint dict; a bare state dict (tensors only) becomes
        ``{'state_dict': it}``.

    Raises:
        SetupError: missing, empty, not a torch zip archive (truncated, random bytes,
            another kind of file), a member failing its CRC, refused by weights-only
            loading, or no ``state_dict``; one line naming ``path``.
    """
    if '://' in str(path):
        from mmengine.runner.checkpoint import _load_checkpoint
        return _load_checkpoint(path, map_location=map_location)
    import occwm.compat  # noqa: F401  (mmengine's types are weights-only safe)
    if not os.path.isfile(path):
        raise SetupError(f'checkpoint {path} not found')
    if os.path.getsize(path) == 0:
        raise SetupError(f'checkpoint {path} is empty (0 bytes): an interrupted write? '
                         f'use another checkpoint')
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            members = zf.namelist()
    except Exception as e:  # noqa: BLE001  (BadZipFile, OSError, EOFError, zlib.error, ...)
        raise SetupError(f'checkpoint {path} is not a readable PyTorch checkpoint (truncated, '
                         f'or another kind of file: {_first_line(e)})') from None
    if bad is not None:
        raise SetupError(f'checkpoint {path} is corrupt: member {bad} fails its CRC check; '
                         f'use another checkpoint')
    if not any(m.endswith('/data.pkl') for m in members):
        raise SetupError(f'checkpoint {path} is a zip archive but not a PyTorch checkpoint '
                         f'(members {_names(members)})')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds; each means unreadable)
        raise SetupError(f'checkpoint {path} cannot be read weights-only '
                         f'({type(e).__name__}: {_first_line(e)})') from None
    if isinstance(ckpt, dict) and 'state_dict' not in ckpt and ckpt and all(
            torch.is_tensor(v) for v in ckpt.values()):
        ckpt = {'state_dict': ckpt}
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        what = (f'keys {_names([str(k) for k in ckpt])}' if isinstance(ckpt, dict)
                else type(ckpt).__name__)
        raise SetupError(f'checkpoint {path} holds no state_dict ({what}): not a model checkpoint')
    return ckpt


def _revised(state: dict, revise_keys=REVISE_KEYS) -> 'OrderedDict[str, torch.Tensor]':
    """``state`` with ``revise_keys`` applied to its keys (and to those of its
    ``_metadata``, the module versions torch's load hooks read)."""
    def revise(k):
        for p, r in revise_keys:
            k = re.sub(p, r, k)
        return k
    out = OrderedDict((revise(k), v) for k, v in state.items())
    metadata = getattr(state, '_metadata', None)
    if metadata is not None:
        out._metadata = OrderedDict((revise(k), v) for k, v in metadata.items())
    return out


def _wrong_part(model: torch.nn.Module, keys: set, model_keys: set) -> Optional[str]:
    """For a checkpoint without ``meta['occwm']`` whose keys do not fit: what it holds
    instead, from its keys (one part of this model alone, or this model under a prefix)."""
    name = type(model).__name__
    for child, module in model.named_children():
        part = {k[len(child) + 1:] for k in model_keys if k.startswith(child + '.')}
        if part and keys == part:
            kind = type(module).__name__
            role = f' ({ROLES[kind]})' if kind in ROLES else ''
            return (f'holds the weights of {_a(kind)}{role} alone (this {name}\'s `{child}`), '
                    f'not of {_a(name)}')
    prefixes = {k.split('.', 1)[0] for k in keys if '.' in k}
    for p in prefixes:
        inner = {k[len(p) + 1:] for k in keys if k.startswith(p + '.')}
        if inner == model_keys:
            return (f'holds a larger model with this {name} under `{p}.` (e.g. a forecaster '
                    f'checkpoint given as a tokenizer), not {_a(name)}')
    return None


def _incompatible(model: torch.nn.Module, state: dict) -> Tuple[set, set]:
    """The missing and unexpected keys torch reports for loading ``state`` into a copy of
    ``model`` (``load_state_dict(strict=False)``: modules' own load hooks included)."""
    result = copy.deepcopy(model).load_state_dict(state, strict=False)
    return set(result.missing_keys), set(result.unexpected_keys)


def non_finite_weights(model: torch.nn.Module, checkpoint: dict,
                       revise_keys=REVISE_KEYS) -> Optional[str]:
    """Where ``checkpoint``'s learned weights (the tensors of ``model``'s parameters, in
    ``state_dict`` and EMA's ``ema_state_dict``) hold a NaN / inf:
    ``'state_dict: 37 of 120 parameters (first: dit.w, 4096 of 4096 values NaN / inf)'``;
    ``None`` when they are finite. Buffers are not checked: they may hold statistics or
    sentinels (e.g. the NaN of an uncalibrated ``OccForecaster.trust_ious``)."""
    params = {name for name, _ in model.named_parameters()}
    for key in ('state_dict', 'ema_state_dict'):
        state = checkpoint.get(key)
        if not isinstance(state, dict):
            continue
        weights = {k: v for k, v in _revised(state, revise_keys).items()
                   if k in params and torch.is_tensor(v) and v.is_floating_point()}
        bad = [(k, int((~torch.isfinite(v)).sum()), v.numel()) for k, v in weights.items()]
        bad = [b for b in bad if b[1]]
        if bad:
            k, n, total = bad[0]
            return (f'{key}: {len(bad)} of {len(weights)} parameters (first: {k}, {n} of {total} '
                    f'values NaN / inf)')
    return None


def check_checkpoint(model: torch.nn.Module, checkpoint: dict, path: str,
                     strict: bool = True, revise_keys=REVISE_KEYS) -> 'OrderedDict':
    """Check that ``checkpoint`` (:func:`read_checkpoint`) holds weights of ``model``.

    Args:
        model: the model to load into (unwrapped).
        checkpoint: the checkpoint dict.
        path: its file, for the messages.
        strict: missing and unexpected keys are errors (else only the model type,
            grid, shapes and finiteness are checked).
        revise_keys: ``(pattern, replacement)`` pairs applied to the keys (``module.``).

    Returns:
        The state dict with revised keys.

    Raises:
        SetupError: another model type (``meta['occwm']``, or for older checkpoints
            the keys of one part / a prefix), another grid, a size mismatch (the first
            key and both shapes), missing / unexpected keys (count and the first few),
            non-finite weights (:func:`non_finite_weights`).
    """
    state = _revised(checkpoint['state_dict'], revise_keys)
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    saved = meta.get('occwm') if isinstance(meta.get('occwm'), dict) else None
    mine = describe_model(model)
    name = mine['model_type']
    if saved:
        theirs = saved.get('model_types') or [saved.get('model_type')]
        if name not in theirs and theirs[0] not in mine['model_types']:
            kind = theirs[0]
            role = f' ({ROLES[kind]})' if kind in ROLES else ''
            want = f' ({ROLES[name]})' if name in ROLES else ''
            raise SetupError(f'checkpoint {path} holds {_a(kind)}{role}, not {_a(name)}{want}: '
                             f'give a checkpoint trained with this config\'s model')
        if 'grid' in saved and 'grid' in mine and saved['grid'] != mine['grid']:
            g0, g1 = saved['grid'], mine['grid']
            raise SetupError(
                f"checkpoint {path} was trained on another grid ({'x'.join(map(str, g0['shape']))} "
                f"over {g0['point_cloud_range']} m) than this config's "
                f"({'x'.join(map(str, g1['shape']))} over {g1['point_cloud_range']} m)")
    model_state = model.state_dict()
    keys, model_keys = set(state), set(model_state)
    missing, unexpected = model_keys - keys, keys - model_keys
    if (missing or unexpected) and not saved:
        part = _wrong_part(model, keys, model_keys)
        if part:
            raise SetupError(f'checkpoint {path} {part}: give a checkpoint trained with this '
                             f'config\'s model')
    mismatched = [k for k in sorted(keys & model_keys)
                  if torch.is_tensor(state[k]) and state[k].shape != model_state[k].shape]
    if mismatched:
        k = mismatched[0]
        sizes = (f' (checkpoint: {summary(saved)}; this config: {summary(mine)})'
                 if saved else f' (this config: {summary(mine)})')
        raise SetupError(f'checkpoint {path} is of another model size: {len(mismatched)} '
                         f'tensors differ, first {k}: {tuple(state[k].shape)} in the '
                         f'checkpoint, {tuple(model_state[k].shape)} in the model{sizes}')
    if strict and (missing or unexpected):
        # a module may take an older layout (its ``_load_from_state_dict`` fills or maps
        # keys, as BatchNorm does for ``num_batches_tracked``): ask torch, on a copy
        missing, unexpected = _incompatible(model, state)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys ({_names(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys ({_names(unexpected)})')
        raise SetupError(f'checkpoint {path} does not fit {name}: {" and ".join(parts)}')
    bad = non_finite_weights(model, checkpoint, revise_keys)
    if bad:
        raise SetupError(f'checkpoint {path} holds non-finite weights ({bad}): a diverged '
                         f'training; use an earlier checkpoint')
    return state


def load_checkpoint(model: torch.nn.Module, path: str, map_location='cpu',
                    strict: bool = True) -> dict:
    """Read ``path`` (:func:`read_checkpoint`), check it against ``model``
    (:func:`check_checkpoint`) and load its weights (mmengine's loader).

    Returns:
        The checkpoint dict.

    Raises:
        SetupError: as :func:`read_checkpoint` and :func:`check_checkpoint`.
    """
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    checkpoint = read_checkpoint(path, map_location)
    check_checkpoint(model, checkpoint, path, strict)
    _load_checkpoint_to_model(model, checkpoint, strict, logger='current',
                              revise_keys=list(REVISE_KEYS))
    return checkpoint


def verify_checkpoint(path: str) -> dict:
    """Read ``path`` back whole (CRCs, weights-only load, memory-mapped): the test a
    just-written checkpoint passes before it replaces an older one, and the test of
    ``--resume``. (Finite weights are checked against the model:
    :func:`non_finite_weights`, before a save and in :func:`check_checkpoint`.)

    Returns:
        Its ``meta`` dict.

    Raises:
        SetupError: as :func:`read_checkpoint`.
    """
    meta = read_checkpoint(path, 'cpu', mmap=True).get('meta')
    return meta if isinstance(meta, dict) else {}
