"""OccMetric's dynamic mIoU and changed-voxel IoU, with hand-computed values on a
4x4x2 grid (0.4 m voxels): a road layer (z = 0) and a car (z = 1) that drives along
with the ego, 0.4 m per frame.

The warp baseline (the present warped along the trajectory) is then perfect on the
static road and wrong on the car; copy_last is wrong on the road (it does not move it)
and right on the car. Labels: 4 car, 11 driveable_surface, 17 free.
"""
import math

import numpy as np
import pytest
import torch

from occwm.evaluation import OccMetric
from occwm.evaluation.baselines import baseline_forecasts
from occwm.evaluation.report import to_json
from occwm.window import OccWindow

F, CAR, ROAD = 17, 4, 11
GRID = dict(point_cloud_range=(-0.8, -0.8, 0.0, 0.8, 0.8, 0.8), voxel_size=0.4)  # 4x4x2
TRAJ = torch.tensor([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], [0.8, 0.0, 0.0]])  # present, 0.5 s, 1 s


def scene():
    """``(3, 4, 4, 2)`` present + 2 future frames, in each frame's own ego frame."""
    occ = torch.full((3, 4, 4, 2), F, dtype=torch.uint8)
    occ[0, :, :, 0] = ROAD  # present: road everywhere
    occ[1, :3, :, 0] = ROAD  # 0.4 m ahead: the last x row has no road (left the grid)
    occ[2, :2, :, 0] = ROAD  # 0.8 m ahead: the last two rows
    occ[:, 1, 1, 1] = CAR  # the car moves with the ego: the same voxel in every frame
    return occ


def window(**masks):
    return OccWindow(scene(), TRAJ, 1, **masks)


def run(pred, win=None, **kwargs):
    """Score one window; returns (flat metrics, report)."""
    win = win or window()
    metric = OccMetric(grid=GRID, avg_frames=kwargs.pop('avg_frames', (1, 2)), **kwargs)
    metric.process(dict(data_samples=[win]), [dict(pred_occ=pred)])
    return metric.evaluate(1), metric.last_report


def test_warp_is_right_on_the_road_and_wrong_on_the_moving_car():
    win = window()
    warp = baseline_forecasts(win.present, win.future_traj, OccMetric(grid=GRID).grid)['warp']
    # the road is warped exactly; the car is left behind 1 voxel (0.5 s), then off the grid
    assert torch.equal(warp[:, :, :, 0], win.future[:, :, :, 0])
    assert torch.nonzero(warp[0, :, :, 1] == CAR).tolist() == [[0, 1]]
    assert not (warp[1] == CAR).any()

    out, r = run(win.future.clone())  # a perfect model
    # changed voxels: 0.5 s {(0,1,1) warp car / gt free, (1,1,1) gt car / warp free};
    # 1 s {(1,1,1)}. warp: fp 1, fn 1 then fn 1 -> 0; copy_last: the car (tp) -> 100
    assert r['changed_iou_per_frame'] == [100.0, 100.0] and r['changed_iou_avg'] == 100.0
    assert r['baselines']['warp']['changed_iou_per_frame'] == [0.0, 0.0]
    assert r['baselines']['copy_last']['changed_iou_per_frame'] == [100.0, 100.0]
    # dynamic mIoU (OccWorld rule: the 7 dynamic classes absent from the gt score 1):
    # warp's car IoU is 0 -> 7 / 8; copy_last and the model get the car -> 100
    assert r['dynamic_miou_per_frame'] == [100.0, 100.0] and r['dynamic_miou_avg'] == 100.0
    assert r['baselines']['warp']['dynamic_miou_per_frame'] == pytest.approx([87.5, 87.5])
    assert r['baselines']['copy_last']['dynamic_miou_avg'] == pytest.approx(100.0)
    # the plain IoU hides it: warp is far better than copy_last on the whole grid
    # warp: 12 / (12 + 1 + 1), 8 / (8 + 0 + 1); copy_last: 13 / (13 + 4), 9 / (9 + 8)
    assert r['baselines']['warp']['iou_per_frame'] == pytest.approx([1200 / 14, 800 / 9])
    assert r['baselines']['copy_last']['iou_per_frame'] == pytest.approx([1300 / 17, 900 / 17])
    assert r['dynamic_classes'] == ['bicycle', 'bus', 'car', 'construction_vehicle',
                                    'motorcycle', 'pedestrian', 'trailer', 'truck']
    # flat metrics: model, then the baselines prefixed
    assert out['dynamic_mIoU@0.5s'] == out['dynamic_mIoU_avg'] == 100.0
    assert out['changed_IoU@1s'] == out['changed_IoU_avg'] == 100.0
    assert out['warp/changed_IoU_avg'] == 0.0 and out['copy_last/changed_IoU@0.5s'] == 100.0
    assert out['warp/dynamic_mIoU_avg'] == pytest.approx(87.5)
    assert list(out)[0] == 'mIoU@0.5s'  # the first key (mmengine's save_best='auto') is unchanged


def test_partly_right_model_and_the_mask_intersects_the_changed_voxels():
    pred = scene()[1:].clone()
    pred[0, 0, 1, 1] = CAR  # at 0.5 s also keeps the car where warp puts it: one fp
    _, r = run(pred)
    # 0.5 s: changed {(0,1,1): fp, (1,1,1): tp} -> 1/2; 1 s: perfect
    assert r['changed_iou_per_frame'] == [50.0, 100.0] and r['changed_iou_avg'] == 75.0
    # car tp 1, fp 1 -> 1/2, with the 7 absent dynamic classes at 1: (0.5 + 7) / 8
    assert r['dynamic_miou_per_frame'] == pytest.approx([100 * 7.5 / 8, 100.0])
    # the camera hides (0,1,1) at 0.5 s: only (1,1,1) is left, and it is a hit
    cam = torch.ones(3, 4, 4, 2, dtype=torch.uint8)
    cam[1, 0, 1, 1] = 0
    _, r = run(pred, window(mask_camera=cam), mask='camera')
    assert r['changed_iou_per_frame'] == [100.0, 100.0]
    assert r['baselines']['warp']['changed_iou_per_frame'] == [0.0, 0.0]  # fn only
    assert r['baselines']['warp']['iou_per_frame'][0] == pytest.approx(1200 / 13)  # fp hidden
    # a sample's own mask does the same
    metric = OccMetric(grid=GRID, avg_frames=(1, 2))
    metric.process(dict(data_samples=[window()]), [dict(pred_occ=pred, mask=cam[1:].bool())])
    metric.evaluate(1)
    assert metric.last_report['changed_iou_per_frame'] == [100.0, 100.0]


def test_dynamic_miou_follows_the_protocols_absent_class_rule():
    pred = scene()[1:].clone()
    # I²-World: warp's car (IoU 0) and the 7 undefined classes are all dropped -> NaN
    out, r = run(pred, protocol='i2world', present_frame=False)
    assert all(math.isnan(v) for v in r['baselines']['warp']['dynamic_miou_per_frame'])
    assert r['baselines']['copy_last']['dynamic_miou_per_frame'] == [100.0, 100.0]
    assert math.isnan(out['warp/dynamic_mIoU_avg'])
    # absent classes dropped, zeros kept: only the car, IoU 0
    _, r = run(pred, absent_class_iou=None, drop_zero_iou=False)
    assert r['baselines']['warp']['dynamic_miou_per_frame'] == [0.0, 0.0]
    # static classes never enter: a wrong road does not move the dynamic mIoU
    pred[:, :, :, 0] = F
    _, r = run(pred)
    assert r['dynamic_miou_per_frame'] == [100.0, 100.0] and r['miou_per_frame'][0] < 100


def test_no_warped_present_means_no_changed_iou():
    pred = scene()[1:].clone()
    out, r = run(pred, baselines=())  # a tokenizer-like setup: no baselines
    assert r['changed_iou_per_frame'] is None and r['changed_iou_avg'] is None
    assert r['dynamic_miou_avg'] == 100.0 and r['baselines'] == {}
    assert not any(k.startswith('changed_IoU') for k in out) and 'dynamic_mIoU_avg' in out
    assert '"changed_iou_per_frame": null' in to_json(r)
    # no window at all (ground truth given): no trajectory, no warped present
    metric = OccMetric(avg_frames=(1, 2))
    metric.process(None, [dict(pred_occ=pred, gt_occ=pred)])
    assert 'changed' not in metric.results[0]
    assert not any(k.startswith('changed_IoU') for k in metric.evaluate(1))


def test_sample_baselines_give_the_warped_present():
    win = window()
    base = baseline_forecasts(win.present, win.future_traj, OccMetric(grid=GRID).grid)
    pred = win.future.clone()
    # the same baselines given by the sample score as those computed from the window
    metric = OccMetric(grid=GRID, avg_frames=(1, 2))
    metric.process(None, [dict(pred_occ=pred, gt_occ=win.future, baselines=base)])
    given = metric.evaluate(1)
    computed, _ = run(pred)
    assert given == computed
    # a given 'warp' defines the changed voxels: here the present repeated (no motion)
    metric = OccMetric(avg_frames=(1, 2))
    metric.process(None, [dict(pred_occ=pred, gt_occ=win.future,
                               baselines=dict(warp=base['copy_last']))])
    res = metric.results[0]['changed']
    # 0.5 s: changed = the 4 road voxels of the last row (gt free, copy road): warp fp 4
    assert res['warp'].dtype == np.int64 and res['warp'].tolist() == [[0, 4, 0], [0, 8, 0]]
    assert res['model'].tolist() == [[0, 0, 0], [0, 0, 0]]  # right, all free: 0 / 0
    metric.evaluate(1)
    r = metric.last_report
    assert all(math.isnan(v) for v in r['changed_iou_per_frame'])
    assert r['baselines']['warp']['changed_iou_per_frame'] == [0.0, 0.0]
    # baselines given without 'warp': no changed voxels (nothing is computed from the window)
    metric = OccMetric(grid=GRID, avg_frames=(1, 2))
    metric.process(dict(data_samples=[win]), [dict(pred_occ=pred, baselines=dict(
        copy_last=base['copy_last']))])
    assert 'changed' not in metric.results[0]


def test_process_keeps_small_summable_counts():
    metric = OccMetric(grid=GRID, avg_frames=(1, 2))
    pred = scene()[1:].clone()
    metric.process(dict(data_samples=[window(), window()]), [dict(pred_occ=pred)] * 2)
    for r in metric.results:
        assert list(r['changed']) == ['model', 'copy_last', 'warp']
        assert all(c.shape == (2, 3) and c.dtype == np.int64 for c in r['changed'].values())
    assert metric.results[0]['changed']['warp'].tolist() == [[0, 1, 1], [0, 0, 1]]
    metric.evaluate(2)
    # counts are summed over windows: the same scores as one window
    assert metric.last_report['baselines']['warp']['changed_iou_per_frame'] == [0.0, 0.0]
    assert metric.last_report['num_windows'] == 2
