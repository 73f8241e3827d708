"""occwm.motion: agents tracked over the past frames and moved on at constant velocity."""
import numpy as np
import pytest

from occwm.evaluation.baselines import warp_static
from occwm.grid import OccGrid
from occwm.motion import (AGENT_SPREAD, block_shift, draw_motion, lift_agents, motion_warp,
                          place_agents, track_agents)

FREE, CAR, ROAD, PED = 17, 4, 11, 7
GRID = OccGrid(point_cloud_range=(-8.0, -8.0, -1.0, 8.0, 8.0, 0.6), voxel_size=0.4)  # 40 x 40 x 4


def scene(T, car_x0, car_dx, ego_dx=0.0, parked=True, present=None):
    """``(T, X, Y, Z)`` frames, each in its own ego frame (the ego drives along x at
    ``ego_dx`` voxels a frame), road on z = 0, a car moving ``car_dx`` voxels a frame
    along x, a parked car; and the ego poses ``(T, 3)`` in the frame of frame ``present``
    (default T - 1)."""
    X, Y, Z = GRID.shape
    frames = np.full((T, X, Y, Z), FREE, np.uint8)
    for t in range(T):
        e = ego_dx * t  # ego position, voxels, world frame
        frames[t, :, :, 0] = ROAD
        x = car_x0 + car_dx * t - e
        xi = int(round(x))
        if 0 <= xi and xi + 4 <= X:
            frames[t, xi:xi + 4, 10:12, 1:3] = CAR
        if parked:
            px = int(round(30 - e))
            if 0 <= px and px + 4 <= X:
                frames[t, px:px + 4, 28:30, 1:3] = CAR
    poses = np.zeros((T, 3))
    present = T - 1 if present is None else present
    poses[:, 0] = (np.arange(T) - present) * ego_dx * GRID.voxel_size
    return frames, poses


def test_moving_car_tracked_parked_car_not():
    frames, poses = scene(5, car_x0=4, car_dx=2)
    agents = track_agents(frames, poses, GRID)
    assert len(agents) == 1 and agents[0].label == CAR
    np.testing.assert_allclose(agents[0].shift, [2.0, 0.0])
    assert len(agents[0].footprint) == 8  # 4 x 2 cells


def test_motion_warp_places_the_car_in_future_frames():
    T_p, T_f = 5, 3
    frames, poses = scene(T_p + T_f, car_x0=2, car_dx=2, ego_dx=1, present=T_p - 1)
    past, future = frames[:T_p], frames[T_p:]
    warped, valid = motion_warp(past, poses, GRID)
    assert warped.shape == future.shape and valid.shape == future.shape[:3]
    for k in range(T_f):  # exact where the warp has data
        np.testing.assert_array_equal(warped[k][valid[k]], future[k][valid[k]])
    plain = warp_static(past[-1], poses[T_p:], GRID).numpy()
    assert (plain != future).any()  # the warp leaves the car behind


def test_a_car_driving_ahead_of_the_ego_stays_in_every_future_frame():
    # the car keeps the ego's speed 34 voxels ahead: moved on in the present frame it
    # leaves the present grid (x >= 40), yet it is in every future frame
    T_p, T_f = 5, 3
    frames, poses = scene(T_p + T_f, car_x0=34, car_dx=2, ego_dx=2, parked=False, present=T_p - 1)
    warped, valid = motion_warp(frames[:T_p], poses, GRID)
    for k in range(T_f):
        assert (warped[k] == CAR).sum() == (frames[T_p + k] == CAR).sum() == 16
        np.testing.assert_array_equal(warped[k][valid[k]], frames[T_p + k][valid[k]])


def test_no_moving_agent_is_the_warp_baseline():
    frames, poses = scene(8, car_x0=2, car_dx=0, ego_dx=1, present=4)
    warped, _ = motion_warp(frames[:5], poses, GRID)
    np.testing.assert_array_equal(warped, warp_static(frames[4], poses[5:], GRID).numpy())


def test_inconsistent_or_new_agents_stay():
    frames, poses = scene(5, car_x0=4, car_dx=2)
    jerky = frames.copy()
    jerky[2] = frames[0]  # displacements 2, 6, -2 voxels (newest first): not constant
    # a motor vehicle moves at the newest displacements that agree (here the newest)
    agents = track_agents(jerky, poses, GRID)
    assert len(agents) == 1 and agents[0].accel is None
    np.testing.assert_allclose(agents[0].shift, [2.0, 0.0])
    assert track_agents(jerky, poses, GRID, accel_classes=()) == []  # any other class stays
    assert track_agents(frames[-2:], poses[-2:], GRID) == []  # two frames: no velocity


def car_at(xs):
    """``(T, X, Y, Z)`` frames of a static ego with one car (4 x 2 cells) at ``xs``."""
    frames, poses = scene(len(xs), car_x0=0, car_dx=0, parked=False)
    frames[frames == CAR] = FREE
    for t, x in enumerate(xs):
        frames[t, x:x + 4, 10:12, 1:3] = CAR
    return frames, poses


def test_a_motor_vehicle_keeps_part_of_its_acceleration_and_stops_rather_than_reverse():
    # displacements 1, 2, 3, 4 voxels (oldest first); the last 4 frames (history) hold
    # 2, 3, 4: shift 3 (their mean), accel 0.7 * (4 - 2) / 2 = 0.7 voxels per frame²
    (car,) = track_agents(*car_at([4, 5, 7, 10, 14]), GRID)
    np.testing.assert_allclose(car.shift, [3.0, 0.0])
    np.testing.assert_allclose(car.accel, [0.7, 0.0])
    np.testing.assert_allclose(car.offset(2)[0], [3.7 + 4.4, 0.0])  # 3 + 0.7 k, k = 1, 2
    # slowing down 4, 3, 2, 1: 2 - 0.7 k = 1.3, 0.6, then stopped (not -0.1, -0.8, ...)
    (car,) = track_agents(*car_at([4, 8, 11, 13, 14]), GRID)
    np.testing.assert_allclose(car.accel, [-0.7, 0.0])
    np.testing.assert_allclose(car.offset(5)[0], [1.9, 0.0])
    (car,) = track_agents(*car_at([4, 5, 7, 10, 14]), GRID, accel_gain=0.0)
    assert car.accel is None and car.offset(2)[0][0] == 6.0  # constant velocity


def test_pedestrians_are_tracked_through_more_frames():
    frames, poses = car_at([4, 5, 6, 7, 9])  # the last displacement 2: mean 1.25 over 4
    frames[frames == CAR] = PED
    (ped,) = track_agents(frames, poses, GRID)
    np.testing.assert_allclose(ped.shift, [1.25, 0.0])
    (ped,) = track_agents(frames, poses, GRID, slow_history=4)  # 3 displacements: 4/3
    np.testing.assert_allclose(ped.shift, [4 / 3, 0.0])
    assert ped.accel is None  # not a motor vehicle


def test_agents_are_lifted_before_pasting():
    frames, poses = scene(5, car_x0=4, car_dx=2, parked=False)
    agents = track_agents(frames, poses, GRID)
    moved = place_agents(lift_agents(frames[-1], agents, FREE), frames[-1], agents, 1, grid=GRID)
    expect = frames[-1].copy()
    expect[expect == CAR] = FREE
    expect[14:18, 10:12, 1:3] = CAR  # 12 + 2
    np.testing.assert_array_equal(moved, expect)


def test_block_shift_follows_the_part_seen_in_both_frames():
    rect = np.argwhere(np.ones((6, 3), bool))  # (18, 2) cells
    np.testing.assert_allclose(block_shift(rect + [3, -2], rect, np.zeros(2)), [3.0, -2.0])
    # The older footprint has a fragment beside it (e.g. a neighbour merged into the
    # component): the centroid shift is 3.125 cells, the overlap says 2.
    older = np.concatenate([rect, [[-1, 0], [-2, 0], [-3, 0], [-1, 1], [-2, 1], [-3, 1]]])
    newer = rect + [2, 0]
    guess = newer.mean(0) - older.mean(0)
    assert abs(guess[0] - 3.125) < 1e-9
    np.testing.assert_allclose(block_shift(newer, older, guess), [2.0, 0.0], atol=0.25)
    # Equal overlaps (a footprint sliding along itself): the tie closest to the guess.
    cut = rect[rect[:, 0] < 3]
    assert block_shift(rect, cut, np.array([2.2, 0.0]))[0] == 2.0



def test_unseen_columns_continue_the_ground_bands_only():
    # the ego drives 2 voxels a frame: the front columns of every future frame are new;
    # with unseen=(ROAD,) they get the road the present shows there, not its buildings
    MANMADE = 15
    frames, poses = scene(8, car_x0=2, car_dx=0, ego_dx=2, parked=False, present=4)
    frames[:, 36:, 30:, 1:3] = MANMADE  # in every frame's own ego frame
    plain, valid = motion_warp(frames[:5], poses, GRID)
    filled, valid2 = motion_warp(frames[:5], poses, GRID, unseen=(ROAD,))
    np.testing.assert_array_equal(valid, valid2)
    for k in range(3):
        new = ~valid[k]
        assert new[-2 * (k + 1):].all() and new.sum() == 2 * (k + 1) * GRID.shape[1]
        np.testing.assert_array_equal(filled[k][valid[k]], plain[k][valid[k]])
        assert (plain[k][new] == FREE).all()
        assert (filled[k][new][:, 0] == ROAD).all() and (filled[k][new][:, 1:] == FREE).all()


def test_agents_follow_a_curved_ego_path_and_others_move_as_tracked():
    from occwm.motion import MovingAgent, follow_path
    # the ego drives a circle of radius 40 m (left turn), 2 m a frame, present at the origin
    R, k = 40.0, np.arange(-4, 7)
    ang = 2.0 * k / R
    traj = np.stack([R * np.sin(ang), R * (1 - np.cos(ang)), ang], 1)  # (11, 3)
    grid = OccGrid(point_cloud_range=(-40.0, -40.0, -1.0, 40.0, 40.0, 5.4), voxel_size=0.4)
    # a car 3.2 m right of the ego's path (cell 100 is x = 0.2 m), 1 m a frame along it
    foot = np.argwhere(np.ones((4, 2), bool)) + [98, 91]  # (8, 2) cells
    car = MovingAgent(label=CAR, footprint=foot, shift=np.array([2.5, 0.0]),
                      center=foot.mean(0))
    across = MovingAgent(label=CAR, footprint=foot + [0, 20], shift=np.array([0.0, 2.5]),
                         center=foot.mean(0) + [0, 20])
    moved, other = follow_path([car, across], traj, 6, grid)
    assert other.path is None and car.path is None and moved.path.shape == (6, 3)
    # after k frames it is k metres along the circle of radius 40 + 3.2 (its lateral offset
    # kept): arc angle k / 40, the ego's heading there
    c = grid.xy_range[:2] + (car.center + 0.5) * 0.4
    r = R + (-c[1])
    for step in (1, 6):
        th = step / R
        want = np.array([r * np.sin(th), R - r * np.cos(th)])
        np.testing.assert_allclose(c + moved.offset(step)[0] * 0.4, want, atol=0.02)
        assert abs(moved.offset(step)[1] - th) < 1e-3


def test_motion_warp_lays_out_the_chosen_future_frames_only():
    T_p = 5
    frames, poses = scene(T_p + 3, car_x0=2, car_dx=2, ego_dx=1, present=T_p - 1)
    every, valid = motion_warp(frames[:T_p], poses, GRID)
    some, some_valid = motion_warp(frames[:T_p], poses, GRID, steps=[3, 1])
    np.testing.assert_array_equal(some, every[[2, 0]])
    np.testing.assert_array_equal(some_valid, valid[[2, 0]])
    with pytest.raises(ValueError, match='1..3'):
        motion_warp(frames[:T_p], poses, GRID, steps=[4])


def test_a_car_moved_into_newly_seen_columns_keeps_its_voxels():
    # the ego drives 2 voxels a frame, the car ahead 3: it moves on into the columns the
    # present never covered, where unseen=(ROAD,) fills only the free voxels
    frames, poses = scene(8, car_x0=26, car_dx=3, ego_dx=2, parked=False, present=4)
    plain, valid = motion_warp(frames[:5], poses, GRID)
    filled, _ = motion_warp(frames[:5], poses, GRID, unseen=(ROAD,))
    car_in_new = 0
    for k in range(3):
        np.testing.assert_array_equal(filled[k] == CAR, plain[k] == CAR)
        car_in_new += int((filled[k][~valid[k]] == CAR).sum())
        new = ~valid[k]
        assert (filled[k][new][:, 0] == ROAD).all()
    assert car_in_new > 0  # the case is exercised


def _ego_arc_length(t):
    """4 m/s until t = 0, then slowing at 1 m/s^2 (metres, seconds)."""
    t = np.asarray(t, np.float64)
    return np.where(t <= 0, 4.0 * t, 4.0 * t - 0.5 * t ** 2)


def test_headway_distance_leader_and_follower():
    from occwm.motion import headway_distance
    t_ego = 0.5 * np.arange(-4, 7)  # past and planned poses, s
    s_ego = _ego_arc_length(t_ego)
    past = -0.5 * np.arange(4)  # newest first
    k = np.arange(1, 7)
    # a follower 1 s behind: where the ego was 1 s before, 5 m back; every time it needs
    # lies among the known poses or before them (4 m/s, continued exactly)
    s_f = _ego_arc_length(past - 1.0) - 5.0
    got = headway_distance(s_f, t_ego, s_ego, 6, spacing=s_f[0] - _ego_arc_length(-1.0))
    np.testing.assert_allclose(got, _ego_arc_length(0.5 * k - 1.0) - _ego_arc_length(-1.0), atol=1e-9)
    # a leader 1 s ahead: where the ego will be 1 s later; beyond the last planned pose
    # (3 s) at the speed of the last step, 1.25 m/s
    s_l = _ego_arc_length(past + 1.0) + 7.0
    got = headway_distance(s_l, t_ego, s_ego, 6, spacing=s_l[0] - _ego_arc_length(1.0))
    t = 0.5 * k + 1.0
    want = np.where(t <= 3.0, _ego_arc_length(np.minimum(t, 3.0)),
                    _ego_arc_length(3.0) + (t - 3.0) * 1.25) - _ego_arc_length(1.0)
    np.testing.assert_allclose(got, want, atol=1e-9)
    # by hand, 3 s on (t = 4 s): s(3) = 7.5, last step 7.5 - s(2.5) = 0.625 m in 0.5 s,
    # so s(4) = 8.75, minus s(1) = 3.5
    assert got[-1] == pytest.approx(5.25)
    # a past that is not the ego's motion (standing still while the ego drove): no fit
    assert headway_distance(np.zeros(4), t_ego, s_ego, 6, spacing=5.0) is None


def test_a_car_ahead_in_the_ego_lane_follows_the_egos_planned_slowing():
    from occwm.geometry import EGO_LENGTH, EGO_REAR
    from occwm.motion import MovingAgent, follow_path
    grid = OccGrid(point_cloud_range=(-40.0, -40.0, -1.0, 40.0, 40.0, 5.4), voxel_size=0.4)
    t_ego = 0.5 * np.arange(-4, 7)
    traj = np.stack([_ego_arc_length(t_ego), np.zeros(11), np.zeros(11)], 1)  # straight along x
    # a leader 1 s ahead of the ego in its lane, 4.8 m long: 2 m bumper to bumper from
    # where the ego will be in 1 s
    foot = np.argwhere(np.ones((12, 5), bool)) + [130, 98]
    x0 = _ego_arc_length(1.0) + (EGO_LENGTH - EGO_REAR) + 2.4 + 2.0
    past = _ego_arc_length(-0.5 * np.arange(4) + 1.0)  # newest first, metres
    track = np.stack([-np.diff(past) / 0.4, np.zeros(3)], 1)  # voxels per frame, newest first
    car = MovingAgent(label=CAR, footprint=foot, shift=track.mean(0),
                      center=np.array([(x0 + 40.0) / 0.4 - 0.5, 99.5]), track=track)
    moved = follow_path([car], traj, 6, grid)[0]
    for k in (1, 2, 4):  # within the planned 3 s: the ego's own slowing, 1 s later
        want = _ego_arc_length(0.5 * k + 1.0) - _ego_arc_length(1.0)
        assert moved.offset(k)[0] * 0.4 == pytest.approx([want, 0.0], abs=1e-6)
    # at its past mean velocity (1.83 m a frame) it would be 7.33 m on after 2 s, not 4
    assert car.offset(4)[0][0] * 0.4 == pytest.approx(5.5 / 3 * 4)
    assert moved.offset(4)[0][0] * 0.4 == pytest.approx(4.0)


def test_headway_needs_a_past_the_model_explains():
    from occwm.motion import headway_distance
    t_ego = 0.5 * np.arange(-4, 7)
    standing = np.zeros(11)  # the ego waits (at a light) for 5 s
    # the car ahead drives off at 1 m/s: no time gap of a standing ego explains it
    s_car = 8.0 - 0.5 * np.arange(4)
    assert headway_distance(s_car, t_ego, standing, 6, spacing=6.0) is None
    # a car ahead standing too: Newell keeps it standing
    np.testing.assert_array_equal(headway_distance(np.full(4, 8.0), t_ego, standing, 6,
                                                   spacing=6.0), np.zeros(6))


def test_draw_motion_adds_a_constant_velocity_drawn_along_and_across_the_motion():
    frames, poses = scene(5, car_x0=4, car_dx=2)
    (car,) = track_agents(frames, poses, GRID)
    (drawn,) = draw_motion([car], np.random.default_rng(3), scale=2.0, grid=GRID)
    z = np.random.default_rng(3).standard_normal(2)
    s_along, s_across = AGENT_SPREAD[CAR]
    # moving along +x: along = x, across (left) = y; m/s x 0.5 s / 0.4 m voxels
    jitter = 2.0 * np.array([z[0] * s_along, z[1] * s_across]) * 0.5 / 0.4
    np.testing.assert_allclose(drawn.jitter, jitter)
    for k in (1, 3):
        np.testing.assert_allclose(drawn.offset(k)[0], k * (np.array([2.0, 0.0]) + jitter))
    assert car.jitter is None  # the tracked agent is left as it was
    (same,) = draw_motion([car], np.random.default_rng(3), scale=0.0, grid=GRID)
    assert same.jitter is None and np.array_equal(same.offset(3)[0], car.offset(3)[0])


def test_sampled_futures_differ_on_the_moving_car_only():
    T_p = 5
    frames, poses = scene(T_p + 3, car_x0=2, car_dx=2, ego_dx=1, present=T_p - 1)
    past = frames[:T_p]
    tracked, _ = motion_warp(past, poses, GRID)
    a, _ = motion_warp(past, poses, GRID, spread=3.0, rng=np.random.default_rng(0))
    b, _ = motion_warp(past, poses, GRID, spread=3.0, rng=np.random.default_rng(1))
    again, _ = motion_warp(past, poses, GRID, spread=3.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, again)  # the draws are the rng's
    assert (a != b).any() and (a != tracked).any()
    for x in (a, b):  # only the moving car's voxels and the road or free it leaves
        diff = x != tracked
        labels = set(np.unique(x[diff])) | set(np.unique(tracked[diff]))
        assert labels <= {CAR, ROAD, FREE}
        assert not diff[:, :, 28:30].any()  # the parked car's rows stay
