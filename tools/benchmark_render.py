"""Benchmark the pictures: seconds to render a 6-frame comparison GIF at 1280x720.

    python tools/benchmark_render.py [--repeats 3] [--size 1280x720] [--frames 6]

The comparison is ground truth | forecast | errors side by side in every frame (3 open3d
renders per frame), the time written on each panel and a legend, written as a GIF (and
an MP4 when imageio-ffmpeg is there) into a temporary folder. The input is a synthetic
scene (``occwm.synthetic.scenes.generate_scene``, ``--seed``) whose "forecast" is the
ground truth with the moving agents shifted by a few voxels. Prints the median over
``--repeats`` runs of the whole GIF and of its stages, and the open3d backend used.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from occwm.grid import DYNAMIC_CLASSES
from occwm.synthetic.scenes import generate_scene
from occwm.visualization.figures import window_video
from occwm.visualization.geometry import occupancy_to_mesh
from occwm.visualization.media import ffmpeg_available, write_video
from occwm.visualization.render import OccRenderer, scene_geometries
from occwm.window import OccWindow


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Time a comparison GIF (ground truth | forecast | '
                                            'errors) of occwm pictures.')
    p.add_argument('--size', default='1280x720', help='frame size WxH (1280x720)')
    p.add_argument('--frames', type=int, default=6, help='future frames = GIF frames (6)')
    p.add_argument('--repeats', type=int, default=3, help='timed runs; the median is printed')
    p.add_argument('--seed', type=int, default=0, help='synthetic scene seed')
    p.add_argument('--view', default='bev', help='camera preset (bev, chase, orbit)')
    p.add_argument('--backend', default=None, help='open3d backend (auto, legacy, filament)')
    return p.parse_args(argv)


def make_case(seed: int, frames: int):
    """A synthetic ground truth of ``frames`` frames and a forecast with the dynamic
    agents moved 3 voxels forward (false positives and negatives to draw)."""
    occ, _, _ = generate_scene(seed, num_frames=frames)  # (T, X, Y, Z)
    pred = occ.copy()
    dynamic = np.isin(occ, DYNAMIC_CLASSES)  # (T, X, Y, Z)
    pred[dynamic] = 17
    t, x, y, z = np.nonzero(dynamic)
    pred[t, np.clip(x + 3, 0, occ.shape[1] - 1), y, z] = occ[t, x, y, z]
    return occ, pred


def main(argv=None):
    args = parse_args(argv)
    try:
        size = tuple(int(v) for v in args.size.lower().split('x'))
        assert len(size) == 2 and min(size) > 0
    except (ValueError, AssertionError):
        sys.exit(f'error: --size wants WIDTHxHEIGHT, e.g. 1280x720; got {args.size!r}')
    if args.frames < 1 or args.repeats < 1:
        sys.exit('error: --frames and --repeats must be >= 1')
    gt, pred = make_case(args.seed, args.frames)
    win = OccWindow(occ=gt, traj=np.zeros((args.frames, 3)), num_past=0)  # future frames only
    voxels = int(np.mean([(g != 17).sum() for g in gt]))
    print(f'input: synthetic scene {args.seed}, {args.frames} future frames, '
          f'{voxels} occupied voxels per frame')

    with OccRenderer(*size, backend=args.backend) as r:
        backend = r.describe()
        geoms = scene_geometries(gt[0])
        r.render(geoms, args.view)  # warm-up
        t_render = statistics.median(_time(lambda: r.render(geoms, args.view)) for _ in range(5))
    t_mesh = statistics.median(_time(lambda: occupancy_to_mesh(gt[0])) for _ in range(3))

    gif_s, frame_s, enc_s, mp4_s = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats + 1):  # the first run warms up (window creation)
            t0 = time.perf_counter()
            frames = window_video(win, [pred], size=size, view=args.view, title='benchmark')
            t1 = time.perf_counter()
            write_video(frames, os.path.join(tmp, 'cmp.gif'))
            t2 = time.perf_counter()
            if ffmpeg_available():
                write_video(frames, os.path.join(tmp, 'cmp.mp4'))
            t3 = time.perf_counter()
            if i:
                gif_s.append(t2 - t0)
                frame_s.append(t1 - t0)
                enc_s.append(t2 - t1)
                mp4_s.append(t3 - t2)
    med = statistics.median
    print(f'rendering with {backend}')
    print(f'comparison GIF, {args.frames} frames at {size[0]}x{size[1]} (ground truth | '
          f'forecast | errors, {3 * args.frames} renders): {med(gif_s):.2f} s '
          f'(median of {args.repeats}; frames {med(frame_s):.2f} s, GIF encoding '
          f'{med(enc_s):.2f} s)')
    print(f'per panel: voxel mesh {t_mesh:.3f} s, open3d render of a full frame '
          f'{t_render:.3f} s')
    if ffmpeg_available():
        print(f'MP4 encoding of the same frames: {med(mp4_s):.2f} s')
    else:
        print('MP4: imageio-ffmpeg not installed (pip install imageio-ffmpeg==0.8.1)')


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == '__main__':
    main()
