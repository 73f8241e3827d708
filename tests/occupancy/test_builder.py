"""Occupancy from LiDAR (occwm.occupancy.builder, tools/build_occupancy.py): hand-made
cases with known answers, then the real 11-frame nuScenes sequence."""
import glob
import os
import pickle

import numpy as np
import pytest

from occwm.infos.layouts import load_scene_infos
from occwm.io import load_labels
from occwm.occupancy.builder import (build_scene, build_sequence, format_report,
                                    occupancy_report, points_in_boxes, static_iou,
                                    voxelize_majority)
from occwm.occupancy.seq11 import load_source
from occwm.occupancy.visibility import CameraCalib, load_cam_calib
from occwm.geometry import matrix_to_se2, planar, se2_to_matrix
from occwm.grid import DEFAULT_GRID as G
from occwm.warp import warp_planar
from tests.conftest import shared_path
from tests.occupancy.test_seq11 import tiny_seq11

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------- hand-made
def test_voxelize_majority_hand_computed():
    pts = np.array([[0.1, 0.1, 0.1], [0.2, 0.1, 0.1], [0.3, 0.3, 0.15],  # one voxel: 4, 4, 11
                    [1.1, 0.1, 0.1],                                      # next voxel in x: 13
                    [99.0, 0.0, 0.0]])                                    # outside the grid
    labels = np.array([4, 4, 11, 13, 15])
    occ = voxelize_majority(pts, labels, G)
    assert occ.dtype == np.uint8 and occ.shape == (200, 200, 16)
    assert occ[100, 100, 0] == 4 and occ[102, 100, 0] == 13  # ego z 0.1 m: layer 0
    assert (occ != G.free_label).sum() == 2


def test_points_in_boxes_rotated():
    # (x, y, z_center, length, width, height, yaw): z from -1.0 to 0.5 m, long side along y
    box = np.array([[10.0, 0.0, -0.25, 4.0, 2.0, 1.5, np.pi / 2]])
    pts = np.array([[10.0, 1.8, -0.5],    # inside (along the rotated length)
                    [11.8, 0.0, -0.5],    # outside (beyond the rotated width)
                    [10.0, 0.0, -1.2],    # below the bottom
                    [10.0, 0.0, 0.4]])    # inside, near the top
    assert points_in_boxes(pts, box).tolist() == [0, -1, -1, 0]


def test_moving_box_points_are_carried(tmp_path):
    occ = build_sequence(load_source(tiny_seq11(tmp_path / 'tiny')), G, progress=False)
    x0 = G.voxel_centers(np.argwhere(occ[0]['semantics'] == 4))[:, 0]
    lo0, hi0 = x0.min(), x0.max()
    assert 8.0 <= lo0 and hi0 <= 12.0                  # frame 0: ego x 10 (global 10)
    # frame 1: ego x 14 (global 18 - ego 4), i.e. the same voxels 10 cells further, not smeared
    car0, car1 = np.argwhere(occ[0]['semantics'] == 4), np.argwhere(occ[1]['semantics'] == 4)
    np.testing.assert_array_equal(car1, car0 + [10, 0, 0])
    road1 = G.voxel_centers(np.argwhere(occ[1]['semantics'] == 11))
    assert len(road1) and np.all((road1[:, 0] > 19.5) & (road1[:, 0] < 22.5))  # static: 25 - 4
    assert np.all(np.argwhere(occ[1]['semantics'] == 11)[:, 2] == 0)           # ego z = 0.05 m
    assert (occ[0]['semantics'] == 0).sum() == 0       # the near-sensor return was dropped
    # frame 0 saw everything it holds; frame 1's only return was dropped: its car (carried
    # from frame 0's scan) is occupied but crossed by no ray ending there, Occ3D-style
    assert occ[0]['mask_lidar'][occ[0]['semantics'] != G.free_label].all()
    car1 = occ[1]['semantics'] == 4
    assert not occ[1]['mask_lidar'][car1].all()
    assert occ[1]['mask_lidar'][occ[1]['semantics'] == 11].all()   # road: scan 0's hits
    for o in occ:                                      # no cameras: mask_camera all ones
        assert o['mask_camera'].dtype == np.uint8 and o['mask_camera'].all()


def test_ray_cast_modes(tmp_path):
    frames = load_source(tiny_seq11(tmp_path / 'tiny'))
    own, every, none = (build_sequence(frames, G, ray_cast=m, progress=False)
                        for m in ('own', 'all', 'none'))
    assert not own[1]['mask_lidar'].any()              # frame 1's own scan: nothing valid
    # 'all': frame 0's road rays start at its origin, 4 m behind frame 1's ego at z 1.8 m,
    # and pass x = -3 m at ego z 1.73 m (layer 4), y within 0.04 m of 0 (y index 99 or 100)
    assert every[1]['mask_lidar'][92, 99:101, 4].any()
    assert not every[1]['mask_lidar'][:89].any()       # nothing behind that origin
    assert (every[1]['mask_lidar'] >= own[1]['mask_lidar']).all()
    np.testing.assert_array_equal(every[0]['mask_lidar'], own[0]['mask_lidar'])  # own scan
    for o in none:                                     # 'none': the occupied voxels
        np.testing.assert_array_equal(o['mask_lidar'], o['semantics'] != G.free_label)
    assert build_sequence(frames, G, ray_cast=False, progress=False)[1]['mask_lidar'].sum() \
        == none[1]['mask_lidar'].sum()
    with pytest.raises(ValueError, match='ray_cast'):
        build_sequence(frames, G, ray_cast='some', progress=False)


def test_densify_keeps_labels_and_adds_static(tmp_path):
    frames = load_source(tiny_seq11(tmp_path / 'tiny'))
    plain = build_sequence(frames, G, progress=False)
    dense = build_sequence(frames, G, densify=True, progress=False)
    for p, d in zip(plain, dense):
        kept = p['semantics'] != G.free_label
        np.testing.assert_array_equal(d['semantics'][kept], p['semantics'][kept])
        new = d['semantics'][~kept]
        assert set(np.unique(new[new != G.free_label])) <= {11}    # only the static road
    assert (dense[0]['semantics'] == 11).sum() >= (plain[0]['semantics'] == 11).sum()


def test_mask_camera_from_cameras(tmp_path):
    """A camera 2 m up at the ego origin looking forward (90 degree frustum): frame 0's
    car at x 8.5..11.5 m occludes the road patch at x 24..26 m behind it."""
    T = np.eye(4)
    T[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)   # cam z -> ego x
    T[:3, 3] = [0.0, 0.0, 2.0]
    cam = CameraCalib('CAM_FRONT', T, np.array([[100.0, 0, 100], [0, 100.0, 100], [0, 0, 1]]),
                      (200, 200))
    occ = build_sequence(load_source(tiny_seq11(tmp_path / 'tiny')), G, cams=[cam],
                         cam_stride=2, progress=False)
    cam0, lid0, sem0 = occ[0]['mask_camera'], occ[0]['mask_lidar'], occ[0]['semantics']
    assert (cam0 <= lid0).all()                        # camera mask within mask_lidar
    assert cam0[sem0 == 4].any()                       # the car's front is seen
    assert not cam0[:100].any()                        # nothing behind the camera
    assert not cam0[sem0 == 11].any()                  # the road patch behind the car
    assert cam0[112, 100, 3] == lid0[112, 100, 3] == 1  # free, 5 m ahead at ego z 1.0..1.4 m


def test_tiny_scene_written(tmp_path):
    res = build_scene(tiny_seq11(tmp_path / 'seq2'), str(tmp_path / 'out'), progress=False)
    assert res['scene_name'] == 'nuscenes_seq2'
    assert res['info_path'] == str(tmp_path / 'out' / 'nuscenes_seq2_infos.pkl')
    infos = load_scene_infos(res['info_path'])['nuscenes_seq2']
    assert [f['token'] for f in infos] == ['tok0', 'tok1']
    np.testing.assert_allclose(infos[0]['ego_fut_traj'][0], [4.0, 0.0, 0.0], atol=1e-5)
    lab = load_labels(os.path.join(str(tmp_path / 'out'), infos[1]['occ_path'], 'labels.npz'),
                      keys=('semantics', 'mask_lidar'))
    assert (lab['semantics'] == 4).any()


def test_cli_error_and_outputs(tmp_path, capsys):
    from tools import build_occupancy
    with pytest.raises(SystemExit, match='source folder not found'):
        build_occupancy.main([str(tmp_path / 'nope'), str(tmp_path / 'out'), '--quiet'])
    src = tiny_seq11(tmp_path / 'tiny')
    build_occupancy.main([src, str(tmp_path / 'out'), '--quiet', '--scene-name', 'demo',
                          '--info-name', 'demo.pkl', '--report'])
    out = capsys.readouterr().out
    assert str(tmp_path / 'out' / 'demo.pkl') in out and 'static IoU' in out
    assert os.path.isfile(tmp_path / 'out' / 'gts' / 'demo' / 'tok1' / 'labels.npz')


# ----------------------------------------------------------------------------- real data
_BUILT = {}


@pytest.fixture
def built(seq11_dir, tmp_path_factory):
    """The real sequence built once per test session with each frame's own rays (about
    3 s; all 11 sweeps per frame take about 1 s a frame more, see test_seq11_all_sweeps)."""
    if seq11_dir not in _BUILT:
        out = tmp_path_factory.mktemp('occ_seq11')
        _BUILT[seq11_dir] = build_scene(seq11_dir, str(out), ray_cast='own', progress=False)
    return _BUILT[seq11_dir]


def test_seq11_files_and_infos(built):
    with open(built['info_path'], 'rb') as f:
        data = pickle.load(f)
    assert set(data) == {'metadata', 'infos'} and list(data['infos']) == ['nuscenes_seq11']
    infos = load_scene_infos(built['info_path'])['nuscenes_seq11']
    assert len(infos) == 11
    ts = [f['timestamp'] for f in infos]
    assert ts == sorted(ts) and len(set(ts)) == 11
    fut = infos[0]['ego_fut_traj']                     # (6, 3) x, y, yaw in frame 0
    assert np.all(np.diff(np.r_[0.0, fut[:, 0]]) > 2.0)       # ~4 m per frame forward
    assert np.all(np.abs(fut[:, 1]) < 0.2 * fut[:, 0] + 0.5)  # mostly straight
    assert infos[0]['gt_ego_fut_masks'].sum() == 6 and infos[-1]['gt_ego_fut_masks'].sum() == 0
    root = os.path.dirname(built['info_path'])
    for info, path in zip(infos, built['label_paths']):
        assert path == os.path.join(root, info['occ_path'], 'labels.npz')
        lab = load_labels(path, keys=('semantics', 'mask_lidar', 'mask_camera'))
        assert lab['semantics'].dtype == np.uint8 and lab['semantics'].shape == (200, 200, 16)
        assert set(np.unique(lab['mask_lidar'])) <= {0, 1} and lab['mask_camera'].all()


def test_seq11_occupancy_plausible(built):
    for o in built['occupancy']:
        sem = o['semantics']
        assert sem.max() <= 17
        nonfree = (sem != 17).mean()
        assert 0.02 < nonfree < 0.20                   # measured 4.2-4.9 %; Occ3D frame 6.1 %
        occupied_seen = o['mask_lidar'][sem != 17].mean()   # not own-scan voxels: unseen
        assert 0.3 < occupied_seen < 1 and 0.1 < o['mask_lidar'].mean() < 0.5
        z = np.argwhere(sem == 11)[:, 2]               # road near ego z = 0 m: layer 0, as Occ3D's
        assert (z == 0).mean() > 0.99                  # measured 99.8 %
        assert (sem == 4).sum() > 50                   # cars are present


def test_seq11_static_consistency(built):
    rep = occupancy_report(built['occupancy'], built['ego2globals'])
    ious = [r['static_iou'] for r in rep['frames'][:-1]]
    assert min(ious) > 0.55 and np.mean(ious) > 0.65   # measured 0.66-0.87, mean 0.73
    # the warp is an inverse pair: a frame warped onto itself is unchanged
    sem = built['occupancy'][3]['semantics']
    same, valid = warp_planar(sem[None], np.zeros((1, 3)), G, fill=G.free_label)
    assert valid.all() and np.array_equal(same[0], sem)
    # a wrong pose (1.2 m sideways) must score worse than the right one
    T = np.linalg.inv(planar(built['ego2globals'][3])) @ planar(built['ego2globals'][4])  # 4 -> 3
    pose = matrix_to_se2(np.linalg.inv(se2_to_matrix(0, 1.2, 0) @ T))  # frame 3 in frame 4, off
    wrong, v2 = warp_planar(built['occupancy'][4]['semantics'][None], pose[None], G,
                            fill=G.free_label)
    v2 = np.broadcast_to(v2[0, ..., None], sem.shape)
    assert static_iou(sem, wrong[0], v2)[0] < rep['frames'][3]['static_iou'] - 0.1
    assert 'official Occ3D frame: 6.11%' in format_report(rep)


def test_seq11_all_sweeps(built, seq11_dir):
    """Frames 4 and 5 with the rays of both sweeps and the cameras of the frame_cams
    log (same vehicle family): more is observed than from each frame's own scan, every
    static hit is observed, and mask_camera lies within mask_lidar."""
    cams = load_cam_calib(glob.glob(os.path.join(shared_path('nuscenes_frame_cams'),
                                                 '*.pkl'))[0])
    frames = load_source(seq11_dir)[4:6]
    occ = build_sequence(frames, G, ray_cast='all', cams=cams, progress=False)
    own = built['occupancy'][5]['mask_lidar']          # own rays of frame 5: the same scan
    o = occ[1]
    assert (o['mask_lidar'] >= own).all() and o['mask_lidar'].mean() > own.mean() + 0.05
    static = np.isin(o['semantics'], (11, 13, 14, 15, 16))
    assert o['mask_lidar'][static].mean() > 0.99
    assert (o['mask_camera'] <= o['mask_lidar']).all()
    assert 0.05 < o['mask_camera'].mean() < o['mask_lidar'].mean()
    rep = occupancy_report(occ, np.stack([f.ego2global for f in frames]))
    vis = rep['frames'][1]['visibility']
    for key in ('mask_lidar', 'mask_camera'):
        assert abs(sum(vis[key].values()) - 1) < 1e-9
        assert vis[key]['occupied'] == pytest.approx((o[key].astype(bool)
                                                      & (o['semantics'] < 17)).mean())
