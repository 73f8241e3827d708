"""``SampleAgreement``: do K sampled futures of one past agree on the static world and
differ where the future is uncertain?

For every window the model gives ``K`` futures (``pred_samples``, e.g.
``OccForecaster(predict_samples=K)``). Per future frame, the voxels that are occupied in
at least one sample are split into

* **dynamic**: a sample or the warped present (``warp_static``) has a movable class there
  (``occwm.grid.DYNAMIC_CLASSES``: moving agents may be anywhere along their path);
* **static**: all other such voxels (road, buildings, vegetation, ...),

and the agreement of a region is the share of its voxels where all ``K`` labels are
equal. A good generative forecaster agrees (close to 100 %) on the static world and
less on the dynamic region. occwm's own diagnostic; counts are summed over the set.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from occwm.evaluation.baselines import warp_static
from occwm.evaluation.protocols import frame_name
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, OccGrid
from occwm.registry import METRICS

REGIONS = ('dynamic', 'static')


def agreement_counts(samples: torch.Tensor, warped: Optional[torch.Tensor],
                     free_label: int = DEFAULT_GRID.free_label,
                     movable: Sequence[int] = DYNAMIC_CLASSES) -> np.ndarray:
    """Per frame ``[dynamic voxels, dynamic agreeing, static voxels, static agreeing]``.

    Args:
        samples: ``(K, T_f, X, Y, Z) uint8`` K forecasts of one window.
        warped: ``(T_f, X, Y, Z) uint8`` the present warped into each future frame, or
            ``None`` (the dynamic region then comes from the samples alone).
        free_label: the free label (17 in Occ3D).
        movable: labels of the movable classes.

    Returns:
        ``(T_f, 4) int64``.

    Raises:
        ValueError: fewer than 2 samples, or shapes that do not match.
    """
    samples = torch.as_tensor(samples)
    if samples.dim() != 5 or samples.shape[0] < 2:
        raise ValueError(f'need (K >= 2, T_f, X, Y, Z) samples, got {tuple(samples.shape)}')
    mov = torch.zeros(256, dtype=torch.bool)
    mov[list(movable)] = True
    labels = samples.long()
    occupied = (labels != free_label).any(0)  # (T_f, X, Y, Z)
    dynamic = mov[labels].any(0)  # (T_f, X, Y, Z)
    if warped is not None:
        warped = torch.as_tensor(warped)
        if warped.shape != samples.shape[1:]:
            raise ValueError(f'warped present {tuple(warped.shape)} != samples {tuple(samples.shape[1:])}')
        dynamic |= mov[warped.long()]
    agree = (labels == labels[:1]).all(0)  # (T_f, X, Y, Z)
    sta = occupied & ~dynamic
    out = torch.stack([dynamic.flatten(1).sum(1), (dynamic & agree).flatten(1).sum(1),
                       sta.flatten(1).sum(1), (sta & agree).flatten(1).sum(1)], 1)  # (T_f, 4)
    return out.numpy().astype(np.int64)


@METRICS.register_module()
class SampleAgreement(BaseMetric):
    """Agreement (percent) of K sampled futures on the dynamic and the static region,
    per future frame and averaged over ``avg_frames`` (module docstring).

    ``data_samples`` given to :meth:`process`: one dict per window with ``pred_samples``
    ``(K, T_f, X, Y, Z) uint8``; the windows (``data_batch['data_samples']``,
    ``occwm.window.OccWindow``) give the present and future trajectory for the warp.

    Args:
        avg_frames: 1-based future frames averaged (default 1 s, 2 s, 3 s at 2 Hz).
        grid: kwargs of the ``OccGrid`` (default Occ3D-nuScenes).

    ``compute_metrics`` returns ``agreement_dynamic@1s``, ..., ``agreement_static_avg``;
    the per-frame lists are kept in ``self.last_report``
    (``agreement_{dynamic,static}_per_frame``, ``voxels_{dynamic,static}_per_frame``).

    Raises:
        ValueError: a sample without ``pred_samples`` (set the model's
            ``predict_samples`` to K >= 2).
    """

    default_prefix: Optional[str] = ''

    def __init__(self, avg_frames: Sequence[int] = (2, 4, 6), grid: Optional[dict] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.avg_frames = tuple(int(f) for f in avg_frames)
        self.grid = OccGrid(**grid) if grid else DEFAULT_GRID
        self.last_report: Optional[dict] = None

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Append one ``(T_f, 4) int64`` count array per window (:func:`agreement_counts`)."""
        metas = (data_batch or {}).get('data_samples') if isinstance(data_batch, dict) else None
        for i, sample in enumerate(data_samples):
            if sample.get('pred_samples') is None:
                raise ValueError('SampleAgreement needs pred_samples: set the model\'s '
                                 'predict_samples to K >= 2 (tools/test.py --samples K)')
            samples = torch.as_tensor(np.asarray(sample['pred_samples']))
            win = metas[i] if metas is not None and i < len(metas) else None
            warped = None
            if win is not None and win.future_traj is not None and len(win.future_traj) >= samples.shape[1]:
                warped = warp_static(torch.as_tensor(np.asarray(win.present)),
                                     torch.as_tensor(np.asarray(win.future_traj[:samples.shape[1]])),
                                     self.grid)
            self.results.append(agreement_counts(samples, warped, self.grid.free_label))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        """Sum the counts over all windows and turn them into percentages."""
        if not results:
            raise ValueError('no window was evaluated')
        total = np.sum(np.stack(results), 0)  # (T_f, 4)
        T_f = len(total)
        names = [frame_name(k) for k in range(1, T_f + 1)]
        report: Dict[str, Any] = dict(frames=names, num_windows=len(results))
        metrics: Dict[str, float] = {}
        for r, region in enumerate(REGIONS):
            n, a = total[:, 2 * r], total[:, 2 * r + 1]
            pct = [100.0 * float(a_) / float(n_) if n_ else float('nan') for n_, a_ in zip(n, a)]
            report[f'agreement_{region}_per_frame'] = pct
            report[f'voxels_{region}_per_frame'] = [int(v) for v in n]
            for name, v in zip(names, pct):
                metrics[f'agreement_{region}@{name}'] = v
            avg = [pct[f - 1] for f in self.avg_frames if f <= T_f]
            metrics[f'agreement_{region}_avg'] = float(np.mean(avg)) if avg else float('nan')
            report[f'agreement_{region}_avg'] = metrics[f'agreement_{region}_avg']
        self.last_report = report
        lines = [f'  {region:8s} ' + ' '.join(f'{v:6.2f}' for v in report[f'agreement_{region}_per_frame'])
                 for region in REGIONS]
        print_log('sample agreement (%, all K samples equal), per future frame '
                  + ', '.join(names) + ':\n' + '\n'.join(lines), logger='current')
        return metrics
