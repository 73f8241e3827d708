"""Benchmark a full 3 s forecast: encode the past frames, sample, decode the future.

    python tools/benchmark_forecast.py configs/occ.py [--checkpoint CKPT] [--repeats 5] \
        [--baseline-options model.decoder=tokenizer]

Prints the device's name, the median seconds of each stage and of the whole forecast,
forecast frames/s and the peak memory (the process's resident memory, and on a GPU
``torch.cuda.max_memory_allocated``; measured before a baseline model is built). ``--baseline-options`` builds a second model from the same checkpoint with these
config overrides (e.g. the latent-only decoder) and times both in turn in one run,
printing the ratio. Without a checkpoint the weights are
random (timing only: an untrained decoder keeps more voxels, so it is slower than a
trained one). The input is one window of a synthetic scene (``--seed``).
"""
import argparse
import resource
import statistics
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import occwm.compat  # noqa: F401  (spconv CPU shim, safe checkpoint loading)
from occwm.runtime import device_name


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Time a full occwm forecast.')
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='forecaster checkpoint (default: random weights)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=['float32', 'bfloat16'], default='float32',
                        help='autocast dtype of the DiT and tokenizer 2D parts (GPU)')
    parser.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--baseline-options', nargs='+', action=DictAction,
                        help='config overrides of a second model timed in turn with the first')
    return parser.parse_args(argv)


def synthetic_window(num_past: int, num_future: int, seed: int, grid=None):
    """``occ (1, T, X, Y, Z) uint8`` and ``traj (1, T, 3) float32`` of a synthetic scene
    at ``grid`` (default: the Occ3D grid)."""
    from occwm.geometry import trajectory_in_frame
    from occwm.synthetic.scenes import generate_scene
    T = num_past + num_future
    from occwm.grid import DEFAULT_GRID
    occ, poses, _ = generate_scene(seed, num_frames=T, grid=grid or DEFAULT_GRID)
    traj = trajectory_in_frame(poses, num_past - 1)
    return torch.from_numpy(occ)[None], torch.from_numpy(traj).float()[None]


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('occwm')
    from occwm.models.forecaster import init_forecaster
    model = init_forecaster(cfg.model, args.checkpoint, args.device)
    P, F = model.num_past, model.num_future
    occ, traj = synthetic_window(P, F, args.seed, getattr(model, 'grid', None))
    occ = occ.repeat(args.batch, 1, 1, 1, 1).to(args.device)
    traj = traj.repeat(args.batch, 1, 1).to(args.device)
    past = occ[:, :P]
    sync = torch.cuda.synchronize if args.device.startswith('cuda') else (lambda: None)
    autocast = torch.autocast(args.device.split(':')[0], dtype=getattr(torch, args.dtype),
                              enabled=args.dtype != 'float32')

    stages = {'encode': [], 'sample+decode': [], 'total': []}

    def run(m, r):
        gen = torch.Generator(device=args.device).manual_seed(r)
        sync()
        t0 = time.perf_counter()
        m.encode(past)
        sync()
        t1 = time.perf_counter()
        m.forecast(past, traj, generator=gen)
        sync()
        return t1 - t0, time.perf_counter() - t1

    with torch.no_grad(), autocast:
        model.forecast(past, traj)  # warm-up
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu_mb = (torch.cuda.max_memory_allocated(args.device) / 2 ** 20
                  if args.device.startswith('cuda') else None)
        base, base_total = None, []
        if args.baseline_options:
            base_cfg = cfg.copy()
            base_cfg.merge_from_dict(args.baseline_options)
            # a variant of the same weights (e.g. decoder='tokenizer' has no residual
            # decoder): the keys it does not use are left out
            base = init_forecaster(base_cfg.model, args.checkpoint, args.device, strict=False)
            base.forecast(past, traj)  # warm-up
        for r in range(args.repeats):
            enc, total = run(model, r)
            stages['encode'].append(enc)
            stages['total'].append(total)
            stages['sample+decode'].append(total - enc)
            if base is not None:
                base_total.append(run(base, r)[1])
    total = statistics.median(stages['total'])
    print(f'device {args.device} ({device_name(args.device)}), threads {torch.get_num_threads()}, '
          f'batch {args.batch}, '
          f'{P} past -> {F} future frames, sampler {model.sampler}, dtype {args.dtype}, '
          f'weights {"from " + args.checkpoint if args.checkpoint else "random"}')
    for name, vals in stages.items():
        print(f'  {name:14s} median {statistics.median(vals):.3f} s  '
              f'(min {min(vals):.3f}, max {max(vals):.3f}, {len(vals)} runs)')
    gpu = f'   peak GPU memory {gpu_mb:.0f} MB' if gpu_mb is not None else ''
    print(f'  forecast frames/s {args.batch * F / total:.1f}   peak RSS {peak_mb:.0f} MB{gpu}')
    if base_total:
        b = statistics.median(base_total)
        print(f'  baseline {args.baseline_options}: total median {b:.3f} s '
              f'(min {min(base_total):.3f}, max {max(base_total):.3f}); '
              f'ratio config / baseline {total / b:.2f}')


if __name__ == '__main__':
    from occwm.runtime import SetupError
    try:
        main()
    except (FileNotFoundError, SetupError) as e:  # no checkpoint, a wrong one: one line
        raise SystemExit(f'error: {e}')
