"""Tests of the sparse-convolution VAE tokenizer (``occwm.models.tokenizer``) and its
losses (``occwm.models.losses``). CPU, deterministic, tiny grids."""
import pytest
import torch

from occwm.models.losses import (kl_standard_normal, lovasz_grad, lovasz_softmax,
                                 lovasz_softmax_flat, occupancy_bce)
from occwm.models.tokenizer import TOKENIZER_PRESETS, OccVAE, build_tokenizer
from occwm.registry import MODELS

# 32 x 32 x 8 voxels of 0.4 m.
TINY_GRID = dict(point_cloud_range=(-6.4, -6.4, -1.0, 6.4, 6.4, 2.2), voxel_size=0.4)
FREE = 17


def toy_scene(batch: int = 1, frames: int = 1) -> torch.Tensor:
    """``(B, T, 32, 32, 8) uint8``: a road plane and three boxes of three classes."""
    occ = torch.full((batch, frames, 32, 32, 8), FREE, dtype=torch.uint8)
    occ[..., 1] = 11                    # driveable_surface
    occ[..., 4:12, 5:9, 2:5] = 4        # car
    occ[..., 20:30, 0:3, 2:8] = 15      # manmade
    occ[..., 18:22, 20:23, 2:4] = 7     # pedestrian
    return occ


def tiny_model(**kwargs) -> OccVAE:
    torch.manual_seed(0)
    return build_tokenizer('tiny', grid=TINY_GRID, **kwargs)


def test_presets_and_registry():
    assert set(TOKENIZER_PRESETS) >= {'tiny', 'base'}
    model = MODELS.build(dict(type='OccVAE', grid=TINY_GRID, **TOKENIZER_PRESETS['tiny']))
    assert isinstance(model, OccVAE)
    with pytest.raises(ValueError):
        OccVAE(grid=dict(point_cloud_range=(-6.4, -6.4, -1.0, 6.4, 6.4, 1.4), voxel_size=0.4),
               channels=(8, 8, 8, 8))  # Z = 6 is not divisible by 8


def test_encode_decode_shapes_tiny():
    model = tiny_model().eval()
    occ = toy_scene(2, 1)[:, 0]
    with torch.no_grad():
        mu, logvar = model.encode(occ)
        assert mu.shape == logvar.shape == (2, 4, 8, 8)
        assert mu.dtype == logvar.dtype == torch.float32
        out = model.decode(mu)
    assert out.shape == (2, 32, 32, 8) and out.dtype == torch.uint8
    assert int(out.max()) <= FREE


def test_encode_decode_shapes_default_grid():
    torch.manual_seed(0)
    model = OccVAE().eval()  # default grid, default (base) sizes
    occ = torch.full((1, 200, 200, 16), FREE, dtype=torch.uint8)
    occ[0, :, :, 2] = 11
    occ[0, 50:60, 80:85, 3:7] = 4
    with torch.no_grad():
        mu, logvar = model.encode(occ)
        assert mu.shape == logvar.shape == (1, model.latent_channels, 50, 50)
        out = model.decode(mu)
    assert out.shape == (1, 200, 200, 16) and out.dtype == torch.uint8


def test_encoder_is_sparse():
    model = tiny_model().eval()
    occ = toy_scene(2, 1)[:, 0]
    with torch.no_grad():
        stages = model.encode_sparse(occ)
    assert stages[0].indices.shape[0] == int((occ != FREE).sum())
    assert [tuple(s.spatial_shape) for s in stages] == [(32, 32, 8), (16, 16, 4), (8, 8, 2)]


def test_forward_modes_and_backward():
    model = tiny_model()
    occ = toy_scene(2, 3)
    losses = model(dict(occ=occ), mode='loss')
    assert set(losses) == {'loss_occ', 'loss_ce', 'loss_lovasz', 'loss_kl'}
    total = sum(losses.values())
    assert total.dim() == 0 and torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model.embed.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        mu = model(dict(occ=occ), mode='tensor')
        preds = model(dict(occ=occ), mode='predict')
    assert mu.shape == (6, 4, 8, 8)
    assert len(preds) == 2
    assert preds[0]['pred_occ'].shape == preds[0]['gt_occ'].shape == (3, 32, 32, 8)
    assert preds[0]['pred_occ'].dtype == torch.uint8
    assert torch.equal(preds[1]['gt_occ'], occ[1])


def test_training_targets_keep_all_positives():
    """With ``gt_occ`` every non-free voxel survives the pruning, even untrained."""
    model = tiny_model()
    for head in [model.dec_coarse_head, *model.dec_occ_heads]:
        torch.nn.init.constant_(head.bias, -100.)  # predict nothing occupied
    occ = toy_scene(1, 1)[:, 0]
    with torch.no_grad():
        out = model.decode_sparse(model.encode(occ)[0], gt_occ=occ)
        assert (out['cls_targets'] != FREE).sum() == (occ != FREE).sum()
        assert model.decode(model.encode(occ)[0]).eq(FREE).all()  # nothing kept -> all free


def test_lovasz_hand_computed():
    # Two voxels, two classes. Class 0: errors (0.2 fg, 0.4 bg) sorted -> (0.4, 0.2),
    # Jaccard grads (0.5, 0.5) -> 0.3. Class 1: errors (0.2 bg, 0.4 fg) sorted ->
    # (0.4, 0.2) with fg (1, 0), grads (1, 0) -> 0.4. Mean over present classes: 0.35.
    probas = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    labels = torch.tensor([0, 1])
    assert lovasz_softmax_flat(probas, labels).item() == pytest.approx(0.35)
    # Only class 0 present: errors (0.2, 0.6) sorted (0.6, 0.2), grads (0.5, 0.5) -> 0.4.
    assert lovasz_softmax_flat(probas, torch.tensor([0, 0])).item() == pytest.approx(0.4)
    assert lovasz_grad(torch.tensor([1., 0., 1.])).tolist() == pytest.approx([0.5, 1 / 6, 1 / 3])
    # A perfect prediction costs nothing; the logits wrapper applies the softmax.
    assert lovasz_softmax_flat(torch.eye(3), torch.arange(3)).item() == pytest.approx(0.)
    logits = torch.log(probas)
    assert lovasz_softmax(logits, labels).item() == pytest.approx(0.35)
    assert lovasz_softmax_flat(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.


def test_kl_and_bce():
    assert kl_standard_normal(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).item() == 0.
    # mu = 1, logvar = 0: 0.5 * (1 + 1 - 1 - 0) = 0.5 per element.
    assert kl_standard_normal(torch.ones(2, 2), torch.zeros(2, 2)).item() == pytest.approx(0.5)
    bce = occupancy_bce(torch.zeros(4), torch.tensor([True, False, True, False]))
    assert bce.item() == pytest.approx(0.6931472)
    assert occupancy_bce(torch.zeros(0), torch.zeros(0, dtype=torch.bool)).item() == 0.


def test_overfit_one_scene():
    """The tiny model reconstructs one synthetic scene almost perfectly in 200 steps."""
    torch.manual_seed(0)
    model = tiny_model()
    occ = toy_scene(1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        losses = model(dict(occ=occ), mode='loss')
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(dict(occ=occ), mode='predict')[0]['pred_occ']
    gt = occ[0]
    acc = (pred == gt).float().mean().item()
    occupied_iou = ((pred != FREE) & (gt != FREE)).sum() / ((pred != FREE) | (gt != FREE)).sum()
    assert acc > 0.98, acc
    assert occupied_iou.item() > 0.9, occupied_iou
    # The large structures of every class are recovered (the 24-voxel pedestrian may
    # still be pruned at the coarse level after 200 steps).
    assert {4, 11, 15} <= set(pred.unique().tolist())
