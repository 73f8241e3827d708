"""Visibility (occwm.occupancy.visibility): 3D DDA voxel traversal on tiny grids with
hand-counted cells, multi-sweep LiDAR casting, camera frustum and occlusion, and camera
visibility on the real nuScenes frame with six cameras."""
import glob
import os
import pickle

import numpy as np
import pytest

from tests.conftest import shared_path
from occwm.occupancy.visibility import (CameraCalib, camera_rays, camera_visibility, clip_segments,
                                   lidar_visibility, load_cam_calib, traverse_voxels)
from occwm.geometry import transform_points
from occwm.grid import DEFAULT_GRID, OccGrid

G4 = OccGrid((0.0, 0.0, 0.0, 4.0, 4.0, 1.0), 1.0, z_offset=0.0)  # (4, 4, 1) cells of 1 m: 2D-like


def cells(seen):
    return sorted(map(tuple, np.argwhere(seen).tolist()))


# ----------------------------------------------------------------------------- DDA
def test_axis_ray_crosses_expected_voxels():
    seen = traverse_voxels(np.array([0.1, 0.1, 0.1]), np.array([[10.1, 0.1, 0.1]]), DEFAULT_GRID)
    assert seen[100:126, 100, 0].all()                 # 0.1 .. 10.1 m along x: 26 voxels, layer 0
    assert seen.sum() == 26


def test_diagonal_ray_2d():
    # y = 0.5 + (x - 0.5) * 2 / 3 from (0.5, 0.5) to (3.5, 2.5): crosses x = 1 at y 0.83,
    # y = 1 at x 1.25, x = 2 at y 1.5, y = 2 at x 2.75, x = 3 at y 2.17
    seen = traverse_voxels(np.array([0.5, 0.5, 0.5]), np.array([[3.5, 2.5, 0.5]]), G4)
    assert cells(seen) == [(0, 0, 0), (1, 0, 0), (1, 1, 0), (2, 1, 0), (2, 2, 0), (3, 2, 0)]
    back = traverse_voxels(np.array([3.5, 2.5, 0.5]), np.array([[0.5, 0.5, 0.5]]), G4)
    assert cells(back) == cells(seen)                  # the same cells walked backwards


def test_ray_ending_inside_stops_at_hit_voxel():
    seen = traverse_voxels(np.array([0.5, 0.5, 0.5]), np.array([[2.3, 0.5, 0.5]]), G4)
    assert cells(seen) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]


def test_rays_from_outside_are_clipped():
    o = np.array([[-3.0, 0.5, 0.5], [-3.0, 7.0, 0.5], [-1.0, -1.0, 0.5], [5.0, 3.5, 0.5]])
    e = np.array([[10.0, 0.5, 0.5],      # through row y = 0 and out again: all 4 cells
                  [10.0, 7.0, 0.5],      # misses the grid
                  [1.5, 1.5, 0.5],       # enters through the corner (0, 0), ends in (1, 1)
                  [3.5, 3.5, 0.5]])      # enters through x = 4, ends in (3, 3)
    for i, want in enumerate([[(x, 0, 0) for x in range(4)], [], None, [(3, 3, 0)]]):
        seen = traverse_voxels(o[i], e[i:i + 1], G4)
        if want is not None:
            assert cells(seen) == want
    t_in, t_out = clip_segments(o, e, G4)
    assert t_out[1] < t_in[1]
    corner = cells(traverse_voxels(o[2], e[2:3], G4))
    assert corner[0] == (0, 0, 0) and corner[-1] == (1, 1, 0) and len(corner) <= 3


def test_matches_brute_force_slab_test():
    """Random segments on a small 3D grid: the DDA cells are exactly those whose box the
    segment crosses for a positive length."""
    g = OccGrid((-2.0, -1.5, -1.0, 2.0, 1.5, 1.5), 0.5, z_offset=0.0)  # (8, 6, 5)
    rng = np.random.default_rng(0)
    o, e = rng.uniform(-3, 3, (60, 3)), rng.uniform(-3, 3, (60, 3))
    idx = np.argwhere(np.ones(g.shape, bool))
    lo = g.origin + idx * g.voxel_size                    # (V, 3) voxel corners
    for a, b in zip(o, e):
        d = b - a
        with np.errstate(divide='ignore'):
            t0, t1 = (lo - a) / d, (lo + g.voxel_size - a) / d
        t_in = np.maximum(np.minimum(t0, t1).max(1), 0)
        t_out = np.minimum(np.maximum(t0, t1).min(1), 1)
        want = idx[t_out - t_in > 1e-9]
        assert cells(traverse_voxels(a, b[None], g)) == sorted(map(tuple, want.tolist()))


def test_stop_at_first_occupied_voxel():
    stop = np.zeros(G4.shape, bool)
    stop[2, 0, 0] = True
    seen = traverse_voxels(np.array([0.5, 0.5, 0.5]), np.array([[3.9, 0.5, 0.5]]), G4, stop=stop)
    assert cells(seen) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]


def test_multi_sweep_marks_voxels_seen_from_other_origin():
    pts = np.array([[3.5, 3.5, 0.5]])
    a = lidar_visibility([(np.array([0.5, 3.5, 0.5]), pts)], G4)                # along y = 3
    both = lidar_visibility([(np.array([0.5, 3.5, 0.5]), pts),
                             (np.array([3.5, 0.5, 0.5]), pts)], G4)              # and x = 3
    assert cells(a) == [(x, 3, 0) for x in range(4)]
    assert cells(both & ~a) == [(3, 0, 0), (3, 1, 0), (3, 2, 0)]


# ----------------------------------------------------------------------------- cameras
def _cam_along_x(origin=(0.5, 2.0, 0.5)):
    """Camera at ``origin`` looking along ego +x (camera x -> ego -y, y -> -z, z -> +x),
    20 x 20 pixels, focal 10: a 90 degree frustum."""
    T = np.eye(4)
    T[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    T[:3, 3] = origin
    K = np.array([[10.0, 0, 10], [0, 10.0, 10], [0, 0, 1]])
    return CameraCalib('CAM_TEST', T, K, (20, 20))


def test_camera_rays_point_forward():
    origin, dirs = camera_rays(_cam_along_x(), stride=10)
    np.testing.assert_allclose(origin, [0.5, 2.0, 0.5])
    assert dirs.shape == (4, 3) and np.all(dirs[:, 0] > 0.5)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1)


def test_camera_visibility_frustum_and_occlusion():
    g = OccGrid((-2.0, -4.0, 0.0, 8.0, 8.0, 1.0), 1.0, z_offset=0.0)  # (10, 12, 1); camera at (2, 6)
    sem = np.full(g.shape, g.free_label, np.uint8)
    sem[6, 5:8, 0] = 15                                  # a wall 4 m ahead, 3 cells wide
    vis = camera_visibility(sem, [_cam_along_x((0.5, 2.5, 0.5))], g, stride=1)
    assert vis[4, 6, 0] and vis[6, 6, 0]                 # free ahead, the wall itself
    assert not vis[7:, 6, 0].any()                       # behind the wall
    assert not vis[1, 6, 0] and not vis[0, 6, 0]         # behind the camera
    assert not vis[3, 0, 0] and not vis[3, 11, 0]        # 1 m ahead, 6 m aside: outside
    assert vis[5, 8, 0] and vis[5, 4, 0]                 # 45 degree edges of the frustum


def test_voxel_rays_catch_occupied_voxels_between_pixel_rays():
    g = OccGrid((-2.0, -4.0, 0.0, 8.0, 8.0, 1.0), 1.0, z_offset=0.0)
    sem = np.full(g.shape, g.free_label, np.uint8)
    sem[8, 9, 0] = 4                                     # 6 m ahead, 3 m left: in the frustum
    sem[9, 9, 0] = 4                                     # right behind it
    cam = _cam_along_x((0.5, 2.5, 0.5))
    pixel_only = camera_visibility(sem, [cam], g, stride=20, voxel_rays=False)  # 1 ray, on axis
    both = camera_visibility(sem, [cam], g, stride=20)
    assert not pixel_only[8, 9, 0] and both[8, 9, 0]
    assert not both[9, 9, 0]                             # occluded by the first car voxel


# ----------------------------------------------------------------------------- real frame
@pytest.fixture(scope='module')
def real_frame():
    root = shared_path('nuscenes_frame_cams')
    pkl = glob.glob(os.path.join(root, '*.pkl'))[0]
    with open(pkl, 'rb') as f:
        info = pickle.load(f)['data_list'][0]
    scan = glob.glob(os.path.join(root, '*.pcd.bin'))[0]
    pts = np.fromfile(scan, np.float32).reshape(-1, 5)[:, :3].astype(np.float64)  # x, y, z
    lidar2ego = np.asarray(info['lidar_points']['lidar2ego'])
    ego = transform_points(lidar2ego, pts[np.linalg.norm(pts, axis=1) > 3.0])
    labels = np.where(ego[:, 2] < 0.3, 11, 15)            # by height: road / manmade
    from occwm.occupancy.builder import voxelize_majority
    sem = voxelize_majority(ego, labels, DEFAULT_GRID)
    return dict(sem=sem, cams=load_cam_calib(pkl), pkl=pkl, ego=ego, origin=lidar2ego[:3, 3])


def test_load_cam_calib_layouts(real_frame):
    cams = real_frame['cams']
    assert sorted(cams) == sorted(['CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_FRONT_LEFT', 'CAM_BACK',
                                   'CAM_BACK_LEFT', 'CAM_BACK_RIGHT'])
    front = cams['CAM_FRONT']
    assert front.image_size == (1600, 900)
    assert 1.5 < front.cam2ego[0, 3] < 1.9 and 1.4 < front.cam2ego[2, 3] < 1.6   # on the roof
    assert front.cam2ego[:3, 2] @ [1, 0, 0] > 0.99       # optical axis = ego forward
    assert cams['CAM_BACK'].cam2ego[:3, 2] @ [-1, 0, 0] > 0.99
    occworld = load_cam_calib(shared_path('nuscenes_mini_meta', 'nuscenes_mini_infos_val.pkl'))
    assert sorted(occworld) == sorted(cams)
    assert occworld['CAM_FRONT'].cam2ego[:3, 2] @ [1, 0, 0] > 0.99


def test_load_cam_calib_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        load_cam_calib(str(tmp_path / 'nope.pkl'))
    bad = tmp_path / 'bad.pkl'
    with open(bad, 'wb') as f:
        pickle.dump({'infos': [{'token': 'x'}]}, f)
    with pytest.raises(ValueError, match=r"bad\.pkl.*no 'cams'"):
        load_cam_calib(str(bad))


def test_camera_visibility_real_frame(real_frame):
    sem, cams = real_frame['sem'], real_frame['cams']
    vis = camera_visibility(sem, cams)
    g = DEFAULT_GRID
    front = cams['CAM_FRONT'].cam2ego

    def voxel(p):
        return tuple(g.points_to_voxels(np.asarray([p], float))[0][0])

    ahead = front[:3, 3] + 5.0 * front[:3, 2]            # 5 m along the optical axis
    assert sem[voxel(ahead)] == g.free_label and vis[voxel(ahead)]
    assert not vis[voxel([0.5, 0.0, 4.5])]               # straight above the roof
    assert not vis[voxel([0.5, 0.0, 0.0])]               # under the car
    # behind a wall: voxels 2 m beyond the first occupied voxel of CAM_FRONT's rays
    origin, dirs = camera_rays(cams['CAM_FRONT'], stride=8)
    first = traverse_voxels(origin, origin + 60 * dirs, g, stop=sem != g.free_label)
    hits = np.argwhere(first & (sem != g.free_label))
    centres = g.voxel_centers(hits)
    rng_m = np.linalg.norm(centres - origin, axis=1)
    sel = (rng_m > 5) & (rng_m < 25) & (sem[tuple(hits.T)] == 15)
    beyond = origin + (centres[sel] - origin) * ((rng_m[sel] + 2.0) / rng_m[sel])[:, None]
    idx, inside = g.points_to_voxels(beyond)
    alone = camera_visibility(sem, [cams['CAM_FRONT']])
    assert inside.sum() > 50 and alone[tuple(idx[inside].T)].mean() < 0.2
    assert 0.2 < vis.mean() < 0.8                        # measured 0.54 (stride 8)


def test_lidar_visibility_real_frame(real_frame):
    sem = real_frame['sem']
    seen = lidar_visibility([(real_frame['origin'], real_frame['ego'])])
    occupied = sem != DEFAULT_GRID.free_label
    assert seen[occupied].all()                          # every hit voxel is observed
    assert 0.1 < (seen & ~occupied).mean() < 0.5         # free space crossed by rays
