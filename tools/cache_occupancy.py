"""Build the sparse occupancy cache of a data set ahead of training.

    python tools/cache_occupancy.py DATA_ROOT INFOS.pkl [INFOS2.pkl ...] --cache-dir CACHE

Writes one small ``.npy`` per frame (``occwm/data/occ_cache.py``) under ``CACHE`` for
every frame of the info pkls; frames whose cache entry is fresh are skipped. Then train
with ``LoadOccWindow(cache_dir=CACHE)`` in the pipeline (``--cfg-options`` or a config):
the cache is also built on first use, so this tool only moves that cost ahead of time.
"""
import argparse
import os
import sys
from multiprocessing import Pool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data_root', help='folder holding gts/<scene>/<token>/labels.npz')
    p.add_argument('infos', nargs='+', help='info pkl(s), relative to DATA_ROOT or absolute')
    p.add_argument('--cache-dir', required=True, help='cache folder (created)')
    p.add_argument('--workers', type=int, default=1, help='processes (default 1)')
    p.add_argument('--grid', nargs=7, type=float,
                   metavar=('X_MIN', 'Y_MIN', 'Z_MIN', 'X_MAX', 'Y_MAX', 'Z_MAX', 'VOXEL'),
                   help='grid range (metres, ego frame) and voxel size (default: Occ3D)')
    args = p.parse_args(argv)
    if not os.path.isdir(args.data_root):
        p.error(f'data root {args.data_root} is not a folder')
    for path in args.infos:
        full = path if os.path.isabs(path) else os.path.join(args.data_root, path)
        if not os.path.isfile(full):
            p.error(f'info pkl {full} not found (give it relative to DATA_ROOT or absolute)')
    if args.workers < 1:
        p.error('--workers must be >= 1')
    return args


def frame_paths(data_root: str, infos: str):
    """Every ``labels.npz`` path of an info pkl, through ``OccForecastDataset``."""
    from occwm.data.occ_dataset import OccForecastDataset
    ds = OccForecastDataset(ann_file=infos, data_root=data_root, num_past=1, num_future=0,
                            pipeline=[], serialize_data=False)
    return [ds.get_data_info(i)['occ_paths'][0] for i in range(len(ds))]


_CACHE = None


def _init(cache_dir, grid):
    global _CACHE
    from occwm.data.occ_cache import OccCache
    _CACHE = OccCache(cache_dir, grid)


def _build(src):
    if _CACHE.is_fresh(src):
        return 0
    _CACHE.build(src)
    return 1


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    from occwm.grid import DEFAULT_GRID, OccGrid
    grid = OccGrid(tuple(args.grid[:6]), args.grid[6]) if args.grid else DEFAULT_GRID
    paths = []
    for infos in args.infos:
        try:
            paths += frame_paths(args.data_root, infos)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f'error: {e}')
    paths = sorted(set(paths))
    built = 0
    try:
        if args.workers == 1:
            _init(args.cache_dir, grid)
            for p in tqdm(paths, desc='caching', unit='frame'):
                built += _build(p)
        else:
            with Pool(args.workers, _init, (args.cache_dir, grid)) as pool:
                for b in tqdm(pool.imap_unordered(_build, paths, chunksize=8), total=len(paths),
                              desc='caching', unit='frame'):
                    built += b
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    print(f'{len(paths)} frames: {built} cached, {len(paths) - built} already fresh; '
          f'cache in {os.path.abspath(args.cache_dir)}')
    print(f'use it with LoadOccWindow(cache_dir={args.cache_dir!r})')


if __name__ == '__main__':
    main()
