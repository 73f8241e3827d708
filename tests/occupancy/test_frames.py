"""The frame format (occwm.occupancy.frames): write / read round trips, one-line errors
that name the file and the field, a tiny synthetic sequence built through
tools/build_occupancy.py --format frames, and the real nuscenes_seq11 converted by
tools/convert_seq11.py, equal to the folder mode."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from occwm.geometry import pose_matrix, se2_to_matrix, transform_points, yaw_quaternion
from occwm.grid import OccGrid
from occwm.io import load_labels
from occwm.occupancy.builder import build_sequence, points_in_boxes
from occwm.occupancy.frames import (SourceFrame, frame_path, frame_token, lidar_boxes_to_ego,
                                    load_frames, load_scene_json, read_frame, write_frame,
                                    write_scene_json)
from occwm.occupancy.seq11 import load_source
from occwm.occupancy.visibility import CameraCalib
from tests.conftest import REPO

LIDAR_Z = 1.8
# LiDAR 1.8 m above the rear axle, x to the ego's right (nuScenes LIDAR_TOP: yaw -90 deg)
LIDAR2EGO = pose_matrix([0.0, 0.0, LIDAR_Z], yaw_quaternion(-np.pi / 2))
GRID = OccGrid((-4.0, -8.0, -1.0, 20.0, 8.0, 5.4), 0.4)     # 60 x 40 x 16: fast rays
GRID_ARGS = ['--grid', '-4', '-8', '-1', '20', '8', '5.4', '0.4']


def _frame(seed=0, t=0.0, ego_x=0.0, n=200):
    """A frame with ``n`` points (a few ignored) and two boxes (str ids)."""
    rng = np.random.default_rng(seed)
    return dict(points=rng.uniform(-5, 5, (n, 3)), labels=np.r_[rng.integers(0, 17, n - 3),
                                                                 [255] * 3],
                lidar2ego=LIDAR2EGO, ego2global=se2_to_matrix(ego_x, 0.0, 0.1), timestamp=t,
                boxes=np.array([[6.0, 0.0, 0.75, 4.0, 2.0, 1.5, 0.0],
                                [3.0, 4.0, 0.9, 1.0, 1.0, 1.8, 1.0]]),
                box_ids=np.array(['car', 'ped']), box_labels=np.array([4, 7]))


def _write(path, frame):
    """Write ``frame`` as it is (no checks): how a bad file reaches ``read_frame``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **{k: v for k, v in frame.items() if v is not None})
    return path


# ----------------------------------------------------------------------------- round trips
def test_round_trip(tmp_path):
    src = str(tmp_path / 'seq')
    assert frame_path(src, 7) == os.path.join(src, 'frames', '000007.npz')
    f = _frame()
    write_frame(frame_path(src, 0), **f)
    assert os.listdir(os.path.join(src, 'frames')) == ['000000.npz']   # no temporary file
    got = read_frame(frame_path(src, 0))
    dtypes = dict(points=np.float32, labels=np.uint8, lidar2ego=np.float64,
                  ego2global=np.float64, timestamp=np.float64, boxes=np.float32,
                  box_labels=np.uint8)
    for key, dtype in dtypes.items():
        assert got[key].dtype == dtype, key
        np.testing.assert_array_equal(got[key], np.asarray(f[key]).astype(dtype))
    assert got['box_ids'].tolist() == ['car', 'ped']
    # integer track ids, and a frame without boxes (M = 0)
    write_frame(frame_path(src, 1), **dict(f, box_ids=np.array([3, 9])))
    assert read_frame(frame_path(src, 1))['box_ids'].tolist() == [3, 9]
    write_frame(frame_path(src, 2), **dict(f, boxes=None, box_ids=None, box_labels=None))
    bare = read_frame(frame_path(src, 2))
    assert bare['boxes'].shape == (0, 7) and len(bare['box_ids']) == len(bare['box_labels']) == 0


def test_source_frames_in_memory(tmp_path):
    src = str(tmp_path / 'seq')
    for i in range(2):
        write_frame(frame_path(src, i), **_frame(seed=i, t=1.7e9 + 0.5 * i))
    frames = load_frames(src)
    assert [f.token for f in frames] == [frame_token('seq', 0), frame_token('seq', 1)]
    assert frames[1].timestamp - frames[0].timestamp == 500_000               # microseconds
    f = frames[0]
    assert f.points.dtype == np.float64 and f.labels.dtype == np.int64
    assert list(f.box_tokens) == ['car', 'ped']
    np.testing.assert_allclose(f.boxes[0], [6.0, 0.0, 0.75, 4.0, 2.0, 1.5, 0.0])
    write_scene_json(src, 'my_scene')
    assert load_frames(src)[1].token == frame_token('my_scene', 1)


def test_scene_json_round_trip(tmp_path):
    src = str(tmp_path)
    assert load_scene_json(src) == dict(scene_name=None, cameras={})
    K = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
    front = CameraCalib('CAM_FRONT', pose_matrix([1.5, 0, 1.6], [0.5, -0.5, 0.5, -0.5]), K,
                        (128, 96))
    moving = [CameraCalib('CAM_ROOF', pose_matrix([x, 0, 2.0], [0.5, -0.5, 0.5, -0.5]), K,
                          (128, 96)) for x in (0.0, 0.1)]
    write_scene_json(src, 'scene-1', {'CAM_FRONT': front, 'CAM_ROOF': moving})
    scene = load_scene_json(src, num_frames=2)
    assert scene['scene_name'] == 'scene-1' and list(scene['cameras']) == ['CAM_FRONT', 'CAM_ROOF']
    got = scene['cameras']['CAM_FRONT']
    np.testing.assert_array_equal(got.cam2ego, front.cam2ego)                # exact through JSON
    np.testing.assert_array_equal(got.cam2img, K)
    assert got.image_size == (128, 96) and got.name == 'CAM_FRONT'
    assert [c.cam2ego[0, 3] for c in scene['cameras']['CAM_ROOF']] == [0.0, 0.1]
    with pytest.raises(ValueError, match=r'scene\.json: cameras\.CAM_ROOF: cam2img or image_size'):
        write_scene_json(src, 'x', {'CAM_ROOF': [moving[0], CameraCalib('CAM_ROOF', front.cam2ego,
                                                                        2 * K, (128, 96))]})


def test_lidar_boxes_to_ego_hand_computed():
    # LiDAR yawed by -90 deg: LiDAR x = ego -y; a box 2 m along LiDAR x, bottom on the road
    box = np.array([[2.0, 0.0, -LIDAR_Z, 4.0, 2.0, 1.5, 0.0]])
    np.testing.assert_allclose(lidar_boxes_to_ego(box, LIDAR2EGO),
                               [[0.0, -2.0, 0.75, 4.0, 2.0, 1.5, -np.pi / 2]], atol=1e-12)
    # a tilted LiDAR: the centre moves exactly, the heading is projected on the ground
    tilted = LIDAR2EGO @ pose_matrix([0, 0, 0], [np.cos(0.0125), np.sin(0.0125), 0, 0])
    out = lidar_boxes_to_ego(box, tilted)
    centre = transform_points(tilted, np.array([[2.0, 0.0, -1.05]]))[0]
    np.testing.assert_allclose(out[0, :3], centre)
    assert abs(out[0, 6] + np.pi / 2) < 1e-3
    # a SourceFrame keeps the boxes it is given (the ego frame: no conversion on construction)
    f = SourceFrame(0, 't', 0, np.zeros((0, 3)), np.zeros(0, np.int64), box, np.array(['a']),
                    np.array([4]), np.eye(4), LIDAR2EGO)
    assert f.boxes is box


# ----------------------------------------------------------------------------- errors
def _reflect(T):
    T = np.array(T)
    T[2, 2] = -1.0
    return T


BAD_FRAMES = {   # field, change, message fragment
    'missing': ('points', lambda f: dict(f, points=None), 'missing field'),
    'shape': ('points', lambda f: dict(f, points=np.zeros((200, 4))), r'shape \(200, 4\)'),
    'dtype': ('labels', lambda f: dict(f, labels=f['labels'].astype(np.float32)), 'dtype float32'),
    'non-finite': ('points', lambda f: dict(f, points=np.where(np.eye(200, 3) > 0, np.nan,
                                                                f['points'])), 'non-finite'),
    'label range': ('labels', lambda f: dict(f, labels=np.r_[f['labels'][:-1], 17]),
                    'label 17 .* out of range'),
    'orthonormal': ('lidar2ego', lambda f: dict(f, lidar2ego=f['lidar2ego'] * [[1.1], [1.1],
                                                                                [1.1], [1]]),
                    'not orthonormal'),
    'det': ('ego2global', lambda f: dict(f, ego2global=_reflect(f['ego2global'])), 'reflection'),
    'bottom row': ('lidar2ego', lambda f: dict(f, lidar2ego=np.r_[LIDAR2EGO[:3], [[0, 0, 1, 1]]]),
                   'bottom row'),
    'timestamp unit': ('timestamp', lambda f: dict(f, timestamp=1.7e15), 'not seconds'),
    'timestamp nan': ('timestamp', lambda f: dict(f, timestamp=np.nan), 'non-finite'),
    'box ids length': ('box_ids', lambda f: dict(f, box_ids=f['box_ids'][:1]),
                       'inconsistent lengths'),
    'box labels length': ('box_labels', lambda f: dict(f, box_labels=np.array([4, 7, 4])),
                          'inconsistent lengths'),
    'box labels missing': ('box_labels', lambda f: dict(f, box_labels=None), 'missing field'),
    'box label range': ('box_labels', lambda f: dict(f, box_labels=np.array([4, 255])),
                        'out of range'),
    'box size': ('boxes', lambda f: dict(f, boxes=f['boxes'] * [1, 1, 1, 1, -1, 1, 1]), '> 0'),
    'duplicate id': ('box_ids', lambda f: dict(f, box_ids=np.array(['car', 'car'])),
                     "'car' appears 2 times"),
}


@pytest.mark.parametrize('case', list(BAD_FRAMES))
def test_bad_frame_is_named(tmp_path, case):
    field, change, fragment = BAD_FRAMES[case]
    bad = change(_frame())
    path = _write(frame_path(str(tmp_path), 0), bad)
    with pytest.raises(ValueError, match=rf'^{path}: {field}: .*{fragment}') as e:
        read_frame(path)
    assert '\n' not in str(e.value)
    other = str(tmp_path / 'other.npz')                    # write_frame checks before writing
    with pytest.raises(ValueError, match=rf'^{other}: {field}: .*{fragment}'):
        write_frame(other, **{k: bad.get(k) for k in _frame()})
    assert not os.path.exists(other)


def test_time_order_and_names(tmp_path):
    src = str(tmp_path)
    write_frame(frame_path(src, 0), **_frame(t=10.0))
    write_frame(frame_path(src, 1), **_frame(t=10.0))
    with pytest.raises(ValueError, match=r'frames/000001\.npz: timestamp: 10\.000000 s is not '
                                         r'after .*000000\.npz'):
        load_frames(src)
    os.rename(frame_path(src, 1), frame_path(src, 2))
    with pytest.raises(FileNotFoundError, match=r'000001\.npz: frame missing'):
        load_frames(src)
    os.rename(frame_path(src, 2), os.path.join(src, 'frames', '1.npz'))
    with pytest.raises(ValueError, match=r'frames/1\.npz: file name'):
        load_frames(src)
    with open(frame_path(src, 1), 'w') as f:
        f.write('not a zip')
    with pytest.raises(ValueError, match=r'000001\.npz: not a readable npz'):
        read_frame(frame_path(src, 1))


GOOD_CAM = dict(cam2img=[[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]], image_size=[128, 96],
                cam2ego=np.eye(4).tolist())
BAD_SCENES = {   # scene.json text, field, message fragment
    'json': ('{"scene_name": ', '', 'not valid JSON'),
    'name': (dict(scene_name='a/b'), 'scene_name', 'not a folder name'),
    'key': (dict(scene_name='a', camera={}), '', r"unknown key\(s\) \['camera'\]"),
    'cam2img': (dict(cameras=dict(C=dict(GOOD_CAM, cam2img=[[1, 0, 0, 0]] * 3))),
                r'cameras\.C\.cam2img', r'shape \(3, 4\)'),
    'both': (dict(cameras=dict(C=dict(GOOD_CAM, cam2ego_per_frame=[np.eye(4).tolist()]))),
             r'cameras\.C', 'exactly one'),
    'count': (dict(cameras=dict(C={**{k: v for k, v in GOOD_CAM.items() if k != 'cam2ego'},
                                   'cam2ego_per_frame': [np.eye(4).tolist()]})),
              r'cameras\.C\.cam2ego_per_frame', '1 matrices for 2 frames'),
    'rigid': (dict(cameras=dict(C=dict(GOOD_CAM, cam2ego=(2 * np.eye(4)).tolist()))),
              r'cameras\.C\.cam2ego', 'bottom row'),
    'size': (dict(cameras=dict(C=dict(GOOD_CAM, image_size=[128]))),
             r'cameras\.C\.image_size', r'want \[W, H\]'),
}


@pytest.mark.parametrize('case', list(BAD_SCENES))
def test_bad_scene_json_is_named(tmp_path, case):
    content, field, fragment = BAD_SCENES[case]
    src = str(tmp_path)
    for i in range(2):
        write_frame(frame_path(src, i), **_frame(t=float(i)))
    path = os.path.join(src, 'scene.json')
    with open(path, 'w') as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=rf'^{path}: {field}.*{fragment}') as e:
        load_frames(src)
    assert '\n' not in str(e.value)


# ----------------------------------------------------------------------------- building
def _tiny_frames(src):
    """Two frames 0.5 s apart: the ego drives 2 m; a car (track 'car', class 4) drives
    from global x 6 to 10 m and is seen only in frame 0; a road patch at global x 14..16
    m is seen only in frame 0; 20 ignored points (255) 3 m up at x 8 m in frame 0; one
    camera, 2 m up, looking forward, moving with the ego (cam2ego per frame)."""
    rng = np.random.default_rng(0)
    to_lidar = np.linalg.inv(LIDAR2EGO)
    car = np.c_[rng.uniform(-1.5, 1.5, 150) + 6, rng.uniform(-0.8, 0.8, 150),
                rng.uniform(0.3, 1.3, 150)]                                 # ego frame
    road = np.c_[rng.uniform(14, 16, 100), rng.uniform(-1, 1, 100), np.full(100, 0.05)]
    ignored = np.c_[np.full(20, 8.1), np.full(20, 4.1), np.full(20, 3.1)]
    points = transform_points(to_lidar, np.concatenate([car, road, ignored]))
    labels = np.r_[np.full(150, 4), np.full(100, 11), np.full(20, 255)]
    box = lambda x: np.array([[x, 0.0, 0.8, 4.0, 2.0, 1.6, 0.0]])          # noqa: E731
    write_frame(frame_path(src, 0), points, labels, LIDAR2EGO, se2_to_matrix(0, 0, 0), 100.0,
                box(6.0), ['car'], [4])
    write_frame(frame_path(src, 1), np.zeros((0, 3)), np.zeros(0, np.uint8), LIDAR2EGO,
                se2_to_matrix(2, 0, 0), 100.5, box(8.0), ['car'], [4])      # global x 10
    cam2ego = np.eye(4)
    cam2ego[:3, :3] = [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]                 # camera z -> ego x
    cam2ego[:3, 3] = [0.0, 0.0, 2.0]
    K = np.array([[50.0, 0, 50], [0, 50.0, 50], [0, 0, 1]])                # 90 deg, 100 px
    write_scene_json(src, 'tiny', {'CAM_FRONT': [CameraCalib('CAM_FRONT', cam2ego, K, (100, 100))
                                                 for _ in range(2)]})
    return src


def test_tiny_frames_build_through_the_tool(tmp_path, capsys):
    from tools import build_occupancy
    src, out = _tiny_frames(str(tmp_path / 'src')), str(tmp_path / 'out')
    build_occupancy.main(['--format', 'frames', src, out, '--quiet', '--cam-stride', '2']
                         + GRID_ARGS)
    printed = capsys.readouterr().out
    assert 'built 2 frames of scene tiny (frames format)' in printed
    assert 'per-frame cam2ego' in printed
    with open(os.path.join(out, 'tiny_infos.pkl'), 'rb') as f:
        data = pickle.load(f)
    infos = data['infos']['tiny']
    assert [i['token'] for i in infos] == [frame_token('tiny', 0), frame_token('tiny', 1)]
    assert [i['timestamp'] for i in infos] == [100_000_000, 100_500_000]
    np.testing.assert_allclose(infos[0]['ego_fut_traj'][0], [2.0, 0.0, 0.0], atol=1e-6)
    assert data['metadata']['format'] == 'frames'
    occ = [load_labels(os.path.join(out, i['occ_path'], 'labels.npz'), GRID,
                       keys=('semantics', 'mask_lidar', 'mask_camera')) for i in infos]
    car0, car1 = (np.argwhere(o['semantics'] == 4) for o in occ)
    assert len(car0) and np.array_equal(car1, car0 + [5, 0, 0])  # carried 4 m - ego 2 m = 5 cells
    road1 = GRID.voxel_centers(np.argwhere(occ[1]['semantics'] == 11))
    assert len(road1) and np.all((road1[:, 0] > 11.5) & (road1[:, 0] < 14.5))   # static: -2 m
    # the ignored points: no label anywhere, but their rays reached their voxel (x 8.1,
    # y 4.1, ego z 3.1 m -> index 30, 30, 8)
    assert set(np.unique(occ[0]['semantics'])) == {4, 11, 17}
    assert occ[0]["semantics"][30, 30, 8] == 17 and occ[0]["mask_lidar"][30, 30, 8] == 1
    for o in occ:                                     # the camera sees the car, not behind
        cam = o['mask_camera'].astype(bool)
        assert (cam <= o['mask_lidar']).all() and cam[o['semantics'] == 4].any()
        assert not cam[o['semantics'] == 11].any() and not cam[:10].any()


def test_tool_bad_frame_one_line(tmp_path):
    src = _tiny_frames(str(tmp_path / 'src'))
    bad = dict(np.load(frame_path(src, 1)))
    bad['lidar2ego'] = bad['lidar2ego'] * [[1.1], [1.1], [1.1], [1]]
    _write(frame_path(src, 1), bad)
    run = subprocess.run([sys.executable, 'tools/build_occupancy.py', '--format', 'frames', src,
                          str(tmp_path / 'out'), '--quiet'], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode != 0 and 'Traceback' not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f'error: {frame_path(src, 1)}: lidar2ego: rotation not orthonormal '
        f'(max |R^T R - I| = 0.21)']


# ----------------------------------------------------------------------------- real data
def test_seq11_converted_equals_folder_mode(seq11_dir, tmp_path, capsys):
    """tools/convert_seq11.py writes the frames that the folder mode reads in memory:
    the same arrays (tokens aside), hence the same occupancy."""
    from tools import convert_seq11
    out = str(tmp_path / 'seq11_frames')
    convert_seq11.main([seq11_dir, out])
    assert 'scene nuscenes_seq11' in capsys.readouterr().out
    frames, source = load_frames(out), load_source(seq11_dir)
    assert len(frames) == len(source) == 11
    assert [f.token for f in frames] == [frame_token('nuscenes_seq11', i) for i in range(11)]
    for a, b in zip(frames, source):
        assert a.timestamp == b.timestamp                 # seconds -> µs is exact
        for key in ('points', 'labels', 'boxes', 'box_labels', 'ego2global', 'lidar2ego'):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
        assert list(a.box_tokens) == list(b.box_tokens)
    # the converted boxes hold the same object points as the seq11 boxes, up to the
    # LiDAR tilt (1.4 deg; measured: 20 of 32,888 in-box points over 11 frames)
    ego = transform_points(frames[5].lidar2ego, frames[5].points)
    assert (points_in_boxes(ego, frames[5].boxes) >= 0).sum() > 2000
    a, b = (build_sequence(f[4:6], ray_cast='own', progress=False) for f in (frames, source))
    for x, y in zip(a, b):
        for key in ('semantics', 'mask_lidar', 'mask_camera'):
            np.testing.assert_array_equal(x[key], y[key])
    with pytest.raises(SystemExit, match='already holds 11 frame files'):
        convert_seq11.main([seq11_dir, out])
