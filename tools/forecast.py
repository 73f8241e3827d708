"""Forecast future occupancy and write it in the layout tools/eval_occ.py scores.

    python tools/forecast.py CONFIG CHECKPOINT --out OUT [--data-root DIR --infos PKL]
        [--protocol occworld|dome|i2world] [--mask none|camera|lidar] [--num-future N]

For every window of the protocol (or those of ``--windows``) it encodes the past
frames, samples the future latents under the recorded ego trajectory (rolled out
autoregressively past 6 frames with ``--num-future``), decodes them and writes

    OUT/<scene_name>/<token>.npz          semantics (T_f, X, Y, Z) uint8, future frames in
                                          order; <token> = the present (last past) frame
    OUT/<scene_name>/<token>.png          ground truth (top) | forecast (bottom) render
    OUT/metrics.json, OUT/metrics.md      the report: IoU / mIoU per future frame and per
                                          class, model beside copy-last and warp

and prints the tables. The forecasts are those of ``tools/test.py`` (same seeds per
window), and ``tools/eval_occ.py --pred-root OUT`` scores the files to the same numbers.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from mmengine.config import Config, DictAction

from occwm.evaluation.protocols import MASKS, PROTOCOLS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('checkpoint', help='forecaster checkpoint (.pth)')
    parser.add_argument('--data-root', help='folder holding gts/ (default: the config test set)')
    parser.add_argument('--infos', help='info pkl (default: the config test set)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS),
                        help="windows and metric (default: the config's, occworld)")
    parser.add_argument('--mask', choices=MASKS, help='visibility mask of the metric')
    parser.add_argument('--num-future', type=int,
                        help='future frames (default 6; more: autoregressive rollout)')
    parser.add_argument('--windows', type=int, nargs='+', help='window indices (default: all)')
    parser.add_argument('--steps', type=int, help='sampler steps (default: the config)')
    parser.add_argument('--cfg-scale', type=float, help='trajectory CFG scale (default: the config)')
    parser.add_argument('--seed', type=int, help='seed of the sampled noise (default: the '
                                                 "config's predict_seed, as tools/test.py)")
    parser.add_argument('--no-render', action='store_true', help='skip the PNG renders')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.registry import init_default_scope
    from tqdm import tqdm

    import occwm.compat  # noqa: F401
    from occwm.evaluation.protocols import apply_protocol
    from occwm.evaluation.report import write_report
    from occwm.io import atomic_path
    from occwm.registry import DATASETS, METRICS

    cfg = Config.fromfile(args.config)
    preset = apply_protocol(cfg, args.protocol, args.mask, num_future=args.num_future)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'occwm'))
    import occwm.data  # noqa: F401  (registers datasets and transforms)
    import occwm.evaluation  # noqa: F401
    from occwm.models.forecaster import init_forecaster

    ds_cfg = cfg.test_dataloader.dataset.copy()
    if args.data_root:
        ds_cfg.data_root = args.data_root
    if args.infos:
        ds_cfg.ann_file = os.path.abspath(args.infos)
    dataset = DATASETS.build(ds_cfg)
    if len(dataset) == 0:
        sys.exit(f'error: {ds_cfg.ann_file} has no {preset["name"]} window of '
                 f'{dataset.window_len} frames (occworld needs scenes of 12 frames, dome 10, '
                 f'i2world 11; try --protocol i2world)')
    windows = args.windows if args.windows is not None else range(len(dataset))
    bad = [i for i in windows if not 0 <= i < len(dataset)]
    if bad:
        sys.exit(f'error: windows {bad} out of range: the set has {len(dataset)} windows')
    try:
        model = init_forecaster(dict(cfg.model, decode_present=preset['present_frame']),
                                args.checkpoint, args.device)
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    if args.steps:
        model.sampler['steps'] = args.steps
    if args.cfg_scale is not None:
        model.sampler['cfg_scale'] = args.cfg_scale
    if args.seed is not None:
        model.predict_seed = args.seed
    metric = METRICS.build(cfg.test_evaluator)
    times, written = [], []
    for i in tqdm(windows, desc='forecast'):
        sample = dataset[i]
        meta = sample['data_samples']
        batch = dict(inputs={k: v[None].to(args.device) for k, v in sample['inputs'].items()},
                     data_samples=[meta])
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model(batch['inputs'], batch['data_samples'], mode='predict')
        times.append(time.perf_counter() - t0)
        metric.process(batch, out)
        pred = out[0]['pred_occ'].numpy()  # (T_f, X, Y, Z) uint8
        P = meta['num_past']
        base = os.path.join(args.out, meta['scene_name'], meta['tokens'][P - 1])
        with atomic_path(base + '.npz') as tmp, open(tmp, 'wb') as f:
            np.savez_compressed(f, semantics=pred.astype(np.uint8))
        written.append(base + '.npz')
        if not args.no_render:
            from occwm.visualization.render import render_comparison
            occ = sample['inputs']['occ']
            render_comparison(occ[P:].numpy(), pred, out_path=base + '.png',
                              past=occ[:P].numpy(), traj=sample['inputs']['traj'][P - 1:].numpy())
    metric.compute_metrics(metric.results)
    json_path, md_path = (os.path.join(args.out, f'metrics.{e}') for e in ('json', 'md'))
    write_report(metric.last_report, json_path, md_path,
                 extra=dict(seconds_per_forecast=float(np.mean(times)), device=args.device))
    print(f'{len(written)} forecasts written under {os.path.abspath(args.out)} '
          f'({np.mean(times):.2f} s per forecast on {args.device}); report in {json_path} '
          f'and {md_path}')


if __name__ == '__main__':
    main()
