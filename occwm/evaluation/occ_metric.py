"""``OccMetric``: OccWorld's IoU / mIoU per future horizon as an mmengine metric.

``process`` turns each window into counts per reported future frame (no grids are
kept); ``compute_metrics`` sums the counts over the whole set, per future frame, as
OccWorld does (Zheng et al., ECCV 2024, ``utils/metric_util.py``), and prints one row
per method (the model, then each baseline such as ``copy_last``) and the model's
per-class IoU. The pure math lives in :mod:`occwm.evaluation.functional`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from occwm.evaluation.functional import OccCounts, confusion_counts
from occwm.grid import OCC3D_CLASS_NAMES
from occwm.registry import METRICS

MODEL_ROW = 'model'


@METRICS.register_module()
class OccMetric(BaseMetric):
    """IoU and mIoU (percent) at chosen future frames, for the model and baselines.

    ``data_samples`` given to :meth:`process` is a list, one dict per window:

    - ``pred_occ``: ``(T_f, X, Y, Z) uint8`` forecast labels (tensor or array).
    - ``gt_occ``: ``(T_f, X, Y, Z) uint8`` ground truth.
    - ``baselines`` (optional): ``{name: (T_f, X, Y, Z) uint8}``, e.g. ``copy_last``.
    - ``mask`` (optional): ``(T_f, X, Y, Z) bool``; only true voxels count.

    Args:
        report_frames: 1-based future frame indices to report. At 2 Hz, frames
            ``(2, 4, 6)`` are 1 s, 2 s, 3 s (OccWorld). For a tokenizer use ``(1,)``.
        frame_names: one name per reported frame, used in keys (``mIoU@1s``).
        class_names: names of labels ``0..num_classes-1``, free last (Occ3D default).
        absent_class_iou: score of a class with no ground-truth voxel in the whole set
            at that frame: ``None`` leaves it out of the mean, ``1.0`` is OccWorld.
        collect_device, prefix: see ``mmengine.evaluator.BaseMetric``. ``prefix='occ'``
            turns ``mIoU@1s`` into ``occ/mIoU@1s``. The stored results are small
            ``OccCounts`` (one list per window), so collection across ranks is cheap.

    ``compute_metrics`` returns ``{'mIoU@1s', 'IoU@1s', ..., 'mIoU_avg', 'IoU_avg'}``
    for the model and ``'{baseline}/mIoU@1s'`` etc. for each baseline; the averages are
    over the reported frames.
    """

    default_prefix: Optional[str] = ''  # no prefix: keys are 'mIoU@1s' unless prefix= is given

    def __init__(self,
                 report_frames: Sequence[int] = (2, 4, 6),
                 frame_names: Sequence[str] = ('1s', '2s', '3s'),
                 class_names: Sequence[str] = OCC3D_CLASS_NAMES,
                 absent_class_iou: Optional[float] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if len(report_frames) != len(frame_names):
            raise ValueError(f'{len(report_frames)} report_frames but '
                             f'{len(frame_names)} frame_names')
        if any(int(f) < 1 for f in report_frames):
            raise ValueError(f'report_frames are 1-based future frame indices, got {report_frames}')
        self.report_frames = tuple(int(f) for f in report_frames)
        self.frame_names = tuple(frame_names)
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.free_label = self.num_classes - 1
        self.absent_class_iou = absent_class_iou

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Append, per window, ``{method: [OccCounts per reported frame]}``."""
        for sample in data_samples:
            gt = _as_tensor(sample['gt_occ'])  # (T_f, X, Y, Z)
            mask = sample.get('mask')
            mask = None if mask is None else _as_tensor(mask)
            methods = OrderedDict([(MODEL_ROW, sample['pred_occ'])])
            for name, occ in (sample.get('baselines') or {}).items():
                methods[name] = occ
            result = OrderedDict()
            for name, occ in methods.items():
                occ = _as_tensor(occ)
                if occ.shape != gt.shape:
                    raise ValueError(f'{name}: shape {tuple(occ.shape)} != '
                                     f'gt_occ {tuple(gt.shape)}')
                if gt.shape[0] < max(self.report_frames):
                    raise ValueError(f'{gt.shape[0]} future frames, but report_frames '
                                     f'{self.report_frames} needs {max(self.report_frames)}')
                result[name] = [
                    confusion_counts(occ[f - 1], gt[f - 1], self.num_classes, self.free_label,
                                     None if mask is None else mask[f - 1])
                    for f in self.report_frames]
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum counts over all windows per frame, then score (percent)."""
        num_sem = self.num_classes - 1
        totals: Dict[str, List[OccCounts]] = OrderedDict()
        for result in results:
            for name, per_frame in result.items():
                acc = totals.setdefault(name, [OccCounts.zeros(num_sem) for _ in per_frame])
                totals[name] = [a + c for a, c in zip(acc, per_frame)]

        metrics: Dict[str, float] = OrderedDict()
        for name, per_frame in totals.items():
            key = '' if name == MODEL_ROW else f'{name}/'
            mious = [100.0 * c.miou(self.absent_class_iou) for c in per_frame]
            ious = [100.0 * c.iou() for c in per_frame]
            for fname, m, i in zip(self.frame_names, mious, ious):
                metrics[f'{key}mIoU@{fname}'] = m
                metrics[f'{key}IoU@{fname}'] = i
            metrics[f'{key}mIoU_avg'] = float(np.mean(mious))
            metrics[f'{key}IoU_avg'] = float(np.mean(ious))
        if totals:
            print_log('\n' + self.format_tables(metrics, list(totals), totals.get(MODEL_ROW)),
                      logger='current')
        return dict(metrics)

    def format_tables(self, metrics: Dict[str, float], methods: Sequence[str],
                      model_counts: Optional[List[OccCounts]] = None) -> str:
        """Plain-text tables: one row per method (IoU / mIoU per horizon and average),
        then the model's per-class IoU per horizon."""
        cols = [f'{m}@{f}' for f in self.frame_names for m in ('IoU', 'mIoU')]
        cols += ['IoU_avg', 'mIoU_avg']
        rows = []
        for name in methods:
            key = '' if name == MODEL_ROW else f'{name}/'
            rows.append([name] + [f'{metrics[key + c]:.2f}' for c in cols])
        text = _table(['method'] + cols, rows)
        if model_counts:
            per_class = [c.class_ious(self.absent_class_iou) for c in model_counts]  # F x (C,)
            rows = [[self.class_names[k]] + [_pct(ious[k]) for ious in per_class]
                    for k in range(self.num_classes - 1)]
            text += '\n' + _table(['class IoU (model)'] + list(self.frame_names), rows)
        return text


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _pct(v: float) -> str:
    return '-' if np.isnan(v) else f'{100.0 * v:.2f}'


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt(r):
        return '| ' + ' | '.join(str(v).rjust(w) if i else str(v).ljust(w)
                                 for i, (v, w) in enumerate(zip(r, widths))) + ' |'
    return '\n'.join([line, fmt(header), line] + [fmt(r) for r in rows] + [line])
