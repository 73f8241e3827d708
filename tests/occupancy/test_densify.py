"""Poisson densification (occwm.occupancy.densify) on a small synthetic ground plane with
holes: the holes are filled with the labels of their neighbours, nothing else is added."""
import numpy as np
import pytest

from occwm.occupancy.densify import densify_semantics, fill_from_surface, poisson_surface_points
from occwm.occupancy.builder import voxelize_majority
from occwm.grid import OccGrid

G = OccGrid((-6.0, -6.0, -1.0, 6.0, 6.0, 1.4), 0.4, z_offset=0.0)  # (30, 30, 6); z = 0.1 m: index 2


@pytest.fixture(scope='module')
def plane():
    """A 0.25 m lattice at z = 0.1 m over 12 x 12 m, label 11 for x < 0 and 13 for x >= 0,
    with two square holes: 1.6 m wide at x 0.4..2.0 m and 1.2 m wide at x -3.1..-1.9 m."""
    x, y = np.meshgrid(np.arange(-5.9, 6, 0.25), np.arange(-5.9, 6, 0.25))
    pts = np.c_[x.ravel(), y.ravel(), np.full(x.size, 0.1)]
    hole = (np.abs(pts[:, 0] - 1.2) < 0.8) & (np.abs(pts[:, 1]) < 0.8)
    hole |= (np.abs(pts[:, 0] + 2.5) < 0.6) & (np.abs(pts[:, 1] + 2.0) < 0.6)
    pts = pts[~hole]
    labels = np.where(pts[:, 0] < 0, 11, 13)
    return pts, labels, voxelize_majority(pts, labels, G)


def test_holes_are_filled_from_neighbours(plane):
    pts, labels, sem = plane
    holes = np.zeros(G.shape, bool)
    holes[16:20, 13:17, 2] = True                        # x 0.4..2.0, y -0.8..0.8
    holes[8:10, 9:11, 2] = True                          # x -2.8..-2.0, y -2.4..-1.6
    assert (sem[holes] == G.free_label).all()
    # min_density 0: the plane fills the whole Poisson box here, so every vertex is
    # supported and the quantile cut would only eat the hole centres
    out, added = densify_semantics(sem, pts, labels, np.array([0.0, 0.0, 1.8]), G, depth=7,
                                   min_density=0.0)
    assert (out[holes] != G.free_label).all() and added[holes].all()
    assert set(np.unique(out[16:20, 13:17, 2])) == {13}  # x >= 0: label 13
    assert set(np.unique(out[8:10, 9:11, 2])) == {11}    # x < 0: label 11
    assert np.array_equal(out[~added], sem[~added])      # labelled voxels kept
    assert not added[:, :, [0, 1, 3, 4, 5]].any()        # only the plane's layer


def test_fill_from_surface_respects_max_dist():
    sem = np.full(G.shape, G.free_label, np.uint8)
    sem[15, 15, 2] = 4                                   # an existing voxel keeps its label
    pts = np.array([[0.2, 0.2, 0.1]])
    surface = np.array([[0.2, 0.2, 0.1], [0.6, 0.2, 0.1], [3.0, 3.0, 0.1]])
    out, added = fill_from_surface(sem, surface, pts, np.array([13]), G, max_dist=1.0)
    assert out[15, 15, 2] == 4 and out[16, 15, 2] == 13  # 0.4 m away: added with label 13
    assert out[22, 22, 2] == G.free_label                # 4 m from every point: not added
    assert added.sum() == 1


def test_poisson_needs_points():
    with pytest.raises(ValueError, match='at least'):
        poisson_surface_points(np.zeros((3, 3)), np.zeros(3))
