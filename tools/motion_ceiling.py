"""How far the agent tracker is from the best rigid motion of the agents it tracks.

    python tools/motion_ceiling.py data/synthetic data/synthetic/synthetic_infos_train.pkl

For windows of a set (every ``--stride``-th), the movable classes' IoU at each horizon
for three forecasts, all built by ``occwm.motion.motion_warp`` (the present warped into
the future ego frame, tracked agents lifted out and pasted moved on):

* ``warp``: no agent moved (the warp baseline);
* ``tracker``: the agents ``occwm.motion.track_agents`` finds, moved as the past
  shows and along the ego's path (``occwm.motion.follow_path``; what the forecaster's
  base holds);
* ``oracle``: the same agents, each moved by the displacement that overlaps its
  present footprint most with the *recorded future* at that horizon
  (``occwm.motion.block_shift`` against the ground truth warped back into the present
  frame, searched within 15 voxels of the tracker's guess; a rigid shift without
  turning). No forecast can place the
  tracked agents rigidly better; what stays missing is agents the tracker does not
  find, agents entering the grid and footprints that change shape.

IoU counts are summed over the windows (``occwm.evaluation.functional.confusion_counts``);
classes without ground-truth voxels print ``-``. A diagnostic: the oracle reads the
future, so use it on training scenes to choose tracker settings, on held-out scenes
only to report the gap.
"""
import argparse
import copy
import os
import sys

import numpy as np
from tqdm import tqdm

from occwm.evaluation.functional import OccCounts, confusion_counts
from occwm.geometry import FRAME_DT, relative_se2
from occwm.grid import DEFAULT_GRID, DYNAMIC_CLASSES, OCC3D_CLASS_NAMES
from occwm.motion import block_shift, follow_path, motion_warp, track_agents
from occwm.warp import warp_planar

SEARCH = 15  # voxels around the tracker's guess where the oracle looks for the agent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data_root', help='folder holding gts/ (e.g. data/synthetic)')
    p.add_argument('infos', help='its info pkl')
    p.add_argument('--stride', type=int, default=17, help='every N-th window (default 17)')
    p.add_argument('--num-past', type=int, default=5, help='past frames incl. the present (5)')
    p.add_argument('--horizons', type=int, nargs='+', default=[2, 4, 6],
                   help='future frames scored (default 2 4 6: 1 s, 2 s, 3 s at 2 Hz)')
    p.add_argument('--classes', type=int, nargs='+', default=[2, 3, 4, 7, 10],
                   help='classes the tracker follows (default: configs/occ.py\'s 2 3 4 7 10)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def oracle_agents(agents, present_gt: np.ndarray, steps: int):
    """The agents, each with the per-frame shift that overlaps its footprint most with
    ``present_gt`` ``(X, Y, Z) uint8`` (the future at ``steps`` frames, present frame)."""
    out = []
    for a in agents:
        cells = np.argwhere((present_gt == a.label).any(-1))  # (M, 2)
        guess = a.offset(steps)[0]  # the tracker's displacement (voxels)
        near = cells[np.linalg.norm(cells - (a.center + guess), axis=1) < SEARCH] if len(cells) else cells
        if not len(near):
            out.append(a)
            continue
        b = copy.copy(a)
        b.shift, b.turn = block_shift(near, a.footprint, guess) / steps, 0.0
        b.accel = b.path = None  # constant velocity: ``steps`` shifts land on the best one
        out.append(b)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    from occwm.api import load_window
    from occwm.runtime import SetupError
    grid = DEFAULT_GRID
    T_f = max(args.horizons)
    counts = {m: {h: OccCounts.zeros() for h in args.horizons} for m in ('warp', 'tracker', 'oracle')}
    n_windows = 0
    try:  # windows until the set has no more (a missing set fails on the first)
        for idx in tqdm(range(0, 10 ** 9, args.stride), disable=args.no_progress, desc='windows'):
            try:
                w = load_window(args.data_root, args.infos, idx, args.num_past, T_f)
            except IndexError:
                break
            T_p = len(w.past)
            agents = follow_path(track_agents(w.past, w.traj[:T_p], grid, classes=args.classes),
                                 w.traj, T_f, grid)
            # the scored horizons only, in args.horizons order
            base = {'warp': motion_warp(w.past, w.traj, grid, agents=[], steps=args.horizons)[0],
                    'tracker': motion_warp(w.past, w.traj, grid, agents=agents,
                                           steps=args.horizons)[0]}
            for i, h in enumerate(args.horizons):
                gt = w.future[h - 1]
                back = relative_se2(w.traj[T_p + h - 1], np.zeros(3))  # the present ego in frame h
                gt_p = warp_planar(gt[None], back[None, None], grid, fill=grid.free_label)[0][0][0]
                orc = motion_warp(w.past, w.traj, grid, agents=oracle_agents(agents, gt_p, h),
                                  steps=[h])[0][0]
                for m, pred in (('warp', base['warp'][i]), ('tracker', base['tracker'][i]),
                                ('oracle', orc)):
                    counts[m][h] = counts[m][h] + confusion_counts(pred, gt)
            n_windows += 1
    except (SetupError, OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'{n_windows} windows of {os.path.basename(args.infos)}; class IoU (%) per horizon')
    head = 'method   horizon  ' + ' '.join(f'{OCC3D_CLASS_NAMES[c][:10]:>10s}' for c in DYNAMIC_CLASSES)
    print(head)
    for m in counts:
        for h in args.horizons:
            ious = counts[m][h].class_ious()
            cells = ' '.join(f'{100 * ious[c]:10.1f}' if np.isfinite(ious[c]) else f'{"-":>10s}'
                             for c in DYNAMIC_CLASSES)
            print(f'{m:8s} {h * FRAME_DT:5.1f} s  {cells}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
