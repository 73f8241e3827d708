"""Statistics of built occupancy (``occwm.occupancy.builder``): non-free fraction, classes, road
height, static consistency between consecutive frames, and the visibility fractions of
``mask_lidar`` / ``mask_camera`` beside those of an official Occ3D frame.

Visibility fractions (of all voxels of the grid), for a mask ``m``:
observed-free ``m == 1 & semantics == 17``, observed-occupied ``m == 1 & semantics < 17``,
unobserved ``m == 0``.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np

from occwm.geometry import matrix_to_se2, relative_se2
from occwm.grid import DEFAULT_GRID, OCC3D_CLASS_NAMES, STATIC_CLASSES, OccGrid
from occwm.warp import warp_planar

OCC3D_NONFREE_FRACTION = 39092 / 640000    # the official Occ3D frame in ../shared/data (6.1 %)
MASK_KEYS = ('mask_lidar', 'mask_camera')


def static_iou(occ_a: np.ndarray, occ_b: np.ndarray, valid: Optional[np.ndarray] = None):
    """Geometric IoU of static-class voxels and the mean per-class IoU over the static
    classes present in either grid, compared inside ``valid``. Returns ``(iou, miou)``."""
    valid = np.ones(occ_a.shape, bool) if valid is None else valid
    a, b = occ_a[valid], occ_b[valid]
    sa, sb = np.isin(a, STATIC_CLASSES), np.isin(b, STATIC_CLASSES)
    iou = (sa & sb).sum() / max((sa | sb).sum(), 1)
    per_class = [((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum()
                 for c in STATIC_CLASSES if ((a == c) | (b == c)).any()]
    return float(iou), float(np.mean(per_class)) if per_class else float('nan')


def visibility_fractions(semantics: np.ndarray, mask: np.ndarray,
                         free_label: int = DEFAULT_GRID.free_label) -> Dict[str, float]:
    """``{'free', 'occupied', 'unobserved'}`` fractions of the grid (module docstring)
    for ``semantics`` and a mask, both ``(X, Y, Z)``; the three sum to 1."""
    m = np.asarray(mask).astype(bool)
    free = semantics == free_label
    return dict(free=float((m & free).mean()), occupied=float((m & ~free).mean()),
                unobserved=float((~m).mean()))


def _frame_visibility(o: dict, free_label: int) -> Dict[str, Dict[str, float]]:
    return {key: visibility_fractions(o['semantics'], o[key], free_label)
            for key in MASK_KEYS if key in o}


def occupancy_report(occupancy: Sequence[dict], ego2globals: np.ndarray,
                     grid: OccGrid = DEFAULT_GRID, reference: Optional[str] = None) -> dict:
    """Per-frame statistics of a built sequence.

    Args:
        occupancy: per frame ``semantics`` and optionally ``mask_lidar`` /
            ``mask_camera``, ``(X, Y, Z) uint8``.
        ego2globals: ``(L, 4, 4)`` ego -> global poses.
        reference: an official Occ3D ``labels.npz`` to compare with.

    Returns dict: ``frames`` (per frame ``nonfree``, ``observed`` (mask_lidar mean),
    ``hist`` {class name: voxels}, ``road_z_index`` median z index of
    driveable_surface, ``static_iou`` / ``static_miou`` with the next frame warped into
    this one (``occwm.warp.warp_planar``), ``visibility`` {mask key:
    ``visibility_fractions``}), ``reference_nonfree``
    (measured from ``reference`` when given, else the known 6.1 %) and
    ``reference_visibility`` (``{}`` without a reference).
    """
    se2 = np.stack([matrix_to_se2(T) for T in ego2globals])             # (L, 3) planar poses
    rows = []
    for k, o in enumerate(occupancy):
        sem = o['semantics']
        counts = np.bincount(sem.reshape(-1), minlength=grid.num_classes)
        road_z = np.nonzero(sem == 11)[2]
        row = dict(nonfree=1 - counts[grid.free_label] / sem.size,
                   observed=float(o['mask_lidar'].mean()) if 'mask_lidar' in o else float('nan'),
                   hist={OCC3D_CLASS_NAMES[c]: int(counts[c]) for c in range(grid.free_label)
                         if counts[c]},
                   road_z_index=float(np.median(road_z)) if len(road_z) else float('nan'),
                   visibility=_frame_visibility(o, grid.free_label))
        if k + 1 < len(occupancy):
            k_in_nxt = relative_se2(se2[k + 1], se2[k])                 # frame k in frame k + 1
            warped, valid = warp_planar(occupancy[k + 1]['semantics'][None], k_in_nxt[None],
                                        grid, fill=grid.free_label)       # (1, X, Y, Z), (1, X, Y)
            valid = np.broadcast_to(valid[0, ..., None], sem.shape)
            row['static_iou'], row['static_miou'] = static_iou(sem, warped[0], valid)
        rows.append(row)
    ref, ref_vis = OCC3D_NONFREE_FRACTION, {}
    if reference is not None and os.path.isfile(reference):
        from occwm.io import load_labels
        lab = load_labels(reference, grid, keys=('semantics',) + MASK_KEYS)
        ref = float((lab['semantics'] != grid.free_label).mean())
        ref_vis = _frame_visibility(lab, grid.free_label)
    return dict(frames=rows, reference_nonfree=ref, reference_visibility=ref_vis)


def _vis_cells(vis: Dict[str, Dict[str, float]]) -> str:
    cells = []
    for key in MASK_KEYS:
        v = vis.get(key)
        cells.append('   '.join(f'{100 * v[n]:7.2f}' for n in ('free', 'occupied', 'unobserved'))
                     if v else f"{'-':>7}   {'-':>7}   {'-':>7}")
    return ' |   '.join(cells)


def format_report(report: dict) -> str:
    """A human-readable table of ``occupancy_report`` output: classes and consistency,
    then the visibility fractions (percent of the grid) of both masks per frame and of
    the reference Occ3D frame."""
    lines = ['frame  non-free  observed  road-z  static-IoU(k,k+1)  static-mIoU  top classes']
    for k, r in enumerate(report['frames']):
        top = sorted(r['hist'].items(), key=lambda kv: -kv[1])[:5]
        iou = f"{r['static_iou']:.3f}" if 'static_iou' in r else '  -  '
        miou = f"{r['static_miou']:.3f}" if 'static_miou' in r else '  -  '
        lines.append(f"{k:5d}  {100 * r['nonfree']:6.2f}%  {100 * r['observed']:6.2f}%  "
                     f"{r['road_z_index']:6.1f}  {iou:>18}  {miou:>11}  "
                     + ', '.join(f'{n} {v}' for n, v in top))
    mean_nf = np.mean([r['nonfree'] for r in report['frames']])
    ious = [r['static_iou'] for r in report['frames'] if 'static_iou' in r]
    lines.append(f'mean non-free {100 * mean_nf:.2f}% (official Occ3D frame: '
                 f"{100 * report['reference_nonfree']:.2f}%); mean static IoU "
                 f"{np.mean(ious) if ious else float('nan'):.3f}")
    lines.append('')
    lines.append('visibility, % of the grid   mask_lidar: obs-free  obs-occ    unobs |'
                 '   mask_camera: obs-free  obs-occ    unobs')
    for k, r in enumerate(report['frames']):
        lines.append(f"frame {k:<3d}                            "
                     f"{_vis_cells(r.get('visibility', {}))}")
    if report.get('reference_visibility'):
        lines.append(f"official Occ3D frame                  "
                     f"{_vis_cells(report['reference_visibility'])}")
    return '\n'.join(lines)
