"""Build Occ3D-layout occupancy ground truth from real LiDAR sequences.

Frame format (bring your own LiDAR; ``occwm/occupancy/frames.py`` documents it:
``SRC/frames/000000.npz, ...`` with points, labels, lidar2ego, ego2global, timestamp and
optional ego-frame boxes, plus an optional ``SRC/scene.json`` with the scene name and
cameras)::

    python tools/build_occupancy.py --format frames SRC OUT --report

The nuscenes_seq11 layout (``pc_seman/ bbox/ pose/ calib/``; read through the frame
format in memory, ``tools/convert_seq11.py`` writes it as frames)::

    python tools/build_occupancy.py ../shared/data/nuscenes_seq11 outputs/occ_seq11 --report

``--format auto`` (the default) tells the two apart by the ``frames/`` or ``pc_seman/``
folder. Both write ``OUT_DIR/gts/<scene>/<token>/labels.npz`` per frame and
``OUT_DIR/<scene>_infos.pkl`` (OccWorld layout); frame-format tokens are derived from the
scene name and the frame index (``frames.frame_token``), seq11 tokens are the nuScenes
ones. The method is described in ``occwm/occupancy/builder.py``.
Visibility: ``--ray-cast all`` (default) casts LiDAR rays from every aggregated scan
(``mask_lidar``); ``mask_camera`` comes from the cameras of ``scene.json`` (frame format)
or ``--cam-calib PKL`` (six camera calibrations taken from an info pkl, mmdet3d-1.x or
OccWorld; calibrations of another log of the same vehicle are an approximation; it
overrides ``scene.json``), else it is all ones; ``--densify`` fills static surfaces by
Poisson reconstruction (SurroundOcc)::

    python tools/build_occupancy.py ../shared/data/nuscenes_seq11 outputs/occ_seq11 --report \
        --cam-calib ../shared/data/nuscenes_frame_cams/n015-2018-07-24-11-22-45+0800.pkl

Root mode: any scene of a nuScenes root with nuScenes-lidarseg, read through
nuscenes-devkit (``occwm/occupancy/nuscenes.py``; same method)::

    python tools/build_occupancy.py --nusc-root data/nuscenes --version v1.0-trainval \
        --scenes scene-0103 scene-0916 --out data/nuscenes

writes ``OUT/gts/<scene_name>/<sample_token>/labels.npz`` for every keyframe and
``OUT/nuscenes_occ_infos_<version>.pkl`` (all scenes when ``--scenes`` is left out).
In root mode ``mask_camera`` comes from each scene's own six camera calibrations (the
``calibrated_sensor`` records of its CAM_* keyframes; no image is read); ``--cam-calib
PKL`` overrides them with the calibrations of an info pkl, ``--no-camera-mask`` skips the
camera rays (faster, mask_camera all ones). A database without camera channels (e.g.
LiDAR only) gives mask_camera all ones, with a printed note and a line in the info pkl
metadata (``mask_camera``).

Bad input stops with one line naming the file and the field, e.g.
``error: SRC/frames/000003.npz: lidar2ego: rotation not orthonormal (...)``; so do ego
poses no road vehicle drives (over 70 m/s or 15 m/s^2) and timestamps in another unit
than seconds. OUT_DIR is checked for writing and locked before the work starts; a scene
already built there (its ``gts/<scene>`` folder or info pkl) is replaced only with
``--overwrite``.
"""
import argparse
import os
import sys

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.io import lock_output_dir, shared_data_dir
from occwm.occupancy.builder import (
    RAY_CAST_MODES,
    SOURCE_FORMATS,
    build_scene,
    format_report,
    occupancy_report,
)
from occwm.occupancy.nuscenes import build_nuscenes_scenes
from occwm.occupancy.visibility import load_cam_calib
from occwm.runtime import SetupError

OCC3D_REFERENCE = os.path.join(shared_data_dir(), 'occ3d_sample', '29796060110c4163b07f06eff4af0753',
                               'labels.npz')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src_dir', nargs='?', help='folder mode: a folder in the frame format '
                                              '(frames/NNNNNN.npz, scene.json) or in the '
                                              'layout of nuscenes_seq11 (pc_seman/, bbox/, '
                                              'pose/, calib/)')
    p.add_argument('out_dir', nargs='?', help='output data root '
                                              '(gts/<scene>/<token>/labels.npz and the info pkl)')
    p.add_argument('--out', help='output data root (the same as OUT_DIR; needed in root mode)')
    p.add_argument('--format', choices=('auto',) + SOURCE_FORMATS, default='auto',
                   help='folder mode: the layout of SRC_DIR: frames (occwm/occupancy/frames.py), '
                        'seq11 (nuscenes_seq11) or auto (default: by its frames/ or pc_seman/ '
                        'folder)')
    root = p.add_argument_group('root mode (instead of SRC_DIR)')
    root.add_argument('--nusc-root', help='nuScenes root with <version>/*.json, '
                                          'samples/LIDAR_TOP/ and lidarseg/<version>/')
    root.add_argument('--version', help='nuScenes version (default v1.0-trainval)')
    root.add_argument('--scenes', nargs='+', help='scene names (default: every scene)')
    root.add_argument('--skip-missing', action='store_true',
                      help='skip keyframes whose scan or lidarseg labels are missing, with a '
                           'warning (default: stop with an error naming the file)')
    p.add_argument('--scene-name',
                   help="scene key (default: scene.json's scene_name in the frame format, "
                        'else from the folder name, e.g. nuscenes_seq11)')
    p.add_argument('--info-name', help='info pkl file name (default: <scene>_infos.pkl; root '
                                       'mode: nuscenes_occ_infos_<version>.pkl)')
    p.add_argument('--grid', nargs=7, type=float,
                   metavar=('X_MIN', 'Y_MIN', 'Z_MIN', 'X_MAX', 'Y_MAX', 'Z_MAX', 'VOXEL'),
                   help='grid range (metres, ego frame) and voxel size '
                        '(default: Occ3D -40 -40 -1 40 40 5.4 0.4)')
    p.add_argument('--ray-cast', choices=RAY_CAST_MODES, default='all',
                   help='mask_lidar from the rays of every aggregated scan (all, default), of '
                        "each frame's own scan (own), or the occupied voxels only (none)")
    p.add_argument('--no-ray-cast', action='store_true', help='the same as --ray-cast none')
    p.add_argument('--cam-calib', metavar='PKL',
                   help='camera calibrations for mask_camera: an mmdet3d-1.x info pkl '
                        "(data_list[i]['images']) or an OccWorld / occwm info pkl "
                        "(infos[...]['cams']); from another log of the same vehicle family "
                        'this is an approximation. Default: the cameras of scene.json in the '
                        'frame format, mask_camera all ones for seq11; root mode: the '
                        "database's own camera calibrations (this overrides them)")
    p.add_argument('--no-camera-mask', action='store_true',
                   help='no camera rays: mask_camera all ones (faster; the cameras of '
                        "scene.json or, in root mode, of the database are not used)")
    p.add_argument('--cam-index', type=int, default=0,
                   help='which frame of --cam-calib to take the calibrations from (default 0)')
    p.add_argument('--cam-stride', type=int, default=8,
                   help='pixel step between camera rays (default 8)')
    p.add_argument('--densify', action='store_true',
                   help='fill static surfaces by Poisson reconstruction (SurroundOcc; about '
                        '30 s more per sequence)')
    p.add_argument('--report', action='store_true',
                   help='print per-frame non-free fraction, classes, consecutive static IoU '
                        'and the observed-free / observed-occupied / unobserved fractions of '
                        'mask_lidar and mask_camera beside the --reference frame')
    p.add_argument('--reference', default=OCC3D_REFERENCE,
                   help='official Occ3D labels.npz to compare with')
    p.add_argument('--overwrite', action='store_true',
                   help="replace the scene's gts/<scene> folder and info pkl of an earlier "
                        'build in OUT_DIR (without it they are refused)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def _check_mode(args):
    """Exit with a message unless exactly one input mode is given; returns the output root."""
    if args.out and args.out_dir and args.out != args.out_dir:
        sys.exit(f'error: two output roots ({args.out_dir} and --out {args.out}); give one')
    out = args.out or args.out_dir
    if args.nusc_root and args.src_dir:
        sys.exit('error: give SRC_DIR (folder mode) or --nusc-root (root mode), not both '
                 '(in root mode the output root goes to --out)')
    if not args.nusc_root and not args.src_dir:
        sys.exit('error: give SRC_DIR OUT_DIR (folder mode) or --nusc-root ROOT --out OUT_DIR '
                 '(root mode); see --help')
    if args.nusc_root and args.format != 'auto':
        sys.exit('error: --format is for folder mode (SRC_DIR)')
    if not args.nusc_root and (args.version or args.scenes or args.skip_missing):
        sys.exit('error: --version, --scenes and --skip-missing need --nusc-root')
    if args.nusc_root and args.scene_name:
        sys.exit('error: --scene-name is for folder mode; root mode uses the nuScenes scene names')
    if not out:
        sys.exit('error: no output root: give OUT_DIR or --out')
    return out


def _root_mode(args, out, grid, cams):
    """Build the scenes of a nuScenes root (``occwm.occupancy.nuscenes``); ``cams``:
    ``'database'``, ``None`` (no camera mask) or the ``--cam-calib`` cameras."""
    version = args.version or 'v1.0-trainval'
    try:
        result = build_nuscenes_scenes(args.nusc_root, version, out, scenes=args.scenes,
                                       info_name=args.info_name, grid=grid,
                                       ray_cast='none' if args.no_ray_cast else args.ray_cast,
                                       skip_missing=args.skip_missing,
                                       keep_occupancy=args.report, progress=not args.quiet,
                                       cams=cams, cam_stride=args.cam_stride,
                                       build_options=dict(densify=args.densify),
                                       overwrite=args.overwrite)
    except SetupError as e:
        sys.exit(f'error: {e}')
    except (FileNotFoundError, ValueError, KeyError) as e:
        sys.exit(f'error: {e.args[0] if isinstance(e, KeyError) else e} (root mode needs '
                 f'nuScenes with nuScenes-lidarseg: <root>/<version>/*.json, samples/LIDAR_TOP/, '
                 f'lidarseg/<version>/; --skip-missing skips keyframes with missing files, '
                 f'--no-camera-mask the camera calibrations)')
    n = sum(len(p) for p in result['label_paths'].values())
    print(f"built {n} frames of {len(result['scene_names'])} scenes in {result['seconds']:.1f} s")
    for name in result['scene_names']:
        print(f"{name}: mask_camera {result['mask_camera'][name]}")
    bare = [name for name in result['scene_names'] if not result['cameras'][name]]
    if cams == 'database' and bare:
        print(f"note: no camera channels (CAM_*) in {args.nusc_root} for {len(bare)} scene(s) "
              f"({', '.join(bare[:3])}{', ...' if len(bare) > 3 else ''}): their mask_camera is "
              f'all ones; give --cam-calib PKL for calibrations of the same vehicle')
    print(f"occupancy: {os.path.join(out, 'gts')}/<scene>/<token>/labels.npz ({n} files)")
    print(f"info pkl:  {result['info_path']}")
    if args.report:
        for name in result['scene_names']:
            print(f'scene {name}')
            print(format_report(occupancy_report(result['occupancy'][name],
                                                 result['ego2globals'][name], grid,
                                                 reference=args.reference)))


def main(argv=None):
    args = parse_args(argv)
    out = _check_mode(args)
    try:  # before any work: OUT_DIR writable and ours alone
        lock_output_dir(out, 'OUT_DIR')
    except SetupError as e:
        sys.exit(f'error: {e}')
    try:
        grid = DEFAULT_GRID if args.grid is None else OccGrid(tuple(args.grid[:6]), args.grid[6])
    except ValueError as e:
        sys.exit(f'error: --grid: {e}')
    if args.cam_calib and args.no_camera_mask:
        sys.exit('error: give --cam-calib PKL (camera mask from its calibrations) or '
                 '--no-camera-mask (mask_camera all ones), not both')
    try:
        cams = None if args.cam_calib is None else load_cam_calib(args.cam_calib, args.cam_index)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: --cam-calib: {e}')
    if args.nusc_root:
        return _root_mode(args, out, grid, None if args.no_camera_mask else cams or 'database')
    try:
        result = build_scene(args.src_dir, out, scene_name=args.scene_name,
                             info_name=args.info_name, grid=grid,
                             ray_cast='none' if args.no_ray_cast else args.ray_cast,
                             cams=None if args.no_camera_mask else cams or 'source',
                             densify=args.densify, cam_stride=args.cam_stride,
                             progress=not args.quiet, fmt=args.format,
                             overwrite=args.overwrite)
    except SetupError as e:
        sys.exit(f'error: {e}')
    except (FileNotFoundError, ValueError) as e:
        sys.exit(' '.join(f'error: {e}'.split()))                       # one line
    n = len(result['label_paths'])
    print(f"built {n} frames of scene {result['scene_name']} ({result['format']} format) in "
          f"{result['seconds']:.1f} s ({result['seconds'] / max(n, 1):.2f} s per frame; ray "
          f"cast {'none' if args.no_ray_cast else args.ray_cast}, densify {args.densify})")
    print(f"mask_camera: {result['mask_camera']}")
    print(f"occupancy: {os.path.join(out, 'gts', result['scene_name'])} ({n} labels.npz)")
    print(f"info pkl:  {result['info_path']}")
    if args.report:
        report = occupancy_report(result['occupancy'], result['ego2globals'], grid,
                                  reference=args.reference)
        print(format_report(report))


if __name__ == '__main__':
    main()
