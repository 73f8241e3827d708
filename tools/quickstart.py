"""The quickstart after the install: data, training, evaluation, forecasts, one summary.

    python tools/quickstart.py           # about 10 minutes on a 2-core CPU (bash
                                         # tools/quickstart.sh runs the install first)
    python tools/quickstart.py --full    # the longer, better training (about an hour)

Stages (each announces its expected and, when done, its actual duration):

1. ``data``: synthetic scenes, the training and held-out sets (``tools/make_synthetic.py``;
   quick: the clean volumetric scenes in ``data/synthetic``; ``--full``: the same kind of
   scenes seen through the simulated LiDAR, ``--lidar``, in ``data/synthetic_lidar``);
2. ``tokenizer`` and 3. ``forecaster``: ``tools/train.py configs/vae.py`` and
   ``configs/occ.py`` (``--full``: ``configs/vae_lidar.py`` and ``configs/occ_lidar.py``)
   on the synthetic training scenes only;
4. ``synthetic_val``: ``tools/test.py`` on the held-out synthetic scenes (occworld
   protocol, every window) -> ``outputs/metrics/synthetic_val.json``;
5. ``nuscenes_seq11`` and 6. ``pandaset_002`` (when ``../shared/data`` or
   ``$OCCWM_SHARED_DATA`` holds them): occupancy built from the real LiDAR
   (``tools/build_occupancy.py``, PandaSet through ``tools/convert_pandaset.py``), then
   ``tools/forecast.py --protocol i2world`` with the synthetic-trained model (never
   trained on real data) -> ``outputs/metrics/<set>.json`` and a picture per window.

Re-running continues: a finished stage is skipped (``outputs/quickstart/<stage>.done``
holds its duration), an interrupted training resumes from its last checkpoint (saved
every 100 iterations). ``--restart`` starts over. The end prints a table of the model
beside the copy-last and warp baselines per set and horizon, and where the pictures are.
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join('outputs', 'quickstart')
# sizes: (train scenes, val scenes, tokenizer iterations, forecaster iterations)
# per mode: the synthetic data, its sizes (train scenes, val scenes, tokenizer
# iterations, forecaster iterations) and the configs and work dirs that train on it.
# quick: the clean volumetric scenes (made in seconds; the tokenizer learns them fast);
# full: the scenes seen through the simulated LiDAR (closer to real LiDAR occupancy).
MODES = {
    # 12 held-out scenes (96 windows): with 4 (32 windows) five of the eight movable
    # classes had no ground-truth voxel at 3 s, so the dynamic mIoU compared 3 classes
    'quick': dict(data='data/synthetic', lidar=False, sizes=(12, 12, 300, 200),
                  vae='configs/vae.py', occ='configs/occ.py',
                  vae_dir='work_dirs/vae', occ_dir='work_dirs/occ'),
    'full': dict(data='data/synthetic_lidar', lidar=True, sizes=(24, 6, 1500, 1800),
                 vae='configs/vae_lidar.py', occ='configs/occ_lidar.py',
                 vae_dir='work_dirs/vae_lidar', occ_dir='work_dirs/occ_lidar'),
}
# the forecaster's EMA averages about the last 10 % of a short run (configs/occ.py: 1e-3,
# about the last 1000 of 1800 steps; 200 steps at 1e-3 would leave 82 % of the
# initial weights in the average)
EMA_STEPS = 0.1
# expected seconds per stage on an idle 2-core CPU, measured (see the README)
# (clean data 1 s and LiDAR-simulated 9 s a scene; tokenizer 0.55 s and forecaster
# 1.2 s an iteration; PandaSet's occupancy 5 min with every scan's and the cameras' rays)
EXPECTED = {'quick': dict(data=15, tokenizer=200, forecaster=340, synthetic_val=130,
                          nuscenes_seq11=30, pandaset_002=70),
            'full': dict(data=270, tokenizer=830, forecaster=2200, synthetic_val=150,
                         nuscenes_seq11=60, pandaset_002=360)}


def _fmt(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f'{m} min {s:02d} s' if m else f'{s} s'


def shared_data() -> str:
    """``$OCCWM_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    from occwm.io import shared_data_dir
    return shared_data_dir()


def iterations(n: int):
    """``--cfg-options`` values for a run of ``n`` iterations: the loop, its validation and
    the cosine schedule's end (the configs set both from their own ``max_iters``)."""
    return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.1.end={n}']


def stages(mode: str, shared: str):
    """``[(name, [commands]), ...]`` of this run; the real-data stages only where the
    data is present."""
    m = MODES[mode]
    num_train, num_val, vae_iters, occ_iters = m['sizes']
    py = sys.executable
    ckpt = ['--cfg-options', 'default_hooks.checkpoint.interval=100']
    ema = [f'custom_hooks.0.momentum={1 / (EMA_STEPS * occ_iters):.4g}']  # EMAHook
    occ, occ_dir = m['occ'], m['occ_dir']
    out = [
        ('data', [[py, 'tools/make_synthetic.py', m['data']] + (['--lidar'] if m['lidar'] else [])
                  + ['--num-train', str(num_train), '--num-val', str(num_val), '--frames', '20',
                     '--seed', '0', '--overwrite']]),
        ('tokenizer', [[py, 'tools/train.py', m['vae'], '--resume'] + ckpt + iterations(vae_iters)]),
        ('forecaster', [[py, 'tools/train.py', occ, '--resume'] + ckpt + iterations(occ_iters)
                        + (ema if occ_iters < 1800 else [])]),
        ('synthetic_val', [[py, 'tools/test.py', occ, occ_dir,
                            '--out-json', 'outputs/metrics/synthetic_val.json'],
                           [py, 'tools/forecast.py', occ, occ_dir,
                            '--windows', '0', '--out', 'outputs/synthetic_forecast',
                            '--overwrite']]),
    ]
    seq11 = os.path.join(shared, 'nuscenes_seq11')
    if os.path.isdir(seq11):
        out.append(('nuscenes_seq11', [
            [py, 'tools/build_occupancy.py', seq11, 'data/nuscenes_seq11', '--report', '--quiet',
             '--overwrite'],
            [py, 'tools/forecast.py', occ, occ_dir,
             '--data-root', 'data/nuscenes_seq11', '--infos',
             'data/nuscenes_seq11/nuscenes_seq11_infos.pkl', '--protocol', 'i2world',
             '--out', 'outputs/real_forecast', '--out-json', 'outputs/metrics/nuscenes_seq11.json',
             '--overwrite']]))
    panda = os.path.join(shared, 'pandaset_002')
    # the masks do not enter the default metric (mask none); quick: the own scan's rays
    # only, no camera rays (5 min -> about 1 min; the semantics are the same)
    fast_masks = ['--ray-cast', 'own', '--no-camera-mask'] if mode == 'quick' else []
    if os.path.isdir(panda):
        out.append(('pandaset_002', [
            [py, 'tools/convert_pandaset.py', panda, 'data/pandaset_002_frames', '--overwrite',
             '--quiet'],
            [py, 'tools/build_occupancy.py', '--format', 'frames', 'data/pandaset_002_frames',
             'data/pandaset_002', '--report', '--quiet', '--overwrite'] + fast_masks,
            [py, 'tools/forecast.py', occ, occ_dir,
             '--data-root', 'data/pandaset_002', '--infos', 'data/pandaset_002/pandaset_002_infos.pkl',
             '--protocol', 'i2world', '--out', 'outputs/pandaset_forecast',
             '--out-json', 'outputs/metrics/pandaset_002.json', '--overwrite']]))
    return out


FLAT = dict(miou='mIoU', iou='IoU', dynamic_miou='dynamic_mIoU', paired_miou='paired_mIoU')


def _metric(report: dict, method: str, key: str, horizon: str) -> float:
    """``key`` (``'miou'``, ``'iou'``, ``'dynamic_miou'``, ``'paired_miou'``) of ``method``
    (``''``: the model) at ``horizon`` (``'1s'``) from a report: its flat entries
    (``tools/test.py``) or its per-frame lists (``tools/forecast.py``); nan when absent."""
    flat = f"{method + '/' if method else ''}{FLAT[key]}@{horizon}"
    if flat in report:
        return float(report[flat])
    src = report.get('baselines', {}).get(method, {}) if method else report
    frames = report.get('frames') or []
    values = src.get(f'{key}_per_frame') or []
    if horizon in frames and frames.index(horizon) < len(values) and values[frames.index(horizon)] is not None:
        return float(values[frames.index(horizon)])
    return float('nan')


def summary_table(metrics_dir: str = os.path.join('outputs', 'metrics')) -> str:
    """Markdown table: per set and horizon, mIoU / IoU of the model, copy-last and warp,
    the dynamic mIoU of the model and the warp, and, for a report under a protocol that
    drops each method's zero-IoU classes from its own mean (i2world), the paired mIoU
    (the same classes for every method) of the model and the warp; from the report JSONs
    in ``metrics_dir``."""
    rows = ['| set | horizon | model mIoU / IoU | copy-last | warp | dynamic mIoU model / warp '
            '| paired mIoU model / warp |', '|---|---|---|---|---|---|---|']
    for name in ('synthetic_val', 'nuscenes_seq11', 'pandaset_002'):
        path = os.path.join(metrics_dir, f'{name}.json')
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            r = json.load(f)
        for h in ('1s', '2s', '3s'):
            cells = [f'{_metric(r, p, "miou", h):.1f} / {_metric(r, p, "iou", h):.1f}'
                     for p in ('', 'copy_last', 'warp')]
            for key in ('dynamic_miou', 'paired_miou'):
                cells.append(' / '.join(f'{_metric(r, p, key, h):.1f}' for p in ('', 'warp'))
                             if key != 'paired_miou' or r.get('drop_zero_iou') else '-')
            rows.append(f'| {name} | {h} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def run_stage(name: str, commands, expected: float) -> float:
    """Run one stage's commands; returns its seconds. Raises SystemExit on failure."""
    print(f'\n=== {name}: expected about {_fmt(expected)} ===', flush=True)
    start = time.perf_counter()
    for cmd in commands:
        print('$ ' + ' '.join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
        rc = subprocess.call(cmd, cwd=REPO)
        if rc:
            raise SystemExit(f'quickstart: stage {name!r} failed (exit {rc}); fix the error above '
                             f'and run the quickstart again: finished stages are kept')
    took = time.perf_counter() - start
    print(f'=== {name}: done in {_fmt(took)} (expected {_fmt(expected)}) ===', flush=True)
    return took


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--full', action='store_true', help='the longer, better training (about an hour)')
    p.add_argument('--restart', action='store_true', help='forget finished stages and start over')
    args = p.parse_args(argv)
    mode = 'full' if args.full or os.environ.get('OCCWM_QUICKSTART') == 'full' else 'quick'
    os.chdir(REPO)
    state = os.path.join(STATE, mode)
    if args.restart and os.path.isdir(state):
        for f in os.listdir(state):
            os.remove(os.path.join(state, f))
    os.makedirs(state, exist_ok=True)
    plan = stages(mode, shared_data())
    total = sum(EXPECTED[mode][n] for n, _ in plan)
    print(f'occwm quickstart ({mode}): {len(plan)} stages, expected about {_fmt(total)} on an idle '
          f'2-core CPU; stages already done are skipped')
    times = {}
    start = time.perf_counter()
    for name, commands in plan:
        marker = os.path.join(state, f'{name}.done')
        if os.path.isfile(marker):
            with open(marker) as f:
                times[name] = float(f.read() or 0)
            print(f'=== {name}: already done ({_fmt(times[name])}), skipped ===')
            continue
        times[name] = run_stage(name, commands, EXPECTED[mode][name])
        with open(marker, 'w') as f:
            f.write(f'{times[name]:.1f}')
    print(f'\nquickstart ({mode}) finished: {_fmt(time.perf_counter() - start)} this run; stages: '
          + ', '.join(f'{n} {_fmt(t)}' for n, t in times.items()))
    print('\nThe model (trained on synthetic scenes only) beside the baselines, '
          'mIoU / IoU at 1 s, 2 s, 3 s:\n')
    print(summary_table())
    print('\nreports:  outputs/metrics/<set>.json')
    for d in ('outputs/synthetic_forecast', 'outputs/real_forecast', 'outputs/pandaset_forecast'):
        if os.path.isdir(d):
            print(f'pictures: {d}/ (a PNG per window: past, ground truth, forecast, errors)')
    print(f"checkpoints: {MODES[mode]['vae_dir']}, {MODES[mode]['occ_dir']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
