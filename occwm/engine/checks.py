"""Checks a tool runs before it builds a runner, so that a newcomer's usual mistakes end
in one line that says what to do (:class:`occwm.runtime.SetupError`) instead of a
traceback minutes later: a config path from the wrong folder, no data yet, no tokenizer
checkpoint yet.

Relative paths in configs (``data/synthetic/``, ``work_dirs/vae``) are read from the
current folder, as everywhere in mmengine; the tools are meant to run from the
repository root, and the messages say so when that is the mistake.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from mmengine.config import Config

from occwm.runtime import SetupError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_SYNTHETIC = 'python tools/make_synthetic.py data/synthetic'
SYNTHETIC_HINT = (f'make the synthetic set with  {MAKE_SYNTHETIC}  (about a minute), or '
                  'prepare nuScenes and train configs/occ_nuscenes.py (README, "Data '
                  'preparation")')


def _wrong_folder(path: str) -> Optional[str]:
    """`` (run from the repository root: cd REPO)`` when the relative ``path`` is
    missing from the current folder but exists under the repository root, else
    ``None``."""
    if os.path.isabs(path) or os.path.abspath(os.getcwd()) == REPO:
        return None
    if os.path.exists(os.path.join(REPO, path)):
        return (f'{path} is read from the current folder {os.getcwd()}: run the tools from '
                f'the repository root (cd {REPO})')
    return None


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``.

    Raises:
        SetupError: no such file (says to run from the repository root when that is
            where it is).
    """
    if not os.path.isfile(path):
        hint = _wrong_folder(path)
        raise SetupError(hint or f'config {path} not found (the configs are in '
                                 f'{os.path.join(REPO, "configs")})')
    return Config.fromfile(path)


def ann_path(dataset: dict) -> str:
    """The info pkl a dataset config reads (``ann_file`` under ``data_root`` unless it
    is absolute, as ``mmengine.dataset.BaseDataset``)."""
    ann, root = dataset.get('ann_file', ''), dataset.get('data_root', '') or ''
    return ann if os.path.isabs(ann) or not root else os.path.join(root, ann)


def check_data(cfg: Config, loaders: Sequence[str] = ('train_dataloader', 'val_dataloader')
               ) -> None:
    """Every dataset of ``loaders`` has its info pkl.

    Raises:
        SetupError: an info pkl is missing: how to make the synthetic set (or the real
            one), or to run from the repository root when that is the mistake.
    """
    for key in loaders:
        ds = (cfg.get(key) or {}).get('dataset')
        if not ds or not ds.get('ann_file'):
            continue
        path = ann_path(ds)
        if os.path.isfile(path):
            continue
        hint = _wrong_folder(path)
        if hint:
            raise SetupError(f'no data: {hint}')
        if 'synthetic' in path:
            raise SetupError(f'no data yet: {path} not found; {SYNTHETIC_HINT}')
        raise SetupError(f'no data: info pkl {path} not found (make it with '
                         f'tools/create_data.py, or point {key}.dataset.data_root / '
                         f'ann_file at it with --cfg-options)')


def check_tokenizer(cfg: Config) -> None:
    """The forecaster's ``model.tokenizer_ckpt`` (a ``.pth`` or a work dir with a
    ``last_checkpoint``) exists; nothing to check without one.

    Raises:
        SetupError: it is missing: train the tokenizer first.
    """
    from occwm.models.forecaster import TOKENIZER_MISSING, resolve_checkpoint
    path = (cfg.get('model') or {}).get('tokenizer_ckpt')
    if not path:
        return
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, 'last_checkpoint')):
        found = False  # a work dir without a checkpoint yet (resolve_checkpoint would say
    else:  # "Did not find last_checkpoint to be resumed")
        found = os.path.isfile(resolve_checkpoint(path))
    if not found:
        hint = _wrong_folder(path)
        raise SetupError(hint or TOKENIZER_MISSING.format(path))


def model_checkpoint(path: str) -> str:
    """The checkpoint a tool should load: ``path`` itself (a ``.pth``), or for an mmengine
    work dir the checkpoint its ``last_checkpoint`` names
    (``occwm.models.forecaster.resolve_checkpoint``).

    Raises:
        SetupError: neither exists (train one first).
    """
    from occwm.models.forecaster import resolve_checkpoint
    if os.path.isfile(os.path.join(path, 'last_checkpoint')):
        path = resolve_checkpoint(path)
    if not os.path.isfile(path):
        raise SetupError(f'checkpoint {path} not found (a .pth, or a work dir with a '
                         f'last_checkpoint; train one with  python tools/train.py CONFIG)')
    return path
