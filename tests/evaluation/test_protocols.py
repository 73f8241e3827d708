"""The three published protocols (occwm.evaluation.protocols) and the baselines, with
hand-computed expected values on tiny grids.

Labels: 3 bus, 4 car, 11 driveable_surface, 17 free.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config

from occwm.evaluation import OccMetric, apply_protocol, num_windows
from occwm.window import OccWindow, window_starts
from occwm.evaluation.baselines import baseline_forecasts, copy_last, warp_static
from occwm.grid import OccGrid

F = 17


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize('L', [0, 5, 9, 10, 11, 12, 13, 20, 40])
def test_window_counts_per_scene_length(L):
    assert num_windows(L, 'occworld') == max(0, L - 12)  # 12 frames loaded, 11 scored
    assert num_windows(L, 'dome') == (1 if L >= 10 else 0)  # the first window of a scene
    assert num_windows(L, 'i2world') == max(0, L - 10)  # present p: p - 4 >= 0, p + 6 <= L - 1


def test_window_starts_rules():
    assert window_starts(14, 11, 'occworld') == [0, 1]  # OccWorld: idx 0 .. L - 13
    assert window_starts(14, 11, 'all') == [0, 1, 2, 3]
    assert window_starts(13, 10, 'first') == [0]
    assert window_starts(20, 11, 'all', stride=4) == [0, 4, 8]
    with pytest.raises(ValueError, match='window_rule'):
        window_starts(13, 11, 'random')


def test_i2world_windows_are_the_frames_without_clamped_duplicates():
    # I²-World: one sample per frame p, indices p-4..p+6 clamped to the scene, samples
    # with repeated indices dropped; the survivors are our 'all' windows (start p - 4).
    for L in (9, 11, 16):
        kept = [p - 4 for p in range(L)
                if len({min(max(i, 0), L - 1) for i in range(p - 4, p + 7)}) == 11]
        assert kept == window_starts(L, 11, 'all')


# ----------------------------------------------------------------------------- absent rules
def one_frame(labels, shape=(1, 2, 2, 1)):
    return torch.tensor(labels, dtype=torch.uint8).reshape(shape)


# 2x2x1: gt = [car, car, free, road], pred = [car, free, car, bus]
GT = one_frame([4, 4, F, 11])
PRED = one_frame([4, F, 4, 3])


def evaluate(protocol, pred=PRED, gt=GT, **kwargs):
    metric = OccMetric(protocol=protocol, avg_frames=(1,), **kwargs)
    metric.process(None, [dict(pred_occ=pred, gt_occ=gt)])
    return metric.evaluate(1), metric.last_report


def test_absent_class_rules_by_hand():
    # car: tp 1 (voxel 0), fn 1 (voxel 1 -> free), fp 1 (voxel 2) -> 1/3
    # road: tp 0, fn 1 (-> bus) -> 0; bus: absent from gt, predicted once -> 0 / 1 = 0
    # geometry: gt occupied {0, 1, 3}, pred occupied {0, 2, 3} -> tp 2, fp 1, fn 1 -> 1/2
    for protocol in ('occworld', 'dome'):
        out, report = evaluate(protocol)
        # OccWorld / DOME: a class never seen in the gt scores 1, predicted (bus) or not
        assert out['mIoU@0.5s'] == pytest.approx(100 * (1 / 3 + 0 + 1 + 14) / 17)
        assert report['class_iou_per_frame']['bus'] == [100.0]
        assert out['IoU@0.5s'] == pytest.approx(50.0)
    out, report = evaluate('i2world', present_frame=False)
    # I²-World: road (0) and bus (0) and the 14 undefined classes are dropped: only car
    assert out['mIoU@0.5s'] == pytest.approx(100 / 3)
    assert report['class_iou_per_frame']['bus'] == [0.0]
    assert math.isnan(report['class_iou_per_frame']['truck'][0])
    assert out['IoU@0.5s'] == pytest.approx(50.0)


def test_all_free_ground_truth_geometry():
    gt, pred = one_frame([F, F, F, F]), one_frame([F, F, F, 4])
    out, _ = evaluate('occworld', pred, gt)
    assert out['IoU@0.5s'] == 100.0  # OccWorld: total_seen == 0 -> 1
    out, _ = evaluate('i2world', pred, gt, present_frame=False)
    assert out['IoU@0.5s'] == 0.0  # 0 / (0 + 1 + 0)
    assert math.isnan(out['mIoU@0.5s'])  # every class dropped


# ----------------------------------------------------------------------------- masks
def test_masks_from_the_window_meta():
    # window of 3 frames: present + 2 future; camera mask hides voxel 1 (the missed car)
    # and voxel 3 at future frame 1, nothing at frame 2
    gt = torch.cat([GT, GT])  # (2, 2, 2, 1)
    pred = torch.cat([PRED, PRED])
    cam = torch.ones(3, 2, 2, 1, dtype=torch.uint8)
    cam[1].view(-1)[[1, 3]] = 0
    lidar = torch.zeros(3, 2, 2, 1, dtype=torch.uint8)
    lidar[:, 0, 0] = 1  # only the hit car voxel
    meta = OccWindow(torch.cat([GT[:1], gt]), torch.zeros(3, 3), 1, mask_camera=cam,
                     mask_lidar=lidar)
    for mask, car1, iou1 in (('camera', 1 / 2, 1 / 2), ('lidar', 1.0, 1.0), (None, 1 / 3, 1 / 2)):
        metric = OccMetric(protocol='occworld', mask=mask, avg_frames=(1, 2), baselines=())
        metric.process(dict(data_samples=[meta]), [dict(pred_occ=pred, gt_occ=gt)])
        out = metric.evaluate(1)
        r = metric.last_report
        # camera, frame 1: car tp 1, fp 1 (voxel 2), fn 0 -> 1/2; geometry tp 1, fp 1 -> 1/2
        assert r['class_iou_per_frame']['car'][0] == pytest.approx(100 * car1)
        assert r['iou_per_frame'][0] == pytest.approx(100 * iou1)
        assert r['mask'] == (mask or 'none')
        assert 'IoU@1s' in out
    metric = OccMetric(mask='lidar', avg_frames=(1,))
    with pytest.raises(ValueError, match='mask_lidar'):
        metric.process(None, [dict(pred_occ=pred, gt_occ=gt)])


def test_i2world_present_frame_is_reported_apart():
    gt = torch.cat([GT] * 6)
    metric = OccMetric(protocol='i2world')
    metric.process(None, [dict(pred_occ=gt, gt_occ=gt, pred_present=PRED[0], gt_present=GT[0],
                               baselines=dict(copy_last=gt))])
    out = metric.evaluate(1)
    assert out['mIoU@0s'] == pytest.approx(100 / 3) and out['IoU@0s'] == pytest.approx(50.0)
    assert out['copy_last/mIoU@0s'] == 100.0  # a baseline is its own present frame
    assert out['mIoU_avg'] == 100.0  # 0 s is not in the average
    with pytest.raises(ValueError, match='pred_present'):
        OccMetric(protocol='i2world').process(None, [dict(pred_occ=gt, gt_occ=gt)])


# ----------------------------------------------------------------------------- baselines
GRID = OccGrid(point_cloud_range=(-2.0, -2.0, 0.0, 2.0, 2.0, 0.8), voxel_size=0.4)  # 10x10x2


def block_scene():
    occ = np.full(GRID.shape, F, np.uint8)
    occ[6, 3, 0] = 4  # a car at x = 0.6 m, y = -0.6 m (voxel centres), z layer 0
    occ[:, :, 1] = 11
    return occ


def test_copy_last_repeats_the_present():
    occ = block_scene()
    out = copy_last(occ, 3)
    assert out.shape == (3, 10, 10, 2) and out.dtype == torch.uint8
    assert all(torch.equal(out[t], torch.from_numpy(occ)) for t in range(3))


def test_warp_moves_a_static_block_by_the_expected_voxels():
    occ = block_scene()
    poses = torch.tensor([[0.0, 0.0, 0.0],        # present pose: unchanged
                          [0.8, 0.0, 0.0],        # 2 voxels forward: the car 2 voxels back
                          [0.8, 0.4, 0.0],        # and 1 voxel left: the car 1 voxel right
                          [0.0, 0.0, math.pi / 2]])  # turned left 90 deg about the origin
    out = warp_static(occ, poses, GRID)
    assert out.shape == (4, 10, 10, 2)
    assert torch.equal(out[0], torch.from_numpy(occ))
    for t, (i, j) in zip((1, 2, 3), ((4, 3), (4, 2), (3, 3))):
        cars = torch.nonzero(out[t, :, :, 0] == 4).tolist()
        assert cars == [[i, j]], (t, cars)
    # turn: the car at (x, y) = (0.6, -0.6) is at (-0.6, -0.6) in the new frame -> voxel (3, 3)
    # voxels with no source are free: 2 voxels forward leaves the last 2 x rows empty
    assert (out[1, 8:] == F).all() and (out[1, :8, :, 1] == 11).all()
    # 1 voxel left as well: the last y column is empty too
    assert (out[2, :, 9] == F).all() and (out[2, :8, :9, 1] == 11).all()
    base = baseline_forecasts(occ, poses[1:], GRID)
    assert list(base) == ['copy_last', 'warp'] and torch.equal(base['warp'], out[1:])


# ----------------------------------------------------------------------------- configs
def test_apply_protocol_sets_windows_metric_and_masks():
    cfg = Config(dict(
        test_dataloader=dict(dataset=dict(type='OccForecastDataset', num_past=5, num_future=6,
                                          stride=3, pipeline=[dict(type='LoadOccWindow')])),
        test_evaluator=dict(type='OccMetric')))
    preset = apply_protocol(cfg, 'dome', 'camera')
    ds = cfg.test_dataloader.dataset
    assert (ds.num_past, ds.num_future, ds.window_rule, ds.stride) == (4, 6, 'first', 1)
    assert ds.pipeline[0]['with_masks'] is True
    assert cfg.test_evaluator.protocol == 'dome' and cfg.test_evaluator.mask == 'camera'
    assert preset['absent_class_iou'] == 1.0
    apply_protocol(cfg, None, 'none', num_future=12)  # keeps the protocol, drops the mask
    assert cfg.test_evaluator.protocol == 'dome' and cfg.test_evaluator.mask is None
    assert ds.num_future == 12
    with pytest.raises(ValueError, match='unknown evaluation protocol'):
        apply_protocol(cfg, 'occ3d')


# ----------------------------------------------------------------------------- the model under a protocol
def fake_forecaster():
    from tests.models.test_forecaster import build  # registers the fake tokenizer; P = TF = 3
    torch.manual_seed(0)
    return build().eval()


def test_rollout_rolls_the_window_forward_with_forecast_frames():
    model = fake_forecaster()
    P, TF = model.num_past, model.num_future
    calls = []

    def stub(ctx, traj, **kwargs):  # frame ids in voxel (0, 0, 0); new ids 50, 51, ...
        calls.append((ctx[0, :, 0, 0, 0].tolist(), traj[0].clone()))
        out = torch.zeros(1, TF, *ctx.shape[2:], dtype=torch.uint8)
        out[0, :, 0, 0, 0] = torch.arange(TF) + 50 + 10 * (len(calls) - 1)
        return out
    model.forecast = stub
    past = torch.zeros(1, P, 16, 16, 2, dtype=torch.uint8)
    past[0, :, 0, 0, 0] = torch.arange(P)  # ids 0, 1, 2 (2 = present)
    traj = torch.zeros(1, P + 7, 3)
    traj[0, :, 0] = torch.arange(P + 7) - (P - 1.0)  # 1 m per frame along x
    out = model.rollout(past, traj, 7)
    assert out.shape == (1, 7, 16, 16, 2)
    # step 1: frames 1..3 from the past; step 2: 4..6 from frames 1..3; step 3 is shifted
    # back to end at frame 7: context frames 2..4, of its frames 5..7 only 7 is kept
    assert [c[0] for c in calls] == [[0, 1, 2], [50, 51, 52], [51, 52, 60]]
    assert out[0, :, 0, 0, 0].tolist() == [50, 51, 52, 60, 61, 62, 72]
    for _, t in calls:  # the trajectory in each step's present frame: -2, -1, 0, 1, 2, 3 m
        torch.testing.assert_close(t[:, 0], torch.arange(P + TF) - (P - 1.0))
    # within the trained horizon rollout is forecast
    model = fake_forecaster()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    torch.testing.assert_close(model.rollout(past, traj[:, :P + TF], TF, generator=g()),
                               model.forecast(past, traj[:, :P + TF], generator=g()))


def test_predict_follows_the_windows_and_the_metric_scores_the_baselines():
    from tests.models.test_forecaster import toy_batch
    model = fake_forecaster()  # num_past 3
    batch = toy_batch(2, torch.Generator().manual_seed(0))  # T = 6
    wins = [OccWindow(batch['occ'][i], batch['traj'][i], 2, scene_name='s',
                      tokens=[f'w{i}-{k}' for k in range(6)]) for i in range(2)]
    with pytest.raises(ValueError, match='PackOccInputs'):  # 2 past frames for a 3-frame model
        model(batch, wins, mode='predict')
    wins = [w.with_num_past(3) for w in wins]  # the data side pads: the oldest frame repeated
    assert wins[0].num_past == 3 and wins[0].present_token == 'w0-1'
    assert torch.equal(wins[0].occ[0], wins[0].occ[1]) and torch.equal(wins[0].present, batch['occ'][0, 1])
    padded = dict(occ=torch.stack([w.occ for w in wins]), traj=torch.stack([w.traj for w in wins]))
    out = model(padded, wins, mode='predict')  # 3 past, 4 future (rolled out past 3)
    for res in out:
        assert set(res) == {'pred_occ'} and res['pred_occ'].shape == (4, 16, 16, 2)
    # each window's noise is seeded by its present token: alone == in a batch
    alone = model({k: v[1:] for k, v in padded.items()}, wins[1:], mode='predict')
    assert torch.equal(alone[0]['pred_occ'], out[1]['pred_occ'])
    model.decode_present = True
    res = model(padded, wins, mode='predict')[0]
    assert res['pred_present'].shape == (16, 16, 2)
    # the metric takes the ground truth and the baselines from the windows
    grid = dict(point_cloud_range=(-3.2, -3.2, 0.0, 3.2, 3.2, 0.8), voxel_size=0.4)
    metric = OccMetric(protocol='i2world', avg_frames=(1, 2, 4), grid=grid)
    metric.process(dict(data_samples=wins), model(padded, wins, mode='predict'))
    metric.evaluate(2)
    r = metric.last_report
    assert list(r['baselines']) == ['copy_last', 'warp']
    copy = OccMetric(protocol='i2world', avg_frames=(1, 2, 4), grid=grid, baselines=())
    copy.process(dict(data_samples=wins),
                 [dict(pred_occ=w.present[None].expand(4, -1, -1, -1), pred_present=w.present)
                  for w in wins])
    copy.evaluate(2)
    np.testing.assert_equal(copy.last_report['miou_per_frame'],
                            r['baselines']['copy_last']['miou_per_frame'])


LENGTHS = (13, 14, 10, 9, 11)


@pytest.fixture(scope='module')
def tiny_scenes(tmp_path_factory):
    from tests.helpers import write_tiny_scenes
    root = tmp_path_factory.mktemp('tiny')
    return root, write_tiny_scenes(root, lengths=LENGTHS)


@pytest.mark.parametrize('protocol', ['occworld', 'dome', 'i2world'])
def test_dataset_windows_follow_the_protocol(protocol, tiny_scenes):
    from occwm.data import OccForecastDataset
    from occwm.engine.evaluate import build_test_set, files_config
    tmp_path, ann = tiny_scenes
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='OccForecastDataset', ann_file=ann, data_root=str(tmp_path), pipeline=[])),
        test_evaluator=dict(type='OccMetric')))
    apply_protocol(cfg, protocol)
    ds_cfg = dict(cfg.test_dataloader.dataset)
    ds_cfg.pop('type')
    ds = OccForecastDataset(**ds_cfg)
    assert len(ds) == sum(num_windows(L, protocol) for L in LENGTHS)
    presents = [(d['scene_name'], d['tokens'][d['num_past'] - 1]) for d in
                (ds.get_data_info(i) for i in range(len(ds)))]
    scored = build_test_set(files_config(ann, str(tmp_path / 'gts'), 'out', protocol))
    files = [(d['scene_name'], d['tokens'][d['num_past'] - 1]) for d in
             (scored.get_data_info(i) for i in range(len(scored)))]
    assert presents == files  # the same windows as tools/eval_occ.py expects files for
    if protocol == 'dome':
        assert ds.get_data_info(0)['num_past'] == 4 and presents[0][1] == 'tiny-0-003'
    with pytest.raises(ValueError, match='window_rule'):
        OccForecastDataset(ann_file=ann, data_root=str(tmp_path), window_rule='last')


@pytest.mark.parametrize('config', ['occ.py', 'occ_nuscenes.py'])
def test_config_test_set_is_the_occworld_protocol(config, tiny_scenes):
    from mmengine.registry import init_default_scope

    from occwm.registry import DATASETS, METRICS
    from tests.conftest import REPO
    init_default_scope('occwm')
    cfg = Config.fromfile(f'{REPO}/configs/{config}')
    tmp_path, ann = tiny_scenes
    ds = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(tmp_path), ann_file=ann,
                             pipeline=[]))
    assert len(ds) == sum(num_windows(L, 'occworld') for L in LENGTHS)
    metric = METRICS.build(cfg.test_evaluator)
    assert (metric.protocol, metric.absent_class_iou, metric.mask) == ('occworld', 1.0, None)
