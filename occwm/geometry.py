"""Ego-pose and trajectory maths.

Conventions (nuScenes): a pose ``ego2global`` is a ``(4, 4) float64`` homogeneous
matrix mapping ego-frame points (metres) to the global frame; quaternions are
``(w, x, y, z)`` as in nuScenes records and pyquaternion. A planar pose is
``(x, y, yaw)``: metres and radians, yaw counter-clockwise about +z.

nuScenes stores ego poses projected to the ground plane with a residual pitch of a
few degrees (see ``../shared/data/README.md``); chaining full SE(3) poses over tens
of metres tilts the road by metres. ``planar`` drops z, roll and pitch and keeps
x, y and yaw, which is what occwm uses to relate frames of a sequence.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pyquaternion import Quaternion


# The nuScenes ego frame has its origin on the rear axle; the ego's rear bumper lies this
# far behind it (metres; Renault Zoe, see occwm.scenarios.scoring).
EGO_REAR = 0.657


def pose_matrix(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> np.ndarray:
    """nuScenes record (translation metres, rotation quaternion w, x, y, z) to a
    ``(4, 4) float64`` homogeneous transform. Raises ``ValueError`` on non-finite input."""
    t = np.asarray(translation, dtype=np.float64)
    q = np.asarray(rotation_wxyz, dtype=np.float64)
    if t.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise ValueError(f'bad pose: translation {translation}, rotation {rotation_wxyz}')
    T = np.eye(4)
    T[:3, :3] = Quaternion(q).rotation_matrix
    T[:3, 3] = t
    return T


def yaw_of(T: np.ndarray) -> float:
    """Yaw in radians of the rotation of ``(4, 4)`` or ``(3, 3)`` ``T`` (x axis heading in the xy plane)."""
    return float(np.arctan2(T[1, 0], T[0, 0]))


def planar(T: np.ndarray) -> np.ndarray:
    """Keep x, y and yaw of a ``(4, 4)`` pose: returns the ``(4, 4)`` pose with z = 0, no roll or pitch."""
    return se2_to_matrix(T[0, 3], T[1, 3], yaw_of(T))


def se2_to_matrix(x: float, y: float, yaw: float) -> np.ndarray:
    """Planar pose ``(x, y, yaw)`` (metres, radians) to a ``(4, 4) float64`` transform."""
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    T[0, 3], T[1, 3] = x, y
    return T


def matrix_to_se2(T: np.ndarray) -> np.ndarray:
    """``(4, 4)`` transform to ``(3,) float64`` ``(x, y, yaw)``."""
    return np.array([T[0, 3], T[1, 3], yaw_of(T)])


def relative_pose(ego2global_ref: np.ndarray, ego2global_other: np.ndarray) -> np.ndarray:
    """``(4, 4)`` transform from the ``other`` ego frame to the ``ref`` ego frame:
    ``inv(ego2global_ref) @ ego2global_other``."""
    return np.linalg.inv(ego2global_ref) @ ego2global_other


def relative_se2(ref: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """``inv(ref) o poses``: ``(..., 3)`` planar poses (x m, y m, yaw rad) re-expressed in
    the frame of pose ``ref`` ``(3,)`` or ``(..., 3)``; yaw wrapped to ``[-pi, pi)``."""
    ref, poses = np.asarray(ref, np.float64), np.asarray(poses, np.float64)
    c, s = np.cos(ref[..., 2]), np.sin(ref[..., 2])
    dx, dy = poses[..., 0] - ref[..., 0], poses[..., 1] - ref[..., 1]
    return np.stack([c * dx + s * dy, -s * dx + c * dy,
                     wrap_angle(poses[..., 2] - ref[..., 2])], -1)


def trajectory_in_frame(ego2globals: np.ndarray, ref: int) -> np.ndarray:
    """Planar ego trajectory of a sequence in the ego frame of frame ``ref``.

    Args:
        ego2globals: ``(T, 4, 4) float64`` ego -> global poses.
        ref: index of the reference (present) frame.

    Returns:
        ``(T, 3) float64`` ``(x, y, yaw)`` of each frame's ego origin and heading in
        the planar ego frame of ``ref`` (metres, radians; the ``ref`` row is zeros).
    """
    P = np.asarray(ego2globals, np.float64)
    se2 = np.stack([P[:, 0, 3], P[:, 1, 3], np.arctan2(P[:, 1, 0], P[:, 0, 0])], 1)  # (T, 3)
    return relative_se2(se2[ref], se2)


def wrap_angle(a):
    """Wrap radians to ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``(4, 4)`` ``T`` to the x, y, z columns of ``(N, 3+)`` points; other columns are kept."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :3] = points[:, :3] @ T[:3, :3].T + T[:3, 3]
    return out
