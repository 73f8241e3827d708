"""The simulated LiDAR: rays, occlusion, labels, noise, boxes, and its way into the builder."""
import numpy as np
import pytest

from occwm.geometry import relative_se2, transform_points
from occwm.synthetic.lidar import (LidarConfig, _cast_static, _solids, agent_boxes,
                                   lidar_to_ego, ray_directions, simulate_scan, simulate_scans)
from occwm.synthetic.world import (BARRIER, CAR, MANMADE, NONE, PEDESTRIAN, ROAD, SIDEWALK, TERRAIN,
                                   VEGETATION, Agent, StaticMap, SyntheticSceneConfig,
                                   SyntheticWorld, build_world)

CLEAN = LidarConfig(range_noise=0.0, dropout=0.0, tilt_std=0.0)       # exact geometry


def flat_world(L=2, agents=(), ego=None, half=50.0) -> SyntheticWorld:
    """A flat road (label ROAD everywhere, 0.2 m cells, +-``half`` m) with nothing on it;
    the ego stands at the origin facing +x unless ``ego`` ``(L, 3)`` is given."""
    n = int(2 * half / 0.2)
    smap = StaticMap(np.array([-half, -half]), 0.2, np.full((n, n), ROAD, np.uint8),
                     np.full((n, n), NONE, np.uint8), np.zeros((n, n), np.float32),
                     np.zeros((n, n), np.float32))
    ego = np.zeros((L, 3)) if ego is None else np.asarray(ego, np.float64)
    return SyntheticWorld(seed=7, cfg=SyntheticSceneConfig(), roads=[], static=smap,
                          agents=list(agents), ego=ego,
                          timestamps=1_600_000_000_000_000 + 500_000 * np.arange(L))


def ego_points(scan):
    return transform_points(scan.lidar2ego, scan.points.astype(np.float64))


def test_beams_and_rays():
    dirs, ring = ray_directions(LidarConfig())
    assert dirs.shape == (32 * 1080, 3) and LidarConfig().num_rays == 34560
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1)
    el = np.rad2deg(np.arcsin(dirs[:, 2]))
    for b in (0, 31):
        assert np.allclose(el[ring == b], (-30.67, 10.67)[b == 31])
    assert np.allclose(np.diff(np.unique(el.round(6))), 41.34 / 31, atol=1e-5)  # 1.33 deg apart
    assert np.bincount(ring).tolist() == [1080] * 32
    T = lidar_to_ego(LidarConfig())
    assert np.allclose(T[:3, 3], [0.943713, 0.0, 1.84023])
    assert np.allclose(T[:3, :3] @ [1, 0, 0], [0, -1, 0])               # LiDAR x = ego right


def test_flat_ground_gives_the_expected_returns():
    """On an endless flat road every downward beam returns within 70 m: beams 0..21
    (elevation <= -2.67 deg, ground at <= 39.6 m); beam 22 (-1.33 deg) meets the ground
    at 79 m, out of range; the upper beams see the sky."""
    scan = simulate_scan(flat_world(), 0, CLEAN)
    assert len(scan.points) == 22 * 1080
    assert scan.points.dtype == np.float32 and scan.labels.dtype == np.uint8
    assert np.all(scan.labels == ROAD) and set(scan.ring.tolist()) == set(range(22))
    p = ego_points(scan)
    assert np.abs(p[:, 2]).max() < 1e-4                                  # on the road surface
    r = np.linalg.norm(scan.points, axis=1)
    assert r.max() < 39.6 and r.min() > 1.84


def test_wall_blocks_what_is_behind_it():
    """A 5 m wall across x in [9.8, 10.2] hides a barrier at x = 14; without the wall the
    barrier is seen."""
    def world(wall: bool):
        w = flat_world()
        if wall:
            w.static.box(10.0, 0.0, 0.0, 0.4, 10.0, MANMADE, 0.0, 5.0)
        w.static.box(14.0, 0.0, 0.0, 0.4, 4.0, BARRIER, 0.0, 1.0)
        return w
    p_open = ego_points(simulate_scan(world(False), 0, CLEAN))
    scan = simulate_scan(world(True), 0, CLEAN)
    p = ego_points(scan)
    assert (simulate_scan(world(False), 0, CLEAN).labels == BARRIER).sum() > 20
    assert p_open[(np.abs(p_open[:, 1]) < 4.0), 0].max() > 13.7
    assert not np.any(scan.labels == BARRIER)
    wedge = (np.abs(p[:, 1]) < 4.0) & (p[:, 0] > 5)
    assert np.all(p[wedge, 0] < 9.8 + 1e-6)                               # nothing past the face
    on_wall = wedge & (scan.labels == MANMADE)
    assert on_wall.sum() > 100 and np.allclose(p[on_wall, 0], 9.8, atol=1e-6)


def test_labels_come_from_the_hit_geometry():
    """Sidewalk returns lie on the kerb-high surface, car returns on the car's box, and
    every return inside the (slightly grown) box is labelled car."""
    car = Agent(CAR, (4.5, 1.9, 1.6), np.array([[8.0, 3.0, 0.3]] * 2), np.ones(2, bool), 'parked')
    w = flat_world(agents=[car])
    w.static.ground[:, :235] = SIDEWALK                                  # y < -3 m
    scan = simulate_scan(w, 0, CLEAN)
    p = ego_points(scan)
    side = scan.labels == SIDEWALK
    top = np.isclose(p[side, 2], CLEAN.kerb_height, atol=1e-6)
    face = np.isclose(p[side, 1], -3.0, atol=1e-6) & (p[side, 2] <= CLEAN.kerb_height + 1e-6)
    assert side.sum() > 1000 and np.all(top | face) and face.sum() > 10
    assert np.all(np.isclose(p[scan.labels == ROAD, 2], 0.0, atol=1e-6))
    q = relative_se2(np.array([8.0, 3.0, 0.3]), np.c_[p[:, :2], np.zeros(len(p))])  # box frame
    grown = (np.abs(q[:, 0]) <= 2.25 + 0.01) & (np.abs(q[:, 1]) <= 0.95 + 0.01) \
        & (p[:, 2] <= 1.6 + 0.01)
    is_car = scan.labels == CAR
    assert is_car.sum() > 200 and np.all(grown[is_car])
    assert not np.any(grown & (p[:, 2] > 0.01) & ~is_car)
    # the car's roof: only the cabin (x in [-0.35, 0.2] of its length) reaches 1.6 m
    top = is_car & (p[:, 2] > 0.55 * 1.6 + 0.01)
    assert np.all((q[top, 0] >= -0.35 * 4.5 - 1e-6) & (q[top, 0] <= 0.2 * 4.5 + 1e-6))


def test_ray_casting_matches_a_fine_march():
    """The two-level DDA finds the same first hit as marching every 5 mm through a real
    synthetic world (ground, kerbs, buildings, trees), for 300 random rays."""
    cfg = LidarConfig(vegetation_hit=1.0, range_noise=0.0, dropout=0.0, leaf_gaps=0.0)
    w = build_world(3, 4)
    S = _solids(w, cfg)
    rng = np.random.default_rng(0)
    d = rng.normal(size=(300, 3))
    d[:, 2] = -np.abs(d[:, 2]) * 0.3                                     # mostly shallow, down
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.array([*w.ego[1, :2], 1.84])
    t_hit, lab = _cast_static(w, o, d, np.full(300, 40.0), cfg, rng, S)
    ts = np.arange(0, 40, 0.005)
    for k in range(300):
        p = o + ts[:, None] * d[k]                                        # (T, 3)
        ij = np.floor((p[:, :2] - S.origin) / S.res).astype(int)
        f = ij[:, 0] * S.shape[1] + ij[:, 1]
        zs, z = S.zs[f], p[:, 2]
        in_obj = (S.labs[f, 1] != NONE) & (z >= zs[:, 1]) & (z <= zs[:, 2])
        hit = (z <= zs[:, 0]) | in_obj
        if not hit.any():
            assert not np.isfinite(t_hit[k])
            continue
        m = int(np.argmax(hit))
        assert abs(t_hit[k] - ts[m]) <= 0.006, k
        assert lab[k] == (S.labs[f[m], 1] if in_obj[m] else S.labs[f[m], 0]), k


def test_noise_is_seeded():
    w = build_world(5, 2)
    a, b = simulate_scan(w, 1), simulate_scan(w, 1)
    assert a.points.tobytes() == b.points.tobytes() and np.array_equal(a.labels, b.labels)
    c = simulate_scan(w, 1, LidarConfig(seed=1))
    assert c.points.tobytes() != a.points.tobytes()
    flat = flat_world()
    clean = simulate_scan(flat, 0, CLEAN)
    noisy = simulate_scan(flat, 0, LidarConfig(dropout=0.0, tilt_std=0.0))  # same rays, noisy range
    err = np.linalg.norm(noisy.points, axis=1) - np.linalg.norm(clean.points, axis=1)
    assert 0.018 < err.std() < 0.022 and abs(err.mean()) < 0.002
    dropped = 1 - len(simulate_scan(flat, 0, LidarConfig(range_noise=0.0, tilt_std=0.0)).points) \
        / len(clean.points)
    assert 0.025 < dropped < 0.035                                        # 3 % drop-outs
    # A body tilt the calibration does not know lifts / lowers the far road a little.
    tilted = ego_points(simulate_scan(flat, 0, LidarConfig(range_noise=0.0, dropout=0.0,
                                                           tilt_std=0.5)))
    assert 0.01 < np.abs(tilted[:, 2]).max() < 0.7


def test_vegetation_is_porous():
    """A hedge lets some rays through (scattered returns in depth) unless vegetation_hit = 1."""
    w = flat_world()
    w.static.box(12.0, 0.0, 0.0, 0.8, 8.0, VEGETATION, 0.0, 3.0)     # 4 cells deep
    solid = ego_points(simulate_scan(w, 0, LidarConfig(vegetation_hit=1.0, range_noise=0,
                                                       dropout=0, tilt_std=0, foliage_gaps=0, leaf_gaps=0,
                                                       crown_ragged=0)))
    porous = simulate_scan(w, 0, CLEAN)
    p = ego_points(porous)
    veg = porous.labels == VEGETATION
    front = 12.0 - 0.4
    assert np.all(solid[(np.abs(solid[:, 1]) < 3) & (solid[:, 0] > 5), 0] < front + 1e-6)
    assert np.any(p[veg, 0] > front + 0.2)                                # returns inside it
    assert np.any((p[:, 0] > 12.5) & (np.abs(p[:, 1]) < 3))              # some rays pass


def test_boxes_follow_the_agents():
    L = 3
    ego = np.stack([np.arange(L) * 2.0, np.zeros(L), np.full(L, 0.1)], 1)
    moving = Agent(CAR, (4.5, 1.9, 1.6), np.stack([10 + np.arange(L) * 5.0, np.full(L, 3.0),
                                                   np.zeros(L)], 1), np.ones(L, bool), 'moving')
    walker = Agent(PEDESTRIAN, (0.7, 0.7, 1.7), np.array([[5.0, -7.0, 1.0]] * L),
                   np.array([True, False, True]), 'pedestrian', base=0.4)
    w = flat_world(L, [moving, walker], ego)
    w.static.ground[:, :220] = SIDEWALK                                  # y < -6 m
    w.static.ground[:, 220:] = ROAD
    scans = simulate_scans(w, CLEAN)
    for t, s in enumerate(scans):
        ids = s.box_ids.tolist()
        assert ids == ([0, 1] if t != 1 else [0])                        # persistent, valid only
        assert s.boxes.dtype == np.float32 and s.boxes.shape == (len(ids), 7)
        assert s.box_labels.tolist() == [CAR, PEDESTRIAN][:len(ids)]
        x, y, yaw = relative_se2(ego[t], moving.poses[t])
        assert np.allclose(s.boxes[0], [x, y, 0.8, 4.5, 1.9, 1.6, yaw], atol=1e-5)
        if 1 in ids:                                                      # on the kerb
            assert np.isclose(s.boxes[1, 2], CLEAN.kerb_height + 0.85, atol=1e-5)
        assert np.isclose(s.timestamp, 1_600_000_000 + 0.5 * t)
    boxes, ids, labels = agent_boxes(w, 0, max_distance=9.0)
    assert ids.tolist() == [1]                                            # the car is 10 m away


def test_bad_input():
    with pytest.raises(ValueError, match='outside the world'):
        simulate_scan(flat_world(), 5)
    with pytest.raises(ValueError, match='min_range'):
        LidarConfig(min_range=80.0)
    with pytest.raises(ValueError, match='dropout'):
        LidarConfig(dropout=1.5)


def test_frames_round_trip_into_the_builder(tmp_path):
    """Sweeps written in the frame format are read back unchanged and built into
    occupancy by the real builder: the road in its layer, the car voxels in the box."""
    frames = pytest.importorskip('occwm.occupancy.frames')
    from occwm.occupancy.builder import build_sequence
    L = 2
    car = Agent(CAR, (4.5, 1.9, 1.6), np.stack([[10.0, 12.0], [3.0, 3.0], [0.0, 0.0]], 1),
                np.ones(L, bool), 'moving')
    w = flat_world(L, [car], np.stack([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], 1), half=45.0)
    scans = simulate_scans(w, LidarConfig(tilt_std=0.0))                 # noisy, not tilted
    for i, s in enumerate(scans):
        frames.write_frame(frames.frame_path(str(tmp_path), i), s.points, s.labels, s.lidar2ego,
                           s.ego2global, s.timestamp, s.boxes, s.box_ids, s.box_labels)
    got = frames.load_frames(str(tmp_path), 'synthetic-test')
    assert np.allclose(got[1].points, scans[1].points) and got[1].timestamp == 1_600_000_000_500_000
    occ = build_sequence(got, ray_cast='own', progress=False)
    sem = occ[1]['semantics']
    assert set(np.unique(sem).tolist()) == {CAR, ROAD, 17}
    assert set(np.nonzero(sem == ROAD)[2].tolist()) == {0}               # ego z in [-0.2, 0.2)
    x, y = np.nonzero((sem == CAR).any(-1))
    cx, cy = (x + 0.5) * 0.4 - 40, (y + 0.5) * 0.4 - 40                  # column centres
    assert np.all((np.abs(cx - 11.0) < 2.25 + 0.4) & (np.abs(cy - 3.0) < 0.95 + 0.4))
    assert occ[1]['mask_lidar'].dtype == np.uint8 and occ[1]['mask_lidar'].any()


def test_make_synthetic_lidar(tmp_path):
    """``tools/make_synthetic.py --lidar``: the clean set's layout, scene names and tokens."""
    pytest.importorskip('occwm.occupancy.frames')
    from occwm.infos.layouts import load_scene_infos
    from occwm.io import load_labels
    from tools.make_synthetic import main
    root = str(tmp_path / 'lidar')
    clean = str(tmp_path / 'clean')
    args = ['--num-train', '1', '--num-val', '1', '--frames', '2', '--no-progress']
    assert main([root, '--lidar', '--azimuth-steps', '360'] + args) == 0
    assert main([clean] + args) == 0
    for split in ('train', 'val'):
        a = load_scene_infos(f'{root}/synthetic_infos_{split}.pkl')
        b = load_scene_infos(f'{clean}/synthetic_infos_{split}.pkl')
        assert list(a) == list(b)
        tokens = [[f['token'] for s in infos.values() for f in s] for infos in (a, b)]
        assert tokens[0] == tokens[1]
        for frames in a.values():
            lab = load_labels(f"{root}/{frames[0]['occ_path']}/labels.npz",
                              keys=('semantics', 'mask_lidar', 'mask_camera'))
            assert (lab['semantics'] == ROAD).any()
            assert np.all(lab['mask_camera'] <= lab['mask_lidar'])


def test_relief_raises_open_ground_only_and_crowns_are_ragged():
    """Terrain and open ground rise by at most terrain_relief + a bump; roads and
    sidewalks stay flat; the foliage field spans the vegetation_hit range; a crown
    keeps about 1 - foliage_gaps of its cells; the same seeds give the same tables; the
    defaults leave the world as it is (flat open ground, whole crowns, one density)."""
    w = build_world(3, 4)
    cfg = LidarConfig(terrain_relief=2.0, terrain_roughness=0.1, vegetation_hit=(0.05, 0.5),
                      foliage_gaps=0.2, crown_ragged=1.0)
    S = _solids(w, cfg)
    g0 = w.cfg.ground_z
    ground = w.static.ground.reshape(-1)
    rise = S.zs[:, 0] - g0
    road = ground == ROAD
    assert road.any() and np.allclose(rise[road], 0.0)
    open_ = (ground == NONE) | (ground == TERRAIN)
    assert rise[open_].max() > 1.0 and rise[open_].min() >= 0 and np.median(rise[open_]) < 1.0
    assert rise[open_].max() <= 2.0 + 0.1 * 6
    flat = _solids(w, LidarConfig())
    assert np.array_equal(flat.zs[open_, 0], np.full(open_.sum(), g0))
    assert np.all(flat.veg_hit == 0.35) and np.array_equal(flat.labs[:, 1], w.static.label.reshape(-1))
    veg = w.static.label.reshape(-1) == VEGETATION
    kept = (S.labs[veg, 1] == VEGETATION).mean()
    assert 0.65 < kept < 0.95                                            # 20 % gaps by default
    assert S.veg_hit.min() >= 0.05 - 1e-6 and S.veg_hit.max() <= 0.5 + 1e-6
    assert np.ptp(S.veg_hit) > 0.3                                       # dense and sparse crowns
    again = _solids(w, cfg)
    assert np.array_equal(again.zs, S.zs) and np.array_equal(again.labs, S.labs)


def test_leaves_are_clumped_in_fixed_cubes():
    """leafy: about 1 - leaf_gaps of the cubes hold leaves, the same cube always gives the
    same answer (every point in it), another world seed other cubes."""
    from occwm.synthetic.lidar import leafy
    cfg = LidarConfig(leaf_gaps=0.5, leaf_size=0.4)
    cubes = np.random.default_rng(0).integers(-500, 500, (20000, 3))
    p = (cubes + 0.5) * 0.4
    a = leafy(p, cfg, 7)
    assert 0.48 < a.mean() < 0.52
    jitter = np.random.default_rng(1).uniform(-0.19, 0.19, p.shape)
    assert np.array_equal(leafy(p + jitter, cfg, 7), a)
    assert 0.4 < (leafy(p, cfg, 8) == a).mean() < 0.6
    assert leafy(p, LidarConfig(leaf_gaps=0.0), 7).all()


def test_bad_lidar_settings_are_refused():
    for bad in (dict(vegetation_hit=(0.6, 0.2)), dict(vegetation_hit=1.5), dict(foliage_gaps=1.0), dict(leaf_gaps=1.0), dict(leaf_size=0.0),
                dict(terrain_relief=-1.0), dict(relief_scale=0.0)):
        with pytest.raises(ValueError):
            LidarConfig(**bad)
