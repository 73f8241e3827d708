"""Figures, videos, mesh export, input loading and tools/visualize.py on small
hand-made scenes (Occ3D grid, few frames, small pictures)."""
import os

import numpy as np
import pytest
from PIL import Image

from occwm.grid import DEFAULT_GRID, OCC3D_PALETTE
from occwm.visualization import window_image, window_video, write_video
from occwm.visualization import canvas, media
from occwm.visualization.export import export_mesh
from occwm.visualization.figures import _Frames
from occwm.visualization.geometry import ERROR_PALETTE, FN, FP, TP, WRONG_CLASS, error_codes
from occwm.visualization.interactive import KEY_LEFT, KEY_N, KEY_Q, KEY_RIGHT, next_index
from occwm.visualization.sources import (dataset_window, forecast_window, load_npz,
                                         scene_sequence)
from occwm.window import OccWindow
from tests.helpers import write_tiny_scenes
from tests.visualization.test_render import renderer  # noqa: F401  (skips without a headless context)

CAR, TRUCK, ROAD, FREE = 4, 10, 11, 17


def grid(*blocks):
    """An Occ3D grid with (label, x index, y index) 4x4x2-voxel blocks."""
    occ = np.full(DEFAULT_GRID.shape, FREE, np.uint8)
    for label, x, y in blocks:
        occ[x:x + 4, y:y + 4, 3:5] = label
    return occ


def small_window(num_past=2, num_future=2):
    """A window with a car block moving along x, and a forecast of its future with a
    false-positive truck."""
    frames = np.stack([grid((CAR, 100 + 4 * k, 110)) for k in range(num_past + num_future)])
    pred = frames[num_past:].copy()
    pred[:, 80:84, 80:84, 3] = TRUCK  # a false positive in every forecast frame
    traj = np.column_stack([np.arange(num_past + num_future) - (num_past - 1.0),
                            np.zeros((num_past + num_future, 2))])
    return OccWindow(occ=frames, traj=traj, num_past=num_past), [pred]


def test_error_codes_hand_made():
    gt = np.array([[[CAR], [FREE]], [[CAR], [CAR]], [[FREE], [FREE]]], np.uint8)  # (3, 2, 1)
    pred = np.array([[[CAR], [CAR]], [[FREE], [TRUCK]], [[FREE], [FREE]]], np.uint8)
    np.testing.assert_array_equal(error_codes(gt, pred)[..., 0],
                                  [[TP, FP], [FN, WRONG_CLASS], [0, 0]])
    with pytest.raises(ValueError, match='shape'):
        error_codes(gt, pred[:2])


def test_frames_times_rows_and_trajectory_rows():
    win, preds = small_window(3, 2)
    f = _Frames(win, preds)
    assert len(f) == 5 and f.num_future == 2
    assert [f.time_label(k) for k in range(5)] == ['-1 s', '-0.5 s', '0 s', '+0.5 s', '+1 s']
    assert f.traj_row(0) == 0 and f.traj_row(4) == 4
    assert [r[0] for r in f.rows(errors=True)] == ['truth', 'pred', 'errors']
    # a rollout past the recording: the forecast runs 2 steps beyond the recorded frames
    rec = OccWindow(occ=win.occ[:3], traj=win.traj[:3], num_past=3)
    long = _Frames(rec, [np.concatenate(preds * 2)], time_origin=0)
    assert len(long) == 7 and long.truth(5) is None and long.traj_row(5) is None
    assert long.time_label(2) == '+1 s' and long.rows(True)[-1][0] == 'pred'  # no future truth
    occ, _, _, note = long.content('errors', 0, 5)
    assert occ is None and note == 'no ground truth'
    with pytest.raises(ValueError, match='times'):
        _Frames(win, preds, future_times=[0.5])
    with pytest.raises(ValueError, match='differ in length'):
        _Frames(win, [preds[0], preds[0][:1]])


def test_window_image_rows_and_error_colours(renderer):  # noqa: F811
    win, preds = small_window()
    img = window_image(win, preds, panel_size=(160, 120), renderer=renderer)
    # three rows of panels (truth, forecast, errors) above a legend; four columns
    assert img.shape[0] > 3 * 120 and img.shape[1] > 4 * 160
    for code in (TP, FP):
        assert np.any(np.all(img == ERROR_PALETTE[code], axis=-1))
    assert np.any(np.all(img == OCC3D_PALETTE[CAR], axis=-1))
    # without forecasts: one strip of the frames, wrapped at `cols`
    seq = window_image(OccWindow(occ=win.past, num_past=2), panel_size=(160, 120), cols=1,
                       renderer=renderer)
    assert seq.shape[0] > 2 * 120 and seq.shape[1] < 2 * 160


def test_video_frames_gif_and_mp4(tmp_path, monkeypatch, renderer):  # noqa: F811
    win, preds = small_window()
    frames = window_video(win, preds, size=(480, 270), title='tiny')
    assert len(frames) == 4 and all(f.shape == (270, 480, 3) for f in frames)
    gif = write_video(frames, str(tmp_path / 'a.gif'), fps=2)
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.info['duration'] == 500
    if media.ffmpeg_available():
        import imageio.v2 as iio2
        mp4 = write_video(frames, str(tmp_path / 'a.mp4'))
        with iio2.get_reader(mp4, format='FFMPEG') as reader:
            assert reader.count_frames() == 4
            assert reader.get_data(0).shape == (270, 480, 3)
    monkeypatch.setattr(media, 'ffmpeg_available', lambda: False)
    with pytest.warns(UserWarning, match='imageio-ffmpeg'):
        out = write_video(frames, str(tmp_path / 'b.mp4'))
    assert out == str(tmp_path / 'b.gif') and os.path.isfile(out)
    assert not os.path.exists(tmp_path / 'b.mp4')
    with pytest.raises(ValueError, match='extension'):
        write_video(frames, str(tmp_path / 'c.avi'))
    with pytest.raises(ValueError, match='no frames'):
        write_video([], str(tmp_path / 'd.gif'))


def test_mesh_export_round_trip(tmp_path):
    import open3d as o3d
    occ = grid()
    occ[100, 100, 2], occ[10, 20, 3] = CAR, ROAD
    path = export_mesh(occ, str(tmp_path / 'm.ply'))
    mesh = o3d.io.read_triangle_mesh(path)
    assert len(mesh.vertices) == 2 * 6 * 4 and len(mesh.triangles) == 2 * 6 * 2
    colors = np.round(np.asarray(mesh.vertex_colors) * 255).astype(np.uint8)
    assert {tuple(c) for c in colors} == {tuple(OCC3D_PALETTE[CAR]), tuple(OCC3D_PALETTE[ROAD])}
    assert np.sum(np.all(colors == OCC3D_PALETTE[CAR], axis=1)) == 24
    with_ego = o3d.io.read_triangle_mesh(export_mesh(occ, str(tmp_path / 'e.obj'), with_ego=True))
    assert with_ego.has_vertex_colors() and len(with_ego.triangles) == 3 * 12
    assert sorted(os.listdir(tmp_path)) == ['e.obj', 'm.ply']  # atomic: no leftovers
    with pytest.raises(ValueError, match='extension'):
        export_mesh(occ, str(tmp_path / 'm.stl'))


def test_legend_and_canvas():
    entries = canvas.class_entries([grid((CAR, 0, 0), (ROAD, 10, 10))])
    assert [e[0] for e in entries] == ['car', 'driveable_surface']
    strip = canvas.legend_strip(entries * 10, width=300)
    assert strip.shape[1] == 300 and strip.shape[0] > 2 * 26  # wrapped into rows
    assert np.any(np.all(strip == OCC3D_PALETTE[CAR], axis=-1))
    with pytest.raises(ValueError, match='no room'):
        canvas.panel_layout((40, 40), 3, legend_h=30)
    assert canvas.panel_layout((1280, 720), 3, 44)[:2] == (1, 3)
    rows, cols, w, h = canvas.panel_layout((1280, 720), 5, 44)  # 5 samples: 2 rows of 3
    assert (rows, cols) == (2, 3) and w == (1280 - 8) // 3 and h == (720 - 44 - 44 - 4) // 2


def test_interactive_keys():
    assert next_index(0, KEY_RIGHT, 3) == 1 and next_index(2, KEY_N, 3) == 2
    assert next_index(0, KEY_LEFT, 3) == 0 and next_index(2, KEY_LEFT, 3) == 1
    assert next_index(1, KEY_Q, 3) == 1


def test_timeline_steps_panels_side_by_side():
    from occwm.visualization.interactive import PANEL_SPACING, timeline_steps
    win, preds = small_window()
    step, titles = timeline_steps(win, preds)
    assert titles[2] == 't = +0.5 s: Ground truth | Forecast | Errors (left to right)'
    past = step(0)  # the errors panel of an observed step is empty: only its outline
    future = step(2)
    assert len(future) > len(past)
    y_min = min(np.asarray(g.get_axis_aligned_bounding_box().get_min_bound())[1] for g in future)
    assert y_min < -2 * PANEL_SPACING + DEFAULT_GRID.point_cloud_range[1] + 1  # 3 panels


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    """A 6-frame scene on the Occ3D grid and a 2-frame forecast of its window at frame 3."""
    root = tmp_path_factory.mktemp('vis_scene')
    infos = write_tiny_scenes(root, lengths=(6,), grid=DEFAULT_GRID)
    pred = np.full((2, *DEFAULT_GRID.shape), FREE, np.uint8)
    pred[:, :, :, 2] = ROAD
    out = root / 'forecast' / 'tiny-0'
    out.mkdir(parents=True)
    np.savez_compressed(out / 'tiny-0-003.npz', semantics=pred)
    return str(root), infos, str(out / 'tiny-0-003.npz')


def test_forecast_window_finds_ground_truth(scene):
    root, infos, npz = scene
    win, preds, title = forecast_window([npz, npz], root, infos, num_past=3)
    assert win.num_past == 3 and len(win.future) == 2 and len(preds) == 2
    assert 'tiny-0' in title and '2 samples' in title
    assert win.past[0][1, 3, 3] == CAR and win.future[1][5, 3, 3] == CAR  # block at x = frame
    np.testing.assert_allclose(win.traj[2], 0, atol=1e-9)  # the present at the origin
    assert win.present_token == 'tiny-0-003' and win.mask_camera.shape == win.occ.shape
    alone, preds, _ = forecast_window([npz], num_past=3)  # no data set: no recorded frame
    assert alone.num_recorded == 0 and len(preds) == 1
    other = os.path.join(os.path.dirname(npz), 'tiny-0-999.npz')
    np.savez_compressed(other, semantics=preds[0])
    with pytest.raises(KeyError, match='no frame'):
        forecast_window([other], root, infos)
    with pytest.raises(KeyError, match='no scene'):
        scene_sequence(root, infos, 'nowhere')
    with pytest.raises(ValueError, match='semantics'):
        np.savez(os.path.join(root, 'bad.npz'), other=np.zeros(3))
        load_npz(os.path.join(root, 'bad.npz'))


def test_dataset_window_and_scene_read_through_the_dataset(tmp_path):
    infos = write_tiny_scenes(tmp_path, lengths=(4,), grid=DEFAULT_GRID)
    win, title = dataset_window(str(tmp_path), infos, 1, num_past=2, num_future=1)
    assert title == 'tiny-0 window 1' and win.index == 1
    assert win.tokens == ['tiny-0-001', 'tiny-0-002', 'tiny-0-003'] and win.num_past == 2
    assert win.occ[0][1, 3, 3] == CAR and win.mask_camera.shape == win.occ.shape
    np.testing.assert_allclose(win.traj[1], 0, atol=1e-9)  # the present at the origin
    seq, name = scene_sequence(str(tmp_path), infos, 'tiny-0')
    assert name == 'tiny-0' and seq.num_past == 1 and seq.num_recorded == 4
    np.testing.assert_allclose(seq.traj[0], 0, atol=1e-9)  # the first frame's ego frame
    with pytest.raises(IndexError, match='out of range'):
        dataset_window(str(tmp_path), infos, 2, num_past=2, num_future=1)
    # a frame written without masks: the window is read without them (nothing pale)
    path = os.path.join(str(tmp_path), 'gts', 'tiny-0', 'tiny-0-002', 'labels.npz')
    with np.load(path) as data:
        sem = data['semantics']
    np.savez_compressed(path, semantics=sem)
    win, _ = dataset_window(str(tmp_path), infos, 1, num_past=2, num_future=1)
    assert win.mask_camera is None and win.occ[1][2, 3, 3] == CAR


def test_tool_outputs(scene, tmp_path, capsys, monkeypatch, renderer):  # noqa: F811
    from tools import visualize
    root, infos, npz = scene
    labels = os.path.join(root, 'gts', 'tiny-0', 'tiny-0-000', 'labels.npz')
    visualize.main([labels, '--out', str(tmp_path / 'f.png'), '--size', '320x240'])
    assert Image.open(tmp_path / 'f.png').size == (320, 240)
    out = capsys.readouterr().out
    assert "open3d backend 'legacy'" in out or "open3d backend 'filament'" in out
    visualize.main([labels, '--out', str(tmp_path / 'f.ply')])
    assert os.path.getsize(tmp_path / 'f.ply') > 0

    data = ['--data-root', root, '--infos', infos]
    visualize.main([npz, *data, '--num-past', '2', '--out', str(tmp_path / 'c.gif'),
                    '--size', '480x270'])
    with Image.open(tmp_path / 'c.gif') as im:
        assert im.n_frames == 4  # 2 past + 2 future steps
    visualize.main([*data, '--scene', 'tiny-0', '--out', str(tmp_path / 's.png'),
                    '--panel', '96x96'])
    assert os.path.isfile(tmp_path / 's.png')

    # --interactive without a display: says so and writes the files
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    visualize.main([*data, '--window', '0', '--num-past', '1', '--num-future', '1',
                    '--interactive', '--out', str(tmp_path / 'w.gif'), '--size', '320x240'])
    assert 'no display' in capsys.readouterr().out and os.path.isfile(tmp_path / 'w.gif')

    with pytest.raises(SystemExit, match='missing.npz'):
        visualize.main([str(tmp_path / 'missing.npz'), '--out', str(tmp_path / 'x.png')])
    with pytest.raises(SystemExit, match='out of range'):
        visualize.main([*data, '--window', '99', '--out', str(tmp_path / 'x.png')])
    with pytest.raises(SystemExit, match='extension'):
        visualize.main([labels, '--out', str(tmp_path / 'x.tiff')])


def test_interactive_window_steps_with_keys(monkeypatch):
    """Needs a display (e.g. xvfb-run); the key presses are simulated by calling the
    registered callbacks."""
    import open3d as o3d

    from occwm.visualization import interactive as it
    if not it.has_display():
        pytest.skip('no display')
    real = o3d.visualization.VisualizerWithKeyCallback
    shown = []

    class Driven:  # pybind11 classes cannot be subclassed here: wrap one
        def __init__(self):
            self.vis, self.callbacks = real(), {}

        def __getattr__(self, name):
            return getattr(self.vis, name)

        def register_key_callback(self, key, fn):
            self.callbacks[key] = fn

        def run(self):
            for key in (it.KEY_RIGHT, it.KEY_N, it.KEY_RIGHT, it.KEY_P, it.KEY_Q):
                self.callbacks[key](self.vis)

    monkeypatch.setattr(o3d.visualization, 'VisualizerWithKeyCallback', Driven)
    win, preds = small_window()
    step, titles = it.timeline_steps(win, preds)

    def counted(k):
        shown.append(k)
        return step(k)
    try:
        it.show_timeline(counted, titles, (320, 180))
    except RuntimeError as e:
        pytest.skip(f'no window: {e}')
    assert shown == [0, 1, 2, 3]  # each step built once (cached), 3 -> 2 reuses the cache
    assert titles[2] == 't = +0.5 s: Ground truth | Forecast | Errors (left to right)'
