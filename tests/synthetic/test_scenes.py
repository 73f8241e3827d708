"""The SYNTHETIC scene generator: determinism, layout, classes, geometry, motion."""
import numpy as np
import pytest

from occwm.infos.fields import ego2global_of
from occwm.infos.layouts import load_scene_infos
from occwm.io import labels_path, load_labels
from occwm.synthetic.scenes import (PEDESTRIAN, SYNTHETIC_VERSION, SyntheticSceneConfig,
                                  build_world, generate_scene, render_occupancy,
                                  visibility_masks, write_synthetic_dataset)
from occwm.geometry import trajectory_in_frame
from occwm.grid import DEFAULT_GRID

FREE = DEFAULT_GRID.free_label


@pytest.fixture(scope='module')
def scene():
    """Seed 3, 6 frames, on the default Occ3D grid."""
    return generate_scene(3, 6)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic'))
    return write_synthetic_dataset(root, num_train=2, num_val=1, num_frames=8, seed=0,
                                   progress=False)


def test_determinism_per_seed(scene):
    occ, poses, stamps = scene
    occ2, poses2, stamps2 = generate_scene(3, 6)
    assert occ.tobytes() == occ2.tobytes()
    assert np.array_equal(poses, poses2) and np.array_equal(stamps, stamps2)
    occ3, _, _ = generate_scene(4, 6)
    assert occ.tobytes() != occ3.tobytes()


def test_shapes_and_timestamps(scene):
    occ, poses, stamps = scene
    assert occ.shape == (6, 200, 200, 16) and occ.dtype == np.uint8
    assert poses.shape == (6, 4, 4) and np.allclose(poses[:, 2, 3], 0)
    assert stamps.dtype == np.int64 and np.all(np.diff(stamps) == 500_000)  # 2 Hz, µs
    assert occ.max() <= FREE


def test_classes_present():
    """A typical scene holds road, sidewalk, car, manmade and vegetation."""
    for seed in (0, 3, 5):
        occ, _, _ = generate_scene(seed, 3)
        present = set(np.unique(occ).tolist())
        assert {4, 11, 13, 15, 16} <= present, (seed, present)


def test_ground_layers(scene):
    occ = scene[0]
    z_road = np.nonzero(occ == 11)[3]
    assert np.all(z_road == 0)                 # road top at ego z = 0: layer 0 [-0.2, 0.2), Occ3D's
    assert set(np.nonzero(occ == 13)[3].tolist()) == {0, 1}  # raised sidewalk
    x = np.arange(200) * 0.4 - 40 + 0.2
    ego = (x >= -1.0) & (x <= 3.1)             # the ego's own body is free
    assert np.all(occ[:, ego][:, :, np.abs(x) <= 0.9][..., 1:] == FREE)


def test_non_free_fraction():
    fractions = [(generate_scene(seed, 2)[0] != FREE).mean() for seed in range(4)]
    assert all(0.04 <= f <= 0.10 for f in fractions), fractions


def test_ground_z_option():
    occ, _, _ = generate_scene(1, 1, cfg=SyntheticSceneConfig(ground_z=0.8))
    assert set(np.nonzero(occ == 11)[3].tolist()) == {2}
    with pytest.raises(ValueError, match='ground_z=-0.8'):
        generate_scene(1, 1, cfg=SyntheticSceneConfig(ground_z=-0.8))


def test_agents_move_in_global_frame():
    world = build_world(0, 6)
    parked = [a for a in world.agents if a.kind == 'parked']
    moving = [a for a in world.agents if a.kind == 'moving' and a.valid.all()]
    assert parked and moving
    for a in parked:
        assert np.all(a.poses == a.poses[0])
    assert any(np.linalg.norm(a.poses[-1, :2] - a.poses[0, :2]) > 1 for a in moving)
    assert any(a.label == PEDESTRIAN for a in world.agents)


def test_parked_cars_stay_put_in_rendered_frames():
    """The voxel under a parked car's centre is car in every frame that sees it."""
    world = build_world(0, 6)
    seen = 0
    for t in (0, 5):
        occ = render_occupancy(world, t)
        x, y, yaw = world.ego[t]
        c, s = np.cos(yaw), np.sin(yaw)
        for a in (a for a in world.agents if a.kind == 'parked'):
            dx, dy = a.poses[t, 0] - x, a.poses[t, 1] - y
            ex, ey = c * dx + s * dy, -s * dx + c * dy           # ego frame
            if max(abs(ex), abs(ey)) < 37:
                i, j = int((ex + 40) / 0.4), int((ey + 40) / 0.4)
                assert occ[i, j, 1] == 4                  # on the road layer (0)
                seen += 1
    assert seen >= 2


def test_visibility_masks(scene):
    lidar, camera = visibility_masks(scene[0][:2])
    assert lidar.shape == (2, 200, 200, 16) and lidar.dtype == np.uint8
    assert np.all(camera <= lidar) and 0.3 < lidar.mean() < 1.0


def test_written_layout_loads(dataset):
    assert set(dataset) >= {'train', 'val', 'gts', 'data_root'}
    train, val = load_scene_infos(dataset['train']), load_scene_infos(dataset['val'])
    assert list(train) == ['synthetic-0000', 'synthetic-0001'] and list(val) == ['synthetic-0002']
    import pickle
    with open(dataset['train'], 'rb') as f:
        meta = pickle.load(f)['metadata']
    assert meta['version'] == SYNTHETIC_VERSION and meta['synthetic'] is True and meta['seed'] == 0
    info = train['synthetic-0000'][3]
    data = load_labels(labels_path(dataset['data_root'], info['scene_name'], info['token']),
                       keys=('semantics', 'mask_lidar', 'mask_camera'))
    assert data['semantics'].shape == (200, 200, 16)
    assert info['occ_path'] == f"gts/synthetic-0000/{info['token']}"
    assert len({f['token'] for s in (train, val) for fs in s.values() for f in fs}) == 24


def test_trajectory_consistent_with_poses(dataset):
    frames = load_scene_infos(dataset['train'])['synthetic-0001']
    poses = np.stack([ego2global_of(f) for f in frames])
    for i, f in enumerate(frames[:-6]):
        traj = trajectory_in_frame(poses, i)
        np.testing.assert_allclose(f['ego_fut_traj'], traj[i + 1:i + 7], atol=1e-4)
        np.testing.assert_allclose(np.cumsum(f['gt_ego_fut_trajs'], 0), traj[i + 1:i + 7, :2],
                                   atol=1e-4)
        if np.linalg.norm(traj[i + 6, :2]) > 1.0:   # moving: the future lies ahead
            assert np.all(f['ego_fut_traj'][:, 0] >= -1e-3)
            assert np.all(np.abs(f['ego_fut_traj'][:, 1]) < 0.2 * f['ego_fut_traj'][-1, 0] + 0.5)


def test_train_and_val_differ(dataset):
    train, val = load_scene_infos(dataset['train']), load_scene_infos(dataset['val'])
    a, b = train['synthetic-0000'][0], val['synthetic-0002'][0]
    occ_a = load_labels(labels_path(dataset['data_root'], a['scene_name'], a['token']))['semantics']
    occ_b = load_labels(labels_path(dataset['data_root'], b['scene_name'], b['token']))['semantics']
    assert not np.array_equal(occ_a, occ_b)
    assert not np.allclose(a['ego2global_translation'], b['ego2global_translation'])
