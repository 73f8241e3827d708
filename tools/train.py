"""Train a model from an mmengine config: python tools/train.py CONFIG [options].

Examples:
    python tools/train.py configs/vae.py            # the tokenizer
    python tools/train.py configs/occ.py            # the forecaster (needs the tokenizer)
    python tools/train.py configs/occ.py --resume   # resume from work_dir's last checkpoint
    torchrun --nproc_per_node 8 tools/train.py configs/occ_nuscenes.py --launcher pytorch
"""
import argparse
import os
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import occwm.compat  # noqa: F401  (spconv CPU shim, safe checkpoint loading)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an occwm model with mmengine.')
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from this checkpoint, or with no value from the '
                             'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed training')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args) -> Config:
    """The config of ``args`` with the command-line overrides applied."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join('./work_dirs', os.path.splitext(os.path.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    try:
        runner = Runner.from_cfg(cfg)
    except FileNotFoundError as e:  # e.g. the forecaster's tokenizer checkpoint
        sys.exit(f'error: {e}')
    runner.train()
    print(f'checkpoints and logs written to {os.path.abspath(cfg.work_dir)}')


if __name__ == '__main__':
    main()
