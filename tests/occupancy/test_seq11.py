"""The nuscenes_seq11 reader (occwm.occupancy.seq11): a tiny source in that layout (also
the builder's hand-made case, tests/occupancy/test_builder.py) and errors that name the
file; the real sequence is read in test_builder.py, test_frames.py and test_nuscenes.py."""
import os

import numpy as np
import pytest

from occwm.occupancy.seq11 import default_scene_name, load_source, read_seq11_frame

LIDAR_Z = 1.8  # tiny source: LiDAR 1.8 m above the ego origin, axes aligned with the ego


def seq11_pose(token, ts, xy=(0.0, 0.0), yaw=0.0, translation=None):
    return dict(token=token, timestamp=ts, rotation=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)],
                translation=list(translation) if translation is not None else [xy[0], xy[1], 0.0])


def write_seq11(root, frames):
    """frames: list of dict(points (N,4) lidar x, y, z, label; boxes (M,7); tokens; pose)."""
    for d in ('pc_seman', 'bbox', 'pose', 'calib'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    calib = dict(token='calib', translation=[0.0, 0.0, LIDAR_Z], rotation=[1.0, 0.0, 0.0, 0.0])
    for k, f in enumerate(frames):
        files = {f'pc_seman/pc_seman_{k}.npy': np.asarray(f['points'], np.float64),
                 f'bbox/bbox{k}.npy': np.asarray(f['boxes'], np.float32).reshape(-1, 7),
                 f'bbox/boxes_token{k}.npy': np.asarray(f['tokens'], dtype='<U32'),
                 f'bbox/object_category{k}.npy': np.full(len(f['tokens']), 4, np.int64),
                 f'pose/lidar_ego_pose{k}.npy': f['pose'],
                 f'calib/lidar_calibrated_sensor{k}.npy': calib}
        for name, obj in files.items():
            np.save(os.path.join(root, name), obj, allow_pickle=True)
    return str(root)


def tiny_seq11(root):
    """Ego drives 4 m forward; a car (token 'car') drives 8 m forward (global x 10 -> 18)
    and is seen only in frame 0; a road patch at global x 24..26 is seen only in frame 0."""
    rng = np.random.default_rng(0)
    car = np.c_[rng.uniform(-1.5, 1.5, 40) + 10, rng.uniform(-0.8, 0.8, 40),
                rng.uniform(0.3, 1.3, 40) - LIDAR_Z, np.full(40, 4)]        # lidar frame
    road = np.c_[rng.uniform(24, 26, 30), rng.uniform(-1, 1, 30), np.full(30, 0.05 - LIDAR_Z),
                 np.full(30, 11)]
    noise = np.array([[0.5, 0.5, 0.0, 0.0]])                                # near-sensor label 0
    box0 = [10.0, 0.0, -LIDAR_Z, 4.0, 2.0, 1.5, 0.0]
    box1 = [14.0, 0.0, -LIDAR_Z, 4.0, 2.0, 1.5, 0.0]                          # global x 18
    return write_seq11(root, [
        dict(points=np.concatenate([car, road, noise]), boxes=[box0], tokens=['car'],
             pose=seq11_pose('tok0', 1_000_000)),
        dict(points=noise, boxes=[box1], tokens=['car'],
             pose=seq11_pose('tok1', 1_500_000, (4.0, 0.0)))])


def test_tiny_frame_in_the_frame_format(tmp_path):
    """Boxes (x, y, z_bottom, w, l, h, heading + pi / 2) in the LiDAR frame become the
    frame format's ego-frame (x, y, z_center, length, width, height, yaw)."""
    src = tiny_seq11(tmp_path / 'tiny')
    np.save(os.path.join(src, 'bbox', 'bbox0.npy'),
            np.array([[10.0, 0.0, -LIDAR_Z, 2.0, 4.0, 1.5, np.pi / 2]], np.float32))
    f = read_seq11_frame(src, 0)
    np.testing.assert_allclose(f['boxes'], [[10.0, 0.0, 0.75, 4.0, 2.0, 1.5, 0.0]], atol=1e-6)
    assert f['token'] == 'tok0' and f['timestamp'] == 1.0 and f['ego_pose']['token'] == 'tok0'
    assert load_source(src)[1].timestamp == 1_500_000


def test_default_scene_name():
    assert default_scene_name('/a/b/nuscenes_seq11') == 'nuscenes_seq11'
    assert default_scene_name('/a/b/seq11/') == 'nuscenes_seq11'


def test_missing_pose_file_is_named(tmp_path):
    src = tiny_seq11(tmp_path / 'tiny')
    os.remove(os.path.join(src, 'pose', 'lidar_ego_pose1.npy'))
    with pytest.raises(FileNotFoundError, match='lidar_ego_pose1.npy'):
        load_source(src)


def test_non_finite_pose(tmp_path):
    src = tiny_seq11(tmp_path / 'tiny')
    np.save(os.path.join(src, 'pose', 'lidar_ego_pose0.npy'),
            seq11_pose('tok0', 1_000_000, translation=[np.nan, 0.0, 0.0]), allow_pickle=True)
    with pytest.raises(ValueError, match=r'lidar_ego_pose0\.npy.*non-finite'):
        load_source(src)


def test_wrong_shapes_are_named(tmp_path):
    src = tiny_seq11(tmp_path / 'tiny')
    np.save(os.path.join(src, 'pc_seman', 'pc_seman_1.npy'), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r'pc_seman_1\.npy.*\(N, 4\)'):
        load_source(src)
    src = tiny_seq11(tmp_path / 'tiny2')
    np.save(os.path.join(src, 'bbox', 'boxes_token0.npy'), np.array(['a', 'b']))
    with pytest.raises(ValueError, match=r'boxes_token0\.npy.*2 entries'):
        load_source(src)


def test_pose_record_without_timestamp_named(tmp_path):
    src = tiny_seq11(tmp_path / 'tiny')
    pose = seq11_pose('tok1', 0)
    del pose['timestamp']
    np.save(os.path.join(src, 'pose', 'lidar_ego_pose1.npy'), pose, allow_pickle=True)
    with pytest.raises(ValueError, match=r'lidar_ego_pose1\.npy: expected a nuScenes ego_pose'):
        load_source(src)
