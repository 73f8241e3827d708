"""Ego-pose and trajectory maths: the one home of pose conventions, the ego vehicle
and the frame step.

Conventions (nuScenes): a pose ``ego2global`` is a ``(4, 4) float64`` homogeneous
matrix mapping ego-frame points (metres) to the global frame; quaternions are
``(w, x, y, z)`` as in nuScenes records and pyquaternion. A planar pose is
``(x, y, yaw)``: metres and radians, yaw counter-clockwise about +z. A planar pose
``P`` of frame ``b`` given in frame ``a`` maps points of ``b`` to ``a``:
``p_a = R(yaw) p_b + (x, y)`` (``apply_se2``); ``compose_se2(P_ab, P_bc) = P_ac`` and
``relative_se2(P_ab, P_ac) = P_bc`` (the SE(2) group law, e.g. Lynch & Park, "Modern
Robotics", 3.2; Barfoot, "State Estimation for Robotics", 7.1).

The planar functions (``wrap_angle``, ``relative_se2``, ``compose_se2``,
``apply_se2``) take numpy arrays (computed in ``float64``) or torch tensors (computed in
their dtype and device, differentiable) with any leading batch dimensions that
broadcast; the SE(3) ones (``pose_matrix``, ``relative_pose``, ``transform_points``) are
numpy ``float64``.

nuScenes stores ego poses projected to the ground plane with a residual pitch of a
few degrees (see ``../shared/data/README.md``); chaining full SE(3) poses over tens
of metres tilts the road by metres. ``planar`` drops z, roll and pitch and keeps
x, y and yaw, which is what occwm uses to relate frames of a sequence.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from pyquaternion import Quaternion

# Seconds between consecutive frames: nuScenes keyframes (2 Hz), the rate of every
# occupancy sequence, trajectory and forecast in occwm.
FRAME_DT = 0.5

# The ego vehicle, the one definition (metres). nuScenes drives a Renault Zoe (Renault
# data: length 4,084 mm, width 1,730 mm without mirrors, height 1,562 mm, wheelbase
# 2,588 mm, front / rear overhang about 0.84 / 0.66 m). The nuScenes ego frame has its
# origin at the centre of the REAR AXLE on the ground (devkit, ``ego_pose``), so the body
# spans x in [-EGO_REAR, EGO_LENGTH - EGO_REAR] = [-0.657, 3.427], |y| <= EGO_WIDTH / 2,
# z in [0, EGO_HEIGHT].
EGO_LENGTH = 4.084
EGO_WIDTH = 1.730
EGO_HEIGHT = 1.56
EGO_REAR = 0.657                    # rear bumper behind the rear axle (the ego origin)
EGO_SIZE: Tuple[float, float, float] = (EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT)


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


def record_pose_matrix(record: Mapping, name: str = 'pose record') -> np.ndarray:
    """``(4, 4) float64`` transform of a nuScenes pose record (``ego_pose``,
    ``calibrated_sensor``): its ``translation`` ``(3,)`` metres and ``rotation`` ``(4,)``
    w, x, y, z, the quaternion normalised first (``pose_matrix``).

    Raises:
        ValueError naming ``name``: not a mapping with both keys, wrong shapes, non-finite
        values or a zero quaternion.
    """
    keys = ('translation', 'rotation')
    if not (isinstance(record, Mapping) and all(k in record for k in keys)):
        got = sorted(record) if isinstance(record, Mapping) else type(record).__name__
        raise ValueError(f'{name}: expected a nuScenes record with keys {keys}, got {got}')
    t = np.asarray(record['translation'], np.float64)
    q = np.asarray(record['rotation'], np.float64)
    if t.shape != (3,) or q.shape != (4,):
        raise ValueError(f'{name}: translation must be (3,), rotation (4,) w, x, y, z; '
                         f'got {t.shape} and {q.shape}')
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))) or np.linalg.norm(q) < 1e-6:
        raise ValueError(f'{name}: non-finite or zero pose (translation {t}, rotation {q})')
    return pose_matrix(t, q / np.linalg.norm(q))


def matrix_to_quaternion(T: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """The ``(4,) float64`` quaternion w, x, y, z (``w >= 0``) of the rotation block of a
    ``(4, 4)`` or ``(3, 3)`` matrix: the inverse of ``pose_matrix``'s rotation.

    The block is first projected to the nearest rotation (SVD: ``U V^T``), so matrices
    rounded to float32 (mmdet3d info pkls) convert; pyquaternion does the conversion.

    Raises:
        ValueError: a non-finite block, or one that is not a rotation within ``tol`` (a
        singular value off 1 by more than ``tol``, or det <= 0: a reflection); the
        message gives the singular values and the determinant.
    """
    R = np.asarray(T, np.float64)[:3, :3]
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError(f'not a finite rotation block: shape {R.shape}')
    U, S, Vt = np.linalg.svd(R)
    det = float(np.linalg.det(R))
    if det <= 0 or np.abs(S - 1).max() > tol:
        raise ValueError(f'rotation block is not a rotation (singular values '
                         f'{np.round(S, 6).tolist()}, det {det:.3g})')
    q = Quaternion(matrix=U @ Vt).elements                              # (4,) w, x, y, z
    return np.asarray(q if q[0] >= 0 else -q, np.float64)


def yaw_quaternion(yaw: float) -> Tuple[float, float, float, float]:
    """The ``(w, x, y, z)`` quaternion of a rotation by ``yaw`` radians about +z
    (``(cos(yaw / 2), 0, 0, sin(yaw / 2))``), as stored in nuScenes records."""
    return (float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2)))


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


def _lib(x):
    """``torch`` for tensors, ``numpy`` otherwise."""
    return torch if isinstance(x, torch.Tensor) else np


def _as_poses(*arrays):
    """Numpy inputs as ``float64`` arrays; with a tensor among them, all as tensors of
    its dtype and device."""
    t = next((a for a in arrays if isinstance(a, torch.Tensor)), None)
    if t is None:
        return tuple(np.asarray(a, np.float64) for a in arrays)
    return tuple(torch.as_tensor(a, dtype=t.dtype, device=t.device) for a in arrays)


def relative_se2(ref, poses):
    """``inv(ref) o poses``: planar poses re-expressed in the frame of pose ``ref``.

    ``P_bc = inv(P_ab) o P_ac``: ``x, y = R(-yaw_ref) (p - p_ref)``, ``yaw = yaw - yaw_ref``.

    Args:
        ref: ``(..., 3)`` x m, y m, yaw rad of the new reference frame.
        poses: ``(..., 3)`` poses in the same frame as ``ref`` (broadcast against it).

    Returns:
        ``(..., 3)`` poses in the frame of ``ref`` (``ref`` itself -> zeros), yaw wrapped
        to ``[-pi, pi)``; numpy ``float64``, or a tensor of the input's dtype.
    """
    ref, poses = _as_poses(ref, poses)
    lib = _lib(ref)
    c, s = lib.cos(ref[..., 2]), lib.sin(ref[..., 2])
    dx, dy = poses[..., 0] - ref[..., 0], poses[..., 1] - ref[..., 1]
    return lib.stack([c * dx + s * dy, -s * dx + c * dy,
                      wrap_angle(poses[..., 2] - ref[..., 2])], -1)


def compose_se2(a, b):
    """``a o b``: pose ``b`` given in the frame of pose ``a``, expressed in ``a``'s parent
    frame (the inverse of ``relative_se2``: ``relative_se2(a, compose_se2(a, b)) == b``).

    Args:
        a, b: ``(..., 3)`` x m, y m, yaw rad (broadcast).

    Returns:
        ``(..., 3)`` with yaw wrapped to ``[-pi, pi)``; numpy ``float64`` or a tensor.
    """
    a, b = _as_poses(a, b)
    xy = apply_se2(b[..., :2], a)                                      # (..., 2) R(yaw_a) b + a
    yaw = wrap_angle(a[..., 2] + b[..., 2])
    return _lib(a).concatenate([xy, yaw[..., None]], -1)  # both (...) broadcast shapes


def apply_se2(points, pose, inverse: bool = False):
    """Map points between the frame of a planar pose and its parent frame.

    ``inverse=False``: points given in the frame of ``pose`` to the parent frame,
    ``p' = R(yaw) p + (x, y)``; ``inverse=True``: parent-frame points into the frame of
    ``pose``, ``p' = R(-yaw) (p - (x, y))`` (e.g. into a box's or another ego's frame).

    Args:
        points: ``(..., 2+)`` metres; columns after x, y (e.g. z) are returned unchanged.
        pose: ``(..., 3)`` x m, y m, yaw rad, broadcast against ``points[..., 0]``.
        inverse: see above.

    Returns:
        ``(..., 2+)`` points (the broadcast shape); numpy ``float64`` or a tensor.
    """
    points, pose = _as_poses(points, pose)
    lib = _lib(points)
    c, s = lib.cos(pose[..., 2]), lib.sin(pose[..., 2])
    px, py = points[..., 0], points[..., 1]
    if inverse:
        dx, dy = px - pose[..., 0], py - pose[..., 1]
        xy = [c * dx + s * dy, -s * dx + c * dy]
    else:
        xy = [c * px - s * py + pose[..., 0], s * px + c * py + pose[..., 1]]
    out = lib.stack(xy, -1)
    if points.shape[-1] == 2:
        return out
    rest = points[..., 2:]
    shape = tuple(out.shape[:-1]) + tuple(rest.shape[-1:])
    return lib.concatenate([out, lib.broadcast_to(rest, shape)], -1)


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
    """Wrap radians to ``[-pi, pi)`` (numpy array or tensor, same shape)."""
    if isinstance(a, torch.Tensor):
        return torch.remainder(a + torch.pi, 2 * torch.pi) - torch.pi
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


class PathFrame:
    """Frenet coordinates along a planar path: arc length ``s`` and lateral offset ``d``
    (metres, left of the heading positive), e.g. along the ego's past and future poses.

    The path is the polyline through the poses' positions, continued ``extend`` metres
    beyond each end along a circle of the curvature that end shows (yaw change over the
    arc length of its last two steps, clipped to ``max_curvature``; straight where the
    end moves less than 3 m), sampled every metre. Its heading at a vertex is the mean of
    the headings of the two chords there, linear in ``s`` between vertices, so points
    beside a curve move smoothly. A point ``(s, d)`` is ``c(s) + d n(s)``, ``c`` the
    path and ``n`` its left normal (the Frenet frame of lane-following motion models,
    e.g. Werling et al., "Optimal trajectory generation for dynamic street scenarios in
    a Frenét frame", ICRA 2010).

    Args:
        poses: ``(N, 3)`` planar poses (x m, y m, yaw rad) in path order, ``N >= 1``.
        extend: metres.
        max_curvature: 1/m.

    Attributes:
        pose_s: ``(N,) float64`` metres, the arc length of each pose (non-decreasing).
        known: ``(s_lo, s_hi)`` metres, the part between the first and last pose.
    """

    def __init__(self, poses, extend: float = 100.0, max_curvature: float = 0.02):
        poses = np.asarray(poses, np.float64).reshape(-1, 3)
        xy = poses[:, :2]
        seg_len = np.linalg.norm(np.diff(xy, axis=0), axis=1)  # (N - 1,)

        def end_curvature(i: int, j: int) -> float:  # over the steps between poses i < j
            ds = float(seg_len[i:j].sum())
            if ds < 3.0:
                return 0.0
            k = float(wrap_angle(poses[j, 2] - poses[i, 2])) / ds
            return float(np.clip(k, -max_curvature, max_curvature))

        def arc(p, yaw, k, sign):  # (M, 2) points 1 m apart along a circle from p
            u = sign * np.arange(1.0, extend + 1.0)
            if abs(k) < 1e-9:
                return p + np.outer(u, [np.cos(yaw), np.sin(yaw)])
            h = yaw + k * u
            return p + np.stack([np.sin(h) - np.sin(yaw), np.cos(yaw) - np.cos(h)], 1) / k

        N = len(poses)
        k0 = end_curvature(0, min(2, N - 1)) if N > 1 else 0.0
        k1 = end_curvature(max(N - 3, 0), N - 1) if N > 1 else 0.0
        back = arc(xy[0], poses[0, 2], k0, -1.0)[::-1]
        pts = np.concatenate([back, xy, arc(xy[-1], poses[-1, 2], k1, 1.0)])
        d = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        keep = np.concatenate([[True], d > 1e-6])  # drop repeated points (a standing ego)
        vertex = np.cumsum(keep) - 1  # (len(pts),) the vertex each point became
        self.points = pts[keep]  # (M, 2) vertices
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.linalg.norm(seg, axis=1)  # (M - 1,)
        self.tangent = seg / self.seg_len[:, None]  # (M - 1, 2) chord directions
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])  # (M,)
        chord = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))  # (M - 1,)
        self.vertex_heading = np.concatenate([chord[:1], 0.5 * (chord[1:] + chord[:-1]),
                                              chord[-1:]])  # (M,)
        self.pose_s = self.s[vertex[len(back):len(back) + N]]  # (N,)
        self.known = (float(self.pose_s[0]), float(self.pose_s[-1]))

    def heading(self, s) -> np.ndarray:
        """Path heading (rad, unwrapped) at arc lengths ``s`` ``(...)``."""
        return np.interp(s, self.s, self.vertex_heading)

    def project(self, xy) -> Tuple[float, float, float]:
        """``(s, d, heading)`` of the point ``xy`` ``(2,)`` metres: its foot on the nearest
        of the two chords beside the nearest vertex, and the path heading (rad) there."""
        xy = np.asarray(xy, np.float64)
        v = int(np.argmin(np.linalg.norm(self.points - xy, axis=1)))
        best = None
        for i in (v - 1, v):
            if 0 <= i < len(self.tangent):
                r = xy - self.points[i]
                f = float(np.clip(r @ self.tangent[i], 0.0, self.seg_len[i]))
                dist = float(np.linalg.norm(r - f * self.tangent[i]))
                if best is None or dist < best[0]:
                    best = (dist, float(self.s[i] + f))
        s = best[1]
        h = float(self.heading(s))
        c, _ = self.at(np.array(s))
        r = xy - c
        return s, float(np.cos(h) * r[1] - np.sin(h) * r[0]), h

    def at(self, s, d=0.0) -> Tuple[np.ndarray, np.ndarray]:
        """Points ``(..., 2)`` metres and path headings ``(...)`` rad at arc lengths ``s``
        ``(...)`` and lateral offsets ``d`` (clipped to the path's ends)."""
        s = np.clip(np.asarray(s, np.float64), 0.0, self.s[-1])
        i = np.clip(np.searchsorted(self.s, s, side='right') - 1, 0, len(self.tangent) - 1)
        c = self.points[i] + (s - self.s[i])[..., None] * self.tangent[i]
        h = self.heading(s)
        n = np.stack([-np.sin(h), np.cos(h)], -1)
        return c + np.asarray(d, np.float64)[..., None] * n, h


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``(4, 4)`` ``T`` to the x, y, z columns of ``(N, 3+)`` points; other columns are kept."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[:, :3] = points[:, :3] @ T[:3, :3].T + T[:3, 3]
    return out


# ------------------------------------------------------------- physical plausibility
# Bounds of what a road vehicle's ego pose can do, for the checks of input poses,
# timestamps and planned trajectories (``implausible_motion``, ``timestamp_unit_mistake``).
# They are far above anything in a driving data set, so real sequences pass with a wide
# margin, and far below what a unit, frame or file mistake gives (a pose jump to another
# map, millimetres read as metres, timestamps in the wrong unit).
#
# Speed: 70 m/s = 252 km/h. Public-road data sets are recorded in city and suburban
# traffic (nuScenes, Lyft, PandaSet, Waymo, Argoverse: below about 30 m/s); the highest
# posted limits are 130-140 km/h, and cars on unrestricted German motorways are mostly
# limited electronically to 250 km/h.
# Acceleration: 15 m/s^2 (about 1.5 g), of the position's second derivative (braking,
# speeding up and cornering together). A car accelerates through its tyres, and the
# tyre-road friction limits the horizontal acceleration to mu g (the friction circle;
# Gillespie, "Fundamentals of Vehicle Dynamics", SAE 1992, ch. 3; Pacejka, "Tire and
# Vehicle Dynamics", 3rd ed. 2012, ch. 1), with a peak mu of about 1.0-1.2 for road tyres
# on dry asphalt: at most about 12 m/s^2; emergency braking of passenger cars measures
# 8-10 m/s^2. 15 m/s^2 leaves a margin for pose noise.
MAX_SPEED = 70.0        # m/s
MAX_ACCEL = 15.0        # m/s^2
# Accelerations are differences of the speeds of consecutive steps divided by at least
# this many seconds: at 10-20 Hz a few centimetres of pose noise would otherwise read as
# tens of m/s^2 (at 2 Hz, the rate of occwm's sequences, the time between steps is 0.5 s).
ACCEL_MIN_DT = 0.4      # s
# Seconds per unit of the time units a timestamp may come in.
TIME_UNITS = {'s': 1.0, 'ms': 1e-3, 'µs': 1e-6, 'ns': 1e-9}
# The median time between frames of a driving sequence: from 100 Hz to 0.1 Hz (LiDAR
# sweeps run at 10-20 Hz, keyframes at 2 Hz); outside it the unit is wrong.
FRAME_PERIOD_RANGE = (0.01, 10.0)  # s


def implausible_motion(positions, times, max_speed: float = MAX_SPEED,
                       max_accel: float = MAX_ACCEL) -> Optional[Tuple[int, str]]:
    """The first place where a pose sequence moves as no road vehicle can, or ``None``.

    Args:
        positions: ``(L, D)`` metres, ``D`` = 2 or 3: ego positions (the translation of
            ``ego2global``, or x, y of a planar trajectory) in one fixed frame.
        times: ``(L,)`` seconds, strictly increasing (checked by the callers first).
        max_speed: m/s (``MAX_SPEED``).
        max_accel: m/s^2 (``MAX_ACCEL``).

    Speed of step ``k``: ``|p[k+1] - p[k]| / (t[k+1] - t[k])`` (the chord: never above
    the true mean speed). Acceleration at frame ``k``: ``|v_k - v_{k-1}|`` of the step
    velocities before and after it, over the time between the steps' midpoints but at
    least ``ACCEL_MIN_DT``. A speed fault is reported before any acceleration fault (a
    pose jump makes both).

    Returns:
        ``(frame index, text)``: the pose that ends the fast step (speed) or lies
        between the two steps (acceleration), and a one-line description with the value
        and the bound (the caller names the pose), e.g. ``speed 2e+09 m/s over the 0.5 s
        before this pose, above 70 m/s (252 km/h): faster than any road vehicle``;
        ``None`` when every step is within the bounds.
    """
    p = np.asarray(positions, np.float64)
    t = np.asarray(times, np.float64)
    if len(p) < 2:
        return None
    dt = np.diff(t)                                                     # (L - 1,)
    vel = np.diff(p, axis=0) / dt[:, None]                              # (L - 1, D) m/s
    speed = np.linalg.norm(vel, axis=1)
    fast = np.flatnonzero(~(speed <= max_speed))                        # nan counts too
    accel = np.zeros(0)
    if len(vel) >= 2:
        mid = 0.5 * (t[1:] + t[:-1])                                    # (L - 1,) step midpoints
        span = np.maximum(np.diff(mid), ACCEL_MIN_DT)                   # (L - 2,)
        accel = np.linalg.norm(np.diff(vel, axis=0), axis=1) / span     # (L - 2,) m/s^2
    hard = np.flatnonzero(~(accel <= max_accel))
    if len(fast):                             # first: a jump also gives two accelerations
        k = fast[0] + 1                                                 # pose after the step
        return k, (f'speed {speed[k - 1]:.3g} m/s over the {dt[k - 1]:.3g} s before this '
                   f'pose, above {max_speed:g} m/s ({max_speed * 3.6:.0f} km/h): faster than '
                   f'any road vehicle')
    if not len(hard):
        return None
    k = hard[0] + 1                                                     # pose between steps
    return k, (f'acceleration {accel[k - 1]:.3g} m/s^2 (speed {speed[k - 1]:.3g} m/s before '
               f'this pose, {speed[k]:.3g} m/s after it), above {max_accel:g} m/s^2 '
               f'({max_accel / 9.81:.1f} g): more than tyre friction allows any road vehicle')


def timestamp_unit_mistake(timestamps, unit: str) -> Optional[str]:
    """What is wrong with the unit of a sequence's timestamps, or ``None``.

    Args:
        timestamps: ``(L,)`` numbers as stored (any order; duplicates are ignored here).
        unit: the unit they should be in, a key of ``TIME_UNITS`` (``'s'``, ``'µs'``).

    The median time between consecutive frames must lie in ``FRAME_PERIOD_RANGE``; if
    not, the unit that would put it closest to ``FRAME_DT`` (0.5 s) is named.

    Returns:
        One line, e.g. ``median frame period 5e+05 s (1e+06 x the expected ~0.5 s): the
        timestamps are probably in µs, want s (multiply by 1e-06)``; ``None`` when the
        period is plausible or there are fewer than two distinct timestamps.
    """
    v = np.unique(np.asarray(timestamps, np.float64))                   # sorted, distinct
    if len(v) < 2:
        return None
    raw = float(np.median(np.diff(v)))                                  # in the stored unit
    period = raw * TIME_UNITS[unit]                                     # s if unit is right
    lo, hi = FRAME_PERIOD_RANGE
    if lo <= period <= hi:
        return None
    guess = min(TIME_UNITS, key=lambda u: abs(np.log(raw * TIME_UNITS[u] / FRAME_DT)))
    head = (f'median frame period {period:.3g} s ({period / FRAME_DT:.2g} x the expected '
            f'~{FRAME_DT:g} s)')
    if guess == unit:
        return f'{head}: not a driving sequence (frames {lo:g}-{hi:g} s apart)'
    return (f'{head}: the timestamps are probably in {guess}, want {unit} (multiply by '
            f'{TIME_UNITS[guess] / TIME_UNITS[unit]:g})')
