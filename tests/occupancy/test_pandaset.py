"""PandaSet -> frame format (occwm.occupancy.pandaset, tools/convert_pandaset.py): the class
map, the frames and boxes on hand-made poses, sibling de-duplication, then two real
keyframes of ../shared/data/pandaset_002."""
import json
import os

import numpy as np
import pytest
from pyquaternion import Quaternion

from occwm.geometry import pose_matrix, transform_points, wrap_angle
from occwm.occupancy.frames import frame_path, load_scene_json, read_frame
from occwm.occupancy.pandaset import (IGNORE, PANDAR64_ABOVE_POSE, PANDASET_TO_OCC3D,
                                      SENSOR_AHEAD_OF_REAR_AXLE, align_twin_points, class_lut,
                                      convert_pandaset, cuboid_boxes, dedup_cuboids, ego_frame,
                                      movable_in_boxes, pose_at, road_height, track_ids)
from tests.conftest import shared_path
from tools import convert_pandaset as tool

# annotations/semseg/classes.json of PandaSet, ids 1..42
PANDASET_CLASSES = (
    'Smoke', 'Exhaust', 'Spray or rain', 'Reflection', 'Vegetation', 'Ground', 'Road',
    'Lane Line Marking', 'Stop Line Marking', 'Other Road Marking', 'Sidewalk', 'Driveway',
    'Car', 'Pickup Truck', 'Medium-sized Truck', 'Semi-truck', 'Towed Object', 'Motorcycle',
    'Other Vehicle - Construction Vehicle', 'Other Vehicle - Uncommon',
    'Other Vehicle - Pedicab', 'Emergency Vehicle', 'Bus', 'Personal Mobility Device',
    'Motorized Scooter', 'Bicycle', 'Train', 'Trolley', 'Tram / Subway', 'Pedestrian',
    'Pedestrian with Object', 'Animals - Bird', 'Animals - Other', 'Pylons', 'Road Barriers',
    'Signs', 'Cones', 'Construction Signs', 'Temporary Construction Barriers',
    'Rolling Containers', 'Building', 'Other Static Object')


# ----------------------------------------------------------------------------- class map
def test_class_map_covers_all_42_classes():
    assert set(PANDASET_TO_OCC3D) == set(PANDASET_CLASSES)
    lut = class_lut({str(i + 1): n for i, n in enumerate(PANDASET_CLASSES)})
    ids = lut[1:43]
    assert np.all((ids <= 16) | (ids == IGNORE))
    assert lut[7] == 11 and lut[8] == 11 and lut[13] == 4 and lut[30] == 7 and lut[41] == 15
    assert lut[4] == IGNORE and lut[0] == IGNORE and lut[43] == IGNORE   # Reflection; unused ids
    assert set(range(17)) - set(ids.tolist()) == {12}     # every Occ3D class but other_flat


def test_class_map_unknown_name_is_named():
    with pytest.raises(ValueError, match=r"x/classes.json: unknown PandaSet class 'Kite'"):
        class_lut({'1': 'Kite'}, 'x/classes.json')


# ----------------------------------------------------------------------------- frames
def _lidar_pose(heading, roll_deg=2.0, position=(10.0, -5.0, 3.0)):
    """A PandaSet pose frame (x right, y forward) whose forward axis has world yaw
    ``heading``, rolled by ``roll_deg`` about its forward axis."""
    q = Quaternion(axis=[0, 0, 1], angle=heading - np.pi / 2) * \
        Quaternion(axis=[0, 1, 0], angle=np.radians(roll_deg))
    return pose_matrix(position, q.elements)


def test_world_to_ego_levels_and_points_forward():
    heading = 0.7
    L = _lidar_pose(heading)
    road_z = 3.0 - 0.3                                              # road 0.3 m below the pose
    ego2global, lidar2global, lidar2ego = ego_frame(L, road_z)
    fwd = np.array([np.cos(heading), np.sin(heading)])
    world = np.array([[10.0 + 8 * fwd[0], -5.0 + 8 * fwd[1], road_z],   # road 8 m ahead
                      [10.0 - 3 * fwd[1], -5.0 + 3 * fwd[0], road_z]])  # road 3 m to the left
    ego = transform_points(np.linalg.inv(ego2global), world)
    np.testing.assert_allclose(ego[:, 2], 0.0, atol=1e-9)           # road at z = 0, level
    np.testing.assert_allclose(ego[0, :2], [8 + SENSOR_AHEAD_OF_REAR_AXLE, 0.0], atol=1e-9)
    np.testing.assert_allclose(ego[1, :2], [SENSOR_AHEAD_OF_REAR_AXLE, 3.0], atol=1e-9)
    # the LiDAR origin: ahead of the rear axle, raised above the pose origin (roll: ~cm)
    np.testing.assert_allclose(lidar2ego[:3, 3], [SENSOR_AHEAD_OF_REAR_AXLE, 0.0,
                                                  0.3 + PANDAR64_ABOVE_POSE], atol=0.06)
    # a point in the LiDAR frame goes to the same ego point either way
    p = np.array([[1.0, 20.0, -1.0]])
    np.testing.assert_allclose(transform_points(lidar2ego, p),
                               transform_points(np.linalg.inv(ego2global) @ lidar2global, p))
    assert transform_points(lidar2ego, p)[0, 0] > 15               # pose +y is ego +x


def test_road_height_is_median_of_near_road_points():
    L = _lidar_pose(0.0, roll_deg=0.0, position=(0.0, 0.0, 0.0))
    rng = np.random.default_rng(0)
    xy = rng.uniform(-15, 15, (300, 2))
    xyz = np.c_[xy, -0.3 + rng.normal(0, 0.01, 300)]
    far = np.array([[80.0, 0.0, 5.0]] * 400)                        # far away: not used
    label = np.r_[np.full(300, 7), np.full(400, 7)].astype(np.uint8)
    assert road_height(np.r_[xyz, far], label, L) == pytest.approx(-0.3, abs=0.01)
    assert road_height(xyz[:50], label[:50], L) is None             # too few Road points


def _cuboid(uuid, sensor=-1, sibling='-', x=0.0, y=0.0, yaw=0.0, label='Car'):
    return {'uuid': uuid, 'label': label, 'yaw': yaw, 'position.x': x, 'position.y': y,
            'position.z': 1.0, 'dimensions.x': 2.0, 'dimensions.y': 4.5, 'dimensions.z': 1.6,
            'cuboids.sensor_id': sensor, 'cuboids.sibling_id': sibling}


def test_boxes_length_width_yaw_in_ego_frame():
    heading = 0.7
    ego2global, _, _ = ego_frame(_lidar_pose(heading), road_z=0.5)
    ex, ey = ego2global[:2, 3]
    fwd, left = np.array([np.cos(heading), np.sin(heading)]), np.array([-np.sin(heading),
                                                                       np.cos(heading)])
    at = np.array([ex, ey]) + 12 * fwd + 3 * left                   # 12 m ahead, 3 m left
    along = _cuboid('a', x=at[0], y=at[1], yaw=heading - np.pi / 2)  # dims.y along the road
    across = _cuboid('b', x=at[0], y=at[1], yaw=heading)            # turned by 90 degrees
    boxes, ids, labels = cuboid_boxes([along, across], ego2global, {})
    np.testing.assert_allclose(boxes[0], [12, 3, 0.5, 4.5, 2.0, 1.6, 0.0], atol=1e-5)
    assert abs(wrap_angle(boxes[1, 6] - np.pi / 2)) < 1e-6
    assert ids.tolist() == ['a', 'b'] and labels.tolist() == [4, 4]
    assert boxes.dtype == np.float32


def test_sibling_duplicates_removed_and_tracks_joined():
    a, b = 'aaaaaaaa-1111-2222-3333-444444444444', 'bbbbbbbb-1111-2222-3333-444444444444'
    c, d, e = 'cccccccc-0000', 'dddddddd-0000', 'eeeeeeee-0000'
    frame0 = [_cuboid(b, sensor=1, sibling=a[:-2]),                 # PandarGT copy, cut-short id
              _cuboid(a, sensor=0, sibling=b),                      # the Pandar64's copy
              _cuboid(c),                                           # seen once
              _cuboid(d, sensor=1, sibling=e)]                      # its sibling not here
    frame1 = [_cuboid(e, sensor=0, sibling=d)]
    tracks = track_ids([frame0, frame1])
    assert tracks[b] == a and tracks[a] == a and tracks[d] == e and tracks[c] == c
    kept, dropped = dedup_cuboids(frame0, tracks)
    assert [k['uuid'] for k in kept] == [a, c, d]
    assert [(x['uuid'], y['uuid']) for x, y in dropped] == [(b, a)]     # (dropped, kept twin)
    _, ids, _ = cuboid_boxes(kept, np.eye(4), tracks)
    assert ids.tolist() == [a, c, e]                                # one id per object


def test_twin_points_moved_onto_kept_box():
    kept = np.array([[10.0, 0, 1, 4, 2, 2, 0]])
    dropped = np.array([[10.6, 0, 1, 4, 2, 2, 0]])                  # seen 0.6 m further on
    pts = np.array([[12.4, 0.0, 1.0],                               # PandarGT, car: moved
                    [12.4, 0.0, 1.0],                               # Pandar64: stays
                    [12.4, 0.0, 0.1],                               # PandarGT road: stays
                    [20.0, 0.0, 1.0]])                              # outside: stays
    labels, sensor = np.array([4, 4, 11, 4]), np.array([1, 0, 1, 1])
    out = pts.copy()
    assert align_twin_points(out, labels, sensor, dropped, kept, np.array([1])) == 1
    np.testing.assert_allclose(out[0], [11.8, 0.0, 1.0])
    np.testing.assert_array_equal(out[1:], pts[1:])


def test_pose_at_interpolates():
    P = np.stack([pose_matrix([0, 0, 0], [1, 0, 0, 0]),
                  pose_matrix([2, 0, 0], Quaternion(axis=[0, 0, 1], angle=0.4).elements)])
    mid = pose_at(P, np.array([0.0, 1.0]), 0.25)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 0, 0])
    assert np.arctan2(mid[1, 0], mid[0, 0]) == pytest.approx(0.1)
    np.testing.assert_allclose(pose_at(P, np.array([0.0, 1.0]), 5.0), P[1])  # clamped


def test_movable_in_boxes_hand_computed():
    boxes = np.array([[10, 0, 1, 4, 2, 2, 0]], np.float32)
    pts = np.array([[10, 0, 1], [11.9, 0.9, 0.1], [14, 0, 1], [10, 0, 1]], np.float64)
    labels = np.array([4, 4, 4, 11])                                # last: road, not movable
    assert movable_in_boxes(pts, labels, boxes) == (3, 2)


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    src = shared_path('pandaset_002')
    out = str(tmp_path_factory.mktemp('pandaset') / 'ps002')
    return src, out, convert_pandaset(src, out, num_frames=2, progress=False)


def test_real_classes_json_maps():
    path = os.path.join(shared_path('pandaset_002'), 'annotations', 'semseg', 'classes.json')
    with open(path) as f:
        classes = json.load(f)
    assert [classes[str(i + 1)] for i in range(42)] == list(PANDASET_CLASSES)
    np.testing.assert_array_equal(class_lut(classes, path), class_lut(
        {str(i + 1): n for i, n in enumerate(PANDASET_CLASSES)}))


def test_real_frames_read_back(converted):
    src, out, summary = converted
    assert len(summary['frames']) == 2
    assert sorted(os.listdir(os.path.join(out, 'frames'))) == ['000000.npz', '000001.npz']
    f = read_frame(frame_path(out, 1))
    raw = np.load(os.path.join(src, 'lidar', '05.npz'))
    assert len(f['points']) == len(raw['xyz']) and f['labels'].dtype == np.uint8
    assert f['timestamp'] > 1.5e9 and len(f['boxes']) > 50
    assert len(np.unique(f['box_ids'])) == len(f['box_ids'])       # no sibling twice
    ego = transform_points(f['lidar2ego'], f['points'])
    road = ego[raw['label'] == 7]
    near = np.linalg.norm(road[:, :2], axis=1) < 25
    assert abs(np.median(road[near, 2])) < 0.05                     # road at z ~ 0
    assert np.median(ego[raw['sensor'] == 1, 0]) > 5                # the PandarGT faces +x
    mov, inside = movable_in_boxes(ego, f['labels'], f['boxes'])
    assert mov > 10000 and inside / mov > 0.97                      # movable points in boxes
    for r in summary['frames']:
        assert -0.4 < r['road_offset'] < -0.2 and r['duplicates'] > 0
    cams = load_scene_json(out, num_frames=2)['cameras']
    assert len(cams) == 6 and all(len(c) == 2 for c in cams.values())
    front = cams['front_camera'][0]
    assert front.image_size == (1920, 1080)
    assert front.cam2ego[0, 2] > 0.99 and front.cam2ego[2, 1] < -0.99   # looks +x, y down


def test_cli_refuses_nonempty_out_and_names_missing_files(converted, tmp_path, capsys):
    src, out, _ = converted
    with pytest.raises(SystemExit) as e:
        tool.main([src, out, '--num-frames', '1', '--quiet'])
    assert 'not empty; pass --overwrite' in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        tool.main([str(tmp_path / 'nope'), str(tmp_path / 'o'), '--quiet'])
    assert 'nope: PandaSet sequence folder not found' in str(e.value.code)
    bad = tmp_path / 'bad'
    (bad / 'lidar').mkdir(parents=True)
    for d in ('annotations', 'camera'):
        os.symlink(os.path.join(src, d), bad / d)
    for f in os.listdir(os.path.join(src, 'lidar')):
        if f != 'poses.json':
            os.symlink(os.path.join(src, 'lidar', f), bad / 'lidar' / f)
    (bad / 'lidar' / 'poses.json').write_text('[{"position": ')
    with pytest.raises(SystemExit) as e:
        tool.main([str(bad), str(tmp_path / 'o'), '--quiet'])
    assert str(e.value.code).startswith(f"error: {bad / 'lidar' / 'poses.json'}: bad json")
    assert not os.path.exists(tmp_path / 'o')                        # nothing half-written


def test_cli_overwrite(converted, capsys):
    src, out, _ = converted
    tool.main([src, out, '--num-frames', '1', '--quiet', '--overwrite'])
    assert sorted(os.listdir(os.path.join(out, 'frames'))) == ['000000.npz']
    text = capsys.readouterr().out
    assert 'sibling duplicates removed' in text and 'movable-class points in a box' in text
