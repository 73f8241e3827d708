"""The report (occwm.evaluation.report) built from hand-made counts: keys, the dynamic
mIoU and changed-voxel IoU of every method, flat metric names, tables, JSON."""
import json
import math

import numpy as np
import pytest

from occwm.evaluation.functional import OccCounts
from occwm.evaluation.report import (build_report, flat_metrics, format_markdown, format_text,
                                     to_json)
from occwm.grid import DYNAMIC_CLASSES, OCC3D_CLASS_NAMES

CLASSES = OCC3D_CLASS_NAMES[:-1]
CAR, ROAD = 4, 11


def counts(car, road=(4, 0, 0), geo=(5, 1, 1)):
    """OccCounts with car and road ``(tp, fp, fn)``, every other class absent."""
    c = OccCounts.zeros(17)
    c.tp[CAR], c.fp[CAR], c.fn[CAR] = car
    c.tp[ROAD], c.fp[ROAD], c.fn[ROAD] = road
    c.geo_tp, c.geo_fp, c.geo_fn = geo
    return c


def report(changed=True, present=False, **kwargs):
    # frames 0.5s, 1s, 1.5s; averaged: 1 and 3. model: car 1/2, 1/3, 1; warp: car 0
    totals = dict(model=[counts((1, 1, 0)), counts((1, 1, 1)), counts((2, 0, 0))],
                  warp=[counts((0, 1, 1))] * 3, copy_last=[counts((1, 0, 0))] * 3)
    changed_counts = dict(model=np.array([[1, 1, 0], [0, 0, 0], [3, 0, 1]]),
                          warp=np.array([[0, 1, 1]] * 3), copy_last=np.array([[1, 0, 0]] * 3))
    return build_report(totals, num_windows=2, protocol='occworld', mask=None,
                        frames=('0.5s', '1s', '1.5s'), avg_frames=(1, 3), class_names=CLASSES,
                        changed=changed_counts if changed else None,
                        present=({n: counts((1, 0, 0)) for n in totals} if present else None),
                        **kwargs)


def test_scores_by_hand():
    r = report(absent_class_iou=1.0)
    # dynamic: the car and the 7 absent dynamic classes at 1
    assert r['dynamic_miou_per_frame'] == pytest.approx([100 * 7.5 / 8, 100 * (1 / 3 + 7) / 8, 100])
    assert r['dynamic_miou_avg'] == pytest.approx((100 * 7.5 / 8 + 100) / 2)  # frames 1 and 3
    assert r['baselines']['warp']['dynamic_miou_avg'] == pytest.approx(100 * 7 / 8)
    # changed: 1 / 2, 0 / 0 (undefined), 3 / 4
    ch = r['changed_iou_per_frame']
    assert ch[0] == 50.0 and math.isnan(ch[1]) and ch[2] == 75.0
    assert r['changed_iou_avg'] == pytest.approx(62.5)
    assert r['baselines']['warp']['changed_iou_per_frame'] == [0.0] * 3
    assert r['baselines']['copy_last']['changed_iou_avg'] == 100.0
    assert r['dynamic_classes'] == [CLASSES[k] for k in DYNAMIC_CLASSES]
    # absent classes dropped: the car alone
    r = report(absent_class_iou=None)
    assert r['dynamic_miou_per_frame'] == pytest.approx([50, 100 / 3, 100])
    assert r['baselines']['warp']['dynamic_miou_per_frame'] == [0.0] * 3
    r = report(absent_class_iou=None, drop_zero_iou=True)
    assert math.isnan(r['baselines']['warp']['dynamic_miou_avg'])


def test_existing_keys_are_unchanged_and_new_keys_are_added():
    r = report()
    for key in ('miou_per_frame', 'iou_per_frame', 'miou_avg', 'iou_avg', 'class_iou_per_frame',
                'dynamic_miou_per_frame', 'dynamic_miou_avg', 'changed_iou_per_frame',
                'changed_iou_avg'):
        assert key in r and all(key in s for s in r['baselines'].values())
    assert list(r['baselines']) == ['warp', 'copy_last']
    data = json.loads(to_json(r))
    assert data['changed_iou_per_frame'][1] is None  # NaN -> null
    r = report(changed=False)
    assert r['changed_iou_per_frame'] is None and r['baselines']['warp']['changed_iou_avg'] is None
    with pytest.raises(ValueError, match='changed counts'):
        build_report(dict(model=[counts((1, 0, 0))]), 1, 'occworld', None, ('0.5s',), (1,),
                     CLASSES, changed=dict(model=np.zeros((2, 3), np.int64)))


def test_flat_metric_names():
    out = flat_metrics(report())
    model = ['mIoU@0.5s', 'IoU@0.5s', 'mIoU@1.5s', 'IoU@1.5s', 'mIoU_avg', 'IoU_avg',
             'dynamic_mIoU@0.5s', 'dynamic_mIoU@1.5s', 'dynamic_mIoU_avg',
             'changed_IoU@0.5s', 'changed_IoU@1.5s', 'changed_IoU_avg']
    assert list(out) == model + [f'warp/{k}' for k in model] + [f'copy_last/{k}' for k in model]
    assert out['changed_IoU_avg'] == pytest.approx(62.5) and out['warp/changed_IoU@1.5s'] == 0.0
    out = flat_metrics(report(changed=False, present=True))
    assert 'changed_IoU_avg' not in out and 'warp/dynamic_mIoU_avg' in out
    assert list(out)[:3] == ['mIoU@0s', 'IoU@0s', 'mIoU@0.5s']
    assert 'dynamic_mIoU@0s' in out and 'copy_last/dynamic_mIoU@0s' in out


def test_tables_show_every_method_on_the_new_scores():
    r = report()
    text = format_text(r)
    for title in ('mIoU (%)', 'IoU (%)', 'dynamic mIoU (%)', 'changed-voxel IoU (%)'):
        assert f'| {title}' in text
    assert 'ego-motion-warped present' in text and 'construction_vehicle' in text
    changed_table = text[text.index('| changed-voxel IoU'):]
    assert '| warp ' in changed_table and '| copy_last ' in changed_table
    assert '|   0.00 |' in changed_table  # warp
    md = format_markdown(r)
    for title in ('## mIoU (%)', '## dynamic mIoU (%)', '## changed-voxel IoU (%)'):
        assert title in md
    # no changed counts: no changed table; the present column is padded for it
    text = format_text(report(changed=False, present=True))
    assert 'changed-voxel IoU' not in text and 'dynamic mIoU (%) |     0s |' in text
    r = report(present=True)
    rows = format_markdown(r).split('## changed-voxel IoU (%)')[1].split('\n## ')[0]
    assert '| model | - | 50.00 | - | 75.00 | 62.50 |' in rows


def test_reports_without_the_new_keys_still_format():
    r = report()
    for s in [r] + list(r['baselines'].values()):
        for key in ('dynamic_miou_per_frame', 'dynamic_miou_avg', 'changed_iou_per_frame',
                    'changed_iou_avg'):
            del s[key]
    assert 'dynamic mIoU' not in format_text(r) and '## IoU (%)' in format_markdown(r)
    assert not any('dynamic' in k or 'changed' in k for k in flat_metrics(r))


def test_paired_miou_keeps_zero_classes_for_every_method():
    # I²-World's rule drops the warp's car (IoU 0): its mIoU is the road alone (100),
    # above the model's (car 1/2, road 1); the paired mIoU keeps the car for both.
    r = report(absent_class_iou=None, drop_zero_iou=True)
    warp = r['baselines']['warp']
    assert warp['miou_per_frame'] == pytest.approx([100.0] * 3)
    assert r['miou_per_frame'][0] == pytest.approx(75.0)
    assert warp['paired_miou_per_frame'] == pytest.approx([50.0] * 3)  # (0 + 1) / 2
    assert r['paired_miou_per_frame'] == pytest.approx([75.0, 100 * (1 / 3 + 1) / 2, 100.0])
    assert r['paired_miou_avg'] == pytest.approx((75.0 + 100.0) / 2)
    flat = flat_metrics(r)
    assert flat['warp/paired_mIoU@0.5s'] == pytest.approx(50.0)
    assert 'paired_mIoU_avg' in flat
    assert 'classes shared by every method' in format_text(r)
    # protocols that keep zero IoUs have no separate paired mIoU
    assert 'paired_miou_per_frame' not in report(absent_class_iou=1.0)
