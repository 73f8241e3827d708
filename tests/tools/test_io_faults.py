"""Input and output faults of the tools (issue 15): a damaged zip member wherever an
``.npz`` is read, a scene shorter than one window, output folders that are not writable,
earlier outputs (replaced only with --overwrite) and two writers into one folder. Each
ends in one line naming the file or folder, before the work starts where it can."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from occwm.geometry import se2_to_matrix
from occwm.grid import DEFAULT_GRID
from occwm.io import DataFileError, labels_path, lock_output_dir, save_labels
from occwm.occupancy.frames import frame_path, write_frame
from tests.conftest import REPO
from tests.helpers import TINY_GRID, corrupt_zip_member, write_tiny_scenes

TINY_ARGS = ['--point-cloud-range', *map(str, TINY_GRID.point_cloud_range), '--voxel-size', '0.4']


def _one_line(run):
    """The ``error:`` line of a failed tool run: its last line, no traceback before it
    (warnings may be)."""
    err = run.stderr.strip()
    assert run.returncode != 0 and 'Traceback' not in err, err
    last = err.splitlines()[-1]
    assert last.startswith('error: '), err
    return last


def _hold_lock(folder):
    """Another process holding ``folder``'s output lock (kill it when done)."""
    p = subprocess.Popen([sys.executable, '-c', 'import time\nfrom occwm.io import '
                          f'lock_output_dir\nlock_output_dir({folder!r})\nprint("held", '
                          'flush=True)\ntime.sleep(120)'], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'held'
    return p


# ----------------------------------------------------------------- damaged zip members
@pytest.fixture
def tiny_set(tmp_path):
    """Tiny scenes (13 and 5 frames) with forecast files of every window's present."""
    infos = write_tiny_scenes(tmp_path / 'data')
    with open(infos, 'rb') as f:
        scenes = pickle.load(f)['infos']
    for name, frames in scenes.items():
        os.makedirs(tmp_path / 'pred' / name)
        for f in frames:
            np.savez_compressed(str(tmp_path / 'pred' / name / f"{f['token']}.npz"),
                                semantics=np.full((6, *TINY_GRID.shape), 17, np.uint8))
    return dict(infos=infos, gts=str(tmp_path / 'data' / 'gts'), pred=str(tmp_path / 'pred'))


def test_the_readers_name_the_damaged_file(tiny_set):
    from occwm.data.transforms import LoadOccWindow
    from occwm.evaluation.from_files import load_prediction
    from occwm.visualization.sources import load_npz
    gt = corrupt_zip_member(labels_path(os.path.dirname(tiny_set['gts']), 'tiny-0',
                                        'tiny-0-004'))
    pred = corrupt_zip_member(os.path.join(tiny_set['pred'], 'tiny-0', 'tiny-0-004.npz'))
    load = LoadOccWindow(grid=dict(point_cloud_range=TINY_GRID.point_cloud_range,
                                   voxel_size=0.4))
    for read, path in ((lambda: load(dict(occ_paths=[gt])), gt),            # the data loader
                       (lambda: load_npz(gt, TINY_GRID), gt),                # visualize
                       (lambda: load_prediction(pred, 6, TINY_GRID), pred)):  # eval_occ
        with pytest.raises(DataFileError, match=rf'^{path}: semantics: damaged archive member'):
            read()


def test_eval_occ_damaged_ground_truth_one_line(tiny_set):
    gt = corrupt_zip_member(labels_path(os.path.dirname(tiny_set['gts']), 'tiny-0',
                                        'tiny-0-006'))
    run = subprocess.run([sys.executable, 'tools/eval_occ.py', '--infos', tiny_set['infos'],
                          '--gt-root', tiny_set['gts'], '--pred-root', tiny_set['pred'],
                          '--protocol', 'i2world', *TINY_ARGS], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert _one_line(run).startswith(f'error: {gt}: semantics: damaged archive member (')


def test_visualize_damaged_file_one_line(tmp_path):
    path = str(tmp_path / 'labels.npz')
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    occ[::5, ::3, 2] = 11
    save_labels(path, occ)
    corrupt_zip_member(path)
    run = subprocess.run([sys.executable, 'tools/visualize.py', path, '--out',
                          str(tmp_path / 'frame.ply')], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert _one_line(run).startswith(f'error: {path}: semantics: damaged archive member')


# ----------------------------------------------------------------- short scenes
def test_a_scene_shorter_than_a_window(tmp_path):
    """The 11-frame seq11 under occworld (13 frames a window) once failed with "need at
    least one array to concatenate"; other scenes go on with a warning."""
    from mmengine.config import Config

    from occwm.data import OccForecastDataset
    from occwm.engine.evaluate import check_test_set
    infos = write_tiny_scenes(tmp_path, lengths=(11,))
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='OccForecastDataset', ann_file=infos, data_root=str(tmp_path), num_past=5,
        num_future=6, window_rule='occworld'))))
    with pytest.raises(ValueError) as e:
        check_test_set(cfg, 'occworld')
    assert str(e.value) == (
        f"{infos} has no occworld window: scene tiny-0 has 11 frames, a window needs 13 (5 "
        f"past + 6 future + 2: window_rule 'occworld'); dome needs 10, i2world needs 11: try "
        f"--protocol i2world")
    both = write_tiny_scenes(tmp_path, lengths=(13, 11), name='both.pkl')
    with pytest.warns(UserWarning, match=r'both.pkl: skipped, too short for a window: scene '
                                         r'tiny-1 has 11 frames, a window needs 13'):
        ds = OccForecastDataset(ann_file=both, data_root=str(tmp_path), window_rule='occworld')
    assert len(ds) == 1 and ds.short_scenes == {'tiny-1': 11}


def test_eval_occ_short_scene_one_line(tiny_set):
    run = subprocess.run([sys.executable, 'tools/eval_occ.py', '--infos', tiny_set['infos'],
                          '--gt-root', tiny_set['gts'], '--pred-root', tiny_set['pred'],
                          '--num-future', '12', *TINY_ARGS], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert 'a window needs 19 (5 past + 12 future + 2' in _one_line(run)


# ----------------------------------------------------------------- output folders
def _forecast(out, *extra):
    """tools/forecast.py into ``out`` with a checkpoint that does not exist: the output
    checks come first, so their message (or, past them, the checkpoint's) ends it."""
    from tools import forecast
    with pytest.raises(SystemExit) as e:
        forecast.main(['configs/occ.py', os.path.join(out, 'none.pth'), '--out', out, *extra])
    return str(e.value.code)


def test_forecast_refuses_earlier_outputs(tmp_path):
    out = str(tmp_path / 'out')
    os.makedirs(os.path.join(out, 'scene-0001'))
    np.savez(os.path.join(out, 'scene-0001', 'tok.npz'), semantics=np.zeros(1))
    msg = _forecast(out)
    assert msg == (f"error: {out}/scene-0001/tok.npz already exists: pass --overwrite to "
                   f"replace the forecasts of an earlier run, or choose another output folder")
    assert 'none.pth not found' in _forecast(out, '--overwrite')    # past the output checks
    assert 'none.pth not found' in _forecast(str(tmp_path / 'fresh'))


def test_forecast_unwritable_and_locked_folders(tmp_path, monkeypatch):
    from occwm import io
    (tmp_path / 'file').write_text('x')
    assert _forecast(str(tmp_path / 'file' / 'out')).startswith(
        f"error: cannot write to the output folder {tmp_path / 'file' / 'out'} (--out): Not a "
        f"directory")
    out = str(tmp_path / 'out')
    holder = _hold_lock(out)
    try:
        assert _forecast(out).startswith(f'error: {out} (--out) is in use by another process '
                                         f'(process {holder.pid} since ')
    finally:
        holder.kill()
        holder.wait()

    def denied(folder):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(io, '_probe_write', denied)               # a read-only folder
    assert _forecast(str(tmp_path / 'ro')).startswith(
        f"error: cannot write to the output folder {tmp_path / 'ro'} (--out): Permission "
        f"denied")


def _frames(src):
    road = np.stack(np.meshgrid(np.arange(-3, 3, 0.2), np.arange(-3, 3, 0.2), [0.05]),
                    -1).reshape(-1, 3)                                  # (900, 3) ego frame
    for i in range(2):
        write_frame(frame_path(src, i), points=road, labels=np.full(len(road), 11, np.uint8),
                    lidar2ego=np.eye(4),
                    ego2global=se2_to_matrix(2.0 * i, 0.0, 0.0), timestamp=10.0 + 0.5 * i)
    return src


def test_build_occupancy_overwrite_and_lock(tmp_path):
    from tools import build_occupancy
    src, out = _frames(str(tmp_path / 'src')), str(tmp_path / 'out')
    argv = ['--format', 'frames', src, out, '--quiet', '--ray-cast', 'none',
            '--grid', '-4', '-4', '-1', '4', '4', '1.4', '0.4']
    build_occupancy.main(argv)
    with pytest.raises(SystemExit) as e:
        build_occupancy.main(argv)
    assert str(e.value.code) == (f"error: {out}/gts/src and 1 more already exist: pass "
                                 f"--overwrite to replace the occupancy of scene src, or choose "
                                 f"another output folder")
    build_occupancy.main(argv + ['--overwrite'])
    lock_output_dir(out).release()             # this process's lock, held since the first run
    holder = _hold_lock(out)
    try:
        run = subprocess.run([sys.executable, 'tools/build_occupancy.py', *argv, '--overwrite'],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
        assert f'(OUT_DIR) is in use by another process (process {holder.pid} ' in _one_line(run)
    finally:
        holder.kill()
        holder.wait()


def test_generate_scenarios_overwrite(tmp_path):
    from occwm.scenarios.oracle import parked_car_world, write_world
    from tools import generate_scenarios
    paths = write_world(parked_car_world(distance=20.0, speed=8.0, num_frames=11),
                        str(tmp_path / 'data'))
    plans = str(tmp_path / 'plans.json')
    with open(plans, 'w') as f:
        json.dump({'through': [[4.0 * (k + 1), 0.0, 0.0] for k in range(6)]}, f)
    out = str(tmp_path / 'out')
    argv = ['--gt', '--infos', paths['infos'], '--gt-root', paths['gts'], '--trajectories',
            plans, '--no-render', '--out', out]
    generate_scenarios.main(argv)
    with pytest.raises(SystemExit) as e:
        generate_scenarios.main(argv)
    assert str(e.value.code) == (f'error: {out}/index.jsonl and 3 more already exist: pass '
                                 f'--overwrite to replace the scenarios of an earlier run, or '
                                 f'choose another output folder')
    generate_scenarios.main(argv + ['--overwrite'])
    assert len(open(os.path.join(out, 'index.jsonl')).readlines()) == 1


def test_reports_folder_checked_first(tiny_set, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('x')
    from tools import eval_occ
    with pytest.raises(SystemExit, match=r'cannot write to the output folder .*file \(--out-md\)'):
        eval_occ.main(['--infos', tiny_set['infos'], '--gt-root', tiny_set['gts'],
                       '--pred-root', tiny_set['pred'], '--out-md',
                       str(tmp_path / 'file' / 'r.md')])
    from tools import visualize
    with pytest.raises(SystemExit, match=r'cannot write to the output folder .*file \(--out\)'):
        visualize.main([str(tmp_path / 'none.npz'), '--out', str(tmp_path / 'file' / 'a.png')])


def test_quickstart_reruns_with_overwrite(tmp_path):
    """The quickstart re-runs an unfinished stage into its folders: those of forecast.py
    and build_occupancy.py take --overwrite (a finished stage is skipped by its marker)."""
    from tools import quickstart
    for shared in (str(tmp_path), os.path.join(REPO, '..', 'shared', 'data')):
        for _, commands in quickstart.stages('quick', shared):
            for cmd in commands:
                if cmd[1] in ('tools/forecast.py', 'tools/build_occupancy.py'):
                    assert '--overwrite' in cmd, cmd
