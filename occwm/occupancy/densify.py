"""Densification of static surfaces by Poisson surface reconstruction (SurroundOcc).

Aggregated LiDAR leaves holes in the ground and on walls between the scan lines.
SurroundOcc (Wei et al., ICCV 2023; github weiyithu/SurroundOcc,
``tools/generate_occupancy_nuscenes/generate_occupancy_nuscenes.py``: ``preprocess``,
``run_poisson``, nearest-neighbour labelling; ``config.yaml``: ``depth 10``,
``min_density 0.1``, ``max_nn 20``) fills them as follows, and so does this module:

1. estimate normals from the ``max_nn`` nearest neighbours and orient them towards the
   sensor that saw each point;
2. ``open3d.geometry.TriangleMesh.create_from_point_cloud_poisson(depth=...)``;
3. drop mesh vertices whose Poisson density is below the ``min_density`` quantile
   (the watertight surface Poisson closes over empty space has low density);
4. sample points on the mesh (here uniformly, about 16 per voxel-face area, where
   SurroundOcc voxelises the vertices) and voxelise them;
5. label each voxel that the mesh adds by the nearest labelled point (an open3d
   ``KDTreeFlann``); voxels farther than ``max_dist`` from every labelled point are not
   added (an occwm guard against surfaces Poisson invents far from the data).

Voxels that hold points keep their majority label; only free voxels are filled.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid

POISSON_DEPTH = 10         # SurroundOcc config.yaml
MIN_DENSITY = 0.1          # quantile of Poisson densities dropped (SurroundOcc)
NORMAL_NEIGHBOURS = 20     # max_nn of the normal estimate (SurroundOcc)


def _cloud(points: np.ndarray):
    import open3d as o3d
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.ascontiguousarray(points[:, :3], np.float64))
    return pcd


def poisson_surface_points(points: np.ndarray, viewpoints: np.ndarray,
                           depth: int = POISSON_DEPTH, min_density: float = MIN_DENSITY,
                           max_nn: int = NORMAL_NEIGHBOURS, spacing: float = 0.1,
                           max_samples: int = 5_000_000, n_threads: int = 1,
                           seed: int = 0) -> np.ndarray:
    """Points sampled on the Poisson surface of a point cloud (steps 1-4 above).

    Args:
        points: ``(N, 3+)`` metres, any frame.
        viewpoints: ``(N, 3)`` or ``(3,)`` sensor position that saw each point (same
            frame); normals are flipped to face it.
        depth: Poisson octree depth (cells of ``extent / 2**depth``).
        min_density: quantile of vertex densities removed.
        spacing: mean distance between samples on the mesh, metres.
        max_samples: cap on the number of samples.
        n_threads: Poisson solver threads (-1: all cores); with more than one the
            reconstruction may differ slightly from run to run, so the default is 1.
        seed: seed of open3d's random generator (mesh sampling).

    Returns:
        ``(M, 3) float64`` points on the reconstructed surface, same frame.

    Raises:
        ValueError: fewer than ``max_nn`` points.
    """
    import open3d as o3d
    if len(points) < max(max_nn, 4):
        raise ValueError(f'Poisson densification needs at least {max(max_nn, 4)} points, '
                         f'got {len(points)}')
    pcd = _cloud(points)
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(max_nn))
    normals = np.asarray(pcd.normals)                                    # (N, 3)
    view = np.broadcast_to(np.asarray(viewpoints, np.float64), (len(points), 3))
    flip = np.einsum('ij,ij->i', normals, view - points[:, :3]) < 0
    normals[flip] *= -1
    pcd.normals = o3d.utility.Vector3dVector(normals)
    mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        pcd, depth=depth, n_threads=n_threads)
    density = np.asarray(density)
    if min_density > 0 and len(density):
        mesh.remove_vertices_by_mask(density < np.quantile(density, min_density))
    if len(mesh.triangles) == 0:
        return np.zeros((0, 3))
    n = int(min(max_samples, max(1, np.ceil(mesh.get_surface_area() / spacing ** 2))))
    o3d.utility.random.seed(seed)
    return np.asarray(mesh.sample_points_uniformly(number_of_points=n).points)


def fill_from_surface(semantics: np.ndarray, surface: np.ndarray, points: np.ndarray,
                      labels: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                      max_dist: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Add the voxels of ``surface`` that are free in ``semantics`` (step 5 above).

    Args:
        semantics: ``(X, Y, Z) uint8`` labels, 17 = free, ego frame.
        surface: ``(M, 3)`` points on the reconstructed surface, ego frame, metres.
        points, labels: ``(N, 3+)`` labelled points (ego frame) and ``(N,)`` ints; each
            new voxel takes the label of the point nearest to its centre.
        max_dist: new voxels whose centre is farther than this (metres) from every
            labelled point are not added.

    Returns:
        ``semantics`` filled (a new ``(X, Y, Z) uint8`` array) and ``added``
        ``(X, Y, Z) bool`` marking the voxels that were free and are now labelled.
    """
    import open3d as o3d
    out = semantics.copy()
    added = np.zeros(grid.shape, bool)
    idx, inside = grid.points_to_voxels(np.asarray(surface, np.float64).reshape(-1, 3))
    cand = np.zeros(grid.shape, bool)
    cand[tuple(idx[inside].T)] = True
    cand &= semantics == grid.free_label
    vox = np.argwhere(cand)                                              # (K, 3) new voxels
    if not len(vox) or not len(points):
        return out, added
    tree = o3d.geometry.KDTreeFlann(_cloud(np.asarray(points, np.float64)))
    centres = grid.voxel_centers(vox)                                    # (K, 3) metres
    nearest = np.empty(len(vox), np.int64)
    dist2 = np.empty(len(vox))
    for i, c in enumerate(centres):
        _, j, d2 = tree.search_knn_vector_3d(c, 1)
        nearest[i], dist2[i] = j[0], d2[0]
    ok = dist2 <= max_dist ** 2
    out[tuple(vox[ok].T)] = np.asarray(labels)[nearest[ok]]
    added[tuple(vox[ok].T)] = True
    return out, added


def densify_semantics(semantics: np.ndarray, points: np.ndarray, labels: np.ndarray,
                      viewpoints: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                      depth: int = POISSON_DEPTH, min_density: float = MIN_DENSITY,
                      max_dist: float = 1.0, spacing: Optional[float] = None,
                      n_threads: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Poisson-densify one frame: ``poisson_surface_points`` then ``fill_from_surface``.

    Args:
        semantics: ``(X, Y, Z) uint8`` voxelised ``points`` (17 = free), ego frame.
        points: ``(N, 3+)`` ego frame metres; labels ``(N,)`` ints 0..16;
        viewpoints: ``(N, 3)`` or ``(3,)`` sensor positions, ego frame.
        spacing: mesh sample spacing (default a quarter voxel).
        n_threads: Poisson solver threads (1 for a reproducible result).

    Returns:
        filled ``(X, Y, Z) uint8`` semantics and the ``(X, Y, Z) bool`` added voxels.
    """
    surface = poisson_surface_points(points, viewpoints, depth=depth, min_density=min_density,
                                     spacing=spacing or grid.voxel_size / 4, n_threads=n_threads)
    return fill_from_surface(semantics, surface, points, labels, grid, max_dist)
