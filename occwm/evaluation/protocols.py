"""The published occupancy-forecasting evaluation protocols, as presets.

All three score, per future frame ``f`` and per class ``c`` in ``0..16``, over every
voxel of the (optionally masked) grid: ``TP_c``, ``FP_c``, ``FN_c`` summed over the
whole evaluation set separately for each future frame, ``IoU_c = TP / (TP + FP + FN)``;
free (17) is never in the mean but counts as "not c"; geometric IoU is the IoU of
"occupied" (label != 17). They differ in the windows, the frames reported and the
rule for classes that are absent (read from the original repositories):

``occworld`` (default; wzzheng/OccWorld)
    ``dataset/dataset.py`` ``nuScenesSceneDatasetLidarTraverse``: every window of
    ``return_len + offset = 12`` consecutive frames, ``scene_lens = L - 12``, starts
    ``0 .. L - 13`` -> ``L - 12`` windows per scene (4,219 on Occ3D-nuScenes val); frames
    0..4 are the past (4 = present), 5..10 the 6 scored future frames, the 12th is
    loaded but never scored (``window_rule='occworld'``).
    ``utils/metric_util.py`` ``multi_step_MeanIou``: a class never seen in the ground
    truth of the whole set scores IoU 1 (``absent_class_iou=1.0``), also when it is
    predicted. ``eval_metric_stp3.py``: "avg" = mean of future frames 2, 4, 6
    (1 s, 2 s, 3 s).
``dome`` (zyy721/DOME, OccWorld's metric code)
    ``tools/eval_metric.py``: 4 past frames (``n_conds = mid_frame = 4``), future
    frames 4..9; ``dataset/dataset.py`` ``nuScenesSceneDatasetLidar`` in test mode:
    only the FIRST window of each scene (``window_rule='first'``, scenes of at least
    10 frames). Absent class -> 1 as OccWorld; avg over future frames 2, 4, 6.
``i2world`` (lzzzzzm/II-World)
    ``configs/world_model/ii_world.py``: 4 previous + present, 6 future frames,
    ``eval_time = (0, 1, 2, 3)`` s; "Average" over 1, 2, 3 s; 0 s is the
    reconstruction of the present frame, reported apart. ``nuscenes_world_dataset.py``:
    one sample per frame, samples whose clamped indices repeat are dropped -> present
    ``p`` valid iff ``p - 4 >= 0`` and ``p + 6 <= L - 1`` -> ``L - 10`` windows
    (``window_rule='all'``). ``occ_metrics.py`` ``Metric_mIoU``: 18x18 confusion,
    ``mIoU[mIoU == 0] = None``, ``nanmean`` -> a class whose IoU is 0 or undefined
    (0 / 0) is DROPPED from the mean (``absent_class_iou=None, drop_zero_iou=True``);
    optional camera / LiDAR visibility masks.

Masks (any protocol, option): ``'camera'`` / ``'lidar'`` -> only voxels where the
ground-truth frame's ``mask_camera`` / ``mask_lidar`` is 1 count (Occ3D / I²-World).
"""
from __future__ import annotations

from typing import Dict, Optional

from occwm.geometry import FRAME_DT
from occwm.window import window_starts

PROTOCOLS: Dict[str, dict] = {
    'occworld': dict(num_past=5, num_future=6, window_rule='occworld', avg_frames=(2, 4, 6),
                     absent_class_iou=1.0, drop_zero_iou=False, present_frame=False),
    'dome': dict(num_past=4, num_future=6, window_rule='first', avg_frames=(2, 4, 6),
                 absent_class_iou=1.0, drop_zero_iou=False, present_frame=False),
    'i2world': dict(num_past=5, num_future=6, window_rule='all', avg_frames=(2, 4, 6),
                    absent_class_iou=None, drop_zero_iou=True, present_frame=True),
}
"""Per protocol: ``num_past`` frames (present included), ``num_future`` scored frames,
``window_rule`` (see :func:`occwm.window.window_starts`), ``avg_frames`` (1-based future frames
averaged into ``*_avg``), ``absent_class_iou`` / ``drop_zero_iou`` (the mIoU's rule for
absent classes, see ``occwm.evaluation.functional.miou``), ``present_frame`` (the
model's reconstruction of the present frame is reported as "0 s")."""

MASKS = ('none', 'camera', 'lidar')
DEFAULT_PROTOCOL = 'occworld'
NO_GAP_CUT_S = 1e9  # max_gap_s of OccForecastDataset / load_infos that never cuts a scene


def get_protocol(name: str) -> dict:
    """A copy of the preset ``name`` (with its ``name`` added).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in PROTOCOLS:
        raise ValueError(f'unknown evaluation protocol {name!r}; choose one of {sorted(PROTOCOLS)}')
    return dict(PROTOCOLS[name], name=name)


def check_mask(mask: Optional[str]) -> Optional[str]:
    """``None`` / ``'none'`` -> ``None``; ``'camera'`` / ``'lidar'`` unchanged.

    Raises:
        ValueError: anything else.
    """
    if mask in (None, 'none'):
        return None
    if mask not in MASKS:
        raise ValueError(f'unknown mask {mask!r}; choose one of {MASKS}')
    return mask


def num_windows(num_frames: int, protocol: str = DEFAULT_PROTOCOL) -> int:
    """Windows a scene of ``num_frames`` frames gives under ``protocol``
    (occworld ``L - 12``, dome 1 when ``L >= 10``, i2world ``L - 10``; never < 0)."""
    p = get_protocol(protocol)
    return len(window_starts(num_frames, p['num_past'] + p['num_future'], p['window_rule']))


def frame_name(k: int, interval: float = FRAME_DT) -> str:
    """Name of future frame ``k`` (1-based; 0 = the present): ``k * interval`` seconds,
    e.g. ``'0.5s'``, ``'1s'``, ``'0s'``."""
    return f'{k * interval:g}s'


def apply_protocol(cfg, protocol: Optional[str] = None, mask: Optional[str] = None,
                   windows: bool = True, num_future: Optional[int] = None) -> dict:
    """Set an mmengine config's test set and test metric to a protocol, in place.

    ``cfg.test_evaluator`` gets ``protocol`` and ``mask``; with ``windows`` (a
    forecaster config) ``cfg.test_dataloader.dataset`` gets the protocol's
    ``num_past``, ``num_future`` (or ``num_future``) and ``window_rule``, and scenes are
    not cut at time gaps (``max_gap_s``: none of the three loaders cuts a scene); the
    test set gets stride 1 (every window, or every frame for a tokenizer); with a mask the
    pipeline's ``LoadOccWindow`` loads the masks; when the protocol's past differs from
    the model's ``num_past``, ``PackOccInputs(num_past=...)`` pads (repeating the oldest
    frame) or cuts the past to the model's.

    Args:
        cfg: ``mmengine.Config`` with ``test_dataloader`` and ``test_evaluator``.
        protocol: preset name; ``None`` keeps the evaluator's (default ``occworld``).
        mask: ``None`` keeps the evaluator's; ``'none'`` / ``'camera'`` / ``'lidar'``.
        windows: also set the test windows (False for the tokenizer, which scores
            every frame of the set).
        num_future: forecast this many future frames instead of the protocol's
            (long-horizon rollouts; the averaged frames stay 2, 4, 6).

    Returns:
        The preset applied (with ``name`` and ``mask``).
    """
    evaluator = cfg.test_evaluator
    protocol = protocol or evaluator.get('protocol') or DEFAULT_PROTOCOL
    preset = get_protocol(protocol)
    mask = check_mask(evaluator.get('mask') if mask is None else mask)
    evaluator.protocol, evaluator.mask = protocol, mask
    ds = cfg.test_dataloader.dataset
    ds.stride = 1
    if windows:
        ds.num_past = preset['num_past']
        ds.num_future = num_future or preset['num_future']
        ds.window_rule = preset['window_rule']
        ds.max_gap_s = NO_GAP_CUT_S
    model_past = (cfg.get('model') or {}).get('num_past')
    for t in ds.get('pipeline') or []:
        if t.get('type') == 'LoadOccWindow' and mask is not None:
            t['with_masks'] = True
        if (t.get('type') == 'PackOccInputs' and windows and model_past is not None
                and model_past != preset['num_past']):
            t['num_past'] = model_past  # e.g. DOME's 4 past frames padded to the model's 5
    return dict(preset, mask=mask)
