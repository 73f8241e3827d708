"""Metric tests with hand-computed expected values (the counting shared by the protocols;
protocol-specific rules are in tests/test_protocols.py).

Labels: 0 others, 3 bus, 4 car, 7 pedestrian, 10 truck, 11 driveable_surface,
16 vegetation, 17 free.
"""
import numpy as np
import pytest
import torch

from occwm.evaluation import OccMetric, class_ious, confusion_counts, iou_from_counts, miou
from occwm.evaluation.functional import OccCounts, changed_counts, changed_voxels
from occwm.grid import DYNAMIC_CLASSES
from occwm.registry import METRICS

F = 17  # free


def grid(*labels, shape=None):
    """uint8 grid from a flat list of labels, shape (len, 1, 1) unless given."""
    a = np.asarray(labels, dtype=np.uint8)
    return a.reshape(shape if shape is not None else (len(labels), 1, 1))


# 2x2x1: gt = [[car, car], [free, road]], pred = [[car, free], [car, road]]
GT_2x2 = grid(4, 4, F, 11, shape=(2, 2, 1))
PRED_2x2 = grid(4, F, 4, 11, shape=(2, 2, 1))


def test_counts_2x2x1_hand_computed():
    c = confusion_counts(PRED_2x2, GT_2x2)
    # car: (0,0) hit; (0,1) gt car -> free = fn; (1,0) gt free -> car = fp
    assert (c.tp[4], c.fp[4], c.fn[4]) == (1, 1, 1)
    assert (c.tp[11], c.fp[11], c.fn[11]) == (1, 0, 0)
    others = [k for k in range(17) if k not in (4, 11)]
    assert not c.tp[others].any() and not c.fp[others].any() and not c.fn[others].any()
    assert c.tp.shape == (17,) and c.tp.dtype == np.int64
    # geometry: gt occupied {(0,0),(0,1),(1,1)}, pred occupied {(0,0),(1,0),(1,1)}
    assert (c.geo_tp, c.geo_fp, c.geo_fn) == (2, 1, 1)
    assert c.iou() == pytest.approx(2 / 4)
    assert c.class_ious()[4] == pytest.approx(1 / 3)
    # classes present in gt: car 1/3, road 1 -> mean 2/3
    assert c.miou() == pytest.approx((1 / 3 + 1) / 2)
    # OccWorld: the 15 classes never seen in gt score 1
    assert c.miou(absent_class_iou=1.0) == pytest.approx((1 / 3 + 1 + 15) / 17)


def test_counts_3x1x1_others_counts_and_free_is_not_a_class():
    # gt = [others, vegetation, free], pred = [vegetation, vegetation, others]
    c = confusion_counts(grid(16, 16, 0), grid(0, 16, F))
    assert (c.tp[0], c.fp[0], c.fn[0]) == (0, 1, 1)  # others: included in mIoU
    assert (c.tp[16], c.fp[16], c.fn[16]) == (1, 1, 0)
    assert (c.geo_tp, c.geo_fp, c.geo_fn) == (2, 1, 0)
    assert c.iou() == pytest.approx(2 / 3)
    assert c.miou() == pytest.approx((0 + 1 / 2) / 2)
    assert len(c.tp) == 17  # free (17) has no entry


def test_absent_class_predicted_both_ways():
    # bus never in gt but predicted once; car half right
    c = confusion_counts(grid(3, 4, F), grid(F, 4, 4))
    assert c.fp[3] == 1 and c.tp[3] + c.fn[3] == 0
    ious = c.class_ious()
    assert np.isnan(ious[3])  # left out of the mean
    assert c.miou() == pytest.approx(0.5)
    # OccWorld's `if total_seen == 0: ious.append(1)` scores it 1 although predicted
    assert c.class_ious(absent_class_iou=1.0)[3] == 1.0
    assert c.miou(absent_class_iou=1.0) == pytest.approx((0.5 + 16) / 17)


def test_all_free_ground_truth():
    c = confusion_counts(grid(F, F), grid(F, F))
    assert np.isnan(c.miou()) and np.isnan(c.iou())
    assert c.miou(absent_class_iou=1.0) == 1.0


def test_iou_from_counts_scalars_and_arrays():
    assert iou_from_counts(1, 1, 2) == pytest.approx(0.25)
    np.testing.assert_allclose(iou_from_counts([1, 0], [0, 0], [1, 0]), [0.5, np.nan])
    assert miou([1, 0], [0, 0], [1, 0]) == pytest.approx(0.5)
    np.testing.assert_allclose(class_ious([1, 0], [0, 3], [1, 0], 1.0), [0.5, 1.0])


def test_mask_and_torch_match_numpy_and_a_brute_force_loop():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 18, (8, 6, 4)).astype(np.uint8)
    pred = np.where(rng.random(gt.shape) < 0.5, gt, rng.integers(0, 18, gt.shape)).astype(np.uint8)
    mask = rng.random(gt.shape) < 0.7
    c_np = confusion_counts(pred, gt, mask=mask)
    c_t = confusion_counts(torch.from_numpy(pred), torch.from_numpy(gt),
                           mask=torch.from_numpy(mask))
    p, g = pred[mask], gt[mask]
    for k in range(17):  # the OccWorld loop: seen, correct, positive per class
        tp = np.sum((g == k) & (p == k))
        assert c_np.tp[k] == c_t.tp[k] == tp
        assert c_np.fp[k] == c_t.fp[k] == np.sum(p == k) - tp
        assert c_np.fn[k] == c_t.fn[k] == np.sum(g == k) - tp
    assert c_np.geo_tp == c_t.geo_tp == np.sum((g != F) & (p != F))
    assert c_np.geo_fp == c_t.geo_fp == np.sum((g == F) & (p != F))
    assert c_np.geo_fn == c_t.geo_fn == np.sum((g != F) & (p == F))


def test_bad_input_raises():
    with pytest.raises(ValueError, match='labels must lie'):
        confusion_counts(grid(18), grid(4))
    with pytest.raises(ValueError, match='shape'):
        confusion_counts(grid(4, 4), grid(4))
    with pytest.raises(ValueError, match='labels must lie'):  # signed types: negatives too
        confusion_counts(torch.tensor([-1, 4]), torch.tensor([4, 4]))
    with pytest.raises(ValueError, match='integers'):
        confusion_counts(np.array([4.0]), grid(4).reshape(-1))


def sample(pred, gt, **extra):
    return dict(pred_occ=torch.from_numpy(pred), gt_occ=torch.from_numpy(gt), **extra)


def test_metric_sums_counts_over_windows_not_mean_of_windows():
    metric = OccMetric(avg_frames=(1,), frame_names=('recon',), absent_class_iou=None)
    # window 1: car IoU 1/1; window 2: car tp=1, fp=1, fn=2 -> IoU 1/4
    w1 = sample(grid(4, F, F, F)[None], grid(4, F, F, F)[None])  # (T_f=1, 4, 1, 1)
    w2 = sample(grid(4, F, F, 4)[None], grid(4, 4, 4, F)[None])
    metric.process(None, [w1])
    metric.process(None, [w2])
    out = metric.evaluate(size=2)
    # mean of per-window IoUs would be (1 + 1/4) / 2 = 62.5; the sum gives 2 / (2 + 1 + 2)
    assert out['mIoU@recon'] == pytest.approx(40.0)
    assert out['IoU@recon'] == pytest.approx(40.0)
    assert out['mIoU_avg'] == pytest.approx(40.0) and out['IoU_avg'] == pytest.approx(40.0)
    assert metric.results == []  # evaluate() clears the stored counts


def test_metric_frames_are_one_based_and_baselines_get_rows():
    T, gt = 6, np.full((6, 2, 1, 1), F, np.uint8)
    gt[:, 0] = 4  # a car in voxel 0 at every future frame
    pred = np.full_like(gt, F)
    pred[1, 0] = 4  # right only at future frame 2 (= 1 s at 2 Hz)
    copy_last = np.repeat(gt[:1], T, axis=0).copy()
    copy_last[:, 1] = 4  # hits the car, plus one false positive: IoU 1/2
    # defaults: the OccWorld protocol, frames (2, 4, 6) -> 1s, 2s, 3s, absent classes score 1
    metric = METRICS.build(dict(type='OccMetric'))
    metric.process(None, [sample(pred, gt, baselines={'copy_last': torch.from_numpy(copy_last)})])
    out = metric.evaluate(size=1)
    assert out['mIoU@1s'] == pytest.approx(100.0) and out['IoU@1s'] == pytest.approx(100.0)
    # car missed: IoU 0; the 16 classes absent from the ground truth score 1 each
    assert out['mIoU@2s'] == pytest.approx(100 * 16 / 17) and out['IoU@2s'] == 0.0
    assert out['mIoU_avg'] == pytest.approx((100 + 2 * 100 * 16 / 17) / 3)
    for h in ('1s', '2s', '3s'):
        assert out[f'copy_last/mIoU@{h}'] == pytest.approx(100 * (0.5 + 16) / 17)
        assert out[f'copy_last/IoU@{h}'] == pytest.approx(50.0)
    report = metric.last_report  # every frame, not only the averaged ones
    assert report['num_windows'] == 1 and report['frames'][0] == '0.5s'
    assert report['iou_per_frame'] == pytest.approx([0, 100, 0, 0, 0, 0])
    assert report['class_iou_per_frame']['car'] == pytest.approx([0, 100, 0, 0, 0, 0])
    assert report['baselines']['copy_last']['iou_per_frame'] == pytest.approx([50.0] * 6)
    assert out['copy_last/IoU_avg'] == pytest.approx(50.0)
    # dynamic mIoU: the car and 7 absent dynamic classes (1 each); copy_last's car is 1/2
    assert out['dynamic_mIoU@1s'] == 100.0 and out['dynamic_mIoU@2s'] == pytest.approx(100 * 7 / 8)
    assert out['copy_last/dynamic_mIoU_avg'] == pytest.approx(100 * 7.5 / 8)
    assert report['dynamic_miou_per_frame'] == pytest.approx([87.5, 100, 87.5, 87.5, 87.5, 87.5])
    # no warp given and no window: no changed-voxel IoU
    assert report['changed_iou_per_frame'] is None and 'changed_IoU_avg' not in out
    assert len(out) == 2 * 12  # (mIoU, IoU, dynamic mIoU) x (1s, 2s, 3s, avg) x 2 methods
    from occwm.evaluation.report import format_markdown, format_text
    table = format_text(report)
    assert '| model ' in table and '| copy_last ' in table and 'avg(1s,2s,3s)' in table
    assert '| car ' in table and '## Per-class IoU (%): copy_last' in format_markdown(report)
    assert 'dynamic mIoU (%)' in table and 'changed-voxel IoU' not in table


def test_metric_absent_class_option_and_mask_and_prefix():
    gt, pred = grid(4, 4, F, 11, shape=(1, 2, 2, 1)), grid(4, F, 4, 11, shape=(1, 2, 2, 1))
    for absent, expected in ((None, (1 / 3 + 1) / 2), (1.0, (1 / 3 + 1 + 15) / 17)):
        metric = OccMetric(avg_frames=(1,), frame_names=('recon',), absent_class_iou=absent,
                           prefix='occ')
        metric.process(None, [sample(pred, gt)])
        assert metric.evaluate(1)['occ/mIoU@recon'] == pytest.approx(100 * expected)
    # masking out the two wrong voxels leaves a perfect prediction
    mask = torch.tensor([[True, False], [False, True]]).reshape(1, 2, 2, 1)
    metric = OccMetric(avg_frames=(1,), frame_names=('recon',))
    metric.process(None, [sample(pred, gt, mask=mask)])
    out = metric.evaluate(1)
    assert out['mIoU@recon'] == pytest.approx(100.0) and out['IoU@recon'] == pytest.approx(100.0)


def test_metric_rejects_too_few_frames():
    metric = OccMetric()
    with pytest.raises(ValueError, match='future frames'):
        metric.process(None, [sample(grid(4)[None], grid(4)[None])])


def test_counts_pack_into_a_summable_vector():
    a = confusion_counts(PRED_2x2, GT_2x2)
    v = a.to_array()
    assert v.shape == (3 * 17 + 3,) and v.dtype == np.int64
    b = OccCounts.from_array(v + v)
    assert b.tp[4] == 2 and b.fn[4] == 2 and (b.geo_tp, b.geo_fp, b.geo_fn) == (4, 2, 2)


def test_counts_add():
    a = confusion_counts(PRED_2x2, GT_2x2)
    s = sum([a, a], OccCounts.zeros())
    assert s.tp[4] == 2 and s.geo_fp == 2 and s.iou() == pytest.approx(a.iou())


# ----------------------------------------------------------------------------- dynamic mIoU
def test_miou_over_the_dynamic_classes_keeps_the_absent_class_rule():
    # gt = [car, car, free, road, free], pred = [car, free, car, road, bus]
    c = confusion_counts(grid(4, F, 4, 11, 3), grid(4, 4, F, 11, F))
    # car 1/3; bus absent from the gt but predicted; road is static: never in the mean
    assert c.miou(classes=DYNAMIC_CLASSES) == pytest.approx(1 / 3)  # absent: left out
    # OccWorld: the 7 absent dynamic classes (bus predicted or not) score 1
    assert c.miou(1.0, classes=DYNAMIC_CLASSES) == pytest.approx((1 / 3 + 7) / 8)
    assert miou(c.tp, c.fp, c.fn, 1.0, False, DYNAMIC_CLASSES) == c.miou(1.0, classes=DYNAMIC_CLASSES)
    # I²-World: absent and zero classes dropped; the car alone
    assert c.miou(None, True, DYNAMIC_CLASSES) == pytest.approx(1 / 3)
    # a car never right: IoU 0, dropped by I²-World -> nothing left (NaN), 0 otherwise
    wrong = confusion_counts(grid(F, 11), grid(4, 11))
    assert np.isnan(wrong.miou(None, True, DYNAMIC_CLASSES))
    assert wrong.miou(None, False, DYNAMIC_CLASSES) == 0.0
    assert wrong.miou(None, True) == 1.0  # the full mean keeps the road
    with pytest.raises(ValueError, match='outside'):
        c.miou(classes=(17,))


# ----------------------------------------------------------------------------- changed voxels
def test_changed_voxels_and_counts_by_hand():
    # voxel: 0 car arrived, 1 car left, 2 road kept, 3 free kept, 4 car kept, 5 truck arrived
    gt = grid(4, F, 11, F, 4, 10)
    warped = grid(F, 4, 11, F, 4, 11)
    pred = grid(4, 4, 11, 11, F, 4)
    changed = changed_voxels(gt, warped)
    assert changed.dtype == bool and changed.ravel().tolist() == [1, 1, 0, 0, 0, 1]
    # 0: occupied both -> tp; 1: gt free, pred car -> fp; 5: truck vs car is still a hit
    # (geometry); 3 (fp) and 4 (fn) are not changed voxels and do not count
    counts = changed_counts(pred, gt, changed)
    assert counts.dtype == np.int64 and counts.tolist() == [2, 1, 0]
    assert iou_from_counts(*counts) == pytest.approx(2 / 3)
    assert changed_counts(pred[changed], gt[changed], None).tolist() == [2, 1, 0]  # pre-gathered
    # a mask intersects: hiding voxel 0 leaves tp 1, fp 1
    mask = np.array([0, 1, 1, 1, 1, 1], bool).reshape(gt.shape)
    masked = changed_voxels(gt, warped, mask)
    assert masked.ravel().tolist() == [0, 1, 0, 0, 0, 1]
    assert changed_counts(pred, gt, masked).tolist() == [1, 1, 0]
    # torch gives the same on its device; a perfect prediction scores 100 %
    t = changed_voxels(torch.from_numpy(gt), torch.from_numpy(warped), torch.from_numpy(mask))
    assert isinstance(t, torch.Tensor) and t.numpy().tolist() == masked.tolist()
    assert changed_counts(torch.from_numpy(pred), torch.from_numpy(gt), t).tolist() == [1, 1, 0]
    assert iou_from_counts(*changed_counts(gt, gt, changed)) == 1.0
    with pytest.raises(ValueError, match='warped present shape'):
        changed_voxels(gt, grid(4))
