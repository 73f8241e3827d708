"""Convert a PandaSet sequence into occwm's frame format ("bring your own LiDAR").

Example::

    python tools/convert_pandaset.py ../shared/data/pandaset_002 outputs/pandaset_002
    python tools/build_occupancy.py --format frames outputs/pandaset_002 outputs/occ_pandaset \
        --report

writes ``OUT/frames/000000.npz ...`` (one per 2 Hz keyframe: PandaSet frames 00, 05, ..., 75;
points of both LiDARs in the Pandar64 frame, Occ3D labels, ego-frame boxes with track
ids) and ``OUT/scene.json`` (the six cameras, one calibration per frame), then prints per
frame the road height, the boxes and removed sibling duplicates, and the share of
movable-class points inside a box. The class map and the frames are documented in
``occwm/occupancy/pandaset.py``; measured numbers in ``docs/pandaset.md``.
The output folder is written atomically (a temporary folder renamed at the end); a
non-empty OUT is kept unless ``--overwrite``.
"""
import argparse
import os
import sys

from occwm.occupancy.pandaset import PANDASET_KEYFRAMES, convert_pandaset, format_conversion


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src_dir', help='a PandaSet sequence folder (lidar/, annotations/, camera/; '
                                   'the layout of ../shared/data/pandaset_002)')
    p.add_argument('out_dir', help='output folder of the frame format (frames/, scene.json)')
    p.add_argument('--num-frames', type=int, metavar='N',
                   help=f'convert only the first N keyframes (default all '
                        f'{len(PANDASET_KEYFRAMES)})')
    p.add_argument('--scene-name', help='scene name (default: the folder name, e.g. pandaset_002)')
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty OUT_DIR')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.num_frames is not None and not 1 <= args.num_frames <= len(PANDASET_KEYFRAMES):
        sys.exit(f'error: --num-frames must be 1..{len(PANDASET_KEYFRAMES)}, got {args.num_frames}')
    try:
        summary = convert_pandaset(args.src_dir, args.out_dir, num_frames=args.num_frames,
                                   scene_name=args.scene_name, overwrite=args.overwrite,
                                   progress=not args.quiet)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        sys.exit(f'error: {e}')
    n = len(summary['frames'])
    print(format_conversion(summary))
    print(f"converted {n} keyframes of {summary['scene_name']} in {summary['seconds']:.1f} s")
    print(f"frames:     {os.path.join(args.out_dir, 'frames')} ({n} npz)")
    print(f"scene.json: {os.path.join(args.out_dir, 'scene.json')} (6 cameras, per frame)")
    print(f'next:       python tools/build_occupancy.py --format frames {args.out_dir} OCC_OUT '
          f'--report')


if __name__ == '__main__':
    main()
