"""The baselines as forecasters (scenario rollouts)."""
import pytest
import torch

from occwm.evaluation.baselines import BaselineForecaster, warp_static
from occwm.grid import OccGrid

GRID = OccGrid(point_cloud_range=(-3.2, -3.2, -1.0, 3.2, 3.2, -0.2), voxel_size=0.4)  # 16 x 16 x 2


def test_baseline_forecaster_rollout():
    g = torch.Generator().manual_seed(0)
    past = torch.randint(0, 18, (2, 3, 16, 16, 2), generator=g).to(torch.uint8)
    traj = torch.zeros(2, 3 + 4, 3)
    traj[:, 3:, 0] = torch.tensor([0.4, 0.8, 1.2, 1.6])  # the ego drives 1 voxel a frame
    frozen = BaselineForecaster('copy_last', GRID, num_past=3).rollout(past, traj, 4, generator=g)
    assert frozen.shape == (2, 4, 16, 16, 2) and torch.equal(frozen[:, 2], past[:, -1])
    warp = BaselineForecaster('warp', GRID, num_past=3).rollout(past, traj, 4)
    for b in range(2):
        assert torch.equal(warp[b], warp_static(past[b, -1], traj[b, 3:], GRID))
    assert torch.equal(warp[:, 0, :-1], past[:, -1, 1:])  # shifted by one voxel along x
    with pytest.raises(ValueError, match='unknown baseline'):
        BaselineForecaster('oracle')
