"""Build Occ3D-layout occupancy ground truth from a real nuScenes LiDAR sequence.

Example::

    python tools/build_occupancy.py ../shared/data/nuscenes_seq11 outputs/occ_seq11 --report

writes ``OUT_DIR/gts/<scene>/<token>/labels.npz`` per frame and ``OUT_DIR/<scene>_infos.pkl``
(OccWorld layout). The method is described in ``occwm/data/occ_builder.py``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from occwm.data.occ_builder import build_scene, format_report, occupancy_report  # noqa: E402
from occwm.grid import DEFAULT_GRID, OccGrid  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('OCCWM_SHARED_DATA', os.path.join(os.path.dirname(REPO), 'shared', 'data'))
OCC3D_REFERENCE = os.path.join(SHARED, 'occ3d_sample', '29796060110c4163b07f06eff4af0753',
                               'labels.npz')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src_dir', help='folder in the layout of nuscenes_seq11 '
                                   '(pc_seman/, bbox/, pose/, calib/)')
    p.add_argument('out_dir', help='output data root '
                                   '(gts/<scene>/<token>/labels.npz and the info pkl)')
    p.add_argument('--scene-name',
                   help='scene key (default: from the folder name, e.g. nuscenes_seq11)')
    p.add_argument('--info-name', help='info pkl file name (default: <scene>_infos.pkl)')
    p.add_argument('--grid', nargs=7, type=float,
                   metavar=('X_MIN', 'Y_MIN', 'Z_MIN', 'X_MAX', 'Y_MAX', 'Z_MAX', 'VOXEL'),
                   help='grid range (metres, ego frame) and voxel size '
                        '(default: Occ3D -40 -40 -1 40 40 5.4 0.4)')
    p.add_argument('--no-ray-cast', action='store_true',
                   help='mask_lidar = occupied voxels only (skip the free-space ray cast)')
    p.add_argument('--report', action='store_true',
                   help='print per-frame non-free fraction, classes and consecutive static IoU')
    p.add_argument('--reference', default=OCC3D_REFERENCE,
                   help='official Occ3D labels.npz to compare the non-free fraction with')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        grid = DEFAULT_GRID if args.grid is None else OccGrid(tuple(args.grid[:6]), args.grid[6])
        result = build_scene(args.src_dir, args.out_dir, scene_name=args.scene_name,
                             info_name=args.info_name, grid=grid, ray_cast=not args.no_ray_cast,
                             progress=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}\n(check the source folder against ../shared/data/README.md, '
                 f'section nuscenes_seq11)')
    n = len(result['label_paths'])
    print(f"built {n} frames of scene {result['scene_name']} in {result['seconds']:.1f} s")
    print(f"occupancy: {os.path.join(args.out_dir, 'gts', result['scene_name'])} ({n} labels.npz)")
    print(f"info pkl:  {result['info_path']}")
    if args.report:
        report = occupancy_report(result['occupancy'], result['ego2globals'], grid,
                                  reference=args.reference)
        print(format_report(report))


if __name__ == '__main__':
    main()
