"""Evaluation: the published protocols (``protocols``: OccWorld, DOME, I²-World), IoU /
mIoU per future frame (``OccMetric``), the count-based math behind it
(``functional``), the copy-last and ego-motion-warp baselines (``baselines``) and the
reports (``report``: JSON, terminal and Markdown tables)."""
from occwm.evaluation.baselines import baseline_forecasts, copy_last, warp_static
from occwm.evaluation.functional import (OccCounts, class_ious, confusion_counts,
                                         iou_from_counts, miou)
from occwm.evaluation.occ_metric import OccMetric
from occwm.evaluation.protocols import (PROTOCOLS, apply_protocol, get_protocol, num_windows,
                                        window_starts)

__all__ = ['OccCounts', 'confusion_counts', 'iou_from_counts', 'class_ious', 'miou', 'OccMetric',
           'PROTOCOLS', 'get_protocol', 'apply_protocol', 'window_starts', 'num_windows',
           'baseline_forecasts', 'copy_last', 'warp_static']
