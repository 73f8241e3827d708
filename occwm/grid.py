"""Grid conventions: the one home of the occupancy grid, its classes and colours,
and of dense <-> sparse conversion.

Axis order everywhere in occwm is ``(X, Y, Z)`` in the ego frame (x forward, y left,
z up, metres), as in Occ3D-nuScenes ``labels.npz``. A dense occupancy grid is a
``(..., X, Y, Z) uint8`` array of labels ``0..16`` with ``17`` = free.

Sparse coordinate order (stated once, here): the ``indices`` of every
``spconv.SparseConvTensor`` in occwm are ``(N, 4) int32`` with columns
``(batch_idx, x_idx, y_idx, z_idx)`` and ``spatial_shape = (X, Y, Z)``. This module
is the only place a ``SparseConvTensor`` is built (``build_sparse``).

Source of the default grid, class names and palette: Occ3D-nuScenes
(Tian et al., "Occ3D", NeurIPS 2023) and OccWorld (Zheng et al., ECCV 2024,
``visualize_demo.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Tuple

import numpy as np
import torch

OCC3D_CLASS_NAMES: Tuple[str, ...] = (
    'others', 'barrier', 'bicycle', 'bus', 'car', 'construction_vehicle',
    'motorcycle', 'pedestrian', 'traffic_cone', 'trailer', 'truck',
    'driveable_surface', 'other_flat', 'sidewalk', 'terrain', 'manmade',
    'vegetation', 'free')

# RGB, uint8, one row per label 0..17 (the Occ3D / OccWorld palette).
OCC3D_PALETTE = np.array([
    [0, 0, 0],        # 0 others
    [255, 120, 50],   # 1 barrier: orange
    [255, 192, 203],  # 2 bicycle: pink
    [255, 255, 0],    # 3 bus: yellow
    [0, 150, 245],    # 4 car: blue
    [0, 255, 255],    # 5 construction_vehicle: cyan
    [200, 180, 0],    # 6 motorcycle: dark yellow
    [255, 0, 0],      # 7 pedestrian: red
    [255, 240, 150],  # 8 traffic_cone: light yellow
    [135, 60, 0],     # 9 trailer: brown
    [160, 32, 240],   # 10 truck: purple
    [255, 0, 255],    # 11 driveable_surface: magenta
    [139, 137, 137],  # 12 other_flat: grey
    [75, 0, 75],      # 13 sidewalk: dark purple
    [150, 240, 80],   # 14 terrain: light green
    [230, 230, 250],  # 15 manmade: lavender white
    [0, 175, 0],      # 16 vegetation: green
    [255, 255, 255],  # 17 free
], dtype=np.uint8)

# Class groups of the Occ3D labels, defined once.
# Classes that move with their own instance (nuScenes "things"); the rest are static.
DYNAMIC_CLASSES: Tuple[int, ...] = (2, 3, 4, 5, 6, 7, 9, 10)
STATIC_CLASSES: Tuple[int, ...] = (0, 1, 8, 11, 12, 13, 14, 15, 16)
VEHICLE_CLASSES: Tuple[int, ...] = (2, 3, 4, 5, 6, 9, 10)     # bicycle ... truck
PEDESTRIAN_CLASSES: Tuple[int, ...] = (7,)
# Surfaces (nuScenes "flat" stuff): driveable_surface, other_flat, sidewalk, terrain.
FLAT_CLASSES: Tuple[int, ...] = (11, 12, 13, 14)
DRIVEABLE_CLASSES: Tuple[int, ...] = (11,)
# Background "stuff" that no object box carries: the flat classes, manmade, vegetation.
STUFF_CLASSES: Tuple[int, ...] = (11, 12, 13, 14, 15, 16)
# the ground: driveable_surface, other_flat, sidewalk, terrain
GROUND_CLASSES: Tuple[int, ...] = (11, 12, 13, 14)


def cell_centers(xy_range: Sequence[float], shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Centres of the cells of a regular planar grid (voxel columns, BEV latent cells).

    Args:
        xy_range: ``(x_min, y_min, x_max, y_max)`` metres, ego frame.
        shape: ``(X, Y)`` cells along x and y.

    Returns:
        ``(X,)`` and ``(Y,) float64``: ``x_min + (i + 0.5) * (x_max - x_min) / X`` and
        the same along y, metres.
    """
    x0, y0, x1, y1 = (float(v) for v in xy_range)
    X, Y = int(shape[0]), int(shape[1])
    return (x0 + (np.arange(X) + 0.5) * ((x1 - x0) / X),
            y0 + (np.arange(Y) + 0.5) * ((y1 - y0) / Y))


OCC3D_Z_OFFSET = 0.8  # m, stated Occ3D-nuScenes z -> ego z (OccGrid.z_offset)


@dataclass(frozen=True)
class OccGrid:
    """A regular voxel grid in the ego frame.

    Args:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in metres, as
            the data set states it. Default: Occ3D-nuScenes ``[-40, -40, -1, 40, 40, 5.4]``.
        voxel_size: edge length of a cubic voxel in metres (default 0.4).
        class_names: names of labels ``0..num_classes-1``; the last one is free.
        z_offset: metres from the stated z range to the ego frame (x, y, z up, z = 0 on
            the road under the rear axle): voxel layer ``k`` spans ego z
            ``[z_min + z_offset + k v, z_min + z_offset + (k + 1) v)``. **The vertical
            convention of occwm is Occ3D-nuScenes' own**: its official frames put every
            road voxel in layer 0 (stated z -1.0 to -0.6 m; ``../shared/data/occ3d_sample``:
            8,433 of 8,433 driveable voxels, sidewalk in layers 0-1, cars from layer 0 up),
            while the road lies at ego z = 0 in nuScenes (LIDAR_TOP 1.84 m above it). So
            the layers sit 0.8 m higher in the ego frame than the stated range says, and
            the default 0.8 puts the road (ego z in [-0.2, 0.2)) in layer 0 for built
            occupancy, synthetic scenes and Occ3D ground truth alike. Everything metric
            (``origin``, ``points_to_voxels``, ``voxel_centers``) is in the ego frame.

    Derived: ``shape`` ``(X, Y, Z)`` = (200, 200, 16) by default, ``free_label`` = 17,
    ``num_classes`` = 18 (semantic classes 0..16 plus free).
    """

    point_cloud_range: Tuple[float, ...] = (-40.0, -40.0, -1.0, 40.0, 40.0, 5.4)
    voxel_size: float = 0.4
    class_names: Tuple[str, ...] = field(default=OCC3D_CLASS_NAMES)
    z_offset: float = OCC3D_Z_OFFSET

    def __post_init__(self):
        if len(self.point_cloud_range) != 6:
            raise ValueError(f'point_cloud_range needs 6 values, got {self.point_cloud_range}')
        extent = np.asarray(self.point_cloud_range[3:]) - np.asarray(self.point_cloud_range[:3])
        cells = extent / self.voxel_size
        if np.any(cells <= 0) or np.any(np.abs(cells - np.round(cells)) > 1e-4):
            raise ValueError(f'range {self.point_cloud_range} is not a positive whole number '
                             f'of voxels of {self.voxel_size} m')

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(X, Y, Z)`` number of voxels per axis."""
        lo, hi = np.asarray(self.point_cloud_range[:3]), np.asarray(self.point_cloud_range[3:])
        return tuple(int(v) for v in np.round((hi - lo) / self.voxel_size))

    @property
    def num_classes(self) -> int:
        """Number of labels including free (18 for Occ3D)."""
        return len(self.class_names)

    @property
    def free_label(self) -> int:
        """The label of free space (the last class, 17 for Occ3D)."""
        return self.num_classes - 1

    @property
    def origin(self) -> np.ndarray:
        """``(3,) float64`` metres: the lower corner of voxel (0, 0, 0), ego frame
        (the stated range's corner raised by ``z_offset``)."""
        return np.asarray(self.point_cloud_range[:3], dtype=np.float64) + [0.0, 0.0, self.z_offset]

    def points_to_voxels(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Voxel indices of points.

        Args:
            points: ``(N, 3+) float`` x, y, z in metres, ego frame.

        Returns:
            ``idx`` ``(N, 3) int64`` voxel index (x, y, z) and ``inside`` ``(N,) bool``
            marking points inside the range (``idx`` of other points is meaningless).
        """
        idx = np.floor((points[:, :3] - self.origin) / self.voxel_size).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.shape)), axis=1)
        return idx, inside

    @property
    def xy_range(self) -> Tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` metres: the planar extent, ego frame."""
        r = self.point_cloud_range
        return (float(r[0]), float(r[1]), float(r[3]), float(r[4]))

    def column_centers(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(X,)`` and ``(Y,) float64``: x and y of the voxel-column centres, metres, ego frame."""
        return cell_centers(self.xy_range, self.shape[:2])

    def voxel_centers(self, idx: np.ndarray) -> np.ndarray:
        """``(N, 3) int`` voxel indices to ``(N, 3) float64`` centres in metres, ego frame."""
        return self.origin + (np.asarray(idx, dtype=np.float64) + 0.5) * self.voxel_size


DEFAULT_GRID = OccGrid()


def check_occupancy(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID, name: str = 'occupancy') -> None:
    """Raise ``ValueError`` naming ``name`` unless ``occ`` is a ``(..., X, Y, Z)``
    integer grid of labels in ``0..free_label``."""
    if occ.shape[-3:] != grid.shape:
        raise ValueError(f'{name}: shape {tuple(occ.shape)} does not end in the grid shape {grid.shape}')
    if not np.issubdtype(np.asarray(occ).dtype, np.integer):
        raise ValueError(f'{name}: dtype {occ.dtype} is not an integer type (want uint8)')
    if occ.size and (int(occ.max()) > grid.free_label or int(occ.min()) < 0):
        bad = int(occ.max()) if int(occ.max()) > grid.free_label else int(occ.min())
        raise ValueError(f'{name}: label {bad} out of range 0..{grid.free_label}')


def occupied_voxels(occ: torch.Tensor, free_label: int = DEFAULT_GRID.free_label
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Dense labels to the list of non-free voxels.

    Args:
        occ: ``(B, X, Y, Z)`` integer labels.
        free_label: label of free space (17).

    Returns:
        ``coords`` ``(N, 4) int32`` in the order (batch_idx, x_idx, y_idx, z_idx) and
        ``labels`` ``(N,) int64``.
    """
    coords = torch.nonzero(occ != free_label, as_tuple=False)  # (N, 4) int64
    labels = occ[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]].long()
    return coords.int(), labels


def build_sparse(features: torch.Tensor, coords: torch.Tensor,
                 spatial_shape: Sequence[int], batch_size: int):
    """The only constructor of ``spconv.pytorch.SparseConvTensor`` in occwm.

    Args:
        features: ``(N, C) float32``.
        coords: ``(N, 4) int32`` (batch_idx, x_idx, y_idx, z_idx).
        spatial_shape: ``(X, Y, Z)``.
        batch_size: B.
    """
    from occwm.compat import spconv  # patched for CPU backward
    return spconv.SparseConvTensor(features, coords.int().contiguous(), list(spatial_shape),
                                   batch_size)


def sparse_select(x, keep: torch.Tensor):
    """Keep the voxels of sparse tensor ``x`` where ``keep`` ``(N,) bool`` is true."""
    return build_sparse(x.features[keep], x.indices[keep], x.spatial_shape, x.batch_size)


def dense_to_sparse(occ: torch.Tensor, embed: torch.nn.Module,
                    free_label: int = DEFAULT_GRID.free_label):
    """Dense labels ``(B, X, Y, Z)`` to a ``SparseConvTensor`` over the non-free voxels
    whose features are ``embed(labels)`` ``(N, C) float32`` (e.g. an ``nn.Embedding``)."""
    coords, labels = occupied_voxels(occ, free_label)
    return build_sparse(embed(labels), coords, occ.shape[1:], occ.shape[0])


def sparse_to_dense(coords: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    shape: Sequence[int] = DEFAULT_GRID.shape,
                    free_label: int = DEFAULT_GRID.free_label) -> torch.Tensor:
    """Scatter ``labels`` ``(N,)`` at ``coords`` ``(N, 4)`` (batch, x, y, z) into a
    ``(B, X, Y, Z) uint8`` grid filled with ``free_label``."""
    occ = torch.full((batch_size, *shape), free_label, dtype=torch.uint8, device=labels.device)
    c = coords.long()
    occ[c[:, 0], c[:, 1], c[:, 2], c[:, 3]] = labels.to(torch.uint8)
    return occ
