"""The one evaluation path: every score comes from mmengine's ``Runner.test`` (its
``TestLoop`` over the test dataloader, the model's predictions, the metrics), whether
the forecasts come from a checkpoint (``tools/test.py``, ``tools/forecast.py``, which
adds ``DumpForecasts`` and ``ForecastRenderHook``) or from files on disk
(``tools/eval_occ.py``: ``FileForecaster``)."""
from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from typing import Dict, Optional, Sequence, Tuple

from mmengine.config import Config

from occwm.evaluation.from_files import prediction_path
from occwm.evaluation.protocols import PROTOCOLS, apply_protocol, check_mask
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.window import frames_needed

NO_WINDOW = '{ann} has no {protocol} window: {why}; {needs}{hint}'


def build_test_set(cfg: Config):
    """The test set of ``cfg`` without its pipeline (windows only, nothing loaded).

    Raises:
        FileNotFoundError / ValueError naming the info pkl.
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'occwm'))
    import occwm.data  # noqa: F401  (registers the datasets)
    from occwm.registry import DATASETS
    return DATASETS.build(dict(cfg.test_dataloader.dataset, pipeline=[]))


def check_test_set(cfg: Config, protocol: str):
    """The test set of ``cfg`` without its pipeline (:func:`build_test_set`), checked to
    hold a window.

    Raises:
        ValueError: the set has no window under ``protocol`` (a one-line message), or
            the info pkl is bad; FileNotFoundError: it is missing.
    """
    ds = build_test_set(cfg)
    if len(ds) == 0:
        d = cfg.test_dataloader.dataset
        why = ds.shortness() or 'no scene left (dataset.scenes / indices)'
        needs = {name: frames_needed(p['num_past'] + ds.num_future, p['window_rule'])
                 for name, p in PROTOCOLS.items() if name != protocol}  # frames
        longest = max(getattr(ds, 'short_scenes', {}).values(), default=0)
        fits = sorted((k, n) for n, k in needs.items() if k <= longest)
        hint = f': try --protocol {fits[-1][1]}' if fits else ''
        raise ValueError(NO_WINDOW.format(
            ann=d.get('ann_file'), protocol=protocol, why=why, hint=hint,
            needs=', '.join(f'{n} needs {k}' for n, k in needs.items())))
    return ds


def run_test(cfg: Config) -> Tuple[Dict[str, float], Optional[dict]]:
    """``Runner.from_cfg(cfg).test()`` (``OccRunner``: a quiet console), under an
    experiment name of its own (two runs in
    one second in one process would otherwise share mmengine's logger and visualizer).

    Returns:
        ``(flat metrics, report)``: the report (``occwm.evaluation.report`` schema) of the
        first metric that keeps one (``OccMetric.last_report``), with the reports of the
        further ones under their metric's name (``SampleAgreement`` ->
        ``report['sample_agreement']``); ``None`` on ranks other than 0.
    """
    import occwm.compat  # noqa: F401  (spconv CPU shim, weights-only checkpoints)
    from occwm.engine.runner import build_runner
    if not cfg.get('experiment_name'):  # mmengine names runs by the second; two runs in one
        cfg.experiment_name = f'test_{time.strftime("%Y%m%d_%H%M%S")}_{uuid.uuid4().hex[:6]}'
    runner = build_runner(cfg)
    metrics = runner.test()
    kept = [m for m in runner.test_evaluator.metrics if getattr(m, 'last_report', None) is not None]
    if not kept:
        return metrics, None
    report = dict(kept[0].last_report)
    for m in kept[1:]:
        report[re.sub(r'(?<!^)(?=[A-Z])', '_', type(m).__name__).lower()] = m.last_report
    return metrics, report


def files_config(infos_path: str, gt_root: str, pred_root: str, protocol: str = 'occworld',
                 mask: Optional[str] = None, num_future: Optional[int] = None,
                 grid: OccGrid = DEFAULT_GRID, work_dir: Optional[str] = None,
                 indices: Optional[Sequence[int]] = None) -> Config:
    """The test config that scores the forecast files under ``pred_root``: the protocol's
    windows of ``infos_path`` (``OccForecastDataset`` reading ``gt_root``), the
    ``FileForecaster`` model and ``OccMetric`` with the copy-last and warp baselines.

    Args:
        infos_path: info pkl of any layout ``occwm.infos.layouts`` reads.
        gt_root: folder of ``<scene>/<token>/labels.npz``.
        pred_root: folder of ``<scene>/<present token>.npz``.
        protocol, mask: see ``occwm.evaluation.protocols``.
        num_future: future frames scored (default: the protocol's, 6).
        grid: the occupancy grid.
        work_dir: the runner's log folder (default ``work_dirs/eval_occ``).
        indices: windows to score (default: all).
    """
    g = dict(point_cloud_range=tuple(grid.point_cloud_range), voxel_size=grid.voxel_size)
    cfg = Config(dict(
        default_scope='occwm',
        custom_imports=dict(imports=['occwm.data', 'occwm.evaluation'], allow_failed_imports=False),
        model=dict(type='FileForecaster', pred_root=pred_root, grid=g),
        test_dataloader=dict(
            batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='occwm.occ_collate'),
            dataset=dict(type='OccForecastDataset', ann_file=os.path.abspath(infos_path),
                         gt_root=gt_root, indices=None if indices is None else list(indices),
                         pipeline=[dict(type='LoadOccWindow', grid=g), dict(type='PackOccInputs')],
                         test_mode=True)),
        test_evaluator=dict(type='OccMetric', protocol=protocol, mask=check_mask(mask),
                            present_frame=False, grid=g, class_names=tuple(grid.class_names)),
        test_cfg=dict(type='TestLoop'),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=50)),
        log_level='WARNING',
        work_dir=work_dir or os.path.join('work_dirs', 'eval_occ'),
        env_cfg=dict(dist_cfg=dict(backend='gloo'))))
    apply_protocol(cfg, protocol, 'none' if mask is None else mask, num_future=num_future)
    return cfg


def evaluate_files(infos_path: str, gt_root: str, pred_root: str, protocol: str = 'occworld',
                   mask: Optional[str] = None, num_future: Optional[int] = None,
                   allow_missing: bool = False, grid: OccGrid = DEFAULT_GRID,
                   work_dir: Optional[str] = None) -> dict:
    """Score the prediction files of every window beside the copy-last and warp baselines
    (:func:`files_config`, run by :func:`run_test`).

    Returns:
        The report (``occwm.evaluation.report``) plus ``missing_windows`` and
        ``missing_examples``. The present frame ("0 s") is not in files, so it is not
        reported.

    Raises:
        FileNotFoundError: prediction files missing (count and the first expected paths)
            without ``allow_missing``; none at all.
        ValueError: no window under the protocol; a malformed prediction or ground-truth
            file (named).
    """
    with tempfile.TemporaryDirectory(prefix='occwm_eval_') as tmp:
        return _evaluate_files(files_config(infos_path, gt_root, pred_root, protocol, mask,
                                            num_future, grid, work_dir or tmp),
                               pred_root, protocol, allow_missing)


def _evaluate_files(cfg: Config, pred_root: str, protocol: str, allow_missing: bool) -> dict:
    """:func:`evaluate_files` on a built config."""
    ds = check_test_set(cfg, protocol)
    n = len(ds)
    paths = [prediction_path(pred_root, info['scene_name'], info['tokens'][info['num_past'] - 1])
             for info in (ds.get_data_info(i) for i in range(n))]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and not allow_missing:
        first = '\n  '.join(missing[:5])
        raise FileNotFoundError(f'{len(missing)} of {n} prediction files are missing under '
                                f'{pred_root}, e.g.\n  {first}\n(--allow-missing skips them)')
    if len(missing) == n:
        raise FileNotFoundError(f'none of the {n} prediction files exists under {pred_root}')
    if missing:
        cfg.test_dataloader.dataset.indices = [i for i, p in enumerate(paths) if os.path.isfile(p)]
    _, report = run_test(cfg)
    report['missing_windows'] = len(missing)
    report['missing_examples'] = missing[:5]
    return report
