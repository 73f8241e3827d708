"""Info pkls in occwm's scene-keyed layout (OccWorld's) from a nuScenes-schema database.

Example::

    python tools/create_data.py --root data/nuscenes --version v1.0-trainval --out data/nuscenes

reads ``ROOT/VERSION/*.json`` with nuscenes-devkit and writes
``OUT/nuscenes_infos_{train,val}_temporal_v3_scene.pkl`` (``test`` for v1.0-test):
``{'metadata': ..., 'infos': {scene_name: [frame_info, ...]}}``, keyframes in time order,
splits from ``nuscenes.utils.splits``. Fields: ``occwm/infos/nuscenes.py``.
Other databases in the nuScenes schema (e.g. Lyft's v1.01-train) work too; their scenes
are in no nuScenes split and go to ``--unsplit-to``.
"""
import argparse
import sys

from occwm.infos.nuscenes import CAMERA_CHANNELS, create_nuscenes_infos, format_summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', required=True,
                   help='data root holding VERSION/*.json, samples/, sweeps/ (and lidarseg/)')
    p.add_argument('--version', default='v1.0-trainval',
                   help='table folder under the root: v1.0-mini, v1.0-trainval, v1.0-test, '
                        'or another nuScenes-schema database (default: v1.0-trainval)')
    p.add_argument('--out', required=True, help='output folder of the info pkls')
    p.add_argument('--max-sweeps', type=int, default=10,
                   help='earlier LIDAR_TOP sweeps per keyframe (default 10)')
    p.add_argument('--unsplit-to', choices=('train', 'val', 'skip'), default='train',
                   help='where scenes in no nuScenes split of the version go (default train)')
    p.add_argument('--cams', nargs='+', default=list(CAMERA_CHANNELS),
                   help='camera channels to keep where a sample has them '
                        '(default: the six nuScenes cameras)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = create_nuscenes_infos(args.root, args.version, args.out,
                                        max_sweeps=args.max_sweeps, unsplit_to=args.unsplit_to,
                                        progress=not args.quiet, cam_channels=args.cams)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}\n(point --root at the folder holding the {args.version}/ table '
                 f'folder, e.g. data/nuscenes with data/nuscenes/{args.version}/scene.json)')
    print(format_summary(summary))
    written = [s['path'] for s in summary['splits'].values() if s['path']]
    print(f'wrote {len(written)} info pkls to {args.out}')


if __name__ == '__main__':
    main()
