"""Distributed evaluation gives the numbers of one process: two CPU processes (gloo)
each score their share of the windows (mmengine's DefaultSampler, padded), and
``BaseMetric.evaluate`` collects the per-window counts (``collect_results``) on rank 0."""
import pickle
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from occwm.evaluation import OccMetric
from occwm.window import OccWindow

N_WINDOWS = 5  # odd: the sampler pads rank 1 with a repeated window, which collect drops
SHAPE = (6, 6, 6, 2)  # (T_f, X, Y, Z)


def make_windows(seed=0):
    """Random windows: samples (pred, gt, baselines, present frame) and metas (masks)."""
    rng = np.random.default_rng(seed)
    samples, metas = [], []
    for _ in range(N_WINDOWS):
        gt = rng.choice([0, 4, 11, 17], SHAPE).astype(np.uint8)
        pred = np.where(rng.random(SHAPE) < 0.6, gt, rng.choice([3, 4, 11, 17], SHAPE)).astype(np.uint8)
        samples.append(dict(pred_occ=torch.from_numpy(pred), gt_occ=torch.from_numpy(gt),
                            baselines=dict(copy_last=torch.from_numpy(gt[:1].repeat(6, 0))),
                            pred_present=torch.from_numpy(pred[0]), gt_present=torch.from_numpy(gt[0])))
        cam = torch.from_numpy((rng.random((7,) + SHAPE[1:]) < 0.8).astype(np.uint8))
        metas.append(OccWindow(torch.from_numpy(np.concatenate([gt[:1], gt])), torch.zeros(7, 3), 1,
                               mask_camera=cam))
    return samples, metas


def evaluate(indices, samples, metas):
    metric = OccMetric(protocol='i2world', mask='camera')
    for i in indices:
        metric.process(dict(data_samples=[metas[i]]), [samples[i]])
    return metric.evaluate(N_WINDOWS), metric.last_report


def _worker(rank, world_size, port, out_path):
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world_size)
    try:
        samples, metas = make_windows()
        sampler = DefaultSampler(list(range(N_WINDOWS)), shuffle=False)
        indices = list(sampler)
        metrics, report = evaluate(indices, samples, metas)
        if rank == 0:
            with open(out_path, 'wb') as f:
                pickle.dump(dict(metrics=metrics, report=report), f)
        else:
            assert indices == [1, 3, 0]  # rank 1's share, padded with window 0
            assert report is None  # only rank 0 computes
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one(tmp_path):
    out = tmp_path / 'rank0.pkl'
    mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    with open(out, 'rb') as f:
        dist_result = pickle.load(f)
    samples, metas = make_windows()
    metrics, report = evaluate(range(N_WINDOWS), samples, metas)
    assert dist_result['metrics'] == metrics  # exactly: sums of integer counts
    assert dist_result['report']['num_windows'] == report['num_windows'] == N_WINDOWS
    np.testing.assert_array_equal(dist_result['report']['miou_per_frame'], report['miou_per_frame'])
    assert dist_result['report']['class_iou_per_frame'].keys() == report['class_iou_per_frame'].keys()
    for c, v in report['class_iou_per_frame'].items():
        np.testing.assert_array_equal(dist_result['report']['class_iou_per_frame'][c], v)
    assert 'mIoU@0s' in metrics and 'copy_last/IoU_avg' in metrics
