"""Convert a LiDAR sequence in the nuscenes_seq11 layout into the frame format.

Example::

    python tools/convert_seq11.py ../shared/data/nuscenes_seq11 outputs/seq11_frames
    python tools/build_occupancy.py --format frames outputs/seq11_frames outputs/occ_seq11

writes ``OUT/frames/000000.npz, ...`` (one per frame, ``occwm/occupancy/frames.py``:
points and labels as they are, boxes moved from the LiDAR frame into the ego frame) and
``OUT/scene.json`` (scene name, default ``nuscenes_<folder>``, e.g. ``nuscenes_seq11``).
``--cam-calib PKL`` adds six fixed cameras to ``scene.json`` (the calibrations of an info
pkl; of another log of the same vehicle family they are an approximation), so that the
build computes ``mask_camera``. The source layout is described in
``occwm/occupancy/builder.py``; ``tools/build_occupancy.py SRC OUT`` reads it through the
same conversion in memory.
"""
import argparse
import os
import sys

from occwm.occupancy.builder import default_scene_name, read_seq11_frame, seq11_indices
from occwm.occupancy.frames import (FRAMES_DIR, SCENE_JSON, frame_path, load_frames,
                                    write_frame, write_scene_json)
from occwm.occupancy.visibility import load_cam_calib

FIELDS = ('points', 'labels', 'lidar2ego', 'ego2global', 'timestamp', 'boxes', 'box_ids',
          'box_labels')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src_dir', help='a folder in the layout of nuscenes_seq11 '
                                   '(pc_seman/, bbox/, pose/, calib/)')
    p.add_argument('out_dir', help='output folder (frames/NNNNNN.npz and scene.json)')
    p.add_argument('--scene-name', help='scene name in scene.json (default: from the folder '
                                        'name, e.g. nuscenes_seq11)')
    p.add_argument('--cam-calib', metavar='PKL',
                   help='camera calibrations for scene.json: an mmdet3d-1.x or OccWorld / occwm '
                        'info pkl (default: no cameras, mask_camera all ones)')
    p.add_argument('--cam-index', type=int, default=0,
                   help='which frame of --cam-calib to take the calibrations from (default 0)')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the frames and scene.json already in OUT_DIR')
    return p.parse_args(argv)


def _clear(out_dir: str, overwrite: bool) -> None:
    """Stop unless ``out_dir`` holds no frames (or remove them with ``overwrite``): stale
    frames of a longer sequence would be read as part of this one."""
    folder = os.path.join(out_dir, FRAMES_DIR)
    old = [f for f in os.listdir(folder) if f.endswith('.npz')] if os.path.isdir(folder) else []
    if old and not overwrite:
        sys.exit(f'error: {folder} already holds {len(old)} frame files; give an empty '
                 f'OUT_DIR or --overwrite')
    for f in old:
        os.remove(os.path.join(folder, f))
    if overwrite and os.path.isfile(os.path.join(out_dir, SCENE_JSON)):
        os.remove(os.path.join(out_dir, SCENE_JSON))


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isdir(args.src_dir):
        sys.exit(f'error: {args.src_dir}: source folder not found')
    try:
        cams = None if args.cam_calib is None else load_cam_calib(args.cam_calib, args.cam_index)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(' '.join(f'error: --cam-calib: {e}'.split()))
    _clear(args.out_dir, args.overwrite)
    scene_name = args.scene_name or default_scene_name(args.src_dir)
    try:
        indices = seq11_indices(args.src_dir)
        for i, k in enumerate(indices):
            frame = read_seq11_frame(args.src_dir, k)
            write_frame(frame_path(args.out_dir, i), **{key: frame[key] for key in FIELDS})
            print(f'\rframe {i + 1}/{len(indices)}', end='', flush=True)
        print()
        write_scene_json(args.out_dir, scene_name, cams)
        load_frames(args.out_dir)                  # the written folder reads back (time order)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(' '.join(f'error: {e}'.split()))
    print(f"frames:     {os.path.join(args.out_dir, FRAMES_DIR)} ({len(indices)} files)")
    print(f"scene.json: {os.path.join(args.out_dir, SCENE_JSON)} (scene {scene_name}, "
          f"{len(cams or {})} cameras)")


if __name__ == '__main__':
    main()
