"""Occupancy forecasting metrics as pure functions (numpy / torch).

The counting is that of OccWorld (Zheng et al., "OccWorld: Learning a 3D Occupancy
World Model for Autonomous Driving", ECCV 2024, ``utils/metric_util.py``,
``multi_step_MeanIou``), DOME and I²-World alike; the protocols differ only in the
windows and the rule for absent classes (``occwm.evaluation.protocols``):

* **mIoU**: per-class IoU over the semantic classes ``0..16`` (``others`` included,
  ``free`` = 17 excluded), averaged over classes. A voxel whose ground truth is free
  but which is predicted as class ``c`` is a false positive of ``c``.
* **IoU**: geometry IoU of occupied (any label ``!= free``) against free.
* Counts are **summed over the whole evaluation set** for each future-frame index
  before any division; IoUs are not averaged per window.

Two scores of occwm's own, read off counts as well:

* **dynamic mIoU**: the mIoU over the movable classes only (``occwm.grid.DYNAMIC_CLASSES``:
  bicycle, bus, car, construction_vehicle, motorcycle, pedestrian, trailer, truck), with
  the protocol's absent-class rule: ``miou(..., classes=DYNAMIC_CLASSES)``, from the same
  per-class counts.
* **changed-voxel IoU**: the geometry IoU on the voxels where the ground truth differs
  from the ego-motion-warped present (the ``warp`` baseline), i.e. where the scene did
  not just stay put under ego motion: ``changed_voxels`` then ``changed_counts``.

Everything here works on counts: ``confusion_counts`` turns one pair of grids into
``OccCounts``; ``OccCounts`` add up; ``iou_from_counts`` / ``class_ious`` / ``miou``
turn summed counts into scores in ``[0, 1]``. ``OccCounts.to_array`` packs counts
into one small summable ``int64`` vector (what ``OccMetric`` collects across ranks);
``changed_counts`` gives a ``(3,) int64`` one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


@dataclass
class OccCounts:
    """True positive / false positive / false negative voxel counts.

    Attributes:
        tp, fp, fn: ``(C,) int64`` per semantic class ``0..C-1`` (C = 17 for Occ3D;
            free is not a semantic class).
        geo_tp, geo_fp, geo_fn: ``int`` counts of the occupied-vs-free geometry
            (occupied = any label other than free).

    Counts add up with ``+`` (and ``sum(..., OccCounts.zeros(C))``).
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    geo_tp: int = 0
    geo_fp: int = 0
    geo_fn: int = 0

    @classmethod
    def zeros(cls, num_semantic: int = 17) -> 'OccCounts':
        """All-zero counts for ``num_semantic`` classes."""
        z = np.zeros(num_semantic, dtype=np.int64)
        return cls(z.copy(), z.copy(), z.copy())

    def __add__(self, other: 'OccCounts') -> 'OccCounts':
        return OccCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                         self.geo_tp + other.geo_tp, self.geo_fp + other.geo_fp,
                         self.geo_fn + other.geo_fn)

    def to_array(self) -> np.ndarray:
        """``(3 * C + 3,) int64``: ``tp, fp, fn`` then ``geo_tp, geo_fp, geo_fn``;
        arrays of counts add up elementwise like the counts."""
        geo = np.array([self.geo_tp, self.geo_fp, self.geo_fn], np.int64)
        return np.concatenate([self.tp, self.fp, self.fn, geo]).astype(np.int64)

    @classmethod
    def from_array(cls, a: np.ndarray) -> 'OccCounts':
        """Inverse of :meth:`to_array` (``a``: ``(3 * C + 3,)`` integers)."""
        a = np.asarray(a, dtype=np.int64)
        if a.ndim != 1 or (a.size - 3) % 3 or a.size < 6:
            raise ValueError(f'expected a (3 * C + 3,) count vector, got shape {a.shape}')
        c = (a.size - 3) // 3
        return cls(a[:c].copy(), a[c:2 * c].copy(), a[2 * c:3 * c].copy(),
                   int(a[-3]), int(a[-2]), int(a[-1]))

    @property
    def gt_count(self) -> np.ndarray:
        """``(C,) int64`` ground-truth voxels per class (``tp + fn``)."""
        return self.tp + self.fn

    def class_ious(self, absent_class_iou: Optional[float] = None) -> np.ndarray:
        """``(C,) float64`` per-class IoU in ``[0, 1]``; see :func:`class_ious`."""
        return class_ious(self.tp, self.fp, self.fn, absent_class_iou)

    def miou(self, absent_class_iou: Optional[float] = None, drop_zero_iou: bool = False,
             classes: Optional[Sequence[int]] = None) -> float:
        """Mean IoU over the semantic classes (or the subset ``classes``, e.g.
        ``occwm.grid.DYNAMIC_CLASSES``) in ``[0, 1]``; see :func:`miou`."""
        return miou(self.tp, self.fp, self.fn, absent_class_iou, drop_zero_iou, classes)

    def iou(self, absent_iou: Optional[float] = None) -> float:
        """Occupied-vs-free geometry IoU in ``[0, 1]``.

        Args:
            absent_iou: the score when the ground truth has no occupied voxel: ``None``
                -> NaN when nothing is predicted occupied either (I²-World's 2x2
                confusion), ``1.0`` -> 1 whatever was predicted (OccWorld's
                ``multi_step_MeanIou`` with ``class_indices=[1]`` on binarised labels).
        """
        if absent_iou is not None and self.geo_tp + self.geo_fn == 0:
            return float(absent_iou)
        return float(iou_from_counts(self.geo_tp, self.geo_fp, self.geo_fn))


def confusion_counts(pred: ArrayLike, gt: ArrayLike, num_classes: int = 18,
                     free_label: int = 17, mask: Optional[ArrayLike] = None) -> OccCounts:
    """Per-class and geometry tp / fp / fn of one prediction against its ground truth.

    One ``bincount`` over ``gt * num_classes + pred`` gives the full
    ``(num_classes, num_classes)`` confusion matrix (rows: ground truth, columns:
    prediction); everything else is read off it. Torch inputs are counted on their
    own device.

    Args:
        pred: ``(...)`` integer labels ``0..num_classes-1`` (e.g. ``(X, Y, Z) uint8``).
        gt: same shape as ``pred``.
        num_classes: number of labels including free (18 for Occ3D).
        free_label: the label of free space (17); must be the last label.
        mask: optional ``bool`` of the same shape; only voxels where it is true count
            (e.g. the Occ3D camera mask). OccWorld uses no mask.

    Returns:
        ``OccCounts`` with ``(num_classes - 1,)`` arrays for the semantic classes.
    """
    if free_label != num_classes - 1:
        raise ValueError(f'free_label must be the last label ({num_classes - 1}), got {free_label}')
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f'pred shape {tuple(pred.shape)} != gt shape {tuple(gt.shape)}')
    if mask is not None and tuple(mask.shape) != tuple(gt.shape):
        raise ValueError(f'mask shape {tuple(mask.shape)} != gt shape {tuple(gt.shape)}')
    n = num_classes
    if isinstance(pred, torch.Tensor) or isinstance(gt, torch.Tensor):
        device = pred.device if isinstance(pred, torch.Tensor) else gt.device
        p = torch.as_tensor(pred, device=device).reshape(-1)  # (V,)
        g = torch.as_tensor(gt, device=device).reshape(-1)  # (V,)
        if mask is not None:
            keep = torch.as_tensor(mask, device=device).reshape(-1).bool()
            p, g = p[keep], g[keep]
        _check_range(p, g, n)
        idx = g.to(torch.int16) * n + p.to(torch.int16)  # (V,) n * n <= 32767: 16 bits suffice
        cm = torch.bincount(idx, minlength=n * n).reshape(n, n).cpu().numpy()
    else:
        p = np.asarray(pred).reshape(-1)  # (V,)
        g = np.asarray(gt).reshape(-1)  # (V,)
        if mask is not None:
            keep = np.asarray(mask).reshape(-1).astype(bool)
            p, g = p[keep], g[keep]
        _check_range(p, g, n)
        idx = g.astype(np.int16) * n + p.astype(np.int16)  # (V,)
        cm = np.bincount(idx, minlength=n * n).reshape(n, n)  # (gt, pred)
    cm = cm.astype(np.int64)
    diag = np.diag(cm)
    sem = slice(0, free_label)  # semantic classes 0..16
    return OccCounts(
        tp=diag[sem].copy(),
        fp=(cm.sum(axis=0) - diag)[sem],  # predicted c, gt something else (free included)
        fn=(cm.sum(axis=1) - diag)[sem],  # gt c, predicted something else (free included)
        geo_tp=int(cm[sem, sem].sum()),  # gt occupied, predicted occupied (any class)
        geo_fp=int(cm[free_label, sem].sum()),  # gt free, predicted occupied
        geo_fn=int(cm[sem, free_label].sum()),  # gt occupied, predicted free
    )


def _check_range(p, g, n: int) -> None:
    """Raise ``ValueError`` unless every label is an integer in ``0..n-1`` (the minimum
    is only computed for signed types)."""
    if n * n > 32767:
        raise ValueError(f'{n} labels: the confusion index needs more than 16 bits')
    for name, x in (('pred', p), ('gt', g)):
        is_t = isinstance(x, torch.Tensor)
        if not (x.numel() if is_t else x.size):
            continue
        if (x.is_floating_point() or x.dtype == torch.bool) if is_t else \
                not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f'{name}: labels must be integers, got {x.dtype}')
        signed = x.dtype != torch.uint8 if is_t else np.issubdtype(x.dtype, np.signedinteger)
        lo, hi = (int(x.min()) if signed else 0), int(x.max())
        if lo < 0 or hi >= n:
            raise ValueError(f'{name}: labels must lie in 0..{n - 1}, found {lo}..{hi}')


def iou_from_counts(tp, fp, fn):
    """IoU ``tp / (tp + fp + fn)`` elementwise, as float64; NaN where the union is 0.

    Works on scalars and arrays of counts.
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    union = tp + fp + fn
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
    return out if out.ndim else float(out)


def class_ious(tp, fp, fn, absent_class_iou: Optional[float] = None) -> np.ndarray:
    """Per-class IoU ``(C,) float64`` with a rule for classes absent from the ground truth.

    Args:
        tp, fp, fn: ``(C,)`` counts summed over the evaluation set.
        absent_class_iou: the score of a class with no ground-truth voxel
            (``tp + fn == 0``), whatever was predicted:
            ``None``: NaN, i.e. the class is left out of the mean;
            ``1.0``: OccWorld's ``utils/metric_util.py`` (``if total_seen == 0:
            ious.append(1)``), which also scores 1 a class that is predicted but never
            in the ground truth.
    """
    tp, fp, fn = (np.asarray(x, dtype=np.int64) for x in (tp, fp, fn))
    ious = np.atleast_1d(iou_from_counts(tp, fp, fn)).astype(np.float64)
    absent = (tp + fn) == 0
    ious[absent] = np.nan if absent_class_iou is None else float(absent_class_iou)
    return ious


def miou(tp, fp, fn, absent_class_iou: Optional[float] = None,
         drop_zero_iou: bool = False, classes: Optional[Sequence[int]] = None) -> float:
    """Mean of :func:`class_ious` over the classes that are not NaN, in ``[0, 1]``.

    Pass only the semantic classes (0..16 for Occ3D, free excluded). Returns NaN when
    no class is left (e.g. ``absent_class_iou=None`` and an all-free ground truth).

    Args:
        absent_class_iou: see :func:`class_ious` (OccWorld / DOME: ``1.0``).
        drop_zero_iou: also leave out every class whose IoU is 0 (I²-World,
            ``mmdet3d/datasets/occ_metrics.py``: ``mIoU[mIoU == 0] = None`` then
            ``nanmean``; with ``absent_class_iou=None`` a class absent from the ground
            truth is dropped whether predicted (IoU 0) or not (0 / 0)).
        classes: indices into ``tp`` / ``fp`` / ``fn`` of the classes to average (the
            rules above apply to each of them as in the full mean), e.g.
            ``occwm.grid.DYNAMIC_CLASSES`` for the **dynamic mIoU**; ``None``: all.

    Raises:
        ValueError: a class index outside ``0..C-1``.
    """
    ious = class_ious(tp, fp, fn, absent_class_iou)
    if classes is not None:
        idx = np.asarray(classes, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= ious.size):
            raise ValueError(f'classes {tuple(classes)} outside the {ious.size} semantic classes')
        ious = ious[idx]
    if drop_zero_iou:
        ious[ious == 0] = np.nan
    valid = ~np.isnan(ious)
    return float(ious[valid].mean()) if valid.any() else float('nan')


def changed_voxels(gt: ArrayLike, warped: ArrayLike, mask: Optional[ArrayLike] = None) -> ArrayLike:
    """The voxels where the ground truth differs from the ego-motion-warped present.

    ``warped`` is the ``warp`` baseline (``occwm.evaluation.baselines.warp_static`` of the
    present frame along the future trajectory): a voxel is *changed* when its label in
    the ground truth is not the one a static world seen from the moved ego would give
    (an object moved, appeared or left; a surface was occluded or revealed).

    Args:
        gt: ``(...)`` integer labels, e.g. ``(T_f, X, Y, Z) uint8``.
        warped: the same shape: the warped present, same frames.
        mask: optional ``bool`` of the same shape (the protocol's visibility mask); the
            result is intersected with it.

    Returns:
        ``bool`` of ``gt``'s shape, a tensor when ``gt`` or ``warped`` is one (on its device).
    """
    if tuple(warped.shape) != tuple(gt.shape):
        raise ValueError(f'warped present shape {tuple(warped.shape)} != gt shape {tuple(gt.shape)}')
    if mask is not None and tuple(mask.shape) != tuple(gt.shape):
        raise ValueError(f'mask shape {tuple(mask.shape)} != gt shape {tuple(gt.shape)}')
    if isinstance(gt, torch.Tensor) or isinstance(warped, torch.Tensor):
        device = gt.device if isinstance(gt, torch.Tensor) else warped.device
        # (...) bool; mixed integer dtypes are promoted by the comparison
        changed = torch.as_tensor(gt, device=device) != torch.as_tensor(warped, device=device)
        return changed if mask is None else changed & torch.as_tensor(mask, device=device).bool()
    changed = np.asarray(gt) != np.asarray(warped)
    return changed if mask is None else changed & np.asarray(mask).astype(bool)


def changed_counts(pred: ArrayLike, gt: ArrayLike, changed: Optional[ArrayLike],
                   num_classes: int = 18, free_label: int = 17) -> np.ndarray:
    """Geometry counts (occupied = label ``!= free``) of ``pred`` on the changed voxels.

    The **changed-voxel IoU** (occwm's own score: IoU on voxels where the ground truth
    differs from the ego-motion-warped present) is ``iou_from_counts(*counts)`` of these
    counts summed over the set, per future frame. A voxel that is occupied in both the
    ground truth and the prediction is a hit whatever the classes (as the IoU).

    Args:
        pred, gt: ``(...)`` integer labels ``0..num_classes-1`` of the same shape.
        changed: ``bool`` of that shape, :func:`changed_voxels` (mask included); ``None``
            when ``pred`` and ``gt`` are already the changed voxels only (e.g. ``(V_c,)``
            gathered once for several predictions).
        num_classes, free_label: see :func:`confusion_counts`.

    Returns:
        ``(3,) int64``: ``tp, fp, fn`` voxels (gt occupied & pred occupied, gt free & pred
        occupied, gt occupied & pred free) among the changed voxels.
    """
    c = confusion_counts(pred, gt, num_classes, free_label, mask=changed)
    return np.array([c.geo_tp, c.geo_fp, c.geo_fn], dtype=np.int64)
