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

and prints the tables. OUT is checked for writing and locked before the work starts; an
OUT holding the forecasts of an earlier run is refused unless ``--overwrite``. It is
``tools/test.py`` (the same ``Runner.test``, windows, seeds
and metric) with two more outputs: the ``DumpForecasts`` metric writes the files and
``ForecastRenderHook`` the pictures; ``tools/eval_occ.py --pred-root OUT`` scores the
files to the same numbers. Seconds per forecast: ``tools/benchmark_forecast.py``.
Threads: as ``tools/train.py`` (``OCCWM_THREADS``); ``--verbose`` also prints the config
dump (always in the log file).
"""
from occwm.runtime import configure_threads

if __name__ == '__main__':  # first: OpenMP reads its settings when torch loads
    configure_threads()

import argparse  # noqa: E402
import glob  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

from occwm import runtime  # noqa: E402
from occwm.evaluation.protocols import MASKS, PROTOCOLS  # noqa: E402
from occwm.io import check_writable, lock_output_dir, refuse_overwrite  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file, e.g. configs/occ.py')
    parser.add_argument('checkpoint', help='forecaster checkpoint (.pth), or its work dir (the last checkpoint)')
    parser.add_argument('--data-root', help='folder holding gts/ (default: the config test set)')
    parser.add_argument('--infos', help='info pkl (default: the config test set)')
    parser.add_argument('--out', required=True, help='output folder (locked while this runs)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the forecasts, pictures and report of an earlier run in '
                             'OUT (without it, a folder holding them is refused)')
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
    parser.add_argument('--out-json', help='also write the report JSON here (e.g. '
                                           'outputs/metrics/nuscenes_seq11.json)')
    parser.add_argument('--work-dir', help='folder for the logs (default: OUT/logs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--verbose', action='store_true',
                        help='also print the config dump and hook table (always in the log file)')
    return parser.parse_args(argv)


def _forecast_path(out: str, info: dict) -> str:
    """The forecast file ``DumpForecasts`` writes for a window's data info."""
    from occwm.evaluation.from_files import prediction_path
    return prediction_path(out, info['scene_name'], info['tokens'][info['num_past'] - 1])


def main(argv=None):
    args = parse_args(argv)
    from occwm.engine.checks import check_data, load_config
    from occwm.engine.evaluate import check_test_set, run_test
    from occwm.evaluation.protocols import apply_protocol
    from occwm.evaluation.report import write_report

    if args.infos and not os.path.isfile(args.infos):
        sys.exit(f'error: --infos {args.infos} not found (an info pkl, e.g. '
                 f'data/synthetic/synthetic_infos_val.pkl)')
    if args.data_root and not os.path.isdir(args.data_root):
        sys.exit(f'error: --data-root {args.data_root} not found (the folder holding gts/)')
    try:  # before any work: the folders writable, OUT ours alone, nothing replaced unasked
        lock_output_dir(args.out)
        earlier = sorted(glob.glob(os.path.join(args.out, '*', '*.npz'))
                         + glob.glob(os.path.join(args.out, '*', '*.png'))
                         + glob.glob(os.path.join(args.out, 'metrics.*')))
        if args.out_json:
            check_writable(os.path.dirname(os.path.abspath(args.out_json)), '--out-json')
        refuse_overwrite(earlier, args.overwrite, 'forecasts of an earlier run')
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    from occwm.engine.checks import model_checkpoint
    try:
        args.checkpoint = model_checkpoint(args.checkpoint)
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    try:
        cfg = load_config(args.config)
        if not args.no_render:  # before any forecast, not at the first picture
            runtime.require_open3d()
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    if args.verbose:
        cfg.verbose = True
    preset = apply_protocol(cfg, args.protocol, args.mask, num_future=args.num_future)
    ds = cfg.test_dataloader.dataset
    if args.data_root:
        ds.data_root = args.data_root
    if args.infos:
        ds.ann_file = os.path.abspath(args.infos)
    cfg.model.decode_present = preset['present_frame']
    cfg.model.tokenizer_ckpt = None  # the forecaster checkpoint holds the tokenizer too
    sampler = dict(cfg.model.get('sampler') or {})
    if args.steps:
        sampler['steps'] = args.steps
    if args.cfg_scale is not None:
        sampler['cfg_scale'] = args.cfg_scale
    cfg.model.sampler = sampler
    if args.seed is not None:
        cfg.model.predict_seed = args.seed
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        check_data(cfg, ('test_dataloader',))
        test_set = check_test_set(cfg, preset['name'])
    except (runtime.SetupError, FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    n = len(test_set)
    if args.windows is not None:
        bad = [i for i in args.windows if not 0 <= i < n]
        if bad:
            sys.exit(f'error: windows {bad} out of range: the set has {n} windows')
        ds.indices = list(args.windows)
    stale = sorted(set(p for p in earlier if p.endswith('.npz'))
                   - {_forecast_path(args.out, test_set.get_data_info(i))
                      for i in (range(n) if args.windows is None else args.windows)})
    if stale:  # --overwrite given: files of other windows would be scored with these
        print(f'note: {len(stale)} forecast files of an earlier run in {args.out} are not '
              f'among the windows of this run and stay, e.g. {stale[0]}; remove them before '
              f'scoring {args.out} with tools/eval_occ.py')
    grid = cfg.test_evaluator.get('grid')
    cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpForecasts', out_dir=args.out)]
    if not args.no_render:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='ForecastRenderHook', out_dir=args.out, grid=grid)]
    cfg.work_dir = args.work_dir or os.path.join(args.out, 'logs')
    cfg.load_from, cfg.resume = args.checkpoint, False
    plan = runtime.fit_dataloaders(cfg)
    if plan is not None:
        print(plan.describe())
    try:
        metrics, report = run_test(cfg)
    except runtime.SetupError as e:
        sys.exit(f'error: {e}')
    if report is None:  # ranks other than 0
        return
    json_path, md_path = (os.path.join(args.out, f'metrics.{e}') for e in ('json', 'md'))
    write_report(report, json_path, md_path)
    if args.out_json:
        write_report(report, args.out_json)
        print(f'report written to {os.path.abspath(args.out_json)}')
    print(f"{int(metrics['forecasts_written'])} forecasts written under "
          f'{os.path.abspath(args.out)}; report in {json_path} and {md_path}')


if __name__ == '__main__':
    main()
