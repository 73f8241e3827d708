"""Critical-scenario search: the sampled futures and the perturbations of a planner's
trajectory that maximise risk, ranked.

Risk of one scored rollout (an occwm heuristic, documented here, in [0, 6])::

    risk = 2 * collision + at_fault_collision
           + offroad
           + clip(1 - min_clearance_m / 2 m, 0, 1)      # closer than 2 m
           + clip(1 - min_ttc_s / ttc_horizon, 0, 1)    # time to collision

A perturbation of a trajectory models tracking error and timing: a lateral offset
growing linearly to ``lateral_m`` at the last pose (along the path normal) and a speed
scale (the path is re-timed: arc length ``s(t) -> scale * s(t)``, extrapolated along the
last heading). The search is a seeded random search (``np.random.default_rng(seed)``)
over ``lateral_m in [-max_lateral, max_lateral]`` and ``scale in [1 - max_speed,
1 + max_speed]``, plus the unperturbed trajectory; every candidate is scored on the same
K futures per sample index (common random numbers, ``rollout.sample_seed``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from occwm.geometry import PathFrame
from occwm.scenarios.rollout import RolloutResult, ScenarioGenerator
from occwm.scenarios.trajectories import check_trajectory
from occwm.window import OccWindow

CLEARANCE_SCALE = 2.0  # m


def risk_score(summary: Dict[str, object], ttc_horizon: float = 3.0) -> float:
    """The risk of one rollout summary (module docstring)."""
    r = 2.0 * bool(summary['collision']) + bool(summary.get('at_fault_collision', False))
    r += bool(summary['offroad'])
    c = summary.get('min_clearance_m')
    r += 0.0 if c is None else float(np.clip(1.0 - c / CLEARANCE_SCALE, 0.0, 1.0))
    t = summary.get('min_ttc_s')
    r += 0.0 if t is None else float(np.clip(1.0 - t / ttc_horizon, 0.0, 1.0))
    return round(r, 4)


def rank_results(results: Sequence[RolloutResult], ttc_horizon: float = 3.0
                 ) -> List[RolloutResult]:
    """Results sorted by ``risk_score`` (highest first; ties: input order); each gets
    ``extra['risk']``."""
    for r in results:
        r.extra['risk'] = risk_score(r.summary, ttc_horizon)
    return sorted(results, key=lambda r: -r.extra['risk'])


def perturb(traj: np.ndarray, lateral_m: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """A perturbed copy of ``traj`` ``(H, 3)`` (module docstring): re-timed by ``scale``
    and shifted ``lateral_m`` (left positive) at the last pose, linearly in time, along
    the path's normal (``occwm.geometry.PathFrame``).

    Returns:
        ``(H, 3) float32``; yaw follows the new path where it moves more than 5 cm per
        step, else the original yaw.
    """
    traj = np.asarray(traj, np.float64)
    H = len(traj)
    pts = np.concatenate([np.zeros((1, 3)), traj])  # (H + 1, 3) from the present origin
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts[:, :2], axis=0), axis=1))])
    s_new = scale * s[1:]  # (H,) arc length
    # past the last pose: straight on along the path (max_curvature 0)
    path = PathFrame(pts, extend=max(100.0, float(s_new.max() - s[-1]) + 1.0), max_curvature=0.0)
    d = lateral_m * np.arange(1, H + 1) / H  # (H,) growing offset, left of the path
    xy, _ = path.at(path.known[0] + s_new, d)  # (H, 2)
    x, y = xy[:, 0], xy[:, 1]
    yaw = np.interp(s_new, s, np.unwrap(pts[:, 2]))  # where the ego does not move
    prev = np.stack([np.concatenate([[0.0], x[:-1]]), np.concatenate([[0.0], y[:-1]])], -1)
    step = np.stack([x, y], -1) - prev  # (H, 2)
    moving = np.linalg.norm(step, axis=1) > 0.05
    yaw = np.where(moving, np.arctan2(step[:, 1], step[:, 0]), yaw)
    return np.stack([x, y, (yaw + np.pi) % (2 * np.pi) - np.pi], -1).astype(np.float32)


@dataclass
class Candidate:
    """One searched perturbation: ``name``, its parameters, the trajectory ``(H, 3)``,
    ``risk`` (mean over its K futures), ``max_risk`` and its rollouts (riskiest first)."""
    name: str
    lateral_m: float
    scale: float
    traj: np.ndarray
    risk: float
    max_risk: float
    results: List[RolloutResult]


def critical_search(generator: ScenarioGenerator, window: OccWindow, traj: np.ndarray,
                    name: str = 'planner', num: int = 8, k: int = 2, seed: int = 0,
                    max_lateral: float = 1.0, max_speed: float = 0.2, model: bool = True,
                    gt: bool = False, keep_occ: bool = False) -> List[Candidate]:
    """Search perturbations of ``traj`` that maximise risk (module docstring).

    Args:
        generator: scores the candidates (its model, or ground truth with ``gt``).
        window: the scene window.
        traj: ``(H, 3)`` the planner's trajectory, present ego frame.
        num: random perturbations besides the unperturbed trajectory.
        k: futures per candidate (model); ``seed``: seed of the perturbations and futures.
        model, gt, keep_occ: as ``ScenarioGenerator.evaluate``.

    Returns:
        Candidates sorted by mean risk, highest first; names ``<name>`` (unperturbed) and
        ``<name>~lat+0.62~x1.13`` (lateral metres, speed scale).
    """
    traj = check_trajectory(traj, name, 'critical_search')
    rng = np.random.default_rng(seed)
    params = [(0.0, 1.0)] + [(float(rng.uniform(-max_lateral, max_lateral)),
                              float(rng.uniform(1 - max_speed, 1 + max_speed))) for _ in range(num)]
    trajs = {}
    for lat, sc in params:
        trajs[name if (lat, sc) == (0.0, 1.0) else f'{name}~lat{lat:+.2f}~x{sc:.2f}'] = (
            perturb(traj, lat, sc), lat, sc)
    results = generator.evaluate(window, {n: t for n, (t, _, _) in trajs.items()}, k=k,
                                 seed=seed, model=model, gt=gt, keep_occ=keep_occ)
    horizon = generator.scoring.ttc_horizon
    out = []
    for n, (t, lat, sc) in trajs.items():
        mine = rank_results([r for r in results if r.trajectory == n], horizon)
        risks = [r.extra['risk'] for r in mine]
        out.append(Candidate(n, lat, sc, t, float(np.mean(risks)), float(max(risks)), mine))
    return sorted(out, key=lambda c: -c.risk)
