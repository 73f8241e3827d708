"""ResidualDecoder: the column descriptor by hand, the gate and the training losses."""
import torch

from occwm.models.residual import ResidualDecoder

FREE = 17


def small(**kw):
    return ResidualDecoder(4, grid_shape=(8, 8, 2), latent_shape=(2, 2), width=8, **kw)


def test_column_descriptor_by_hand():
    dec = small()
    occ = torch.full((1, 8, 8, 2), FREE, dtype=torch.uint8)
    occ[0, 1, 2] = torch.tensor([11, 4])  # road under a car
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[0, 7] = False
    d = dec.column_descriptor(occ, valid)  # (1, 18 + 2 + 1, 8, 8)
    assert d.shape == (1, 21, 8, 8)
    col = d[0, :, 1, 2]
    assert col[11] == 0.5 and col[4] == 0.5 and col[FREE] == 0  # counts / Z
    assert col[18:20].tolist() == [1.0, 1.0] and col[20] == 1.0  # both occupied, valid
    empty = d[0, :, 7, 0]
    assert empty[FREE] == 1.0 and empty[18:20].tolist() == [0.0, 0.0] and empty[20] == 0.0


def test_closed_gate_is_identity_and_losses_are_finite():
    torch.manual_seed(0)
    dec = small()
    occ = torch.randint(0, 18, (3, 8, 8, 2), dtype=torch.uint8)
    valid = torch.ones(3, 8, 8, dtype=torch.bool)
    z, w = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    wv = torch.ones(3, 1, 2, 2)
    assert torch.equal(dec(occ, valid, z, w, wv), occ)
    target = occ.clone()
    target[:, :2] = 11  # two rows of columns change
    losses = dec.loss(occ, valid, z, w, wv, target)
    assert set(losses) == {'loss_gate', 'loss_column'}
    assert all(torch.isfinite(v) for v in losses.values())
    # the gate's target: the columns that change
    torch.nn.init.constant_(dec.gate.bias, 10.0)  # open everywhere
    out = dec(occ, valid, z, w, wv)
    assert out.shape == occ.shape and out.dtype == torch.uint8
