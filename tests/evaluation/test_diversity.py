"""SampleAgreement: agreement of K sampled futures, against hand counts."""
import numpy as np
import pytest
import torch

from occwm.evaluation.diversity import SampleAgreement, agreement_counts

FREE = 17


def test_agreement_counts_by_hand():
    # K = 2 samples, 1 frame, 4 x 1 x 1 grid: voxel 0 road in both (static, agree),
    # voxel 1 car / free (dynamic, differ), voxel 2 free in both (not counted),
    # voxel 3 building / vegetation (static, differ)
    s = torch.tensor([[11, 4, FREE, 15], [11, FREE, FREE, 16]], dtype=torch.uint8)
    samples = s.view(2, 1, 4, 1, 1)
    got = agreement_counts(samples, None, FREE)
    np.testing.assert_array_equal(got, [[1, 0, 2, 1]])
    # the warped present has a pedestrian at voxel 0: it joins the dynamic region
    warped = torch.tensor([7, FREE, FREE, FREE], dtype=torch.uint8).view(1, 4, 1, 1)
    np.testing.assert_array_equal(agreement_counts(samples, warped, FREE), [[2, 1, 1, 0]])


def test_agreement_needs_two_samples():
    with pytest.raises(ValueError, match='K >= 2'):
        agreement_counts(torch.zeros(1, 1, 2, 2, 2, dtype=torch.uint8), None, FREE)


def test_metric_sums_windows_and_averages_frames():
    m = SampleAgreement(avg_frames=(1, 2))
    same = torch.full((3, 2, 2, 1, 1), 11, dtype=torch.uint8)  # all agree, static
    diff = same.clone()
    diff[1, 1] = 4  # frame 2: sample 1 says car -> 2 dynamic voxels, none agree
    m.process({}, [dict(pred_samples=same), dict(pred_samples=diff)])
    out = m.compute_metrics(m.results)
    assert out['agreement_static@0.5s'] == 100.0 and out['agreement_static@1s'] == 100.0
    assert out['agreement_dynamic@1s'] == 0.0 and np.isnan(out['agreement_dynamic@0.5s'])
    assert m.last_report['voxels_dynamic_per_frame'] == [0, 2]
    assert m.last_report['voxels_static_per_frame'] == [4, 2]
    with pytest.raises(ValueError, match='predict_samples'):
        m.process({}, [dict(pred_occ=same[0])])
