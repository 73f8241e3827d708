"""Evaluate a checkpoint: python tools/test.py CONFIG CHECKPOINT [options].

Forecaster (configs/occ.py): IoU and mIoU of every future frame under a published
protocol (``--protocol occworld`` default, ``dome``, ``i2world``; ``--mask camera`` /
``lidar`` optional), averaged over 1 s / 2 s / 3 s, for the model beside the copy-last
and ego-motion-warp baselines; per-class IoU per frame. Tokenizer (configs/vae.py):
reconstruction IoU / mIoU of every frame of the test set. ``--out-json`` / ``--out-md``
save the report (schema: README, "Evaluation protocols"). Multi-GPU:
``torchrun --nproc_per_node N tools/test.py CONFIG CKPT --launcher pytorch`` gives the
same numbers as one process. Threads: as ``tools/train.py`` (``OCCWM_THREADS``);
``--verbose`` also prints the config dump (always in the log file).
"""
from occwm.runtime import configure_threads

if __name__ == '__main__':  # first: OpenMP reads its settings when torch loads
    configure_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

from occwm import runtime  # noqa: E402
from occwm.evaluation.protocols import MASKS, PROTOCOLS, apply_protocol  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('checkpoint', help='checkpoint file (.pth), or a work dir (its last checkpoint)')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS),
                        help="evaluation protocol (default: the config's, occworld)")
    parser.add_argument('--mask', choices=MASKS,
                        help="count only camera / LiDAR-visible voxels (default: the config's, none)")
    parser.add_argument('--num-future', type=int,
                        help='forecast this many frames (autoregressive rollout past 6; '
                             'metrics per frame)')
    parser.add_argument('--samples', type=int, default=1,
                        help='forecaster: also draw K futures per window and report their '
                             'agreement on the dynamic and static voxels (SampleAgreement)')
    parser.add_argument('--work-dir', help='folder for the evaluation logs')
    parser.add_argument('--out-json', help='write the report (and the flat metrics) as JSON')
    parser.add_argument('--out-md', help='write the report as Markdown')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, applied last, e.g. '
                             'test_dataloader.dataset.scenes=[scene-0103]')
    parser.add_argument('--verbose', action='store_true',
                        help='also print the config dump and hook table (always in the log file)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed evaluation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from occwm.engine.checks import model_checkpoint
    try:
        args.checkpoint = model_checkpoint(args.checkpoint)
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    from occwm.engine.checks import check_data, load_config
    from occwm.engine.evaluate import check_test_set, run_test
    from occwm.evaluation.report import write_report

    try:
        cfg = load_config(args.config)
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    if args.verbose:
        cfg.verbose = True
    cfg.launcher = args.launcher
    forecaster = cfg.model.get('type') == 'OccForecaster'
    preset = apply_protocol(cfg, args.protocol, args.mask, windows=forecaster,
                            num_future=args.num_future)
    if forecaster:
        cfg.model.decode_present = preset['present_frame']  # I²-World's 0 s
    if args.samples > 1:
        if not forecaster:
            sys.exit('error: --samples needs a forecaster config')
        cfg.model.predict_samples = args.samples
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = list(evaluators) + [dict(type='SampleAgreement',
                                                        grid=evaluators[0].get('grid'))]
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'tokenizer_ckpt' in cfg.model:
        cfg.model.tokenizer_ckpt = None  # the forecaster checkpoint holds the tokenizer too
    cfg.work_dir = args.work_dir or os.path.join(
        './work_dirs', os.path.splitext(os.path.basename(args.config))[0] + '_test')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    try:
        check_data(cfg, ('test_dataloader',))
        check_test_set(cfg, preset['name'])
    except (runtime.SetupError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    plan = runtime.fit_dataloaders(cfg)
    if plan is not None:
        print(plan.describe())
    try:
        metrics, report = run_test(cfg)
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    if report is None:  # ranks other than 0
        return
    write_report(report, args.out_json, args.out_md,
                 extra={k: float(v) for k, v in metrics.items()})
    for path in (args.out_json, args.out_md):
        if path:
            print(f'report written to {os.path.abspath(path)}')


if __name__ == '__main__':
    main()
