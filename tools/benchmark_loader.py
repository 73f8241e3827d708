"""Benchmark occupancy data loading: frames/s through a torch DataLoader, and the cost
of each stage per frame.

    python tools/benchmark_loader.py                      # synthetic set, 200x200x16
    python tools/benchmark_loader.py --data-root D --infos D/x_infos.pkl --workers 0 1 2

The pipeline is the training one (``OccForecastDataset`` -> ``LoadOccWindow`` ->
``RandomFlipRotateOcc`` -> ``PackOccInputs`` -> ``occwm.occ_collate``), read once from
the ``labels.npz`` files and once through the sparse cache (``occwm/data/occ_cache.py``,
built before timing; its build cost per frame is printed). Without ``--data-root`` a
small SYNTHETIC set at the full Occ3D size is written to a temporary folder (deleted at
the end unless ``--keep``). A frame is one of the ``T`` frames of a window, counted as
the model consumes them (windows overlap, so a stored frame is read up to ``T`` times an
epoch).

Stages (main process, median ms per frame): npz decode (``load_labels``), cache load
(``OccCache.load``), window assembly (data info + stacking ``T`` frames), augmentation
(a flip, always applied here), pack, collate, and the dense -> sparse conversion
(``occwm.grid.occupied_voxels``, which the tokenizer runs on the batch today).

``--gpu-step-s S`` states the training step time to compare with (an assumption, no GPU
is needed): the loader must deliver ``batch * T / S`` frames/s.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', help='data root holding gts/<scene>/<token>/labels.npz '
                                       '(default: write a synthetic set to a temp folder)')
    p.add_argument('--infos', help='scene-keyed info pkl (with --data-root)')
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2],
                   help='DataLoader num_workers values to time (default 0 1 2)')
    p.add_argument('--batch-size', type=int, default=8, help='windows per batch (default 8)')
    p.add_argument('--batches', type=int, default=12, help='timed batches per run (default 12)')
    p.add_argument('--num-past', type=int, default=5)
    p.add_argument('--num-future', type=int, default=6)
    p.add_argument('--with-masks', action='store_true', help='also load mask_lidar, mask_camera')
    p.add_argument('--cache', choices=['both', 'off', 'on'], default='both',
                   help='time without the sparse cache, with it, or both (default)')
    p.add_argument('--cache-dir', help='cache folder (default: a temp folder, deleted)')
    p.add_argument('--flip-prob', type=float, default=0.5,
                   help='RandomFlipRotateOcc flip_y_prob in the DataLoader runs (default 0.5)')
    p.add_argument('--stage-windows', type=int, default=16,
                   help='timed calls per stage, each one window (default 16)')
    p.add_argument('--gpu-step-s', type=float, default=0.1,
                   help='assumed GPU training step time in seconds for one batch '
                        '(default 0.1: see docs/architecture.md)')
    p.add_argument('--synthetic-scenes', type=int, default=4)
    p.add_argument('--synthetic-frames', type=int, default=20)
    p.add_argument('--keep', action='store_true', help='keep the temporary data and cache')
    args = p.parse_args(argv)
    if (args.data_root is None) != (args.infos is None):
        p.error('give both --data-root and --infos, or neither (synthetic data)')
    if args.infos and not os.path.isfile(args.infos):
        p.error(f'--infos {args.infos} not found; build one with tools/build_occupancy.py, '
                f'tools/make_synthetic.py or tools/create_data.py')
    if min(args.batch_size, args.batches, args.stage_windows) < 1 or min(args.workers) < 0:
        p.error('--batch-size, --batches and --stage-windows must be >= 1, --workers >= 0')
    return args


def load_conditions() -> str:
    """Load averages and core count: the benchmark shares the CPU with everything else."""
    one, five, _ = os.getloadavg()
    return f'load avg {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores'


def median_ms(fn, n: int, per: int) -> float:
    """Median over ``n`` calls of ``fn()`` in ms, divided by ``per`` (frames per call)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3 / per


def time_stages(dataset, cache_dir, args):
    """Median ms per frame of each stage of the pipeline, in the main process."""
    from itertools import cycle

    import numpy as np

    from occwm.data.augment import RandomFlipRotateOcc
    from occwm.data.occ_cache import OccCache
    from occwm.data.transforms import PackOccInputs, occ_collate
    from occwm.grid import occupied_voxels
    from occwm.io import load_labels

    keys = ('semantics', 'mask_lidar', 'mask_camera') if args.with_masks else ('semantics',)
    T = dataset.window_len
    n = args.stage_windows  # timed calls per stage, cycling over the windows
    windows = cycle(range(min(n, len(dataset))))
    stages = {}
    stages['npz decode'] = median_ms(lambda: [load_labels(p, keys=keys) for p in
                                              dataset.get_data_info(next(windows))['occ_paths']],
                                     n, T)
    if cache_dir:
        cache = OccCache(cache_dir)
        stages['cache load'] = median_ms(lambda: [cache.load(p, keys) for p in
                                                  dataset.get_data_info(next(windows))['occ_paths']],
                                         n, T)
    frames = [load_labels(p, keys=keys) for p in dataset.get_data_info(0)['occ_paths']]

    def assemble():
        res = dataset.get_data_info(next(windows))
        res['occ'] = np.stack([f['semantics'] for f in frames])  # (T, X, Y, Z)
        for k in keys[1:]:
            res[k] = np.stack([f[k] for f in frames])
        return res
    stages['window assembly'] = median_ms(assemble, n, T)
    flip, pack = RandomFlipRotateOcc(flip_y_prob=1.0), PackOccInputs()
    batch = [assemble() for _ in range(args.batch_size)]
    stages['augmentation (flip)'] = median_ms(lambda: flip(dict(batch[0])), n, T)
    stages['pack'] = median_ms(lambda: pack(dict(batch[0])), n, T)
    packed = [pack(dict(w)) for w in batch]
    B = len(packed)
    stages['collate'] = median_ms(lambda: occ_collate(packed), 5, B * T)
    occ = occ_collate(packed)['inputs']['occ'].flatten(0, 1)  # (B*T, X, Y, Z)
    stages['dense -> sparse (model side)'] = median_ms(lambda: occupied_voxels(occ), 3, B * T)
    return stages


def time_loader(dataset, workers: int, args):
    """Frames/s of a DataLoader after its first batch, and the seconds to that batch."""
    import torch
    from torch.utils.data import DataLoader

    from occwm.data.transforms import occ_collate
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                        collate_fn=occ_collate, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    got, frames, t1 = 0, 0, time.perf_counter()
    while got < args.batches:
        try:
            occ = next(it)['inputs']['occ']  # (B, T, X, Y, Z) uint8
        except StopIteration:
            it = iter(loader)
            continue
        frames += occ.shape[0] * occ.shape[1]
        got += 1
    rate = frames / (time.perf_counter() - t1)
    del it, loader
    return rate, first


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.registry import init_default_scope
    from tqdm import tqdm

    import occwm.data  # noqa: F401  (registers the dataset and transforms)
    from occwm.data.occ_cache import OccCache
    from occwm.registry import DATASETS
    init_default_scope('occwm')

    temp = tempfile.mkdtemp(prefix='occwm_bench_loader_')
    try:
        if args.data_root is None:
            from occwm.synthetic.scenes import write_synthetic_dataset
            print(f'writing {args.synthetic_scenes} synthetic scenes x {args.synthetic_frames} '
                  f'frames (200x200x16) to {temp}')
            out = write_synthetic_dataset(os.path.join(temp, 'data'), args.synthetic_scenes, 0,
                                          args.synthetic_frames)
            args.data_root, args.infos = out['data_root'], out['train']
        cache_dir = args.cache_dir or os.path.join(temp, 'cache')
        modes = {'both': [False, True], 'off': [False], 'on': [True]}[args.cache]

        def build(cache: bool, flip: float):
            load = dict(type='LoadOccWindow', with_masks=args.with_masks,
                        cache_dir=cache_dir if cache else None)
            return DATASETS.build(dict(
                type='OccForecastDataset', data_root=args.data_root, ann_file=args.infos,
                num_past=args.num_past, num_future=args.num_future,
                pipeline=[load, dict(type='RandomFlipRotateOcc', flip_y_prob=flip),
                          dict(type='PackOccInputs')]))
        dataset = build(False, args.flip_prob)
        if len(dataset) == 0:
            sys.exit(f'{args.infos}: no window of {dataset.window_len} frames; use shorter '
                     f'--num-past/--num-future or longer scenes')
        T, B = dataset.window_len, args.batch_size
        paths = sorted({p for i in range(len(dataset)) for p in dataset.get_data_info(i)['occ_paths']})
        print(f'data {args.infos}: {len(dataset)} windows of T = {T}, {len(paths)} frames; '
              f'masks {"on" if args.with_masks else "off"}; torch threads '
              f'{torch.get_num_threads()}; {load_conditions()}')

        if True in modes:
            cache = OccCache(cache_dir)
            t0 = time.perf_counter()
            for p in tqdm(paths, desc='building the cache', unit='frame'):
                cache.build(p)
            build_ms = (time.perf_counter() - t0) * 1e3 / len(paths)
            size = sum(os.path.getsize(cache.path_for(p)) for p in paths) / len(paths)
            src = sum(os.path.getsize(p) for p in paths) / len(paths)
            print(f'cache {cache_dir}: built in {build_ms:.1f} ms/frame, {size / 1e3:.0f} kB/frame '
                  f'(labels.npz {src / 1e3:.0f} kB/frame)')

        stages = time_stages(dataset, cache_dir if True in modes else None, args)
        print(f'\nstages, median ms per frame (main process; {load_conditions()}):')
        for name, ms in stages.items():
            print(f'  {name:30s} {ms:7.3f}')

        need = B * T / args.gpu_step_s
        rows = []
        for cache in tqdm(modes, desc='DataLoader runs', leave=False):
            ds = build(cache, args.flip_prob)
            for w in args.workers:
                rate, first = time_loader(ds, w, args)
                rows.append((w, cache, rate, first, load_conditions()))
        print(f'\nDataLoader, batch {B} windows x {T} frames, {args.batches} timed batches after '
              f'the first, flip_y_prob {args.flip_prob}:')
        print(f'  {"workers":>7s} {"cache":>5s} {"frames/s":>9s} {"ms/frame":>9s} '
              f'{"first batch s":>13s}  load')
        for w, cache, rate, first, load in rows:
            print(f'  {w:7d} {"on" if cache else "off":>5s} {rate:9.1f} {1e3 / rate:9.2f} '
                  f'{first:13.2f}  {load}')
        print(f'\nneeded at an assumed GPU step of {args.gpu_step_s} s per batch of {B} x {T} '
              f'frames: {need:.0f} frames/s per GPU')
        for cache in modes:
            one = [r for w, c, r, _, _ in rows if c == cache and w == 0]
            if one:
                print(f'  cache {"on " if cache else "off"}: {one[0]:.0f} frames/s per process '
                      f'-> about {max(1, -(-need // one[0])):.0f} worker(s) on free cores')
    finally:
        if args.keep:
            print(f'kept the temporary data and cache in {temp}')
        else:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == '__main__':
    main()
