"""The checks of a whole LiDAR sequence (occwm.occupancy.frames.check_sequence, run by
every reader): timestamps in seconds, ego poses a road vehicle can drive, one token per
frame; one line naming the file, the field and the scene. The real sequences pass:
nuScenes seq11 (its folder and the frames tools/convert_seq11.py writes) and PandaSet
(the raw 10 Hz poses and the frames of tools/convert_pandaset.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from occwm.geometry import (MAX_ACCEL, MAX_SPEED, implausible_motion, se2_to_matrix,
                            timestamp_unit_mistake)
from occwm.occupancy.frames import frame_path, load_frames, write_frame
from occwm.occupancy.seq11 import load_source
from tests.conftest import REPO, shared_path
from tests.occupancy.test_seq11 import seq11_pose, write_seq11


def _frames(src, times, xs):
    """A frame-format folder ``src``: one point per frame, the ego at x = ``xs`` metres."""
    for i, (t, x) in enumerate(zip(times, xs)):
        write_frame(frame_path(src, i), points=np.zeros((1, 3), np.float32),
                    labels=np.zeros(1, np.uint8), lidar2ego=np.eye(4),
                    ego2global=se2_to_matrix(x, 0.0, 0.0), timestamp=t)
    return src


def test_plausible_frames_load(tmp_path):
    src = _frames(str(tmp_path / 'seq'), [10.0, 10.5, 11.0], [0.0, 5.0, 10.0])
    assert len(load_frames(src)) == 3


def test_microseconds_where_seconds_belong(tmp_path):
    """Relative µs timestamps pass the per-frame 'not seconds' check (< 1e11) but not
    the frame period."""
    src = _frames(str(tmp_path / 'seq'), [0.0, 500_000.0, 1_000_000.0], [0.0, 5.0, 10.0])
    with pytest.raises(ValueError) as e:
        load_frames(src)
    assert str(e.value) == (
        f"{frame_path(src, 0)}: timestamp: median frame period 5e+05 s (1e+06 x the expected "
        f"~0.5 s): the timestamps are probably in µs, want s (multiply by 1e-06) (scene 'seq')")


def test_milliseconds_where_seconds_belong(tmp_path):
    src = _frames(str(tmp_path / 'seq'), [0.0, 500.0, 1000.0], [0.0, 5.0, 10.0])
    with pytest.raises(ValueError, match=r'000000\.npz: timestamp: .*probably in ms, want s'):
        load_frames(src)


def test_a_pose_jump_is_named(tmp_path):
    src = _frames(str(tmp_path / 'seq'), [10.0, 10.5, 11.0], [0.0, 1e12, 10.0])
    with pytest.raises(ValueError, match=rf"^{frame_path(src, 1)}: ego2global: speed 2e\+12 m/s "
                                         rf"over the 0.5 s before this pose, above 70 m/s .*"
                                         rf"\(scene 'seq'\)$"):
        load_frames(src)


def test_duplicate_tokens_in_a_seq11_folder(tmp_path):
    """Two frames of one sample token would write one gts/<scene>/<token> folder."""
    points = np.array([[0.5, 0.5, 0.0, 0.0]])
    src = write_seq11(tmp_path / 'dup', [
        dict(points=points, boxes=[], tokens=[], pose=seq11_pose('tok0', 1_000_000)),
        dict(points=points, boxes=[], tokens=[], pose=seq11_pose('tok0', 1_500_000, (4.0, 0.0)))])
    with pytest.raises(ValueError, match=r"pc_seman_1\.npy: token: tok0 is also the token of "
                                         r".*pc_seman_0\.npy \(scene 'nuscenes_dup'\)"):
        load_source(src)


def test_the_tool_says_it_in_one_line(tmp_path):
    src = _frames(str(tmp_path / 'seq'), [10.0, 10.5, 11.0], [0.0, 1e12, 10.0])
    run = subprocess.run([sys.executable, 'tools/build_occupancy.py', '--format', 'frames', src,
                          str(tmp_path / 'out'), '--quiet'], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode != 0 and 'Traceback' not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: {frame_path(src, 1)}: ego2global: '
                                                   f'speed 2e+12 m/s')


# ----------------------------------------------------------------------------- real data
def _margins(frames):
    """(max speed m/s, max acceleration m/s^2) of SourceFrames, as implausible_motion
    measures them."""
    p = np.stack([f.ego2global[:3, 3] for f in frames])
    t = np.array([f.timestamp for f in frames]) * 1e-6
    v = np.diff(p, axis=0) / np.diff(t)[:, None]
    a = np.linalg.norm(np.diff(v, axis=0), axis=1) / np.maximum(np.diff(t[1:] + t[:-1]) / 2, 0.4)
    return np.linalg.norm(v, axis=1).max(), a.max()


def test_real_seq11_passes_comfortably(seq11_dir, tmp_path):
    """nuScenes seq11 (11 keyframes): at most 9.9 m/s and 1.1 m/s^2; the frames
    tools/convert_seq11.py writes read back the same."""
    speed, accel = _margins(load_source(seq11_dir))
    assert speed < MAX_SPEED / 5 and accel < MAX_ACCEL / 10
    out = str(tmp_path / 'frames')
    subprocess.run([sys.executable, 'tools/convert_seq11.py', seq11_dir, out], check=True,
                   capture_output=True, cwd=REPO, timeout=300)
    assert len(load_frames(out)) == 11


def test_real_pandaset_passes_comfortably(tmp_path):
    """PandaSet 002: the raw 10 Hz LiDAR poses (at most 5.6 m/s and 0.7 m/s^2) and the
    2 Hz frames of tools/convert_pandaset.py (the first 4 keyframes)."""
    from occwm.occupancy.pandaset import convert_pandaset, load_sequence
    src = shared_path('pandaset_002')
    seq = load_sequence(src)
    assert timestamp_unit_mistake(seq.lidar_times, 's') is None
    assert implausible_motion(seq.lidar_poses[:, :3, 3], seq.lidar_times) is None
    assert implausible_motion(seq.lidar_poses[:, :3, 3], seq.lidar_times,
                              max_speed=MAX_SPEED / 10, max_accel=MAX_ACCEL / 10) is None
    out = str(tmp_path / 'frames')
    convert_pandaset(src, out, num_frames=4, progress=False)
    speed, accel = _margins(load_frames(out))
    assert speed < MAX_SPEED / 10 and accel < MAX_ACCEL / 5
    assert os.path.isfile(frame_path(out, 3))
