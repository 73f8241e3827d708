"""Occupancy as a coloured voxel mesh for any 3D viewer (MeshLab, Blender, CloudCompare).

The mesh carries flat per-vertex palette colours (no baked shading: viewers light it
themselves) and only the exposed faces of the voxels, 4 vertices per face, in the ego
frame (x forward, y left, z up, metres).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from occwm.io import atomic_path
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.runtime import require_open3d
from occwm.visualization.geometry import ego_box_mesh, error_to_mesh, occupancy_to_mesh

MESH_EXTS = ('.ply', '.obj')


def occupancy_mesh(occ: np.ndarray, grid: OccGrid = DEFAULT_GRID,
                   mask: Optional[np.ndarray] = None, with_ego: bool = False,
                   errors: bool = False):
    """The export mesh of an ``(X, Y, Z)`` grid (labels, or error codes with ``errors``):
    flat colours, optionally the ego box, voxels where ``mask`` is 0 pale."""
    if errors:
        mesh = error_to_mesh(occ, grid, shade=False)
    else:
        mesh = occupancy_to_mesh(occ, grid, dim_mask=mask, shade=False)
    if with_ego:
        mesh += ego_box_mesh()
    return mesh


def export_mesh(occ: np.ndarray, path: str, grid: OccGrid = DEFAULT_GRID,
                mask: Optional[np.ndarray] = None, with_ego: bool = False,
                errors: bool = False) -> str:
    """Write an occupancy grid as a coloured triangle mesh (binary PLY or OBJ with
    vertex colours) atomically with ``open3d.io.write_triangle_mesh``.

    Args:
        occ: ``(X, Y, Z)`` integer labels (error codes with ``errors``).
        path: ``.ply`` or ``.obj``; parent folders are created.
        mask: optional camera-visibility mask; 0 voxels get pale colours.
        with_ego: add the ego box.

    Returns:
        ``path``.

    Raises:
        ValueError: another extension. RuntimeError: open3d could not write the file.
    """
    o3d = require_open3d()
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_EXTS:
        raise ValueError(f'{path}: mesh extension must be one of {MESH_EXTS}')
    mesh = occupancy_mesh(occ, grid, mask, with_ego, errors)
    with atomic_path(path) as tmp:
        if not o3d.io.write_triangle_mesh(tmp, mesh, write_ascii=False, write_vertex_colors=True,
                                          write_triangle_uvs=False):
            raise RuntimeError(f'open3d could not write the mesh {path}')
    os.chmod(path, 0o644)
    return path
