import os

import numpy as np
import pytest

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.infos.layouts import load_scene_infos
from occwm.io import load_labels, save_labels, save_pickle
from occwm.grid import DEFAULT_GRID


def test_labels_roundtrip_and_errors(tmp_path):
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    occ[100, 100, 2] = 11
    path = str(tmp_path / 'gts' / 's' / 't' / 'labels.npz')
    save_labels(path, occ)
    out = load_labels(path, keys=('semantics', 'mask_lidar', 'mask_camera'))
    assert np.array_equal(out['semantics'], occ) and out['mask_lidar'].all()
    with pytest.raises(FileNotFoundError, match='nothere'):
        load_labels(str(tmp_path / 'nothere.npz'))
    np.savez(str(tmp_path / 'bad.npz'), occupancy=occ)
    with pytest.raises(ValueError, match="bad.npz: missing key 'semantics'"):
        load_labels(str(tmp_path / 'bad.npz'))


def test_failed_write_keeps_old_file(tmp_path):
    path = str(tmp_path / 'labels.npz')
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    save_labels(path, occ)
    before = open(path, 'rb').read()
    with pytest.raises(ValueError):
        save_labels(path, np.full(DEFAULT_GRID.shape, 30, np.uint8))
    assert open(path, 'rb').read() == before
    assert [f for f in os.listdir(tmp_path) if f.startswith('.tmp_')] == []


def test_trajectory_fields_follow_uniad_convention():
    frames = [make_frame_info('s', f't{k}', k * 500_000, (2.0 * k, 0.0, 0.0), (1, 0, 0, 0))
              for k in range(8)]
    add_trajectories(frames)
    f = frames[1]
    np.testing.assert_allclose(f['gt_ego_fut_trajs'], [[2, 0]] * 6)  # per-step displacements
    np.testing.assert_allclose(f['ego_fut_traj'][:, 0], [2, 4, 6, 8, 10, 12])
    np.testing.assert_allclose(f['gt_ego_fut_masks'], 1)
    last = frames[5]
    np.testing.assert_allclose(last['gt_ego_fut_masks'], [1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(last['gt_ego_his_trajs'], [[2, 0], [2, 0]])
    np.testing.assert_allclose(frames[0]['gt_ego_his_trajs'], 0)


def test_flat_infos_without_keys_named(tmp_path):
    # a flat list is read as the mmdet3d-0.x / UniAD layout; its frames need poses
    path = str(tmp_path / 'flat.pkl')
    save_pickle(path, dict(infos=[{'token': 'a'}]))
    with pytest.raises(ValueError, match=r"flat.pkl: infos\[0\]: missing required key.*'timestamp'"):
        load_scene_infos(path)


def _write_npz(path, **arrays):
    np.savez(str(path), **arrays)
    return str(path)


@pytest.mark.parametrize('case, error, pattern', [
    ('missing_file', FileNotFoundError, 'occupancy file not found: .*case.npz'),
    ('missing_key', ValueError, "case.npz: missing key 'semantics'"),
    ('wrong_shape', ValueError, r'case.npz\[semantics\]: shape \(200, 200, 8\)'),
    ('wrong_dtype', ValueError, r'case.npz\[semantics\]: dtype float32 is not an integer'),
    ('out_of_range', ValueError, r'case.npz\[semantics\]: label 18 out of range 0..17'),
    ('unreadable', ValueError, 'case.npz: not a readable npz'),
    ('mask_shape', ValueError, 'case.npz: mask_lidar shape'),
])
def test_labels_bad_input_names_file(tmp_path, case, error, pattern):
    path = tmp_path / 'case.npz'
    free = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    if case == 'missing_key':
        _write_npz(path, occupancy=free)
    elif case == 'wrong_shape':
        _write_npz(path, semantics=free[:, :, :8])
    elif case == 'wrong_dtype':
        _write_npz(path, semantics=free.astype(np.float32))
    elif case == 'out_of_range':
        bad = free.copy()
        bad[1, 2, 3] = 18
        _write_npz(path, semantics=bad)
    elif case == 'unreadable':
        path.write_bytes(b'PK\x03\x04 this is not a zip archive')
    elif case == 'mask_shape':
        _write_npz(path, semantics=free, mask_lidar=free[:100])
    with pytest.raises(error, match=pattern):
        load_labels(str(path), keys=('semantics', 'mask_lidar'))


def test_atomic_path_gives_the_usual_file_mode(tmp_path):
    import os
    from occwm.io import atomic_path
    umask = os.umask(0o022)
    try:
        with atomic_path(str(tmp_path / 'a.txt')) as tmp:
            open(tmp, 'w').write('x')
    finally:
        os.umask(umask)
    assert (tmp_path / 'a.txt').stat().st_mode & 0o777 == 0o644
