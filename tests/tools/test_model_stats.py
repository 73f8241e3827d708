"""tools/model_stats.py: hand-counted sparse-convolution FLOPs and saved activations,
and the whole tool on a tiny forecaster config."""
import os

import pytest
import torch

import occwm.compat  # noqa: F401
from occwm.compat import spconv
from tests.conftest import REPO
from tests.helpers import TINY_GRID
from tools.model_stats import count_sparse_flops, main, saved_activations


def _sparse(coords, shape, channels):
    idx = torch.tensor(coords, dtype=torch.int32)  # (M, 4) (batch, x, y, z)
    feats = torch.ones(len(coords), channels)
    return spconv.SparseConvTensor(feats, idx, shape, batch_size=1)


def test_submanifold_pairs_hand_counted():
    # Three voxels in a row along x; a 3x3x3 submanifold convolution pairs each with
    # itself (3) and each neighbour with the other (2 x 2): 7 pairs of 2 * 4 * 5 FLOPs.
    x = _sparse([[0, 1, 1, 1], [0, 2, 1, 1], [0, 3, 1, 1]], [6, 6, 6], 4)
    conv = spconv.SubMConv3d(4, 5, 3, padding=1, bias=False)
    with count_sparse_flops(conv, backward=False) as flops:
        conv(x)
    assert sum(flops.values()) == 2 * 7 * 4 * 5


def test_strided_and_generative_pairs():
    # kernel = stride = 2: every input voxel meets exactly one output voxel; the
    # transposed (generative) one makes all 8 children of each.
    x = _sparse([[0, 0, 0, 0], [0, 1, 1, 1], [0, 4, 4, 4]], [8, 8, 8], 4)
    down = spconv.SparseConv3d(4, 6, 2, stride=2, bias=False)
    up = spconv.SparseConvTranspose3d(6, 3, 2, stride=2, bias=False)
    with count_sparse_flops(down, backward=True) as f_down:
        y = down(x)  # 2 output voxels: (0, 0, 0) and (2, 2, 2)
    assert y.indices.shape[0] == 2
    assert sum(f_down.values()) == 3 * (2 * 3 * 4 * 6)  # forward + twice for backward
    with torch.no_grad(), count_sparse_flops(up, backward=True) as f_up:
        up(y)
    assert sum(f_up.values()) == 2 * 16 * 6 * 3  # no grad: forward only


def test_saved_activations_count_inputs_not_weights():
    lin = torch.nn.Linear(100, 50)
    x = torch.randn(8, 100, requires_grad=True)
    with saved_activations(lin) as saved:
        lin(x).sum().backward()
    assert sum(saved.values()) == 8 * 100 * 4  # the input only: the weight is a parameter


def test_tool_on_a_tiny_forecaster(capsys):
    grid = f'[{",".join(str(v) for v in TINY_GRID.point_cloud_range)}]'
    main([os.path.join(REPO, 'configs', 'occ.py'), '--batch', '2', '--gpus', '2',
          '--cfg-options', f'model.tokenizer.grid.point_cloud_range={grid}',
          'model.tokenizer.grid.z_offset=0.0', 'model.dit.preset=tiny'])
    out = capsys.readouterr().out
    for line in ('| parameters |', '| - dit |', '| FLOPs per training step, batch 2',
                 '| activation memory, batch 2 (bfloat16) |', '| FLOPs per forecast (batch 1) |',
                 'agent tracking', 'forecast at batch 1, compute-bound', 'peers'):
        assert line in out, (line, out)
    flops = [ln for ln in out.splitlines() if ln.startswith('| FLOPs per training step')][0]
    assert 'FLOP' in flops.split('|')[2]


def test_tool_says_what_to_do_without_the_sample():
    with pytest.raises(SystemExit, match='grid|occ3d_sample'):
        main([os.path.join(REPO, 'configs', 'occ.py'), '--input', 'occ3d', '--skip-forecast',
              '--cfg-options', 'model.tokenizer.grid.voxel_size=0.8'])
