"""Write the embedded SYNTHETIC data set (procedural driving scenes, no real data).

    python tools/make_synthetic.py data/synthetic --num-train 24 --num-val 6 --frames 20 --seed 0

Writes ``OUT_DIR/gts/synthetic-XXXX/<token>/labels.npz`` (Occ3D layout) and
``OUT_DIR/synthetic_infos_{train,val}.pkl`` (OccWorld-style scene-keyed infos); the
val scenes are held out (drawn from different seeds). See ``occwm.synthetic.scenes``.
"""
import argparse
import os
import sys
import time

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.synthetic.scenes import SyntheticSceneConfig, write_synthetic_dataset


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir', help='data root to write (e.g. data/synthetic)')
    p.add_argument('--num-train', type=int, default=24, help='training scenes (default 24)')
    p.add_argument('--num-val', type=int, default=6, help='held-out validation scenes (default 6)')
    p.add_argument('--frames', type=int, default=20, help='frames per scene (default 20)')
    p.add_argument('--seed', type=int, default=0, help='data set seed (default 0)')
    p.add_argument('--frame-rate', type=float, default=2.0, help='Hz (default 2, nuScenes keyframes)')
    p.add_argument('--pc-range', type=float, nargs=6, default=list(DEFAULT_GRID.point_cloud_range),
                   metavar=('XMIN', 'YMIN', 'ZMIN', 'XMAX', 'YMAX', 'ZMAX'),
                   help='grid range in metres, ego frame (default Occ3D: -40 -40 -1 40 40 5.4)')
    p.add_argument('--voxel-size', type=float, default=DEFAULT_GRID.voxel_size,
                   help='voxel edge in metres (default 0.4)')
    p.add_argument('--overwrite', action='store_true',
                   help='write even if OUT_DIR already holds synthetic info pkls')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        grid = OccGrid(tuple(args.pc_range), args.voxel_size)
    except ValueError as e:
        print(f'error: bad grid: {e}', file=sys.stderr)
        return 2
    existing = [f for f in ('synthetic_infos_train.pkl', 'synthetic_infos_val.pkl')
                if os.path.exists(os.path.join(args.out_dir, f))]
    if existing and not args.overwrite:
        print(f'error: {args.out_dir} already holds {", ".join(existing)}; pass --overwrite to '
              f'replace the synthetic data set or choose another OUT_DIR', file=sys.stderr)
        return 1
    if args.frames < 1 or args.num_train < 0 or args.num_val < 0:
        print('error: --frames must be >= 1 and the scene counts >= 0', file=sys.stderr)
        return 2
    print(f'writing a SYNTHETIC data set (procedural scenes, not real data): '
          f'{args.num_train} train + {args.num_val} val scenes x {args.frames} frames, '
          f'seed {args.seed}, grid {grid.shape} -> {args.out_dir}')
    start = time.time()
    out = write_synthetic_dataset(args.out_dir, args.num_train, args.num_val, args.frames,
                                  args.seed, grid, SyntheticSceneConfig(frame_rate=args.frame_rate),
                                  progress=not args.no_progress)
    print(f'wrote {out["num_frames"]} synthetic frames in {time.time() - start:.1f} s:')
    print(f'  occupancy  {out["gts"]}/synthetic-XXXX/<token>/labels.npz')
    for split in ('train', 'val'):
        print(f'  {split:5s} pkl  {out[split]}  ({len(out["scenes"][split])} scenes)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
