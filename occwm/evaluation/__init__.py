"""Evaluation: OccWorld's IoU / mIoU per future horizon (``OccMetric``) and the pure
count-based math behind it (``functional``)."""
from occwm.evaluation.functional import (OccCounts, class_ious, confusion_counts,
                                         iou_from_counts, miou)
from occwm.evaluation.occ_metric import OccMetric

__all__ = ['OccCounts', 'confusion_counts', 'iou_from_counts', 'class_ious', 'miou', 'OccMetric']
