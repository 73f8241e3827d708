"""``OccMetric``: IoU / mIoU per future frame under a published protocol, as an
mmengine metric, for the model and the baselines; with them occwm's dynamic mIoU (the
mIoU over the movable classes) and changed-voxel IoU (the IoU on voxels where the
ground truth differs from the ego-motion-warped present).

``process`` turns each window into small summable counts (one ``int64`` vector per
method and future frame; no grids are kept), which mmengine's ``BaseMetric.collect``
gathers across ranks; ``compute_metrics`` sums them over the whole set per future
frame, as OccWorld, DOME and I²-World all do, and scores them with the protocol's
absent-class rule (``occwm.evaluation.protocols``). The pure math lives in
:mod:`occwm.evaluation.functional`, the tables in :mod:`occwm.evaluation.report`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from occwm.evaluation import report as rep
from occwm.evaluation.baselines import BASELINES, baseline_forecasts
from occwm.evaluation.functional import OccCounts, changed_counts, changed_voxels, confusion_counts
from occwm.evaluation.protocols import DEFAULT_PROTOCOL, check_mask, frame_name, get_protocol
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, OCC3D_CLASS_NAMES, OccGrid
from occwm.registry import METRICS
from occwm.window import OccWindow

MODEL_ROW = rep.MODEL_ROW
FROM_PROTOCOL = 'protocol'


@METRICS.register_module()
class OccMetric(BaseMetric):
    """IoU and mIoU (percent) of every future frame, for the model and baselines.

    Beside them, two scores of occwm's own, per future frame and averaged the same way:

    - **dynamic mIoU**: the mIoU over ``occwm.grid.DYNAMIC_CLASSES`` only (bicycle, bus,
      car, construction_vehicle, motorcycle, pedestrian, trailer, truck), from the same
      counts and with the protocol's absent-class / zero-drop rule.
    - **changed-voxel IoU**: the geometry IoU (occupied = label != free) on the voxels
      where the ground truth differs from the ego-motion-warped present (the ``warp``
      baseline, ``warp_static(window.present, window.future_traj[:T_f], grid)``; when the
      sample gives its own ``baselines``, their ``'warp'``), within the mask when there
      is one. No warped present (``baselines=()``, a window without present frame or
      trajectory, or sample ``baselines`` without ``'warp'``): the score is absent
      (``None`` in the report, no flat metric); windows without one do not count in it.

    ``data_batch['data_samples']`` are the windows (``occwm.window.OccWindow``): the
    ground-truth future (``window.future``, its first ``T_f`` frames), the present frame
    and future trajectory of the baselines, and the visibility masks. ``data_samples``
    given to :meth:`process` (the model's predictions) is a list, one dict per window:

    - ``pred_occ``: ``(T_f, X, Y, Z) uint8`` forecast labels (tensor or array).
    - ``pred_present`` (with ``present_frame``): ``(X, Y, Z) uint8`` the model's
      reconstruction of the present frame.
    - ``gt_occ`` (optional, e.g. a tokenizer's reconstruction, or a caller without
      windows): ``(T_f, X, Y, Z) uint8`` ground truth, used instead of the window's.
    - ``baselines`` (optional): ``{name: (T_f, X, Y, Z) uint8}`` used instead of those
      computed here; its ``'warp'`` entry, if any, is the warped present of the
      changed-voxel IoU.
    - ``mask`` (optional): ``(T_f, X, Y, Z) bool``, only true voxels count; overrides ``mask=``.

    With ``mask='camera'`` / ``'lidar'`` the masks are ``mask_camera`` / ``mask_lidar``
    of the sample, else of the window (``(T, X, Y, Z)``, as ``PackOccInputs`` gives with
    ``LoadOccWindow(with_masks=True)``); the last ``T_f`` frames are the future ones, the
    one before them the present.

    Args:
        protocol: ``'occworld'`` (default), ``'dome'`` or ``'i2world'``: the defaults of
            the arguments below (``occwm.evaluation.protocols.PROTOCOLS``).
        mask: ``None`` / ``'none'``, ``'camera'`` or ``'lidar'``.
        avg_frames: 1-based future frames averaged into ``*_avg`` (protocols:
            ``(2, 4, 6)`` = 1 s, 2 s, 3 s at 2 Hz; a tokenizer: ``(1,)``).
        frame_names: one name per future frame (default ``'0.5s'``, ``'1s'``, ...).
        absent_class_iou: IoU of a class with no ground-truth voxel in the whole set at
            that frame: ``1.0`` (OccWorld, DOME) or ``None`` (left out of the mean).
        drop_zero_iou: leave classes with IoU 0 out of the mean (I²-World).
        present_frame: also score ``pred_present`` ("0 s", I²-World).
        baselines: baselines computed from each window and scored beside the model
            (``occwm.evaluation.baselines.BASELINES``: ``copy_last``, ``warp``); ``()``
            for none (a tokenizer).
        grid: kwargs of the ``OccGrid`` of the warp baseline (default Occ3D-nuScenes).
        class_names: names of labels ``0..num_classes-1``, free last (Occ3D default; the
            dynamic mIoU takes classes ``DYNAMIC_CLASSES`` of these).
        collect_device, prefix: see ``mmengine.evaluator.BaseMetric``.

    ``compute_metrics`` returns mmengine's flat metrics (``report.flat_metrics``:
    ``mIoU@1s``, ``IoU@1s``, ..., ``mIoU_avg``, ``IoU_avg``, ``dynamic_mIoU@1s``, ...,
    ``dynamic_mIoU_avg``, ``changed_IoU@1s``, ..., ``changed_IoU_avg``, baselines as
    ``copy_last/mIoU@1s``); the full report (every frame, per class, every method) is
    kept in ``self.last_report`` (``occwm.evaluation.report`` gives its schema).

    Raises:
        ValueError: unknown protocol or mask; shapes that do not match; a missing mask
            or present frame that the options need.
    """

    default_prefix: Optional[str] = ''  # no prefix: keys are 'mIoU@1s' unless prefix= is given

    def __init__(self,
                 protocol: str = DEFAULT_PROTOCOL,
                 mask: Optional[str] = None,
                 avg_frames: Optional[Sequence[int]] = None,
                 frame_names: Optional[Sequence[str]] = None,
                 absent_class_iou=FROM_PROTOCOL,
                 drop_zero_iou: Optional[bool] = None,
                 present_frame: Optional[bool] = None,
                 class_names: Sequence[str] = OCC3D_CLASS_NAMES,
                 baselines: Sequence[str] = BASELINES,
                 grid: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        preset = get_protocol(protocol)
        self.protocol = protocol
        self.mask = check_mask(mask)
        self.avg_frames = tuple(int(f) for f in (avg_frames or preset['avg_frames']))
        if any(f < 1 for f in self.avg_frames):
            raise ValueError(f'avg_frames are 1-based future frame indices, got {self.avg_frames}')
        self.frame_names = tuple(frame_names) if frame_names is not None else None
        self.absent_class_iou = (preset['absent_class_iou'] if absent_class_iou == FROM_PROTOCOL
                                 else absent_class_iou)
        self.drop_zero_iou = preset['drop_zero_iou'] if drop_zero_iou is None else drop_zero_iou
        self.present_frame = preset['present_frame'] if present_frame is None else present_frame
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.free_label = self.num_classes - 1
        if max(DYNAMIC_CLASSES) >= self.free_label:
            raise ValueError(f'the dynamic mIoU needs the Occ3D classes {DYNAMIC_CLASSES}, but '
                             f'class_names has {self.free_label} semantic classes')
        unknown = set(baselines) - set(BASELINES)
        if unknown:
            raise ValueError(f'unknown baselines {sorted(unknown)}; choose from {BASELINES}')
        self.baselines = tuple(baselines)
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        self.last_report: Optional[dict] = None

    def _counts(self, pred, gt, mask) -> np.ndarray:
        return confusion_counts(pred, gt, self.num_classes, self.free_label, mask).to_array()

    def _masks(self, sample: dict, meta: Optional[OccWindow], num_future: int):
        """``(future masks (T_f, ...) or None, present mask or None)``."""
        if sample.get('mask') is not None:
            return _as_tensor(sample['mask']), None
        if self.mask is None:
            return None, None
        key = f'mask_{self.mask}'
        m = sample.get(key)
        if m is None and meta is not None:
            m = getattr(meta, key, None)
        if m is None:
            raise ValueError(f"mask='{self.mask}' but the window has no {key}: load the masks "
                             f'(LoadOccWindow(with_masks=True); tools/test.py --mask does it)')
        m = _as_tensor(m).bool()
        if m.shape[0] < num_future + (1 if self.present_frame else 0):
            raise ValueError(f'{key} has {m.shape[0]} frames, fewer than the {num_future} future '
                             f'frames (plus the present)')
        return m[-num_future:], (m[-num_future - 1] if m.shape[0] > num_future else None)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Append, per window, ``{'future': {method: (T_f, 3C + 3) int64},
        'present': {method: (3C + 3,) int64}, 'changed': {method: (T_f, 3) int64}}``
        (``OccCounts.to_array``; ``changed``: ``functional.changed_counts``, only when
        there is a warped present; ``present`` only with ``present_frame``)."""
        metas = (data_batch or {}).get('data_samples') if isinstance(data_batch, dict) else None
        for i, sample in enumerate(data_samples):
            win = metas[i] if metas is not None and i < len(metas) else None
            pred = _as_tensor(sample['pred_occ'])  # (T_f, X, Y, Z)
            T_f = pred.shape[0]
            if sample.get('gt_occ') is not None:
                gt = _as_tensor(sample['gt_occ'])  # (T_f, X, Y, Z)
            elif win is not None and win.future is not None and len(win.future) >= T_f:
                gt = _as_tensor(win.future[:T_f])
            else:
                raise ValueError(f'no ground truth for {T_f} future frames: the window records '
                                 f'{0 if win is None or win.future is None else len(win.future)}')
            if T_f < max(self.avg_frames):
                raise ValueError(f'{T_f} future frames, but avg_frames {self.avg_frames} '
                                 f'needs {max(self.avg_frames)}')
            masks, present_mask = self._masks(sample, win, T_f)
            methods = OrderedDict([(MODEL_ROW, pred)])
            warped = None  # (T_f, X, Y, Z) the ego-motion-warped present, if any
            if sample.get('baselines') is not None:  # replace those computed here
                methods.update(sample['baselines'])
                warped = sample['baselines'].get('warp')
            elif (self.baselines and win is not None and win.future_traj is not None
                  and len(win.future_traj) >= T_f):
                if tuple(win.present.shape) != tuple(self.grid.shape):
                    raise ValueError(f'the warp baseline needs the grid: occupancy '
                                     f'{tuple(win.present.shape)} != OccMetric grid '
                                     f'{self.grid.shape} (set OccMetric(grid=...))')
                base = baseline_forecasts(_as_tensor(win.present), _as_tensor(win.future_traj[:T_f]),
                                          self.grid)
                methods.update((k, base[k]) for k in self.baselines)
                warped = base['warp']  # computed with copy_last whatever self.baselines says
            changed = None  # per future frame: (V_c,) flat indices of the changed voxels
            if warped is not None:
                changed = [torch.nonzero(c.reshape(-1)).squeeze(1)
                           for c in changed_voxels(gt, _as_tensor(warped), masks)]
            future, changed_future = OrderedDict(), OrderedDict()
            for name, occ in methods.items():
                occ = _as_tensor(occ)
                if occ.shape != gt.shape:
                    raise ValueError(f'{name}: shape {tuple(occ.shape)} != ground truth {tuple(gt.shape)}')
                future[name] = np.stack([self._counts(occ[f], gt[f], None if masks is None
                                                      else masks[f]) for f in range(T_f)])
                if changed is not None:
                    changed_future[name] = np.stack([  # (T_f, 3) tp, fp, fn
                        changed_counts(occ[f].reshape(-1)[changed[f]], gt[f].reshape(-1)[changed[f]],
                                       None, self.num_classes, self.free_label) for f in range(T_f)])
            result = dict(future=future)
            if changed is not None:
                result['changed'] = changed_future
            if self.present_frame:
                gt0 = sample.get('gt_present')
                if gt0 is None and win is not None:
                    gt0 = win.present
                if sample.get('pred_present') is None or gt0 is None:
                    raise ValueError('present_frame=True (I²-World 0 s) but the sample has no '
                                     'pred_present (OccForecaster(decode_present=True)) or no '
                                     'present frame')
                gt0 = _as_tensor(gt0)
                # the baselines reproduce the present frame exactly
                result['present'] = OrderedDict(
                    (name, self._counts(_as_tensor(sample['pred_present']) if name == MODEL_ROW
                                        else gt0, gt0, present_mask)) for name in methods)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Sum counts over all windows per frame, score them, print the tables; returns
        the flat metrics and keeps the full report in ``self.last_report``."""
        if not results:
            raise ValueError('no window was evaluated (is the test set empty under this '
                             'protocol? occworld needs scenes of 12 frames, dome 10, i2world 11)')
        future: Dict[str, np.ndarray] = OrderedDict()
        present: Dict[str, np.ndarray] = OrderedDict()
        changed: Dict[str, np.ndarray] = OrderedDict()  # over the windows with a warped present
        for r in results:
            for name, c in r['future'].items():
                if name in future and future[name].shape != c.shape:
                    raise ValueError(f'windows with different numbers of future frames: '
                                     f'{future[name].shape[0]} and {c.shape[0]}')
                future[name] = future[name] + c if name in future else c.copy()
            for name, c in r.get('present', {}).items():
                present[name] = present[name] + c if name in present else c.copy()
            for name, c in r.get('changed', {}).items():
                changed[name] = changed[name] + c if name in changed else c.copy()
        T_f = next(iter(future.values())).shape[0]
        frames = self.frame_names or tuple(frame_name(k) for k in range(1, T_f + 1))
        report = rep.build_report(
            totals=OrderedDict((n, [OccCounts.from_array(v) for v in c]) for n, c in future.items()),
            num_windows=len(results), protocol=self.protocol, mask=self.mask, frames=frames,
            avg_frames=self.avg_frames, class_names=self.class_names[:-1],
            absent_class_iou=self.absent_class_iou, drop_zero_iou=self.drop_zero_iou,
            present=(OrderedDict((n, OccCounts.from_array(c)) for n, c in present.items())
                     if present else None),
            changed=changed or None, dynamic_classes=DYNAMIC_CLASSES)
        self.last_report = report
        print_log('\n' + rep.format_text(report), logger='current')
        return dict(rep.flat_metrics(report))


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
