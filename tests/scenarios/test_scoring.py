"""Scenario scoring maths on hand-made grids: footprint rasterisation, clearance, time
to collision, offroad, the height band, the lagged collision test and the summaries."""
import dataclasses

import numpy as np
import pytest

from occwm.grid import DEFAULT_GRID
from occwm.scenarios.scoring import (ScoringConfig, aggregate, band_layers, bev_maps,
                                     box_distance, footprint_mask, ground_shift,
                                     score_trajectory, time_to_collision)
from tests.helpers import TINY_GRID

# A 2 m x 1 m box from the ego origin forward: x in [0, 2], y in [-0.5, 0.5].
BOX = ScoringConfig(ego_length=2.0, ego_width=1.0, ego_rear=0.0, auto_ground=False)
FREE, ROAD, SIDEWALK, CAR, PED, TREE = 17, 11, 13, 4, 7, 16


def cells(mask):
    cx, cy = TINY_GRID.column_centers()
    i, j = np.nonzero(mask)
    return {(round(float(cx[a]), 1), round(float(cy[b]), 1)) for a, b in zip(i, j)}


def test_default_footprint_is_the_nuscenes_ego_around_the_rear_axle():
    assert ScoringConfig().footprint == pytest.approx((-0.657, 3.427, -0.865, 0.865))
    # 0.4 m columns with centres at +-0.2, +-0.6, ...: x centres -0.6..3.4 (11), y +-0.2, +-0.6 (4)
    assert footprint_mask(np.zeros(3), ScoringConfig(), DEFAULT_GRID).sum() == 44


def test_footprint_axis_aligned_and_rotated():
    assert cells(footprint_mask(np.zeros(3), BOX, TINY_GRID)) == {
        (x, y) for x in (0.2, 0.6, 1.0, 1.4, 1.8) for y in (-0.2, 0.2)}
    # yawed 90 degrees to the left: the box covers y in [0, 2], x in [-0.5, 0.5]
    assert cells(footprint_mask(np.array([0.0, 0.0, np.pi / 2]), BOX, TINY_GRID)) == {
        (x, y) for x in (-0.2, 0.2) for y in (0.2, 0.6, 1.0, 1.4, 1.8)}
    # yawed 45 degrees: (1, 1) lies on the axis at 1.414 m; (1.4, 0.2) is 0.85 m off it
    got = cells(footprint_mask(np.array([0.0, 0.0, np.pi / 4]), BOX, TINY_GRID))
    assert {(1.0, 1.0), (0.6, 0.6), (0.6, 0.2), (0.2, 0.6)} <= got
    assert not {(1.4, 0.2), (1.0, 0.2), (1.8, 1.0), (-0.2, -0.2)} & got
    # translated: the same box 2 m ahead and 1.2 m left
    assert cells(footprint_mask(np.array([2.0, 1.2, 0.0]), BOX, TINY_GRID)) == {
        (x, y) for x in (2.2, 2.6, 3.0, 3.4, 3.8) for y in (1.0, 1.4)}


def test_box_distance():
    pts = np.array([[3.0, 0.0], [3.0, 1.5], [1.0, 0.2], [-1.0, 0.0], [1.0, -2.5]])
    np.testing.assert_allclose(box_distance(np.zeros(3), pts, BOX), [1.0, np.sqrt(2), 0.0, 1.0, 2.0])
    # yawed 90 degrees: the box spans y in [0, 2]; (0, 3) is 1 m beyond its front
    np.testing.assert_allclose(box_distance(np.array([0.0, 0.0, np.pi / 2]), np.array([[0.0, 3.0]]), BOX),
                               [1.0], atol=1e-12)


def test_time_to_collision():
    pose = np.zeros(3)
    assert time_to_collision(pose, 2.0, np.array([[6.0, 0.3]]), BOX) == pytest.approx(2.0)  # (6 - 2) / 2
    assert time_to_collision(pose, 2.0, np.array([[6.0, 0.8]]), BOX) == np.inf  # beside the path
    assert time_to_collision(pose, 2.0, np.array([[-3.0, 0.0]]), BOX) == np.inf  # behind
    assert time_to_collision(pose, -1.0, np.array([[-3.0, 0.0]]), BOX) == pytest.approx(3.0)  # reversing
    assert time_to_collision(pose, 0.0, np.array([[6.0, 0.0]]), BOX) == np.inf  # standing
    assert time_to_collision(pose, 0.0, np.array([[1.0, 0.0]]), BOX) == 0.0  # already inside
    assert time_to_collision(pose, 2.0, np.zeros((0, 2)), BOX) == np.inf
    # the nearest of several: gaps 4 and 1 m at 4 m/s
    assert time_to_collision(pose, 4.0, np.array([[6.0, 0.0], [3.0, -0.4]]), BOX) == pytest.approx(0.25)


def test_height_band_and_ground_shift():
    # default grid (Occ3D's convention): layer k spans ego z [-0.2 + 0.4k, 0.2 + 0.4k];
    # (0.2, 1.6) overlaps layers 1..4
    assert np.nonzero(band_layers(DEFAULT_GRID, (0.2, 1.6)))[0].tolist() == [1, 2, 3, 4]
    occ = np.full(DEFAULT_GRID.shape, FREE, np.uint8)
    assert ground_shift(occ) == 0.0  # no road: no shift
    occ[:, :, 0] = ROAD  # road layer 0: ego z [-0.2, 0.2], as the official Occ3D frames
    assert ground_shift(occ) == pytest.approx(0.0)
    occ[:, :, 0], occ[:, :, 2] = FREE, ROAD  # a road 0.8 m higher (e.g. a ramp)
    assert ground_shift(occ) == pytest.approx(0.8)
    assert np.nonzero(band_layers(DEFAULT_GRID, (0.2, 1.6), 0.8))[0].tolist() == [3, 4, 5, 6]
    assert ground_shift(occ, ScoringConfig(auto_ground=False)) == 0.0


def test_bev_maps_classes_ground_and_band():
    occ = np.full(TINY_GRID.shape, FREE, np.uint8)
    occ[:, :, 2] = ROAD
    occ[0, :, 3] = SIDEWALK        # a raised kerb: its top flat voxel is sidewalk
    occ[1, :, 2] = FREE            # no ground at all
    occ[2, 0, 3:5] = CAR
    occ[3, 0, 4] = PED
    occ[4, 0, 7] = TREE            # a crown above the band (layers 3..6)
    occ[5, 0, 5] = TREE
    m = bev_maps(occ, band_layers(TINY_GRID, (0.2, 1.6)))
    assert m.ground[0, 0] == 0 and m.ground[1, 0] == -1 and m.ground[2, 5] == 1
    assert m.vehicle[2, 0] and not m.vehicle[3, 0] and m.pedestrian[3, 0]
    assert m.obstacle[2, 0] and m.obstacle[3, 0] and m.obstacle[5, 0]
    assert not m.obstacle[4, 0] and not m.obstacle[0, 0]  # tree crown above, kerb is ground


def _world(car_x=None, car_y=(-0.4, 0.4), ped=None, sidewalk_y=None):
    """A static tiny-grid frame: road everywhere, optionally a car block (x, y ranges in
    metres) in the band, a pedestrian column and sidewalk for y >= sidewalk_y."""
    occ = np.full(TINY_GRID.shape, FREE, np.uint8)
    occ[:, :, 2] = ROAD
    cx, cy = TINY_GRID.column_centers()
    if car_x is not None:
        xi = (cx >= car_x[0]) & (cx <= car_x[1])
        yi = (cy >= car_y[0]) & (cy <= car_y[1])
        occ[np.ix_(xi, yi, [3, 4, 5])] = CAR
    if ped is not None:
        occ[np.argmin(np.abs(cx - ped[0])), np.argmin(np.abs(cy - ped[1])), 3:6] = PED
    if sidewalk_y is not None:
        occ[:, cy >= sidewalk_y, 3] = SIDEWALK
    return occ


def test_score_straight_into_a_static_car():
    # car columns x in {3.8, 4.2}, y in {-0.2, 0.2}; the box front is at x + 2 m
    frame = _world(car_x=(3.7, 4.3))
    traj = np.array([[0.5 * (k + 1), 0.0, 0.0] for k in range(6)])  # 1 m/s
    occ = np.repeat(frame[None], 6, 0)
    sc = score_trajectory(occ, traj, np.zeros((6, 3)), BOX, TINY_GRID, present=frame)
    # front at 2.5, 3.0, 3.5, 4.0, ...: the car column centre 3.8 is covered from x = 1.8 (k = 3)
    assert sc.collision.tolist() == [False, False, False, True, True, True]
    s = sc.summary()
    assert s['collision'] and s['first_collision_s'] == 2.0 and s['at_fault_collision']
    assert s['progress_m'] == pytest.approx(1.5) and s['path_length_m'] == pytest.approx(3.0)
    np.testing.assert_allclose(sc.clearance_vehicle[:3], [1.3, 0.8, 0.3], atol=1e-9)
    np.testing.assert_allclose(sc.ttc[:3], [1.3, 0.8, 0.3], atol=1e-9)  # gap / 1 m/s
    assert s['min_clearance_pedestrian_m'] is None and not s['offroad']


def test_score_lagged_collision_with_cleared_ego_body():
    # forecast frames in the planned ego frame with the ego's body cleared (Occ3D): the car
    # under the ego at k = 3 is invisible in frame 3 but was there in frame 2
    traj = np.array([[0.5 * (k + 1), 0.0, 0.0] for k in range(6)])
    present = _world(car_x=(3.6, 4.4))  # car columns 3.8, 4.2 (present frame)
    occ = np.stack([_world(car_x=(3.6 - p, 4.4 - p)) for p in traj[:, 0]])  # world in frame k
    occ[3:, 15:22, :, 3:] = FREE  # clear the body x in [0, 2] (column centres 0.2..1.8 and edge)
    sc = score_trajectory(occ, traj, None, BOX, TINY_GRID, present=present)
    assert sc.collision_now.tolist() == [False] * 6
    assert sc.collision_lagged.tolist() == [False, False, False, True, False, False]
    assert sc.summary()['first_collision_s'] == 2.0
    off = score_trajectory(occ, traj, None, dataclasses.replace(BOX, lagged=False),
                           TINY_GRID, present=present)
    assert not off.collision.any()


def test_score_recorded_poses_offroad_pedestrian_and_rear_hit():
    # recorded frames from a static ego; the plan drifts left onto the sidewalk (y >= 2)
    frame = _world(ped=(1.0, -1.4), sidewalk_y=2.0)
    traj = np.array([[0.0, 0.4 + 0.4 * k, 0.0] for k in range(6)])  # sliding left (no yaw)
    sc = score_trajectory(np.repeat(frame[None], 6, 0), traj, np.zeros((6, 3)), BOX, TINY_GRID,
                          present=frame)
    # footprint y in [0.4k - 0.1, 0.4k + 0.9]: rows 0.2 + 0.4k, 0.6 + 0.4k of 5 columns;
    # sidewalk rows are y = 2.2, 2.6, ...
    np.testing.assert_allclose(sc.offroad_frac, [0, 0, 0, 0, 0.5, 1.0])
    assert sc.offroad.tolist() == [False] * 4 + [True] * 2
    assert sc.summary()['first_offroad_s'] == 2.5
    # the pedestrian column (1.0, -1.4) is 1.3 m below the box's y = -0.1 edge at k = 0
    assert sc.clearance_pedestrian[0] == pytest.approx(1.3)
    # footprint x in [-0.5, 1.5] (centre 0.5) moving at 1 m/s: a car in its rear half
    # (column x = 0.2) is hitting the ego; one in its front half (1.0) is the ego's fault;
    # a stopped ego is never at fault
    cfg = ScoringConfig(ego_length=2.0, ego_width=1.0, ego_rear=0.5, auto_ground=False)
    for car_x, pose, fault in (((0.1, 0.3), [0.5, 0, 0], False), ((0.9, 1.1), [0.5, 0, 0], True),
                               ((0.9, 1.1), [0.0, 0, 0], False)):
        occ = _world(car_x=car_x, car_y=(-0.3, 0.3))  # in the ego frame of the pose
        sc = score_trajectory(occ[None], np.array([pose]), None, cfg, TINY_GRID)
        assert sc.collision.tolist() == [True] and sc.summary()['at_fault_collision'] == fault


def test_aggregate_over_samples():
    a = dict(collision=True, first_collision_s=1.5, offroad=False, min_clearance_m=0.0,
             min_ttc_s=0.0, progress_m=4.0)
    b = dict(collision=False, first_collision_s=None, offroad=True, min_clearance_m=1.2,
             min_ttc_s=None, progress_m=8.0)
    agg = aggregate([a, b, b, b])
    assert agg['k'] == 4 and agg['p_collision'] == 0.25 and agg['p_offroad'] == 0.75
    assert agg['earliest_collision_s'] == 1.5 and agg['min_clearance_m'] == 0.0
    assert agg['mean_min_clearance_m'] == pytest.approx(0.9) and agg['min_ttc_s'] == 0.0
    assert agg['mean_progress_m'] == pytest.approx(7.0)


def test_score_bad_shapes():
    with pytest.raises(ValueError, match='occ must be'):
        score_trajectory(np.zeros((2, 4, 4, 4), np.uint8), np.zeros((2, 3)), grid=TINY_GRID)
    with pytest.raises(ValueError, match='traj must be'):
        score_trajectory(np.zeros((2, *TINY_GRID.shape), np.uint8), np.zeros((3, 3)), grid=TINY_GRID)
