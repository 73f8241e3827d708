import numpy as np
import pytest
import torch

from occwm.data import LoadOccWindow, OccForecastDataset, PackOccInputs, occ_collate
from tests.helpers import TINY_GRID, write_tiny_scenes

PIPELINE = [LoadOccWindow(grid=dict(point_cloud_range=TINY_GRID.point_cloud_range,
                                    voxel_size=TINY_GRID.voxel_size)), PackOccInputs()]


def make(tmp_path, **kw):
    ann = write_tiny_scenes(tmp_path)
    return OccForecastDataset(ann_file=ann, data_root=str(tmp_path), pipeline=PIPELINE, **kw)


def test_window_count_and_order(tmp_path):
    ds = make(tmp_path)
    # scene of 13 frames -> 13 - 11 + 1 windows; the 5-frame scene is too short
    assert len(ds) == 3
    info = ds.get_data_info(2)
    assert info['tokens'][0] == 'tiny-0-002' and len(info['tokens']) == 11
    assert ds.get_data_info(0)['occ_paths'][4].endswith('gts/tiny-0/tiny-0-004/labels.npz')


def test_stride_and_short_windows(tmp_path):
    assert len(make(tmp_path, stride=2)) == 2
    ds = make(tmp_path, num_past=1, num_future=0)
    assert len(ds) == 13 + 5


def test_getitem_is_deterministic_and_shaped(tmp_path):
    ds = make(tmp_path)
    a, b = ds[1], ds[1]
    occ, traj = a['inputs']['occ'], a['inputs']['traj']
    assert occ.shape == (11, *TINY_GRID.shape) and occ.dtype == torch.uint8
    assert traj.shape == (11, 3) and traj.dtype == torch.float32
    assert torch.equal(occ, b['inputs']['occ']) and torch.equal(traj, b['inputs']['traj'])
    # the block of frame k sits at x index k: window 1 starts at frame 1
    assert occ[0, 1, 3, 3] == 4 and occ[10, 11, 3, 3] == 4


def test_trajectory_in_present_frame(tmp_path):
    ds = make(tmp_path)
    traj = ds[0]['inputs']['traj'].numpy()
    np.testing.assert_allclose(traj[4], 0, atol=1e-6)  # present frame at the origin
    assert np.all(np.diff(traj[:, 0]) > 0)  # driving forward
    assert traj[10, 1] > 0  # turning left
    # yaw of frame k relative to frame 4 is 0.02 * (k - 4)
    np.testing.assert_allclose(traj[:, 2], 0.02 * (np.arange(11) - 4), atol=1e-5)


def test_collate_stacks_inputs(tmp_path):
    ds = make(tmp_path)
    batch = occ_collate([ds[0], ds[1]])
    assert batch['inputs']['occ'].shape == (2, 11, *TINY_GRID.shape)
    assert len(batch['data_samples']) == 2 and batch['data_samples'][1].scene_name == 'tiny-0'


def test_missing_occupancy_names_file(tmp_path):
    ds = make(tmp_path)
    path = ds.get_data_info(0)['occ_paths'][3]
    import os
    os.remove(path)
    with pytest.raises(FileNotFoundError, match='tiny-0-003'):
        ds[0]


def test_unsorted_timestamps_rejected(tmp_path):
    import pickle
    ann = write_tiny_scenes(tmp_path)
    with open(ann, 'rb') as f:
        data = pickle.load(f)
    data['infos']['tiny-0'][3]['timestamp'] = 0
    with open(ann, 'wb') as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match='not increasing'):
        OccForecastDataset(ann_file=ann, data_root=str(tmp_path), pipeline=PIPELINE)
