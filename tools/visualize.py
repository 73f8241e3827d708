"""Pictures, videos and meshes of occupancy: one frame, a data-set window, a whole
scene, or forecasts beside their ground truth (open3d, headless; no display needed).

One frame (``.png``; ``.gif`` / ``.mp4``: the camera circles the ego; ``.ply`` / ``.obj``:
a coloured voxel mesh)::

    python tools/visualize.py data/nuscenes_seq11/gts/SCENE/TOKEN/labels.npz --out frame.png

Forecasts of ``tools/forecast.py`` (``OUT/<scene>/<token>.npz``) beside their ground truth
and past frames from the data set: ground truth | forecast | errors (true positive grey,
false positive red, false negative blue, wrong class orange); several files of the same
window are samples of its future, shown in a grid::

    python tools/visualize.py OUT/SCENE/TOKEN.npz --data-root data/nuscenes_seq11 \\
        --infos data/nuscenes_seq11/nuscenes_seq11_infos.pkl --out compare.png   # or .gif / .mp4

A window of a data set, or a whole scene::

    python tools/visualize.py --data-root R --infos PKL --window 0 --out window.gif
    python tools/visualize.py --data-root R --infos PKL --scene NAME --out scene.mp4

``--interactive`` opens a window that steps through time (right / N, left / P, Q quits)
when a display exists, and otherwise says so and writes ``--out``. The open3d backend
is chosen automatically (``--backend`` or ``$OCCWM_RENDER_BACKEND`` override) and printed.
Classes are drawn in ``occwm.visualization.geometry.CLASS_PALETTE`` (the Occ3D colours,
manmade and bicycle darkened so that every class stands out from the white background).
"""
from occwm.runtime import configure_threads

if __name__ == '__main__':  # first: OpenMP reads its settings when torch loads
    configure_threads(workers=0)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from occwm.geometry import FRAME_DT  # noqa: E402
from occwm.io import check_writable  # noqa: E402
from occwm.runtime import SetupError  # noqa: E402
from occwm.visualization import figures, sources  # noqa: E402
from occwm.visualization.export import MESH_EXTS, export_mesh  # noqa: E402
from occwm.visualization.media import IMAGE_EXTS, VIDEO_EXTS, save_image, write_video  # noqa: E402
from occwm.visualization.render import BACKEND_ENV, VIEWS, OccRenderer  # noqa: E402
from occwm.window import OccWindow  # noqa: E402

FALLBACK_OUT = 'visualization.gif'


def size_arg(text: str):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
        assert w > 0 and h > 0
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f'want WIDTHxHEIGHT in pixels, e.g. 1280x720; '
                                         f'got {text!r}')
    return w, h


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Render occupancy frames, windows, scenes and forecasts to PNG / GIF / MP4 '
                    '/ PLY / OBJ (headless open3d).',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Outputs by extension of --out: ' + ' '.join(IMAGE_EXTS + VIDEO_EXTS + MESH_EXTS))
    p.add_argument('inputs', nargs='*', metavar='NPZ',
                   help='a labels.npz frame, or forecast npz file(s) of one window')
    p.add_argument('--out', help=f'output file (with --interactive and no display: default '
                                 f'{FALLBACK_OUT})')
    p.add_argument('--data-root', help='folder holding gts/ (ground truth, windows, scenes)')
    p.add_argument('--infos', help='info pkl of the data set')
    p.add_argument('--window', type=int, help='render window I of the data set')
    p.add_argument('--scene', help='render every frame of scene NAME')
    p.add_argument('--num-past', type=int, default=5, help='past frames incl. the present (5)')
    p.add_argument('--num-future', type=int, default=6, help='future frames of --window (6)')
    p.add_argument('--view', default='bev', choices=sorted(VIEWS),
                   help="camera: bev (top-down), chase (behind the ego), orbit (3/4 view)")
    p.add_argument('--size', type=size_arg, default=(1280, 720),
                   help='video frame / single-picture size WxH (1280x720)')
    p.add_argument('--panel', type=size_arg, default=(320, 320),
                   help='panel size WxH of a multi-frame picture (320x320)')
    p.add_argument('--fps', type=float, default=2.0, help='video frames per second (2 = real time)')
    p.add_argument('--orbit', type=float, default=0.0, metavar='DEG',
                   help='videos of windows: the camera circles the ego by DEG per frame')
    p.add_argument('--orbit-frames', type=int, default=36,
                   help='frames of the orbit video of a single frame (36)')
    p.add_argument('--past-shown', type=int, help='past frames in a picture (default all)')
    p.add_argument('--frame', type=int, help='mesh export: time step of the window (default: '
                                             'the present; a future step exports the forecast)')
    p.add_argument('--no-errors', action='store_true', help='no error panels')
    p.add_argument('--geometric-errors', action='store_true',
                   help='errors as occupied / free only (no wrong-class colour)')
    p.add_argument('--no-dim', action='store_true',
                   help='draw voxels unseen by the cameras (mask_camera 0) like the others')
    p.add_argument('--title', help='title written on the picture')
    p.add_argument('--interactive', action='store_true',
                   help='step through time in an open3d window (needs a display)')
    p.add_argument('--backend', choices=('auto', 'legacy', 'filament'),
                   help=f'open3d backend (default ${BACKEND_ENV} or auto)')
    return p.parse_args(argv)


def frame_title(path: str) -> str:
    """``<scene> / <token>`` of an Occ3D ``gts/<scene>/<token>/labels.npz``, else the
    file name."""
    parts = os.path.abspath(path).split(os.sep)
    if parts[-1] == 'labels.npz' and len(parts) >= 3:
        return f'{parts[-3]} / {parts[-2]}'
    return os.path.basename(path)


def load(args):
    """``(window, preds, title, single_frame)`` for the inputs of the command line:
    an ``OccWindow`` and the forecast samples ``(T_f, X, Y, Z)`` of its future."""
    has_data = bool(args.data_root and args.infos)
    if (args.data_root is None) != (args.infos is None):
        sys.exit('error: --data-root and --infos go together (the folder holding gts/ and '
                 'its info pkl)')
    if args.window is not None or args.scene is not None:
        if not has_data or args.inputs:
            sys.exit('error: --window / --scene need --data-root and --infos, and no NPZ inputs')
        if args.scene is not None:
            win, title = sources.scene_sequence(args.data_root, args.infos, args.scene)
        else:
            win, title = sources.dataset_window(args.data_root, args.infos, args.window,
                                                args.num_past, args.num_future)
        return win, [], title, False
    if not args.inputs:
        sys.exit('error: give an NPZ file, or --data-root R --infos PKL with --window I or '
                 '--scene NAME (see --help)')
    first, mask = sources.load_npz(args.inputs[0])
    if first.ndim == 3:
        if len(args.inputs) > 1:
            sys.exit(f'error: {args.inputs[0]} is a single frame; give one frame, or forecast '
                     f'files (T, X, Y, Z) of one window')
        win = OccWindow(occ=first[None], mask_camera=None if mask is None else mask[None])
        return win, [], frame_title(args.inputs[0]), True
    return (*sources.forecast_window(args.inputs, args.data_root, args.infos, args.num_past),
            False)


def write(args, win, preds, title, single) -> str:
    """Write ``args.out`` (picture, video or mesh); returns the path written."""
    ext = os.path.splitext(args.out)[1].lower()
    errors, semantic = not args.no_errors, not args.geometric_errors
    P = win.num_past
    if ext in MESH_EXTS:
        k = max(P - 1, 0) if args.frame is None else args.frame
        n = figures.num_steps(win, preds)
        if not 0 <= k < n:
            sys.exit(f'error: --frame {k} out of range 0..{n - 1}')
        if preds and k >= P:
            occ, mask, what = preds[0][k - P], None, 'forecast'
        elif k < win.num_recorded:
            masks = win.mask_camera
            occ, mask, what = win.occ[k], None if masks is None else masks[k], 'recorded frame'
        else:
            sys.exit(f'error: --frame {k}: no recorded frame there')
        print(f'mesh of the {what} at t = {(k - (P - 1)) * FRAME_DT:+g} s')
        return export_mesh(occ, args.out, mask=mask, with_ego=True)
    if ext in IMAGE_EXTS:
        if single:
            img = figures.frame_image(win.occ[0], args.size, args.view, _first(win.mask_camera),
                                      title=title)
        else:
            img = figures.window_image(win, preds, view=args.view, panel_size=args.panel,
                                       errors=errors, semantic=semantic,
                                       past_shown=args.past_shown, title=title, progress=True)
        return save_image(img, args.out)
    if ext in VIDEO_EXTS:
        if single:
            frames = figures.orbit_video(win.occ[0], args.size, args.orbit_frames,
                                         _first(win.mask_camera), title=title, progress=True)
        else:
            frames = figures.window_video(win, preds, size=args.size, view=args.view,
                                          errors=errors, semantic=semantic, title=title,
                                          orbit_step=args.orbit, progress=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            path = write_video(frames, args.out, args.fps)
        for w in caught:
            print(f'warning: {w.message}')
        print(f'{len(frames)} video frames at {args.fps:g} frames/s')
        return path
    sys.exit(f'error: --out {args.out}: unknown extension; use one of '
             f'{" ".join(IMAGE_EXTS + VIDEO_EXTS + MESH_EXTS)}')


def _first(masks):
    return None if masks is None else masks[0]


def interactive(args, win, preds) -> bool:
    """Show the window interactively; ``False`` (with a message) when impossible."""
    from occwm.visualization.interactive import (
        has_display,
        show_timeline,
        timeline_steps,
    )
    if not has_display():
        print('--interactive: no display here (DISPLAY / WAYLAND_DISPLAY unset), so no window '
              'can open; writing files instead (run on a desktop, or ssh -X, for the window)')
        return False
    step, titles = timeline_steps(win, preds, not args.no_errors, not args.geometric_errors)
    try:
        show_timeline(step, titles, args.size)
    except RuntimeError as e:
        print(f'--interactive: {e}; writing files instead')
        return False
    return True


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        os.environ[BACKEND_ENV] = args.backend
    if args.out is None and not args.interactive:
        sys.exit('error: --out FILE is required (.png .jpg .gif .mp4 .ply .obj), or --interactive')
    try:  # before reading and rendering
        check_writable(os.path.dirname(os.path.abspath(args.out or FALLBACK_OUT)), '--out')
    except SetupError as e:
        sys.exit(f'error: {e}')
    t0 = time.perf_counter()
    try:
        win, preds, title, single = load(args)
    except (FileNotFoundError, ValueError, KeyError, IndexError) as e:
        sys.exit(f'error: {e.args[0] if isinstance(e, KeyError) else e}')
    if args.no_dim:
        win = dataclasses.replace(win, mask_camera=None)
    title = args.title if args.title is not None else title
    if args.interactive and interactive(args, win, preds):
        return
    args.out = args.out or FALLBACK_OUT
    if os.path.splitext(args.out)[1].lower() not in MESH_EXTS:
        try:
            with OccRenderer(16, 16) as probe:
                print(f'rendering with {probe.describe()}')
        except RuntimeError as e:
            sys.exit(f'error: {e}')
    try:
        path = write(args, win, preds, title, single)
    except SetupError as e:
        sys.exit(f'error: {e}')
    n = figures.num_steps(win, preds)
    print(f'wrote {os.path.abspath(path)} (from {n} occupancy frame{"s" * (n != 1)}, '
          f'{time.perf_counter() - t0:.1f} s)')


if __name__ == '__main__':
    main()
