"""Ego trajectories for scenario generation: the file schema, a kinematic bicycle model
and the built-in trajectory generators (planar pose maths: ``occwm.geometry``).

Trajectory schema (what a planner hands to occwm)
-------------------------------------------------
A trajectory is a ``(T, 3) float`` array of future ego poses ``x, y, yaw``: metres,
metres, radians (counter-clockwise about +z), in the PRESENT ego frame (nuScenes ego
frame: origin at the centre of the rear axle on the ground, x forward, y left), sampled
at 2 Hz (``occwm.geometry.FRAME_DT``) with the first row at +0.5 s and row ``i`` at
``0.5 * (i + 1)`` s. The present
pose (0, 0, 0) is not part of it. On disk:

* JSON: one object mapping trajectory names to lists of ``[x, y, yaw]``::

      {"keep_lane": [[4.1, 0.0, 0.0], [8.2, 0.0, 0.0], ...], "nudge_left": [...]}

* npz: one ``(T, 3)`` array per trajectory name (``np.savez(path, keep_lane=arr, ...)``).

All trajectories of a file have the same ``T`` (the horizon, frames); it may exceed the
model's trained 6 frames (the rollout extends autoregressively).

Kinematic bicycle model (Rajamani, "Vehicle Dynamics and Control", 2nd ed., sec. 2.2,
with the reference point at the rear axle): ``x' = v cos(yaw)``, ``y' = v sin(yaw)``,
``yaw' = v * kappa`` with curvature ``kappa = tan(steer) / wheelbase``, ``v' = a``.
Limits (``KinematicLimits``): acceleration, deceleration, speed, curvature (turning
radius), curvature rate (steering rate) and lateral acceleration ``v**2 |kappa|``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from occwm.geometry import FRAME_DT, implausible_motion, relative_se2, wrap_angle

SUBSTEPS = 10  # integration substeps per row (0.05 s)


# ----------------------------------------------------------------------------- files
def check_trajectory(traj, name: str, source: str = '<trajectories>',
                     horizon: Optional[int] = None) -> np.ndarray:
    """Validate one trajectory and return it as ``(T, 3) float32``.

    Raises:
        ValueError: not a ``(T, 3)`` numeric array with ``T >= 1``, non-finite values,
            ``T != horizon``, or a motion no road vehicle makes (from the present origin
            through the rows at ``FRAME_DT``: a speed above ``MAX_SPEED`` 70 m/s or an
            acceleration above ``MAX_ACCEL`` 15 m/s^2, ``occwm.geometry``); the message
            names ``source``, ``name`` and the row.
    """
    where = f'{source}: trajectory {name!r}'
    try:
        arr = np.asarray(traj, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{where} is not a list of [x, y, yaw] numbers ({e})') from e
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
        raise ValueError(f'{where} has shape {arr.shape}, want (T, 3) rows of [x, y, yaw] '
                         f'(metres, metres, radians) with T >= 1')
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ValueError(f'{where} has a non-finite value at row {bad} ({arr[bad].tolist()})')
    if horizon is not None and arr.shape[0] != horizon:
        raise ValueError(f'{where} has {arr.shape[0]} poses, want the horizon of {horizon} '
                         f'(2 Hz, first at +0.5 s)')
    path = np.concatenate([np.zeros((1, 2)), arr[:, :2]])               # (T + 1, 2), present first
    found = implausible_motion(path, FRAME_DT * np.arange(len(path)))
    if found:
        k, text = found                                                 # pose k = row k - 1
        raise ValueError(f'{where}: row {k - 1} (+{k * FRAME_DT:g} s): {text} (rows are x, y '
                         f'in metres, present ego frame, 2 Hz)')
    return arr.astype(np.float32)


def check_trajectories(trajs: Dict[str, object], source: str = '<trajectories>',
                       horizon: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Validate a ``{name: (T, 3)}`` mapping (see the module docstring); all ``T`` equal.

    Raises:
        ValueError: empty, a bad name, a bad trajectory (``check_trajectory``) or mixed
            lengths; the message names ``source``.
    """
    if not isinstance(trajs, dict) or not trajs:
        raise ValueError(f'{source}: want a non-empty mapping of trajectory names to lists of '
                         f'[x, y, yaw], got {type(trajs).__name__}'
                         f'{" (empty)" if isinstance(trajs, dict) else ""}')
    out = {}
    for name, traj in trajs.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'{source}: trajectory names must be non-empty strings, got {name!r}')
        out[name] = check_trajectory(traj, name, source, horizon)
    lengths = {n: len(t) for n, t in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f'{source}: trajectories have different lengths {lengths}; give one '
                         f'horizon for all')
    return out


def load_trajectories(path: str, horizon: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Read a trajectory file (JSON object or npz, see the module docstring).

    Returns:
        ``{name: (T, 3) float32}`` in file order.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: unreadable or malformed; the message names ``path`` and the fault.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'trajectory file not found: {path}')
    if path.endswith('.npz'):
        from occwm.io import read_npz
        raw = read_npz(path)
    else:
        try:
            with open(path) as f:
                raw = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f'{path}: not valid JSON ({e}); want {{"name": [[x, y, yaw], '
                             f'...], ...}}') from e
    return check_trajectories(raw, path, horizon)


def save_trajectories(path: str, trajs: Dict[str, np.ndarray]) -> None:
    """Write ``{name: (T, 3)}`` as the JSON schema, atomically."""
    from occwm.io import atomic_path
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        json.dump({k: np.round(np.asarray(v, np.float64), 4).tolist() for k, v in trajs.items()},
                  f, indent=1)


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class KinematicLimits:
    """Limits of the kinematic bicycle model (defaults: a small passenger car, the
    nuScenes Renault Zoe: wheelbase 2.588 m, turning circle about 10.6 m)."""
    max_accel: float = 3.0            # m/s^2
    max_decel: float = 8.0            # m/s^2 (emergency braking, about 0.8 g)
    max_speed: float = 20.0           # m/s; no reversing (speed >= 0)
    max_curvature: float = 0.2        # 1/m (turning radius 5 m at the rear axle)
    max_curvature_rate: float = 0.2   # 1/(m s), the steering-rate limit
    max_lateral_accel: float = 4.0    # m/s^2, v^2 |kappa|


@dataclass
class EgoState:
    """The ego's motion at the present: speed m/s (>= 0), curvature 1/m, acceleration m/s^2."""
    speed: float = 0.0
    curvature: float = 0.0
    accel: float = 0.0


def estimate_ego_state(past_traj: np.ndarray, dt: float = FRAME_DT,
                       limits: KinematicLimits = KinematicLimits()) -> EgoState:
    """The present speed, curvature and acceleration from the past ego poses.

    Args:
        past_traj: ``(P, 3)`` past poses (x m, y m, yaw rad) in the present ego frame,
            oldest first, the last one the present (zeros); ``P >= 1``.
        dt: seconds between poses.

    Returns:
        speed = the arc length of the last step (chord and yaw change, constant
        curvature) / ``dt`` (0 unless moving forward),
        yaw rate = the last yaw change / ``dt``, curvature = yaw rate / speed (0 below
        0.5 m/s), acceleration = the change of the last two speeds / ``dt``, each clipped
        to ``limits``. With ``P == 1``: standing still.
    """
    p = np.asarray(past_traj, np.float64)
    if len(p) < 2:
        return EgoState()

    def speed(i):  # arc length of the step ending at pose i (constant curvature) / dt
        d = relative_se2(p[i], p[i - 1])  # the previous pose in frame i
        if d[0] >= 0:  # not moving forward
            return 0.0
        half = 0.5 * abs(float(d[2]))
        return float(np.hypot(d[0], d[1])) * (half / np.sin(half) if half > 1e-9 else 1.0) / dt

    v = speed(len(p) - 1)
    yaw_rate = float(wrap_angle(p[-1, 2] - p[-2, 2])) / dt
    kappa = yaw_rate / v if v > 0.5 else 0.0
    a = (v - speed(len(p) - 2)) / dt if len(p) >= 3 else 0.0
    return EgoState(speed=float(min(v, limits.max_speed)),
                    curvature=float(np.clip(kappa, -limits.max_curvature, limits.max_curvature)),
                    accel=float(np.clip(a, -limits.max_decel, limits.max_accel)))


@dataclass
class BicycleRollout:
    """A simulated trajectory: ``poses`` ``(T, 3)`` at 2 Hz (first at +dt) and the
    substep states ``speed``, ``accel``, ``curvature`` ``(T * SUBSTEPS,)`` actually
    applied (after the limits)."""
    poses: np.ndarray
    speed: np.ndarray
    accel: np.ndarray
    curvature: np.ndarray


def simulate_bicycle(state: EgoState, accel_cmd: Callable, curvature_cmd: Callable,
                     horizon: int, dt: float = FRAME_DT,
                     limits: KinematicLimits = KinematicLimits()) -> BicycleRollout:
    """Integrate the kinematic bicycle (module docstring) from the present pose (origin).

    Args:
        state: the present speed and curvature.
        accel_cmd, curvature_cmd: ``f(t s, s m) -> float`` commands (t since the
            present, s the distance travelled); both are clipped to ``limits``.
        horizon: number of 2 Hz poses.

    Each substep (``dt / SUBSTEPS``): the curvature moves towards the command, clipped
    to ``max_curvature`` and ``max_lateral_accel / v**2`` and rate-limited; then the
    acceleration is clipped to ``[-max_decel, max_accel]``, the speed to
    ``[0, max_speed]`` and to ``sqrt(max_lateral_accel / |kappa|)`` (so ``v**2 |kappa|``
    never exceeds the limit); the pose advances along the arc (midpoint rule).
    """
    h = dt / SUBSTEPS
    n = horizon * SUBSTEPS
    x = y = yaw = s = 0.0
    v, kappa = state.speed, state.curvature
    poses = np.zeros((horizon, 3))
    speeds, accels, kappas = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t = i * h
        k_lim = min(limits.max_curvature, limits.max_lateral_accel / max(v * v, 1e-9))
        k_target = float(np.clip(curvature_cmd(t, s), -k_lim, k_lim))
        kappa += float(np.clip(k_target - kappa, -limits.max_curvature_rate * h,
                               limits.max_curvature_rate * h))
        a = float(np.clip(accel_cmd(t, s), -limits.max_decel, limits.max_accel))
        v_new = min(max(v + a * h, 0.0), limits.max_speed)
        if abs(kappa) > 1e-9:
            v_new = min(v_new, np.sqrt(limits.max_lateral_accel / abs(kappa)))
        ds = 0.5 * (v + v_new) * h
        dyaw = kappa * ds
        x += ds * np.cos(yaw + 0.5 * dyaw)
        y += ds * np.sin(yaw + 0.5 * dyaw)
        yaw += dyaw
        s += ds
        speeds[i], accels[i], kappas[i] = v_new, (v_new - v) / h, kappa
        v = v_new
        if (i + 1) % SUBSTEPS == 0:
            poses[(i + 1) // SUBSTEPS - 1] = x, y, wrap_angle(yaw)
    return BicycleRollout(poses.astype(np.float32), speeds, accels, kappas)


# ----------------------------------------------------------------------------- generators
LANE_WIDTH = 3.5       # m, a lane change
SWERVE_OFFSET = 2.0    # m, out and back
MANOEUVRE_S = 3.0      # s, duration of a lane change or swerve


def _quintic(u):
    """Smoothstep ``q(u) = 10u^3 - 15u^4 + 6u^5`` on [0, 1] and its second derivative."""
    u = min(max(u, 0.0), 1.0)
    return 10 * u ** 3 - 15 * u ** 4 + 6 * u ** 5, 60 * u - 180 * u ** 2 + 120 * u ** 3


def _lateral(state: EgoState, offset: float, swerve: bool) -> Callable:
    """Curvature command ``kappa(t, s) = kappa_0 + y''(s)`` following a lateral offset
    profile ``y(s)`` (small-angle) over ``MANOEUVRE_S`` seconds at the present speed:
    a quintic lane change by ``offset``, or a swerve out by ``offset`` and back."""
    length = max(state.speed, 1.0) * MANOEUVRE_S  # m covered by the manoeuvre

    def cmd(t, s):
        u = s / length
        if u >= 1.0:
            return state.curvature
        if swerve:  # out over the first half, back over the second
            d2 = 4 * _quintic(2 * u)[1] if u < 0.5 else 4 * _quintic(2 - 2 * u)[1]
        else:
            d2 = _quintic(u)[1]
        return state.curvature + offset * d2 / length ** 2
    return cmd


def builtin_trajectories(past_traj: np.ndarray, horizon: int = 6, num_random: int = 4,
                         seed: int = 0, dt: float = FRAME_DT,
                         limits: KinematicLimits = KinematicLimits()) -> Dict[str, np.ndarray]:
    """The built-in trajectory set, from the ego state estimated on the past poses.

    Args:
        past_traj: ``(P, 3)`` past poses in the present ego frame (``estimate_ego_state``).
        horizon: poses per trajectory (2 Hz, first at +0.5 s).
        num_random: number of random kinematically feasible trajectories.
        seed: seed of the random ones.

    Returns:
        ``{name: (horizon, 3) float32}``: ``keep_lane`` (hold speed and curvature),
        ``brake`` (-2.5 m/s^2), ``accelerate`` (+2 m/s^2), ``stop`` (-6 m/s^2 to a
        standstill), ``lane_change_left`` / ``_right`` (3.5 m in 3 s, quintic),
        ``swerve_left`` / ``_right`` (2 m out and back in 3 s) and ``random_00`` ...
        (``random_feasible``). A standing ego (speed 0) stays put except ``accelerate``.
    """
    st = estimate_ego_state(past_traj, dt, limits)
    hold = lambda t, s: st.curvature  # noqa: E731
    const = lambda a: (lambda t, s: a)  # noqa: E731
    specs = {
        'keep_lane': (const(0.0), hold),
        'brake': (const(-2.5), hold),
        'accelerate': (const(2.0), hold),
        'stop': (const(-6.0), hold),
        'lane_change_left': (const(0.0), _lateral(st, LANE_WIDTH, False)),
        'lane_change_right': (const(0.0), _lateral(st, -LANE_WIDTH, False)),
        'swerve_left': (const(0.0), _lateral(st, SWERVE_OFFSET, True)),
        'swerve_right': (const(0.0), _lateral(st, -SWERVE_OFFSET, True)),
    }
    out = {name: simulate_bicycle(st, a, k, horizon, dt, limits).poses
           for name, (a, k) in specs.items()}
    out.update(random_feasible(st, horizon, num_random, seed, dt, limits))
    return out


def random_feasible(state: EgoState, horizon: int, num: int, seed: int = 0, dt: float = FRAME_DT,
                    limits: KinematicLimits = KinematicLimits()) -> Dict[str, np.ndarray]:
    """``num`` random kinematically feasible trajectories ``random_00``, ``random_01``, ...

    Commands are drawn once per second (seeded ``np.random.default_rng(seed)``): an
    acceleration uniform in ``[-0.6 max_decel, max_accel]`` and a curvature uniform in
    ``+-min(max_curvature, max_lateral_accel / v0**2)``, linearly interpolated; the
    bicycle model (``simulate_bicycle``) enforces every limit.

    Returns:
        ``{name: (horizon, 3) float32}``.
    """
    rng = np.random.default_rng(seed)
    knots = int(np.ceil(horizon * dt)) + 2
    k_lim = min(limits.max_curvature, limits.max_lateral_accel / max(state.speed ** 2, 1.0))
    out = {}
    for i in range(num):
        acc = rng.uniform(-0.6 * limits.max_decel, limits.max_accel, knots)
        kap = rng.uniform(-k_lim, k_lim, knots)
        kap[0] = state.curvature
        tk = np.arange(knots, dtype=np.float64)
        out[f'random_{i:02d}'] = simulate_bicycle(
            state, lambda t, s, a=acc: float(np.interp(t, tk, a)),
            lambda t, s, k=kap: float(np.interp(t, tk, k)), horizon, dt, limits).poses
    return out
