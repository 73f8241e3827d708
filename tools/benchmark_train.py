"""Benchmark training steps: two model variants side by side on the config's data, or
the training throughput of the config's model per batch size on any device.

    python tools/benchmark_train.py configs/occ.py [--steps 20] \
        [--baseline-options model.decoder=tokenizer model.cache_latents=False]
    python tools/benchmark_train.py configs/occ_nuscenes.py --batch-sizes 1 8 32 \
        [--device cuda] [--dtype bfloat16] [--steps 10]

Throughput mode (``--batch-sizes``): the config's model (random weights) trains on
copies of one synthetic window at the config's grid (no data set needed: a fresh GPU
machine) with the config's optimizer and gradient clipping, the training forward under
``--dtype`` autocast (as mmengine's AmpOptimWrapper runs it); the latent cache is
filled first, as after the first epoch. Per batch size: seconds per step, steps/s,
samples/s and peak memory (GPU: ``torch.cuda.max_memory_allocated``; CPU: the
process's peak RSS so far), beside the device's name; a batch that does not fit in the
GPU's memory says so and the next one is tried.

Two-variant mode (default): builds the config's model and training data loader, then
a second model with ``--baseline-options`` applied (default: the latent-only forecaster
without the latent cache, i.e. occwm before the residual decoder), and times
``model.train_step`` of each on the same batch in turn (AdamW, the config's gradient
clipping). The cached variant's latent cache is first filled by one pass over the data
set (as training does in its first epoch); the hit rate during the timed steps is
printed. Prints the median seconds per step of both and their ratio. Weights are random
unless ``--tokenizer-ckpt`` is given (a trained tokenizer keeps fewer voxels, so it
encodes faster).
"""
import argparse
import contextlib
import resource
import statistics
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import occwm.compat  # noqa: F401  (spconv CPU shim, safe checkpoint loading)
from occwm.runtime import device_name


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, default=20, help='timed steps per variant / batch size')
    parser.add_argument('--tokenizer-ckpt', help='tokenizer checkpoint or work dir (default: random)')
    parser.add_argument('--baseline-options', nargs='+', action=DictAction,
                        default={'model.decoder': 'tokenizer', 'model.cache_latents': False},
                        help='config overrides of the second variant')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides of both')
    parser.add_argument('--batch-sizes', nargs='+', type=int,
                        help='throughput mode: the config model alone at these batch sizes')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='throughput mode: device (default: cuda when there is one)')
    parser.add_argument('--dtype', choices=['float32', 'bfloat16'], default='bfloat16',
                        help='throughput mode: autocast dtype of the training forward')
    return parser.parse_args(argv)


def optim_wrapper_cfg(cfg: Config, device: str) -> dict:
    """The config's optimizer wrapper; off CUDA an ``AmpOptimWrapper`` (CUDA-only in
    mmengine) becomes a plain ``OptimWrapper`` (the autocast is then the caller's)."""
    ow = dict(cfg.optim_wrapper)
    if ow.get('type') == 'AmpOptimWrapper' and not device.startswith('cuda'):
        ow['type'] = 'OptimWrapper'
        for k in ('dtype', 'loss_scale', 'use_fsdp'):
            ow.pop(k, None)
    return ow


def build(cfg: Config, tokenizer_ckpt, device: str = 'cpu'):
    from occwm.registry import MODELS
    model_cfg = dict(cfg.model)
    if 'tokenizer' in model_cfg:  # a forecaster: its frozen tokenizer's weights
        model_cfg['tokenizer_ckpt'] = tokenizer_ckpt
    model = MODELS.build(model_cfg).to(device)
    model.train()
    return model, build_optim_wrapper(model, optim_wrapper_cfg(cfg, device))


def synthetic_batch(model, batch: int, device: str) -> dict:
    """A training batch (``inputs``, ``data_samples``) of ``batch`` copies of one
    synthetic window at the model's grid; each copy has its own frame tokens, so the
    latent cache holds every frame as it would a data set's."""
    from occwm.geometry import trajectory_in_frame
    from occwm.synthetic.scenes import generate_scene
    from occwm.window import OccWindow
    P = getattr(model, 'num_past', 1)
    T = P + getattr(model, 'num_future', 0)
    occ, poses, _ = generate_scene(0, num_frames=max(T, 2), grid=model.grid)
    occ = torch.from_numpy(occ[:T]).to(device)  # (T, X, Y, Z)
    traj = torch.from_numpy(trajectory_in_frame(poses, P - 1)).float()[:T].to(device)  # (T, 3)
    windows = [OccWindow(occ, traj, P, scene_name=f'bench-{b}',
                         tokens=[f'bench-{b}-{t}' for t in range(T)]) for b in range(batch)]
    return dict(inputs=dict(occ=occ[None].repeat(batch, 1, 1, 1, 1), traj=traj[None].repeat(batch, 1, 1)),
                data_samples=windows)


def train_step(model, batch: dict, optim, autocast) -> None:
    """``BaseModel.train_step`` with the forward (only) under ``autocast``, as
    mmengine's AmpOptimWrapper runs it: the backward stays outside, where spconv's
    float32 kernels get float32 gradients."""
    with optim.optim_context(model), autocast:
        data = model.data_preprocessor(batch, True)
        losses = model._run_forward(data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim.update_params(loss)


def throughput(cfg: Config, args) -> None:
    """Throughput mode (module docstring)."""
    device = args.device
    cuda = device.startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f'device {device}: {device_name(device)}; torch {torch.__version__}'
          f'{", CUDA " + torch.version.cuda if cuda else ""}; autocast {args.dtype}; '
          f'{args.steps} timed steps after 2 warm-up steps per batch size', flush=True)
    torch.manual_seed(0)
    model, optim = build(cfg, args.tokenizer_ckpt, device)
    autocast = contextlib.nullcontext()
    if not (cuda and cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'):  # else the wrapper's
        autocast = torch.autocast(device.split(':')[0], dtype=torch.bfloat16,
                                  enabled=args.dtype == 'bfloat16')
    elif args.dtype == 'float32':
        optim = build_optim_wrapper(model, dict(optim_wrapper_cfg(cfg, 'cpu')))
    n = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    print(f'{type(model).__name__}, {n:.1f} M trained parameters, grid {tuple(model.grid.shape)}')
    print('| batch | s / step | steps / s | samples / s | peak memory |')
    print('|---|---|---|---|---|')
    for B in args.batch_sizes:
        batch = synthetic_batch(model, B, device)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            times = []
            for step in range(args.steps + 2):
                sync()
                t0 = time.perf_counter()
                train_step(model, batch, optim, autocast)
                sync()
                if step >= 2:
                    times.append(time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            optim.zero_grad()
            print(f'| {B} | out of GPU memory | | | |', flush=True)
            continue
        s = statistics.median(times)
        if cuda:
            peak = f'{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f} GiB (GPU)'
        else:
            peak = f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f} GiB (RSS)'
        print(f'| {B} | {s:.3f} | {1 / s:.2f} | {B / s:.1f} | {peak} |', flush=True)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('occwm')
    if args.batch_sizes:
        throughput(cfg, args)
        return
    base_cfg = cfg.copy()
    base_cfg.merge_from_dict(args.baseline_options)
    torch.manual_seed(0)
    models = {'config': build(cfg, args.tokenizer_ckpt),
              'baseline': build(base_cfg, args.tokenizer_ckpt)}
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    for name, (model, _) in models.items():  # the first epoch fills a latent cache
        if getattr(model, 'cache_latents', False) and hasattr(model, 'encode_cached'):
            from occwm.models.forecaster import _cache_keys
            for batch in loader:
                occ = torch.stack(list(batch['inputs']['occ']))
                model.encode_cached(occ, _cache_keys(batch['data_samples'], occ.shape[1]))
            print(f'{name}: latent cache filled with {len(model._latents)} frames')
    times = {name: [] for name in models}
    hits = {name: [0, 0] for name in models}
    it = iter(loader)
    for step in range(args.steps + 1):  # step 0: warm-up, not timed
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        for name, (model, optim) in models.items():
            cache = getattr(model, '_latents', None)
            before = len(cache) if cache is not None else 0
            t0 = time.perf_counter()
            model.train_step(batch, optim)
            dt = time.perf_counter() - t0
            if step:
                times[name].append(dt)
                frames = sum(len(w.tokens) for w in batch['data_samples'])
                hits[name][0] += frames - ((len(cache) - before) if cache is not None else frames)
                hits[name][1] += frames
    print(f'threads {torch.get_num_threads()}, batch {cfg.train_dataloader.batch_size}, '
          f'{args.steps} timed steps each, interleaved on the same batches')
    for name, vals in times.items():
        opts = '' if name == 'config' else f' {args.baseline_options}'
        cached = getattr(models[name][0], 'cache_latents', False)
        rate = hits[name][0] / max(hits[name][1], 1) if cached else 0.0
        print(f'  {name:9s} median {statistics.median(vals):.3f} s/step (min {min(vals):.3f}, '
              f'max {max(vals):.3f}), latent cache hits {100 * rate:.0f} %{opts}')
    ratio = statistics.median(times['config']) / statistics.median(times['baseline'])
    print(f'  ratio config / baseline: {ratio:.2f}')


if __name__ == '__main__':
    main()
