"""Compare occupancy sets side by side: the domain gap between synthetic and real data.

    python tools/domain_gap.py clean=data/synthetic/synthetic_infos_val.pkl \
        lidar=data/synthetic_lidar/synthetic_infos_val.pkl \
        seq11=/tmp/occ_seq11/nuscenes_seq11_infos.pkl \
        occ3d='../shared/data/occ3d_sample/*/labels.npz'

A SET is ``[NAME=]PATH[,PKL]``: a data root and an info pkl (``ROOT,PKL``), an info pkl
alone (its folder is the data root), a folder (every ``labels.npz`` below it, e.g.
``gts/``) or a quoted glob of ``labels.npz`` files. Printed per set (pooled over its
frames): non-free share, share of isolated occupied voxels (no occupied 26-neighbour),
share observed in ``mask_lidar``, class shares of the occupied voxels, and per class
(driveable_surface, car, manmade, vegetation) the z-index distribution, its mean and the
mean above the set's road layer. Method: ``occwm/occupancy/domain_gap.py``.
``--json`` writes the numbers too.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from occwm.grid import DEFAULT_GRID, OCC3D_CLASS_NAMES
from occwm.occupancy.domain_gap import (HEIGHT_CLASSES, format_gap_table, gap_stats,
                                        label_files, set_counts)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('sets', nargs='+', metavar='SET', help='[NAME=]PATH[,PKL] (see above)')
    p.add_argument('--max-frames', type=int, default=0,
                   help='at most this many frames per set, evenly spaced (default: all)')
    p.add_argument('--mask', choices=('mask_lidar', 'mask_camera'),
                   help='count only the voxels inside this mask (default: every voxel)')
    p.add_argument('--classes', nargs='+', default=[OCC3D_CLASS_NAMES[c] for c in HEIGHT_CLASSES],
                   metavar='CLASS', help='classes of the height histograms (default: '
                                         'driveable_surface car manmade vegetation)')
    p.add_argument('--json', metavar='PATH', help='also write the statistics as JSON')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    unknown = [c for c in args.classes if c not in OCC3D_CLASS_NAMES[:-1]]
    if unknown:
        print(f'error: unknown class(es) {unknown}; known: {", ".join(OCC3D_CLASS_NAMES[:-1])}',
              file=sys.stderr)
        return 2
    height = [OCC3D_CLASS_NAMES.index(c) for c in args.classes]
    stats = {}
    for spec in args.sets:
        try:
            name, paths = label_files(spec)
            if args.max_frames and len(paths) > args.max_frames:
                pick = np.linspace(0, len(paths) - 1, args.max_frames).round().astype(int)
                paths = [paths[i] for i in pick]
            start = time.perf_counter()
            counts = set_counts(paths, DEFAULT_GRID, args.mask, progress=not args.no_progress,
                                desc=name)
        except (FileNotFoundError, ValueError) as e:
            print(f'error: set {spec!r}: {e}', file=sys.stderr)
            return 1
        if name in stats:
            print(f'error: two sets are named {name!r}; name them NAME=PATH', file=sys.stderr)
            return 2
        stats[name] = gap_stats(counts, height_classes=height)
        print(f'{name}: {len(paths)} frames in {time.perf_counter() - start:.1f} s',
              file=sys.stderr)
    print(f"domain gap ({'voxels inside ' + args.mask if args.mask else 'every voxel'}; "
          f'% unless stated)')
    print(format_gap_table(stats))
    if args.json:
        def plain(v):
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v.tolist() if isinstance(v, np.ndarray) else v
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(plain(stats), f, indent=1)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
