"""Generate and score counterfactual driving scenarios for planner testing.

Model futures (K samples per trajectory, compared with the recorded future where the
window has one)::

    python tools/generate_scenarios.py configs/occ.py work_dirs/occ/iter_1200.pth \
        --infos data/synthetic/synthetic_infos_val.pkl --gt-root data/synthetic/gts \
        --trajectories builtin --k 4 --out outputs/scenarios

A baseline in the model's place (``copy_last``: the frozen present; ``warp``: the
present warped along each trajectory), to compare the model's agreement with::

    python tools/generate_scenarios.py --baseline warp --infos ... --gt-root ... --out D

Ground truth only (no model; any info pkl occwm reads, e.g. a minimal OccWorld-layout
pkl with token, timestamp, ego2global_* and lidar2ego_* per frame)::

    python tools/generate_scenarios.py --gt --infos INFO_PKL --gt-root GTS_DIR \
        --trajectories my_plans.json --out outputs/scenarios_gt

``--trajectories``: ``builtin`` (default: keep lane, brake, accelerate, stop, lane
changes, swerves, ``--num-random`` random feasible ones, and the recorded future when
the window has it) or a JSON / npz file of ``(T, 3)`` trajectories (x, y m, yaw rad,
present ego frame, 2 Hz from +0.5 s; schema in ``occwm/scenarios/trajectories.py``).
``--search N`` adds N perturbations of ``--search-trajectory`` ranked by risk.
Reproducible from ``--seed`` bit for bit with ``--threads 1`` (the default): with more
CPU threads the tokenizer's sparse convolutions are not deterministic (the same window
encoded twice differed by up to 1.2 in the latent with 2 threads).
Outputs (``occwm/scenarios/export.py``): ``OUT/index.jsonl``, ``OUT/report.md``,
``OUT/summary.json`` and one folder per scenario under ``OUT/scenarios/``. An OUT holding
them is refused unless ``--overwrite``; OUT is locked while the tool runs. Trajectories a
road vehicle cannot drive (over 70 m/s, or 15 m/s^2) are refused with the file, name and row.
"""
import argparse
import dataclasses
import os
import sys
import time

import torch
from tqdm import tqdm

from occwm.grid import DEFAULT_GRID, OccGrid


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Counterfactual rollouts, risk scores and exportable scenarios for planners.',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('config', nargs='?', help='forecaster config, e.g. configs/occ.py (not with --gt)')
    p.add_argument('checkpoint', nargs='?', help='forecaster checkpoint .pth (not with --gt)')
    p.add_argument('--infos', required=True, help='info pkl of any layout occwm reads')
    p.add_argument('--gt-root', required=True,
                   help='the gts/ folder holding <scene>/<token>/labels.npz (or its parent)')
    p.add_argument('--trajectories', default='builtin',
                   help="'builtin' (default) or a JSON / npz trajectory file")
    p.add_argument('--out', required=True, help='output folder (locked while this runs)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the scenarios, index and report of an earlier run in OUT '
                        '(without it, a folder holding them is refused)')
    p.add_argument('--gt', action='store_true',
                   help='score the recorded future occupancy instead of the model (no model)')
    p.add_argument('--baseline', choices=['copy_last', 'warp'],
                   help='a baseline in the place of the model (no config): copy_last = the '
                        'frozen present, warp = the present warped along each trajectory')
    p.add_argument('--k', type=int, default=4, help='futures sampled per trajectory (default 4)')
    p.add_argument('--seed', type=int, default=0, help='seed of the futures and random sets')
    p.add_argument('--horizon', type=int,
                   help='frames per trajectory at 2 Hz (default: the file\'s, or 6 for builtin)')
    p.add_argument('--windows', type=int, nargs='+', help='window indices (default: all)')
    p.add_argument('--stride', type=int, default=1, help='frames between window starts')
    p.add_argument('--num-past', type=int, default=5, help='past frames with --gt (default 5)')
    p.add_argument('--num-random', type=int, default=4, help='random feasible builtin trajectories')
    p.add_argument('--search', type=int, default=0, metavar='N',
                   help='critical-scenario search: N perturbations of --search-trajectory')
    p.add_argument('--search-trajectory',
                   help='trajectory to perturb (default: the first one)')
    p.add_argument('--steps', type=int, help='sampler steps (default: the config)')
    p.add_argument('--batch-size', type=int, default=8, help='rollouts per forward pass')
    p.add_argument('--no-render', action='store_true', help='skip render.png')
    p.add_argument('--no-occ', action='store_true', help='do not write the forecast occupancy')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=1,
                   help='torch CPU threads (default 1: bit-reproducible; with more, the sparse '
                        'convolutions of the tokenizer are not deterministic on the CPU)')
    return p.parse_args(argv)


def build_windows(args, num_past: int, num_future: int, grid: OccGrid):
    """The ``OccForecastDataset`` of the run, reading labels from ``--gt-root``."""
    import occwm.data  # noqa: F401  (registers the transforms)
    from occwm.data.occ_dataset import OccForecastDataset
    from occwm.data.transforms import LoadOccWindow, PackOccInputs
    gts = os.path.abspath(args.gt_root)
    if not os.path.isdir(gts):
        sys.exit(f'error: --gt-root {gts} is not a folder; give the gts/ folder holding '
                 f'<scene>/<token>/labels.npz')
    if os.path.basename(gts) != 'gts' and os.path.isdir(os.path.join(gts, 'gts')):
        gts = os.path.join(gts, 'gts')
    try:
        ds = OccForecastDataset(ann_file=os.path.abspath(args.infos), gt_root=gts,
                                num_past=num_past, num_future=num_future, stride=args.stride,
                                serialize_data=False,
                                pipeline=[LoadOccWindow(grid=dataclasses.asdict(grid)),
                                          PackOccInputs()])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    if len(ds) == 0:
        sys.exit(f'error: {args.infos} has no scene with {num_past + num_future} frames '
                 f'({num_past} past + {num_future} future); lower --horizon')
    return ds


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(max(args.threads, 1))
    from occwm.scenarios import (
        ScenarioGenerator,
        ScoringConfig,
        builtin_trajectories,
        critical_search,
        load_trajectories,
        rank_results,
    )
    from occwm.scenarios.export import (
        agreement_rate,
        write_index,
        write_json,
        write_report,
        write_scenario,
    )
    with_model = bool(args.config and args.checkpoint)
    if (args.gt or bool(args.baseline)) == with_model or (args.gt and args.baseline):
        sys.exit('error: give CONFIG CHECKPOINT to score model futures, --baseline NAME to score '
                 'a baseline, or --gt (and no config) to score the recorded future occupancy')
    if args.k < 1:
        sys.exit(f'error: --k must be >= 1, got {args.k}')
    from occwm.io import lock_output_dir, refuse_overwrite
    from occwm.runtime import SetupError
    try:  # before any work: OUT writable and ours alone, nothing replaced unasked
        lock_output_dir(args.out)
        scenarios = os.path.join(args.out, 'scenarios')
        refuse_overwrite([os.path.join(args.out, f) for f in ('index.jsonl', 'report.md',
                                                               'summary.json')]
                         + ([scenarios] if os.path.isdir(scenarios) and os.listdir(scenarios)
                            else []), args.overwrite, 'scenarios of an earlier run')
    except SetupError as e:
        sys.exit(f'error: {e}')
    file_trajs = None
    if args.trajectories != 'builtin':
        try:
            file_trajs = load_trajectories(args.trajectories, args.horizon)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f'error: {e}')
    horizon = args.horizon or (len(next(iter(file_trajs.values()))) if file_trajs else 6)

    model, grid, num_past = None, DEFAULT_GRID, args.num_past
    if args.baseline:
        from occwm.evaluation.baselines import BaselineForecaster
        model = BaselineForecaster(args.baseline, grid, num_past)
    elif not args.gt:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        import occwm.compat  # noqa: F401
        from occwm.models.forecaster import init_forecaster
        cfg = Config.fromfile(args.config)
        init_default_scope(cfg.get('default_scope', 'occwm'))
        grid = OccGrid(**cfg.get('grid', {})) if cfg.get('grid') else DEFAULT_GRID
        try:
            model = init_forecaster(cfg.model, args.checkpoint, args.device)
        except (FileNotFoundError, SetupError) as e:
            sys.exit(f'error: {e}')
        num_past = model.num_past
    num_future = horizon if args.gt else min(horizon, model.num_future)
    ds = build_windows(args, num_past, num_future, grid)
    windows = args.windows if args.windows is not None else list(range(len(ds)))
    bad = [i for i in windows if not 0 <= i < len(ds)]
    if bad:
        sys.exit(f'error: --windows {bad} out of range: {args.infos} gives {len(ds)} windows')

    scoring = ScoringConfig()
    gen = ScenarioGenerator(model, scoring, grid, args.device, args.batch_size, steps=args.steps)
    rows, t_model, n_model, t_gt, n_gt, t_write = [], 0.0, 0, 0.0, 0, 0.0
    bar = tqdm(total=len(windows), unit='window', desc='scenarios')
    for i in windows:
        try:
            window = ds[i]['data_samples'].numpy()
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f'error: window {i}: {e}')
        trajs = dict(file_trajs) if file_trajs else builtin_trajectories(
            window.past_traj, horizon, args.num_random, args.seed)
        recorded = window.recorded_traj
        if file_trajs is None and recorded is not None and len(recorded) >= horizon:
            trajs['recorded'] = recorded[:horizon].astype('float32')
        t0 = time.perf_counter()
        results = gen.evaluate(window, trajs, k=args.k, seed=args.seed, model=not args.gt,
                               gt=True, keep_occ=True)
        dt = time.perf_counter() - t0
        if args.gt:
            t_gt, n_gt = t_gt + dt, n_gt + len(results)
        else:  # RolloutResult.seconds: sampling time per rollout; the rest is scoring
            n = len(trajs) * args.k
            t_model, n_model = t_model + results[0].seconds * n, n_model + n
            t_gt, n_gt = t_gt + dt - results[0].seconds * n, n_gt + len(results)
        if args.search:
            base = args.search_trajectory or next(iter(trajs))
            if base not in trajs:
                sys.exit(f'error: --search-trajectory {base!r} is not one of {list(trajs)}')
            for c in critical_search(gen, window, trajs[base], base, args.search, args.k,
                                     args.seed, model=not args.gt, gt=args.gt, keep_occ=True):
                if c.name != base:
                    trajs[c.name] = c.traj
                    for r in c.results:
                        r.extra['search'] = base
                    results += c.results
        rank_results(results, scoring.ttc_horizon)
        t0 = time.perf_counter()
        for name, traj in trajs.items():
            mine = [r for r in results if r.trajectory == name]
            rel = write_scenario(args.out, window, name, traj, mine, args.seed,
                                 save_occ=not args.no_occ and not args.gt,
                                 render=not args.no_render)
            for r in mine:
                rows.append(dict(r.row(), scenario=rel, seed=args.seed))
                r.occ = None
        t_write += time.perf_counter() - t0
        bar.update(1)
    bar.close()

    timings = dict(seconds_per_model_rollout=t_model / n_model if n_model else None,
                   seconds_per_scoring=t_gt / n_gt if n_gt else None,
                   seconds_writing_per_window=t_write / len(windows),
                   device=args.device, torch_threads=torch.get_num_threads())
    settings = dict(source='gt' if args.gt else (f'baseline:{args.baseline}' if args.baseline else 'model'),
                    config=args.config,
                    checkpoint=args.checkpoint, infos=args.infos, gt_root=args.gt_root,
                    trajectories=args.trajectories, horizon_frames=horizon, k=args.k,
                    seed=args.seed, windows=len(windows), search=args.search,
                    command=' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:]))
    index = write_index(args.out, rows)
    report = write_report(args.out, rows, settings, timings)
    agree = agreement_rate(rows)
    write_json(os.path.join(args.out, 'summary.json'), dict(
        settings=settings, scoring=dataclasses.asdict(scoring), timings=timings,
        rows=len(rows), collisions=sum(bool(r['collision']) for r in rows), agreement=agree))
    print(f'{len(rows)} rollouts of {len(windows)} windows scored; scenarios under '
          f'{os.path.abspath(os.path.join(args.out, "scenarios"))}\nindex: {os.path.abspath(index)}'
          f'\nreport: {os.path.abspath(report)}')
    if agree:
        print(f'agreement with ground truth on collision: {agree["agreement"]:.3f} over '
              f'{agree["n"]} samples')


if __name__ == '__main__':
    main()
