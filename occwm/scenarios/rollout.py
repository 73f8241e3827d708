"""Counterfactual rollouts: sample K futures of a scene window per ego trajectory with a
forecaster and score them (``occwm.scenarios.scoring``), on the model's futures and on
the recorded ground truth.

Planner API::

    gen = ScenarioGenerator(model)                       # init_forecaster(...) or None
    window = dataset[i]['data_samples']                  # an OccWindow (or OccWindow(occ, traj, num_past))
    results = gen.evaluate(window, {'mine': traj}, k=4, seed=0)   # traj (H, 3)
    [r.summary['collision'] for r in results]

Seeds. Sample ``s`` of a window draws its noise from
``torch.Generator().manual_seed(sample_seed(seed, token, s))`` (one generator per batch
row), so it is the same for every trajectory (common random numbers: trajectories are
compared on the same futures) and does not depend on the batch size or on which other
trajectories are evaluated. On the CPU this holds bit for bit with one torch thread
(``torch.set_num_threads(1)``): with more, the tokenizer's sparse convolutions are not
deterministic.

Horizons past the trained ``num_future`` frames: the model's ``rollout``
(``OccForecaster.rollout``: autoregressive extension, forecast frames re-encoded as
context; a stand-in such as ``SyntheticOracle`` has the same method).
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.scenarios.scoring import ScoringConfig, aggregate, ground_shift, score_trajectory
from occwm.scenarios.trajectories import check_trajectories
from occwm.window import OccWindow


def sample_seed(seed: int, token: str, sample: int) -> int:
    """Seed of sample ``sample`` of the window whose present token is ``token``."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(str(token).encode()),
                                       int(sample)]).generate_state(1)[0])


@dataclass
class RolloutResult:
    """One scored rollout: trajectory ``trajectory`` of window ``scene`` / ``token``,
    ``source`` ``'model'`` (sample ``sample`` of the forecaster) or ``'gt'`` (the recorded
    future, sample 0); ``summary`` (``RolloutScore.summary``) and ``score``; ``occ``
    ``(H, X, Y, Z) uint8`` the scored frames when kept; ``seconds``: sampling time per
    rollout of its ``evaluate`` call (model rows)."""
    scene: str
    token: str
    trajectory: str
    sample: int
    source: str
    summary: Dict[str, object]
    score: object = None
    occ: Optional[np.ndarray] = None
    seconds: float = 0.0
    extra: Dict = field(default_factory=dict)

    def row(self) -> Dict[str, object]:
        """The ``index.jsonl`` row: ids, source and the summary."""
        return dict(scene=self.scene, token=self.token, trajectory=self.trajectory,
                    sample=self.sample, source=self.source, **self.summary, **self.extra)


def sample_futures(model, window: OccWindow, trajs: Dict[str, np.ndarray], k: int = 4,
                   seed: int = 0, device: str = 'cpu', batch_size: int = 8,
                   **forecast_kwargs) -> Dict[str, np.ndarray]:
    """K forecasts of ``window`` under each trajectory (module docstring for the seeds).
    Sample 0 moves the tracked agents as tracked; with ``k > 1`` the others draw their
    velocities around that (``model.sampler['agent_spread']`` where the model has one,
    ``OccForecaster.forecast``), so the samples differ where the agents' motion is
    uncertain.

    Args:
        model: an ``OccForecaster`` (or anything with ``num_past`` and its ``rollout``).
        trajs: ``{name: (H, 3)}`` planned poses, present ego frame, 2 Hz from +0.5 s.
        batch_size: rows (trajectory x sample) per forward pass.
        **forecast_kwargs: ``steps``, ``cfg_scale``, ``method`` of ``forecast``.

    Returns:
        ``{name: (k, H, X, Y, Z) uint8}``; frame ``t`` of a forecast is in the ego frame
        of the planned pose ``traj[t]``.

    Raises:
        ValueError: the window has fewer past frames than ``model.num_past``.
    """
    P = model.num_past
    if window.num_past < P:
        raise ValueError(f'window {window.scene_name}/{window.present_token} has '
                         f'{window.num_past} past frames, the model needs {P}')
    names = list(trajs)
    H = len(trajs[names[0]])
    window = window.numpy().with_num_past(P)
    past = torch.from_numpy(np.ascontiguousarray(window.past)).to(device)  # (P, X, Y, Z)
    past_traj = np.asarray(window.past_traj, np.float64)
    rows = [(n, s) for n in names for s in range(k)]
    spread = (getattr(model, 'sampler', None) or {}).get('agent_spread', 0.0) if k > 1 else 0.0
    out = {n: [None] * k for n in names}
    for b0 in range(0, len(rows), batch_size):
        chunk = rows[b0:b0 + batch_size]
        traj = torch.from_numpy(np.stack([np.concatenate([past_traj, trajs[n]]) for n, _ in chunk])
                                ).float().to(device)  # (B, P + H, 3)
        gens = [torch.Generator(device=device).manual_seed(sample_seed(seed, window.present_token, s))
                for _, s in chunk]
        ctx = past[None].expand(len(chunk), -1, -1, -1, -1)  # (B, P, X, Y, Z)
        kwargs = dict(forecast_kwargs)
        if spread:  # sample 0 as tracked, the others with the agents' velocities drawn
            kwargs['agent_spread'] = [0.0 if s == 0 else spread for _, s in chunk]
        with torch.no_grad():
            pred = model.rollout(ctx, traj, H, generator=gens, **kwargs)
        pred = pred.to(torch.uint8).cpu().numpy()  # (B, H, X, Y, Z)
        for (n, s), p in zip(chunk, pred):
            out[n][s] = p
    return {n: np.stack(v) for n, v in out.items()}


class ScenarioGenerator:
    """Counterfactual rollouts and their scores for planners (module docstring).

    Args:
        model: a forecaster (``sample_futures``), or ``None`` for ground truth only.
        scoring: ``ScoringConfig`` (footprint, height band, thresholds).
        grid: the occupancy grid.
        device: where the model runs.
        batch_size: rows per forward pass.
        **forecast_kwargs: ``steps``, ``cfg_scale``, ``method`` of the sampler.
    """

    def __init__(self, model=None, scoring: ScoringConfig = ScoringConfig(),
                 grid: OccGrid = DEFAULT_GRID, device: str = 'cpu', batch_size: int = 8,
                 **forecast_kwargs):
        self.model, self.scoring, self.grid = model, scoring, grid
        self.device, self.batch_size = device, batch_size
        self.forecast_kwargs = {k: v for k, v in forecast_kwargs.items() if v is not None}

    def evaluate(self, window: OccWindow, trajectories: Dict[str, np.ndarray], k: int = 4,
                 seed: int = 0, model: bool = True, gt: bool = False,
                 keep_occ: bool = False) -> List[RolloutResult]:
        """Score every trajectory on K model futures and/or the recorded future.

        Args:
            window: the scene window.
            trajectories: ``{name: (H, 3)}`` (validated: same H, finite).
            k: futures sampled per trajectory.
            seed: base seed (``sample_seed``).
            model: score the model's futures (needs a model).
            gt: also score the recorded future occupancy (its first ``min(H, F)``
                frames, from the recorded poses); skipped without one.
            keep_occ: keep the scored frames in ``RolloutResult.occ``.

        Returns:
            ``RolloutResult`` list: for each trajectory (input order) its K model
            samples, then its ground-truth row.

        Raises:
            ValueError: bad trajectories, ``model=True`` without a model.
        """
        trajectories = check_trajectories(trajectories, 'trajectories')
        if model and self.model is None:
            raise ValueError('ScenarioGenerator has no model: pass model=False, gt=True to '
                             'score ground truth only')
        window = window.numpy()
        present = np.asarray(window.present)
        shift = ground_shift(present, self.scoring, self.grid)
        futures, seconds = {}, 0.0
        if model:
            t0 = time.perf_counter()
            futures = sample_futures(self.model, window, trajectories, k, seed, self.device,
                                     self.batch_size, **self.forecast_kwargs)
            seconds = (time.perf_counter() - t0) / max(len(trajectories) * k, 1)
        results = []
        for name, traj in trajectories.items():
            for s in range(k if model else 0):
                occ = futures[name][s]
                sc = score_trajectory(occ, traj, None, self.scoring, self.grid, shift, present)
                results.append(RolloutResult(window.scene_name, window.present_token, name, s, 'model',
                                             sc.summary(), sc, occ if keep_occ else None, seconds))
            if gt and window.future is not None and window.recorded_traj is not None:
                n = min(len(traj), len(window.future))
                occ = np.asarray(window.future[:n])
                sc = score_trajectory(occ, traj[:n], window.recorded_traj[:n], self.scoring,
                                      self.grid, shift, present)
                results.append(RolloutResult(window.scene_name, window.present_token, name, 0, 'gt',
                                             sc.summary(), sc, occ if keep_occ else None))
        return results


def summarise(results: Sequence[RolloutResult]) -> Dict[str, Dict[str, object]]:
    """Per trajectory: ``aggregate`` of its model samples (``model``), its ground-truth
    summary (``gt``) and ``agreement``: the fraction of model samples whose collision
    flag, over the ground truth's horizon, equals the ground truth's (None without both)."""
    out: Dict[str, Dict[str, object]] = {}
    for name in dict.fromkeys(r.trajectory for r in results):
        mine = [r for r in results if r.trajectory == name]
        model = [r.summary for r in mine if r.source == 'model']
        gt = next((r.summary for r in mine if r.source == 'gt'), None)
        agree = None
        if model and gt:
            hits = [m['first_collision_s'] is not None and m['first_collision_s'] <= gt['horizon_s']
                    for m in model]
            agree = float(np.mean([h == gt['collision'] for h in hits]))
        out[name] = dict(model=aggregate(model) if model else None, gt=gt, agreement=agree)
    return out
