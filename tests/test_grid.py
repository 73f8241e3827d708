import numpy as np
import pytest
import torch

from occwm.grid import (DEFAULT_GRID, OCC3D_CLASS_NAMES, OCC3D_PALETTE, OccGrid, check_occupancy,
                        dense_to_sparse, occupied_voxels, sparse_to_dense)


def test_occ3d_defaults():
    g = DEFAULT_GRID
    assert g.shape == (200, 200, 16)
    assert g.free_label == 17 and g.num_classes == 18
    assert OCC3D_CLASS_NAMES[11] == 'driveable_surface' and OCC3D_CLASS_NAMES[17] == 'free'
    assert OCC3D_PALETTE.shape == (18, 3)
    assert tuple(OCC3D_PALETTE[11]) == (255, 0, 255)  # driveable surface magenta


def test_points_to_voxels_and_centres():
    """Ego frame, Occ3D's vertical convention: layer k spans ego z [-0.2 + 0.4 k, ...)."""
    g = DEFAULT_GRID
    pts = np.array([[-40.0, -40.0, -0.19], [0.1, -0.1, 0.0], [39.99, 39.99, 6.19], [40.0, 0, 0],
                    [0.0, 0.0, -0.21]])
    idx, inside = g.points_to_voxels(pts)
    assert inside.tolist() == [True, True, True, False, False]
    assert idx[0].tolist() == [0, 0, 0] and idx[1].tolist() == [100, 99, 0]  # the road: layer 0
    assert idx[2].tolist() == [199, 199, 15]
    np.testing.assert_allclose(g.voxel_centers(idx[1:2])[0], [0.2, -0.2, 0.0], atol=1e-9)
    flat = OccGrid(z_offset=0.0)  # the stated range as the ego frame
    assert flat.points_to_voxels(pts[1:2])[0][0].tolist() == [100, 99, 2]


def test_vertical_convention_matches_the_official_occ3d_frame(occ3d_sample):
    """Synthetic scenes in the default grid put their road where the official
    Occ3D-nuScenes frame has every road voxel: layer 0 (the official cars start there,
    the clean synthetic ones on top of it)."""
    from occwm.io import load_labels
    from occwm.synthetic.scenes import generate_scene
    official = load_labels(occ3d_sample)['semantics']
    synthetic = generate_scene(0, num_frames=1)[0][0]
    for occ in (official, synthetic):
        road = np.nonzero(occ == 11)[2]
        assert np.bincount(road, minlength=16)[0] == len(road) > 0  # every road voxel in layer 0
    assert np.nonzero(official == 4)[2].min() == 0
    assert np.nonzero(synthetic == 4)[2].min() == 1


def test_custom_grid_and_bad_range():
    g = OccGrid(point_cloud_range=(-6.4, -6.4, -1, 6.4, 6.4, 2.2), voxel_size=0.4)
    assert g.shape == (32, 32, 8)
    with pytest.raises(ValueError, match='whole number'):
        OccGrid(point_cloud_range=(-1, -1, -1, 1, 1, 1.1), voxel_size=0.4)


def test_check_occupancy_errors():
    with pytest.raises(ValueError, match='f.npz.*shape'):
        check_occupancy(np.zeros((2, 2, 2), np.uint8), name='f.npz')
    bad = np.full(DEFAULT_GRID.shape, 18, np.uint8)
    with pytest.raises(ValueError, match='out of range'):
        check_occupancy(bad)
    with pytest.raises(ValueError, match='dtype'):
        check_occupancy(np.zeros(DEFAULT_GRID.shape, np.float32))


def test_dense_sparse_roundtrip():
    occ = torch.full((2, 8, 6, 4), 17, dtype=torch.uint8)
    occ[0, 1, 2, 3] = 4
    occ[1, 7, 5, 0] = 11
    occ[1, 0, 0, 0] = 0
    coords, labels = occupied_voxels(occ)
    assert coords.dtype == torch.int32 and coords.shape == (3, 4)
    assert coords[0].tolist() == [0, 1, 2, 3] and labels.tolist() == [4, 0, 11]
    assert torch.equal(sparse_to_dense(coords, labels, 2, (8, 6, 4)), occ)
    x = dense_to_sparse(occ, torch.nn.Embedding(18, 5))
    assert x.features.shape == (3, 5) and list(x.spatial_shape) == [8, 6, 4] and x.batch_size == 2


def test_check_occupancy_rejects_negative_labels():
    occ = np.zeros(DEFAULT_GRID.shape, np.int16)
    occ[1, 2, 3] = -1
    with pytest.raises(ValueError, match=r'frame\.npz: label -1 out of range'):
        check_occupancy(occ, name='frame.npz')


def test_column_centers():
    cx, cy = DEFAULT_GRID.column_centers()
    assert cx.shape == (200,) and cy.shape == (200,)
    np.testing.assert_allclose(cx[[0, 1, -1]], [-39.8, -39.4, 39.8])
    np.testing.assert_allclose(cy, cx)
