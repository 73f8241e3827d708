"""Scoring forecasts from files (occwm.evaluation.from_files, tools/eval_occ.py) against
second, straightforward implementations of each protocol written from its text
(/work/notes/eval_protocols.md: OccWorld metric_util, DOME eval_metric, I²-World
Metric_mIoU), on random predictions over tiny scenes."""
import json
import os
import pickle

import numpy as np
import pytest

from occwm.io import save_labels
from occwm.engine.evaluate import evaluate_files
from occwm.grid import OccGrid

GRID = OccGrid(point_cloud_range=(-1.6, -1.6, 0.0, 1.6, 1.6, 0.8), voxel_size=0.4)  # 8x8x2
FREE, C = 17, 17
LENGTHS = (13, 14, 10, 9, 11)  # windows: occworld 1+2 = 3, dome 4, i2world 3+4+1 = 8


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Random ground truth and random predictions (one file per frame as present)."""
    root = tmp_path_factory.mktemp('evalocc')
    rng = np.random.default_rng(0)
    gt_classes = np.array([0, 4, 7, 11, 15, FREE])  # 7 rare and never predicted
    pred_classes = np.array([0, 3, 4, 11, 15, 16, FREE])  # 3 and 16 never in the gt
    scenes, infos = {}, {}
    for s, L in enumerate(LENGTHS):
        name = f'scene-{s:04d}'
        frames, fi = [], []
        for k in range(L):
            sem = rng.choice(gt_classes, GRID.shape, p=[.1, .2, .02, .3, .1, .28]).astype(np.uint8)
            cam = (rng.random(GRID.shape) < 0.7).astype(np.uint8)
            lidar = (rng.random(GRID.shape) < 0.6).astype(np.uint8)
            token = f'{name}-tok{k:02d}'
            save_labels(str(root / 'gts' / name / token / 'labels.npz'), sem, lidar, cam, GRID)
            frames.append(dict(token=token, semantics=sem, mask_camera=cam, mask_lidar=lidar))
            yaw = 0.05 * k
            fi.append(dict(  # only the fields the brief calls enough
                token=token, timestamp=1_600_000_000_000_000 + 500_000 * k + s * 10 ** 9,
                ego2global_translation=[0.3 * k, 0.02 * k * k, 0.0],
                ego2global_rotation=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)],
                lidar2ego_translation=[0.9, 0.0, 1.8], lidar2ego_rotation=[1.0, 0, 0, 0],
                gt_ego_fut_trajs=np.zeros((6, 2), np.float32),
                gt_ego_his_trajs=np.zeros((2, 2), np.float32)))
        scenes[name], infos[name] = frames, fi
    with open(root / 'infos.pkl', 'wb') as f:
        pickle.dump(dict(metadata=dict(version='test'), infos=infos), f)
    preds = {}
    for name, frames in scenes.items():
        L = len(frames)
        for p in range(L):
            fut = np.stack([frames[min(p + t, L - 1)]['semantics'] for t in range(1, 7)])
            rand = rng.choice(pred_classes, fut.shape).astype(np.uint8)
            pred = np.where(rng.random(fut.shape) < 0.5, fut, rand)
            pred[pred == 7] = 15
            preds[(name, frames[p]['token'])] = pred
            path = root / 'pred' / name / f"{frames[p]['token']}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, semantics=pred)
    return dict(root=root, scenes=scenes, preds=preds)


# ----------------------------------------------------------------------------- references
def ref_occworld_metric(pairs, mask_key):
    """OccWorld utils/metric_util.py multi_step_MeanIou, per time step: total_seen,
    total_correct, total_positive per class; IoU 1 when never seen; geometry: the same
    with class_indices=[1] on binarised labels. pairs: [(t, pred, gt_frame)]."""
    seen, correct, positive = (np.zeros((6, C + 1)) for _ in range(3))  # class 17 = geometry
    for t, pred, frame in pairs:
        gt = frame['semantics']
        if mask_key:
            keep = frame[mask_key].astype(bool)
            pred, gt = pred[keep], gt[keep]
        for c in range(C):
            seen[t, c] += np.sum(gt == c)
            correct[t, c] += np.sum((gt == c) & (pred == c))
            positive[t, c] += np.sum(pred == c)
        gb, pb = (gt != FREE).astype(int), (pred != FREE).astype(int)
        seen[t, C] += np.sum(gb == 1)
        correct[t, C] += np.sum((gb == 1) & (pb == 1))
        positive[t, C] += np.sum(pb == 1)
    ious = np.where(seen == 0, 1.0, correct / np.maximum(seen + positive - correct, 1))
    return 100 * ious[:, :C].mean(1), 100 * ious[:, C], 100 * ious[:, :C]


def ref_occworld(data, mask_key):
    """OccWorld nuScenesSceneDatasetLidarTraverse: scene_lens = L - 12, idx 0 .. L-13,
    past idx..idx+4 (present idx+4), future idx+5..idx+10."""
    pairs, n = [], 0
    for name, frames in data['scenes'].items():
        for idx in range(len(frames) - 12):
            pred = data['preds'][(name, frames[idx + 4]['token'])]
            pairs += [(t, pred[t], frames[idx + 5 + t]) for t in range(6)]
            n += 1
    return n, ref_occworld_metric(pairs, mask_key)


def ref_dome(data, mask_key):
    """DOME test mode: the first window of each scene, n_conds = 4 (present frame 3),
    future frames 4..9; OccWorld's metric."""
    pairs, n = [], 0
    for name, frames in data['scenes'].items():
        if len(frames) >= 10:
            pred = data['preds'][(name, frames[3]['token'])]
            pairs += [(t, pred[t], frames[4 + t]) for t in range(6)]
            n += 1
    return n, ref_occworld_metric(pairs, mask_key)


def ref_i2world(data, mask_key):
    """I²-World: one sample per frame; 4 previous and 6 future indices clamped to the
    scene; samples whose occ_index repeats are dropped; Metric_mIoU: 18x18 hist per
    future time, per_class_iu = diag / (row + col - diag), mIoU[mIoU == 0] = nan,
    nanmean over 17 classes; geometry from the 2x2 hist of binarised labels."""
    hist = np.zeros((6, 18, 18))
    geo = np.zeros((6, 2, 2))
    n = 0
    for name, frames in data['scenes'].items():
        L = len(frames)
        for p in range(L):
            occ_index = [min(max(i, 0), L - 1) for i in range(p - 4, p + 7)]
            if len(set(occ_index)) != len(occ_index):
                continue
            n += 1
            pred_all = data['preds'][(name, frames[p]['token'])]
            for t in range(6):
                frame = frames[occ_index[5 + t]]
                gt, pred = frame['semantics'].astype(int), pred_all[t].astype(int)
                if mask_key:
                    keep = frame[mask_key].astype(bool)
                    gt, pred = gt[keep], pred[keep]
                hist[t] += np.bincount(18 * gt.ravel() + pred.ravel(), minlength=324).reshape(18, 18)
                gb, pb = (gt != FREE).astype(int), (pred != FREE).astype(int)
                geo[t] += np.bincount(2 * gb.ravel() + pb.ravel(), minlength=4).reshape(2, 2)
    with np.errstate(divide='ignore', invalid='ignore'):
        per_class = np.diagonal(hist, axis1=1, axis2=2) / (hist.sum(2) + hist.sum(1)
                                                           - np.diagonal(hist, axis1=1, axis2=2))
        geo_iou = geo[:, 1, 1] / (geo[:, 1, 1] + geo[:, 1, 0] + geo[:, 0, 1])
    miou = per_class[:, :C].copy()
    miou[miou == 0] = np.nan
    return n, (100 * np.nanmean(miou, 1), 100 * geo_iou, 100 * per_class[:, :C])


REFERENCES = dict(occworld=ref_occworld, dome=ref_dome, i2world=ref_i2world)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize('mask', [None, 'camera', 'lidar'])
@pytest.mark.parametrize('protocol', ['occworld', 'dome', 'i2world'])
def test_matches_the_reference_implementation(data, protocol, mask):
    root = data['root']
    report = evaluate_files(str(root / 'infos.pkl'), str(root / 'gts'), str(root / 'pred'),
                            protocol, mask, grid=GRID)
    n, (miou, iou, per_class) = REFERENCES[protocol](data, mask and f'mask_{mask}')
    assert report['num_windows'] == n == {'occworld': 3, 'dome': 4, 'i2world': 8}[protocol]
    np.testing.assert_allclose(report['miou_per_frame'], miou, rtol=1e-12)
    np.testing.assert_allclose(report['iou_per_frame'], iou, rtol=1e-12)
    assert report['miou_avg'] == pytest.approx((miou[1] + miou[3] + miou[5]) / 3, rel=1e-12)
    assert report['iou_avg'] == pytest.approx((iou[1] + iou[3] + iou[5]) / 3, rel=1e-12)
    ours = np.array([report['class_iou_per_frame'][c] for c in GRID.class_names[:C]]).T  # (6, 17)
    np.testing.assert_allclose(ours, per_class, rtol=1e-12)  # NaN where both are NaN
    # the rules differ where they should: absent classes
    if protocol == 'i2world':
        assert np.isnan(ours[:, 1]).all() and (ours[:, 3] == 0).all()  # barrier 0/0, bus 0
    else:
        assert (ours[:, 1] == 100).all() and (ours[:, 3] == 100).all()
    assert set(report['baselines']) == {'copy_last', 'warp'}


def test_copy_last_files_score_as_the_copy_last_baseline(data, tmp_path):
    root = data['root']
    for name, frames in data['scenes'].items():
        for f in frames:
            (tmp_path / name).mkdir(exist_ok=True)
            np.savez_compressed(tmp_path / name / f"{f['token']}.npz",
                                semantics=np.repeat(f['semantics'][None], 6, 0))
    report = evaluate_files(str(root / 'infos.pkl'), str(root / 'gts'), str(tmp_path),
                            'i2world', grid=GRID)
    assert report['miou_per_frame'] == report['baselines']['copy_last']['miou_per_frame']
    assert report['iou_per_frame'] == report['baselines']['copy_last']['iou_per_frame']


def test_missing_files_are_listed_or_skipped(data, tmp_path):
    root = data['root']
    pred = tmp_path / 'pred'
    for name in data['scenes']:
        (pred / name).mkdir(parents=True)
        for f in data['scenes'][name]:
            src = root / 'pred' / name / f"{f['token']}.npz"
            (pred / name / src.name).write_bytes(src.read_bytes())
    gone = pred / 'scene-0001' / 'scene-0001-tok04.npz'  # a window's present frame
    gone.unlink()
    args = (str(root / 'infos.pkl'), str(root / 'gts'), str(pred), 'occworld')
    with pytest.raises(FileNotFoundError, match=r'1 of 3 prediction files are missing') as e:
        evaluate_files(*args, grid=GRID)
    assert str(gone) in str(e.value) and '--allow-missing' in str(e.value)
    report = evaluate_files(*args, allow_missing=True, grid=GRID)
    assert report['num_windows'] == 2 and report['missing_windows'] == 1
    np.savez_compressed(pred / 'scene-0001' / 'scene-0001-tok05.npz',
                        semantics=np.zeros((5, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match=r'scene-0001-tok05.npz: semantics shape'):
        evaluate_files(*args, allow_missing=True, grid=GRID)


def test_tool_writes_json_and_markdown(data, tmp_path):
    from tools import eval_occ
    root = data['root']
    out_json, out_md = tmp_path / 'r.json', tmp_path / 'r.md'
    grid = ['--point-cloud-range', *map(str, GRID.point_cloud_range), '--voxel-size', '0.4']
    eval_occ.main(['--infos', str(root / 'infos.pkl'), '--gt-root', str(root / 'gts'),
                   '--pred-root', str(root / 'pred'), '--protocol', 'dome', '--mask', 'camera',
                   '--out-json', str(out_json), '--out-md', str(out_md), *grid])
    r = json.loads(out_json.read_text())
    for key in ('protocol', 'num_windows', 'miou_per_frame', 'iou_per_frame', 'miou_avg',
                'iou_avg', 'class_iou_per_frame', 'baselines'):
        assert key in r
    assert r['protocol'] == 'dome' and r['mask'] == 'camera' and r['num_windows'] == 4
    assert len(r['miou_per_frame']) == 6 and len(r['baselines']['warp']['iou_per_frame']) == 6
    assert r['frames'] == ['0.5s', '1s', '1.5s', '2s', '2.5s', '3s'] and r['avg_frames'] == [2, 4, 6]
    md = out_md.read_text()
    assert '## mIoU (%)' in md and '| warp |' in md and '## Per-class IoU (%): copy_last' in md
    with pytest.raises(SystemExit, match='does not exist'):
        eval_occ.main(['--infos', str(tmp_path / 'none.pkl'), '--gt-root', str(root / 'gts'),
                       '--pred-root', str(root / 'pred')])
    with pytest.raises(SystemExit, match='prediction files are missing'):
        eval_occ.main(['--infos', str(root / 'infos.pkl'), '--gt-root', str(root / 'gts'),
                       '--pred-root', str(tmp_path), *grid])
    with pytest.raises(SystemExit, match='grid shape'):  # 8x8x2 files on the Occ3D grid
        eval_occ.main(['--infos', str(root / 'infos.pkl'), '--gt-root', str(root / 'gts'),
                       '--pred-root', str(root / 'pred')])
    assert os.path.isfile(out_md)
