"""Scenario generation for planner testing: counterfactual rollouts of the world model
under planned ego trajectories, risk scores and exportable scenarios.

Modules: ``trajectories`` (file schema, bicycle model, built-in generators),
``scoring`` (collision, offroad, clearance, time to collision, progress), ``rollout``
(K sampled futures per trajectory, ``ScenarioGenerator``), ``search`` (critical
scenarios), ``export`` (folders, index, report), ``oracle`` (synthetic counterfactual
ground truth). Tool: ``tools/generate_scenarios.py``.
"""
from occwm.scenarios.rollout import (RolloutResult, ScenarioGenerator, sample_futures, sample_seed,
                                     summarise)
from occwm.scenarios.scoring import RolloutScore, ScoringConfig, aggregate, score_trajectory
from occwm.scenarios.search import critical_search, perturb, rank_results, risk_score
from occwm.scenarios.trajectories import (EgoState, KinematicLimits, builtin_trajectories,
                                          check_trajectories, estimate_ego_state,
                                          load_trajectories, random_feasible, save_trajectories,
                                          simulate_bicycle)

__all__ = ['RolloutResult', 'ScenarioGenerator', 'sample_futures', 'sample_seed',
           'summarise', 'RolloutScore', 'ScoringConfig', 'aggregate', 'score_trajectory',
           'critical_search', 'perturb', 'rank_results', 'risk_score', 'EgoState',
           'KinematicLimits', 'builtin_trajectories', 'check_trajectories',
           'estimate_ego_state', 'load_trajectories', 'random_feasible', 'save_trajectories',
           'simulate_bicycle']
