"""Forecast future occupancy and write it in the Occ3D layout with renders.

    python tools/forecast.py CONFIG CHECKPOINT --data-root DIR --infos PKL --out OUT

For every window (or those of ``--windows``) it encodes the past frames, samples the
future latents under the recorded ego trajectory, decodes them and writes

    OUT/<scene_name>/<token>.npz          semantics (6, X, Y, Z) uint8, future frames in
                                          order; <token> = the present (last past) frame
    OUT/<scene_name>/<token>.png          ground truth (top) | forecast (bottom) render
    OUT/metrics.json                      IoU / mIoU per horizon, model and copy-last

and prints the metrics table.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from tqdm import tqdm  # noqa: E402

import occwm.compat  # noqa: E402,F401
from occwm.data.layout import atomic_path  # noqa: E402
from occwm.registry import DATASETS, METRICS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Forecast future occupancy with occwm.')
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('checkpoint', help='forecaster checkpoint (.pth)')
    parser.add_argument('--data-root', help='folder holding gts/ (default: the config test set)')
    parser.add_argument('--infos', help='scene-keyed info pkl (default: the config test set)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--windows', type=int, nargs='+', help='window indices (default: all)')
    parser.add_argument('--steps', type=int, help='sampler steps (default: the config)')
    parser.add_argument('--cfg-scale', type=float, help='trajectory CFG scale (default: the config)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the sampled noise')
    parser.add_argument('--no-render', action='store_true', help='skip the PNG renders')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'occwm'))
    import occwm.data  # noqa: F401  (registers datasets and transforms)
    import occwm.evaluation  # noqa: F401
    from occwm.models.forecaster import init_forecaster

    ds_cfg = cfg.test_dataloader.dataset.copy()
    ds_cfg.stride = 1
    if args.data_root:
        ds_cfg.data_root = args.data_root
    if args.infos:
        ds_cfg.ann_file = os.path.abspath(args.infos)
    dataset = DATASETS.build(ds_cfg)
    windows = args.windows if args.windows is not None else range(len(dataset))
    if len(dataset) == 0:
        sys.exit(f'error: {ds_cfg.ann_file} has no scene with {dataset.window_len} frames')
    try:
        model = init_forecaster(cfg.model, args.checkpoint, args.device)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    metric = METRICS.build(cfg.test_evaluator)
    num_past = dataset.num_past
    times, written = [], []
    for i in tqdm(windows, desc='forecast'):
        sample = dataset[i]
        occ = sample['inputs']['occ'][None].to(args.device)  # (1, T, X, Y, Z)
        traj = sample['inputs']['traj'][None].to(args.device)  # (1, T, 3)
        meta = sample['data_samples']
        gen = torch.Generator(device=args.device).manual_seed(args.seed + i)
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = model.forecast(occ[:, :num_past], traj, steps=args.steps,
                                  cfg_scale=args.cfg_scale, generator=gen)[0].cpu()  # (T_f, X, Y, Z)
        times.append(time.perf_counter() - t0)
        gt = sample['inputs']['occ'][num_past:]
        copy_last = sample['inputs']['occ'][num_past - 1:num_past].expand_as(gt)
        metric.process({}, [dict(pred_occ=pred, gt_occ=gt, baselines=dict(copy_last=copy_last))])

        token = meta['tokens'][num_past - 1]
        base = os.path.join(args.out, meta['scene_name'], token)
        with atomic_path(base + '.npz') as tmp, open(tmp, 'wb') as f:
            np.savez_compressed(f, semantics=pred.numpy().astype(np.uint8))
        written.append(base + '.npz')
        if not args.no_render:
            from occwm.visualization.render import render_comparison
            render_comparison(gt.numpy(), pred.numpy(), out_path=base + '.png',
                              past=sample['inputs']['occ'][:num_past].numpy(),
                              traj=sample['inputs']['traj'][num_past - 1:].numpy())
    results = metric.compute_metrics(metric.results)
    results['num_windows'] = len(times)
    results['seconds_per_forecast'] = float(np.mean(times))
    with atomic_path(os.path.join(args.out, 'metrics.json')) as tmp, open(tmp, 'w') as f:
        json.dump({k: float(v) for k, v in results.items()}, f, indent=1)
    print(f'{len(written)} forecasts written under {os.path.abspath(args.out)} '
          f'({np.mean(times):.2f} s per forecast on {args.device}); metrics in '
          f'{os.path.join(args.out, "metrics.json")}')


if __name__ == '__main__':
    main()
