"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [options].

Prints IoU and mIoU per horizon (OccWorld protocol: 1 s / 2 s / 3 s = future frames
2, 4, 6, true/false positives summed over all windows) for the model and the
copy-last-frame baseline; with configs/vae.py, the tokenizer's reconstruction
IoU / mIoU.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import occwm.compat  # noqa: E402,F401


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate an occwm checkpoint.')
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out-json', help='also write the metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_dataloader.dataset.stride=1')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed evaluation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint} not found')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'tokenizer_ckpt' in cfg.model:
        cfg.model.tokenizer_ckpt = None  # the forecaster checkpoint holds the tokenizer too
    cfg.work_dir = args.work_dir or os.path.join(
        './work_dirs', os.path.splitext(os.path.basename(args.config))[0] + '_test')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out_json:
        from occwm.data.layout import atomic_path
        with atomic_path(args.out_json) as tmp, open(tmp, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=1)
        print(f'metrics written to {args.out_json}')


if __name__ == '__main__':
    main()
