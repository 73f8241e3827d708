"""Evaluation reports: summed counts -> a JSON-ready dict, terminal tables, Markdown.

The report (``build_report``; the schema is also in the README)::

    protocol            str    'occworld' | 'dome' | 'i2world' (occwm.evaluation.protocols)
    mask                str    'none' | 'camera' | 'lidar'
    num_windows         int    windows scored
    frames              [str]  name of each future frame ('0.5s', ..., '3s')
    avg_frames          [int]  1-based future frames averaged into *_avg (2, 4, 6)
    absent_class_iou    float | null   IoU of a class absent from the ground truth (null: dropped)
    drop_zero_iou       bool   classes with IoU 0 are left out of the mean (I²-World)
    classes             [str]  the 17 semantic classes
    dynamic_classes     [str]  the classes of the dynamic mIoU (occwm.grid.DYNAMIC_CLASSES)
    miou_per_frame      [float]  the model, percent, one per future frame
    iou_per_frame       [float]
    miou_avg, iou_avg   float
    class_iou_per_frame {class: [float | null, ...]}   null: undefined (0 / 0)
    dynamic_miou_per_frame  [float]  mIoU over dynamic_classes only (same absent-class rule)
    dynamic_miou_avg        float
    paired_miou_per_frame   [float]  only when drop_zero_iou: the mIoU with the zero-IoU
                            classes KEPT (the protocol's absent-class rule alone), so every
                            method of the report is averaged over the same classes (the
                            dropping rule lets a method that scores 0 on a class leave it
                            out of its mean, where one that scores 10 keeps it)
    paired_miou_avg         float
    changed_iou_per_frame   [float] | null   IoU on the voxels where the ground truth
                            differs from the ego-motion-warped present; null: no warped
                            present (no warp baseline, or windows without trajectory)
    changed_iou_avg         float | null
    miou_present, iou_present, class_iou_present, dynamic_miou_present
                        the present frame ("0 s"), when reported
    baselines           {name: {miou_per_frame, iou_per_frame, miou_avg, iou_avg,
                                class_iou_per_frame, dynamic_miou_per_frame,
                                dynamic_miou_avg, changed_iou_per_frame,
                                changed_iou_avg[, *_present]}}

All IoUs are percentages. NaN (nothing to score) is written as null.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.evaluation.functional import OccCounts, iou_from_counts
from occwm.grid import DYNAMIC_CLASSES

MODEL_ROW = 'model'
# (report key, table title) of the summary tables, in order; the keys are
# '<key>_per_frame', '<key>_avg' (and '<key>_present') of every method.
SUMMARIES = (('miou', 'mIoU (%)'), ('iou', 'IoU (%)'), ('dynamic_miou', 'dynamic mIoU (%)'),
             ('changed_iou', 'changed-voxel IoU (%)'),
             ('paired_miou', 'mIoU over the classes shared by every method, zero IoUs kept (%)'))


def _num(v: float) -> Optional[float]:
    v = float(v)
    return None if math.isnan(v) else v


def method_scores(per_frame: Sequence[OccCounts], avg_frames: Sequence[int],
                  class_names: Sequence[str], absent_class_iou: Optional[float] = None,
                  drop_zero_iou: bool = False, present: Optional[OccCounts] = None,
                  changed: Optional[np.ndarray] = None,
                  dynamic_classes: Sequence[int] = DYNAMIC_CLASSES) -> dict:
    """Scores of one method from its counts summed over the set.

    Args:
        per_frame: one ``OccCounts`` per future frame (summed over all windows).
        avg_frames: 1-based frames averaged into ``miou_avg`` / ``iou_avg`` (and the
            dynamic mIoU and changed-voxel IoU).
        class_names: the ``C`` semantic class names (free excluded).
        absent_class_iou, drop_zero_iou: the protocol's rule (``functional.miou``);
            ``absent_class_iou`` also scores an all-free geometry ground truth.
        present: counts of the present frame (reported as ``*_present``), or ``None``.
        changed: ``(T_f, 3) int64`` geometry ``tp, fp, fn`` on the changed voxels,
            summed over the set (``functional.changed_counts``), or ``None``: no
            changed-voxel IoU (``changed_iou_*`` are ``None``). Its IoU is plain
            ``tp / (tp + fp + fn)``, NaN for an empty union (no protocol rule: the
            score is occwm's own).
        dynamic_classes: indices (into ``class_names``) of the dynamic mIoU's classes.

    Returns:
        ``{miou_per_frame, iou_per_frame, miou_avg, iou_avg, class_iou_per_frame,
        dynamic_miou_per_frame, dynamic_miou_avg, changed_iou_per_frame, changed_iou_avg
        [, miou_present, iou_present, class_iou_present, dynamic_miou_present]}``,
        percentages (NaN kept here).
    """
    def scores(c: OccCounts):
        # I²-World shows the raw TP / (TP + FP + FN) per class (0 for a class predicted
        # but absent, undefined for 0 / 0) and drops 0 and undefined from the mean.
        cls = (np.atleast_1d(iou_from_counts(c.tp, c.fp, c.fn)) if drop_zero_iou
               else c.class_ious(absent_class_iou))
        return (100.0 * c.miou(absent_class_iou, drop_zero_iou), 100.0 * c.iou(absent_class_iou),
                100.0 * cls, 100.0 * c.miou(absent_class_iou, drop_zero_iou, dynamic_classes),
                100.0 * c.miou(absent_class_iou, False))

    def avg(values: List[float]) -> float:
        return float(np.mean([values[f - 1] for f in avg_frames]))

    per = [scores(c) for c in per_frame]
    if any(f < 1 or f > len(per) for f in avg_frames):
        raise ValueError(f'avg_frames {tuple(avg_frames)} outside the {len(per)} future frames')
    if changed is not None and np.shape(changed) != (len(per), 3):
        raise ValueError(f'changed counts of shape {np.shape(changed)}, expected ({len(per)}, 3)')
    out = OrderedDict(
        miou_per_frame=[p[0] for p in per], iou_per_frame=[p[1] for p in per],
        miou_avg=avg([p[0] for p in per]), iou_avg=avg([p[1] for p in per]),
        class_iou_per_frame=OrderedDict((name, [float(p[2][k]) for p in per])
                                        for k, name in enumerate(class_names)),
        dynamic_miou_per_frame=[p[3] for p in per], dynamic_miou_avg=avg([p[3] for p in per]),
        changed_iou_per_frame=None, changed_iou_avg=None)
    if drop_zero_iou:  # the same classes for every method (module docstring)
        out.update(paired_miou_per_frame=[p[4] for p in per], paired_miou_avg=avg([p[4] for p in per]))
    if changed is not None:
        changed = np.asarray(changed, dtype=np.int64)  # (T_f, 3) tp, fp, fn
        ious = [100.0 * iou_from_counts(*c) for c in changed]
        out.update(changed_iou_per_frame=ious, changed_iou_avg=avg(ious))
    if present is not None:
        m, i, cls, dyn, _ = scores(present)
        out.update(miou_present=m, iou_present=i,
                   class_iou_present=OrderedDict((n, float(cls[k])) for k, n in enumerate(class_names)),
                   dynamic_miou_present=dyn)
    return out


def build_report(totals: Dict[str, List[OccCounts]], num_windows: int, protocol: str,
                 mask: Optional[str], frames: Sequence[str], avg_frames: Sequence[int],
                 class_names: Sequence[str], absent_class_iou: Optional[float] = None,
                 drop_zero_iou: bool = False,
                 present: Optional[Dict[str, OccCounts]] = None,
                 changed: Optional[Dict[str, np.ndarray]] = None,
                 dynamic_classes: Sequence[int] = DYNAMIC_CLASSES) -> dict:
    """The report dict of the module docstring.

    Args:
        totals: ``{method: [OccCounts per future frame]}``; ``'model'`` first, then
            the baselines.
        present: ``{method: OccCounts}`` of the present frame, or ``None``.
        changed: ``{method: (T_f, 3) int64}`` geometry ``tp, fp, fn`` on the changed
            voxels summed over the set (see :func:`method_scores`); ``None`` or a
            missing method: no changed-voxel IoU.
        dynamic_classes: indices into ``class_names`` of the dynamic mIoU's classes.
    """
    if len(frames) != len(next(iter(totals.values()))):
        raise ValueError(f'{len(frames)} frame names for '
                         f'{len(next(iter(totals.values())))} future frames')
    report = OrderedDict(protocol=protocol, mask=mask or 'none', num_windows=int(num_windows),
                         frames=list(frames), avg_frames=[int(f) for f in avg_frames],
                         absent_class_iou=absent_class_iou, drop_zero_iou=bool(drop_zero_iou),
                         classes=list(class_names),
                         dynamic_classes=[class_names[k] for k in dynamic_classes])
    baselines = OrderedDict()
    for name, per_frame in totals.items():
        s = method_scores(per_frame, avg_frames, class_names, absent_class_iou, drop_zero_iou,
                          None if present is None else present.get(name),
                          None if changed is None else changed.get(name), dynamic_classes)
        if name == MODEL_ROW:
            report.update(s)
        else:
            baselines[name] = s
    report['baselines'] = baselines
    return report


def methods_of(report: dict) -> Dict[str, dict]:
    """``{'model': scores, baseline: scores, ...}`` from a report."""
    out = OrderedDict()
    if 'miou_per_frame' in report:
        out[MODEL_ROW] = report
    out.update(report.get('baselines', {}))
    return out


def flat_metrics(report: dict) -> Dict[str, float]:
    """mmengine's flat scalar metrics, percentages: ``mIoU@1s``, ``IoU@1s``, ... at the
    averaged frames, ``mIoU_avg``, ``IoU_avg`` (and ``mIoU@0s`` / ``IoU@0s`` for the
    present frame), then ``dynamic_mIoU@1s``, ..., ``dynamic_mIoU_avg`` (and
    ``dynamic_mIoU@0s``) and, when there is a warped present, ``changed_IoU@1s``, ...,
    ``changed_IoU_avg``, and under a protocol that drops zero-IoU classes
    ``paired_mIoU@1s``, ..., ``paired_mIoU_avg``; the baselines as ``copy_last/mIoU@1s`` etc. The model's
    ``mIoU`` comes first (mmengine's ``save_best='auto'`` takes the first key)."""
    out = OrderedDict()
    for name, s in methods_of(report).items():
        key = '' if name == MODEL_ROW else f'{name}/'
        if 'miou_present' in s:
            out[f'{key}mIoU@0s'], out[f'{key}IoU@0s'] = s['miou_present'], s['iou_present']
        for f in report['avg_frames']:
            out[f'{key}mIoU@{report["frames"][f - 1]}'] = s['miou_per_frame'][f - 1]
            out[f'{key}IoU@{report["frames"][f - 1]}'] = s['iou_per_frame'][f - 1]
        out[f'{key}mIoU_avg'], out[f'{key}IoU_avg'] = s['miou_avg'], s['iou_avg']
        for src, dst in (('dynamic_miou', 'dynamic_mIoU'), ('changed_iou', 'changed_IoU'),
                         ('paired_miou', 'paired_mIoU')):
            if s.get(f'{src}_per_frame') is None:  # not computed (or a report from before)
                continue
            if f'{src}_present' in s:
                out[f'{key}{dst}@0s'] = s[f'{src}_present']
            for f in report['avg_frames']:
                out[f'{key}{dst}@{report["frames"][f - 1]}'] = s[f'{src}_per_frame'][f - 1]
            out[f'{key}{dst}_avg'] = s[f'{src}_avg']
    return out


def _fmt(v) -> str:
    return '-' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{v:.2f}'


def summary_rows(report: dict, key: str) -> List[List[str]]:
    """Rows ``[method, (present,) per frame..., avg]`` of ``key`` (``'miou'``, ``'iou'``,
    ``'dynamic_miou'`` or ``'changed_iou'``, see ``SUMMARIES``); ``-`` where a method has
    no such score (e.g. no changed-voxel IoU, or no present frame for it)."""
    rows, present = [], 'miou_present' in report
    for name, s in methods_of(report).items():
        row = [name] + ([_fmt(s.get(f'{key}_present'))] if present else [])
        per_frame = s.get(f'{key}_per_frame') or [None] * len(report['frames'])
        rows.append(row + [_fmt(v) for v in per_frame] + [_fmt(s.get(f'{key}_avg'))])
    return rows


def _summaries(report: dict) -> List[tuple]:
    """``(key, title)`` of the summary tables that some method of ``report`` has."""
    return [(key, title) for key, title in SUMMARIES
            if any(s.get(f'{key}_per_frame') is not None for s in methods_of(report).values())]


def _header(report: dict, first: str) -> List[str]:
    present = ['0s'] if 'miou_present' in report else []
    avg = 'avg(' + ','.join(report['frames'][f - 1] for f in report['avg_frames']) + ')'
    return [first] + present + list(report['frames']) + [avg]


def _class_rows(report: dict, s: dict) -> List[List[str]]:
    rows = []
    for c in report['classes']:
        row = [c] + ([_fmt(s['class_iou_present'][c])] if 'class_iou_present' in s else [])
        rows.append(row + [_fmt(v) for v in s['class_iou_per_frame'][c]])
    return rows


def _title(report: dict) -> str:
    rule = ('absent class IoU = 1' if report['absent_class_iou'] == 1.0 else
            'classes with IoU 0 or undefined dropped' if report['drop_zero_iou'] else
            'absent classes dropped')
    return (f"protocol {report['protocol']}, mask {report['mask']}, "
            f"{report['num_windows']} windows, {rule}")


def _notes(report: dict, key: str) -> str:
    """What a summary table of occwm's own scores measures ('' for mIoU / IoU)."""
    if key == 'dynamic_miou':
        return 'mIoU over the dynamic classes: ' + ', '.join(report.get('dynamic_classes', []))
    if key == 'changed_iou':
        return 'IoU on the voxels where the ground truth differs from the ego-motion-warped present'
    return ''


def format_text(report: dict) -> str:
    """Terminal tables: mIoU, IoU, dynamic mIoU and changed-voxel IoU per future frame
    for every method (a table only when some method has the score), then the model's
    per-class IoU per frame."""
    text = [_title(report)]
    for key, title in _summaries(report):
        note = _notes(report, key)
        text += ([note] if note else []) + [_table(_header(report, title), summary_rows(report, key))]
    if 'class_iou_per_frame' in report:
        text.append(_table(_header(report, 'class IoU (model)')[:-1], _class_rows(report, report)))
    return '\n'.join(text)


def format_markdown(report: dict) -> str:
    """The same tables in Markdown, with per-class tables for every method."""
    lines = ['# Occupancy forecasting evaluation', '', _title(report) + '.', '']
    for key, title in _summaries(report):
        note = _notes(report, key)
        lines += [f'## {title}', ''] + ([note + '.', ''] if note else [])
        lines += [_md(_header(report, 'method'), summary_rows(report, key)), '']
    for name, s in methods_of(report).items():
        lines += [f'## Per-class IoU (%): {name}', '',
                  _md(_header(report, 'class')[:-1], _class_rows(report, s)), '']
    return '\n'.join(lines)


def to_json(report: dict) -> str:
    """JSON text of a report, NaN written as null."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (float, np.floating)):
            return _num(x)
        if isinstance(x, np.integer):
            return int(x)
        return x
    return json.dumps(clean(report), indent=1)


def write_report(report: dict, json_path: Optional[str] = None, md_path: Optional[str] = None,
                 extra: Optional[dict] = None) -> None:
    """Write the report as JSON and / or Markdown, atomically. ``extra`` keys are added
    to the JSON (e.g. mmengine's flat metrics or timings)."""
    from occwm.io import atomic_path
    if json_path:
        with atomic_path(json_path) as tmp, open(tmp, 'w') as f:
            f.write(to_json(dict(report, **(extra or {}))))
    if md_path:
        with atomic_path(md_path) as tmp, open(tmp, 'w') as f:
            f.write(format_markdown(report))


def _table(header: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt(r):
        return '| ' + ' | '.join(str(v).rjust(w) if i else str(v).ljust(w)
                                 for i, (v, w) in enumerate(zip(r, widths))) + ' |'
    return '\n'.join([line, fmt(header), line] + [fmt(r) for r in rows] + [line])


def _md(header: List[str], rows: List[List[str]]) -> str:
    out = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|']
    return '\n'.join(out + ['| ' + ' | '.join(r) + ' |' for r in rows])
