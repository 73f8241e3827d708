"""Score occupancy forecasts stored on disk under a published protocol.

Example::

    python tools/eval_occ.py --infos data/nuscenes/nuscenes_infos_val_temporal_v3_scene.pkl \\
        --gt-root data/nuscenes/gts --pred-root outputs/forecast --protocol occworld \\
        --out-json outputs/eval.json --out-md outputs/eval.md

Predictions: one file per window, ``PRED_ROOT/<scene_name>/<token>.npz`` keyed by the
token of the window's present frame (its last past frame), holding ``semantics``
``(6, 200, 200, 16) uint8``, the future frames in order (``tools/forecast.py`` writes
exactly this). Ground truth: ``GT_ROOT/<scene>/<token>/labels.npz``. The copy-last and
ego-motion-warp baselines are scored beside them under the same protocol, through the
same ``Runner.test`` path as tools/test.py (``FileForecaster`` serves the files). Protocols
(``occworld`` default, ``dome``, ``i2world``) and the JSON schema: README, section
"Evaluation protocols".
"""
import argparse
import os
import sys

from occwm.evaluation.protocols import MASKS, PROTOCOLS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--infos', required=True, help='OccWorld-layout scene-keyed info pkl')
    p.add_argument('--gt-root', required=True,
                   help='folder of <scene>/<token>/labels.npz (e.g. data/nuscenes/gts)')
    p.add_argument('--pred-root', required=True, help='folder of <scene>/<present token>.npz')
    p.add_argument('--protocol', default='occworld', choices=sorted(PROTOCOLS),
                   help='evaluation protocol (default: occworld)')
    p.add_argument('--mask', default='none', choices=MASKS,
                   help='count only voxels visible to the camera / LiDAR (default: none)')
    p.add_argument('--num-future', type=int,
                   help='future frames to score (default: the protocol\'s, 6; e.g. 12 for '
                        'long rollouts)')
    p.add_argument('--point-cloud-range', type=float, nargs=6,
                   default=[-40.0, -40.0, -1.0, 40.0, 40.0, 5.4],
                   help='grid range x_min y_min z_min x_max y_max z_max in metres, ego frame '
                        '(default: Occ3D-nuScenes)')
    p.add_argument('--voxel-size', type=float, default=0.4, help='voxel edge in metres (0.4)')
    p.add_argument('--out-json', help='write the report as JSON here')
    p.add_argument('--out-md', help='write the report as Markdown here')
    p.add_argument('--allow-missing', action='store_true',
                   help='skip windows without a prediction file (and say how many)')
    p.add_argument('--work-dir', help='folder for the logs (default: a temporary folder)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from occwm.engine.evaluate import evaluate_files
    from occwm.evaluation.report import write_report
    from occwm.grid import OccGrid
    for name, path in (('--infos', args.infos), ('--gt-root', args.gt_root),
                       ('--pred-root', args.pred_root)):
        if not os.path.exists(path):
            sys.exit(f'error: {name} {path} does not exist')
    from occwm.io import check_writable
    from occwm.runtime import SetupError
    try:  # the reports' folders, before the evaluation
        for flag, path in (('--out-json', args.out_json), ('--out-md', args.out_md)):
            if path:
                check_writable(os.path.dirname(os.path.abspath(path)), flag)
    except SetupError as e:
        sys.exit(f'error: {e}')
    try:
        grid = OccGrid(point_cloud_range=tuple(args.point_cloud_range), voxel_size=args.voxel_size)
        report = evaluate_files(args.infos, args.gt_root, args.pred_root, args.protocol,
                                args.mask, args.num_future, args.allow_missing, grid,
                                args.work_dir)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')
    if report['missing_windows']:
        print(f"skipped {report['missing_windows']} windows without a prediction file "
              f"(--allow-missing), e.g. {report['missing_examples'][0]}")
    write_report(report, args.out_json, args.out_md)
    for path in (args.out_json, args.out_md):
        if path:
            print(f'report written to {os.path.abspath(path)}')


if __name__ == '__main__':
    main()
