"""Evaluation: the published protocols (``protocols``: OccWorld, DOME, I²-World), IoU /
mIoU per future frame (``OccMetric``), the count-based math behind it
(``functional``), the copy-last and ego-motion-warp baselines (``baselines``) and the
reports (``report``: JSON, terminal and Markdown tables), forecasts on disk
(``from_files``: ``FileForecaster``; ``dump``: ``DumpForecasts``), the agreement of
sampled futures (``diversity``: ``SampleAgreement``)."""
from occwm.evaluation.baselines import BaselineForecaster, baseline_forecasts, copy_last, warp_static
from occwm.evaluation.diversity import SampleAgreement, agreement_counts
from occwm.evaluation.dump import DumpForecasts
from occwm.evaluation.from_files import FileForecaster
from occwm.evaluation.functional import (OccCounts, class_ious, confusion_counts,
                                         iou_from_counts, miou)
from occwm.evaluation.occ_metric import OccMetric
from occwm.evaluation.protocols import PROTOCOLS, apply_protocol, get_protocol, num_windows

__all__ = ['OccCounts', 'confusion_counts', 'iou_from_counts', 'class_ious', 'miou', 'OccMetric',
           'PROTOCOLS', 'get_protocol', 'apply_protocol', 'num_windows',
           'BaselineForecaster', 'baseline_forecasts', 'copy_last', 'warp_static', 'DumpForecasts',
           'FileForecaster',
           'SampleAgreement', 'agreement_counts']
