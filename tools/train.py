"""Train a model from an mmengine config: python tools/train.py CONFIG [options].

Examples:
    python tools/train.py configs/vae.py            # the tokenizer
    python tools/train.py configs/occ.py            # the forecaster (needs the tokenizer)
    python tools/train.py configs/occ.py --resume   # resume from work_dir's last checkpoint
                                                    # (a damaged one: the newest intact one)
    torchrun --nproc_per_node 8 tools/train.py configs/occ_nuscenes.py --launcher pytorch
    torchrun --nproc_per_node 4 tools/train.py configs/occ_nuscenes.py --launcher pytorch \
        --auto-scale-lr   # learning rate x (4 x batch) / auto_scale_lr.base_batch_size

Threads: torch threads + dataloader workers fit in the CPUs this process may use
(occwm/runtime.py); OCCWM_THREADS=N plans for N CPUs, OCCWM_THREADS=off keeps torch's
defaults. The terminal shows progress and results; --verbose adds the config dump and
hook table (always in the log file under the work dir).
"""
from occwm.runtime import configure_threads

if __name__ == '__main__':  # first: OpenMP reads its settings when torch loads
    configure_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from mmengine.config import Config, DictAction  # noqa: E402

import occwm.compat  # noqa: F401, E402  (spconv CPU shim, safe checkpoint loading)
from occwm import runtime  # noqa: E402
from occwm.engine.checkpoint import resume_checkpoint  # noqa: E402
from occwm.engine.checks import check_data, check_tokenizer, load_config  # noqa: E402
from occwm.runtime import SetupError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        help='resume from this checkpoint, or with no value from the '
                             'latest checkpoint in the work dir; a damaged one is replaced '
                             'by the newest intact checkpoint in the work dir (said in one '
                             'line). The random states are restored: the run continues as '
                             'if never interrupted')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the learning rate linearly with the global batch (GPUs x "
                             "train_dataloader.batch_size) against the config's "
                             "auto_scale_lr.base_batch_size (mmengine's auto_scale_lr)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--verbose', action='store_true',
                        help='also print the config dump and hook table (always in the log file)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed training')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def setup_cpu_distributed(cfg: Config) -> None:
    """torchrun without CUDA (CPU processes, gloo): mmengine's ``init_dist`` selects a
    CUDA device and its DDP wrapper passes ``device_ids``, both CUDA-only, so start the
    process group here (gloo, torchrun's ``env://``; the Runner then skips its own) and
    let ``MMDistributedDataParallel`` run on the CPU (``device_ids=None``)."""
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if dist.get_rank() == 0:
        print(f'no CUDA: {dist.get_world_size()} CPU processes, gloo backend')


def build_config(args) -> Config:
    """The config of ``args`` with the command-line overrides applied.

    Raises:
        SetupError: the config file is not found.
    """
    cfg = load_config(args.config)
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
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and not _cuda():
        print('no CUDA: AmpOptimWrapper (CUDA only in mmengine) replaced by OptimWrapper, float32')
        cfg.optim_wrapper.type = 'OptimWrapper'
        for key in ('dtype', 'loss_scale', 'use_fsdp'):
            cfg.optim_wrapper.pop(key, None)
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr', {}).get('base_batch_size'):
            raise SetupError(f'--auto-scale-lr: {args.config} has no auto_scale_lr.base_batch_size '
                             f'(the global batch its learning rate is set for)')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.verbose:
        cfg.verbose = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    from occwm.engine.runner import build_runner
    try:
        cfg = build_config(args)
        check_data(cfg, ('train_dataloader', 'val_dataloader'))
        check_tokenizer(cfg)
        if args.resume:  # the requested (or last) checkpoint, else the newest intact one
            path, note = resume_checkpoint(cfg.work_dir, None if args.resume == 'auto'
                                           else args.resume)
            if path is None:
                print(f'--resume: no checkpoint in {cfg.work_dir} yet, training from the start')
                cfg.resume = False
            else:
                if note:
                    print(note)
                cfg.resume, cfg.load_from = True, path
        if args.launcher == 'pytorch' and not _cuda():
            setup_cpu_distributed(cfg)
        plan = runtime.fit_dataloaders(cfg)
        if plan is not None:
            print(plan.describe())
        runner = build_runner(cfg)
    except (runtime.SetupError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
    try:
        runner.train()
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    close_process_group()
    print(f'checkpoints and logs written to {os.path.abspath(cfg.work_dir)}')


def close_process_group() -> None:
    """End a distributed run cleanly: every rank waits for the others, then the process
    group is destroyed before the interpreter exits (left to the interpreter's teardown,
    a gloo rank was seen to abort with "terminate called without an active exception"
    after its last checkpoint)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
