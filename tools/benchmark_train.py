"""Benchmark training steps of two model variants side by side, on the same batches.

    python tools/benchmark_train.py configs/occ.py [--steps 20] \
        [--baseline-options model.decoder=tokenizer model.cache_latents=False]

Builds the config's model and training data loader, then a second model with
``--baseline-options`` applied (default: the latent-only forecaster without the latent
cache, i.e. occwm before the residual decoder), and times ``model.train_step`` of each
on the same batch in turn (AdamW, the config's gradient clipping). The cached variant's
latent cache is first filled by one pass over the data set (as training does in its
first epoch); the hit rate during the timed steps is printed. Prints the median seconds
per step of both and their ratio. Weights are random unless ``--tokenizer-ckpt`` is
given (a trained tokenizer keeps fewer voxels, so it encodes faster).
"""
import argparse
import statistics
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import occwm.compat  # noqa: F401  (spconv CPU shim, safe checkpoint loading)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Time training steps of two model variants.')
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, default=20, help='timed steps per variant')
    parser.add_argument('--tokenizer-ckpt', help='tokenizer checkpoint or work dir (default: random)')
    parser.add_argument('--baseline-options', nargs='+', action=DictAction,
                        default={'model.decoder': 'tokenizer', 'model.cache_latents': False},
                        help='config overrides of the second variant')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides of both')
    return parser.parse_args(argv)


def build(cfg: Config, tokenizer_ckpt):
    from occwm.registry import MODELS
    model = MODELS.build(dict(cfg.model, tokenizer_ckpt=tokenizer_ckpt))
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    base_cfg = cfg.copy()
    base_cfg.merge_from_dict(args.baseline_options)
    init_default_scope('occwm')
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
