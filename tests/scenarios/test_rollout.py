"""Counterfactual rollouts on a synthetic scene with a parked car ahead: a trajectory
through it collides and one around it does not, on ground truth and on a "perfect"
model's forecast; seeds, batching and the autoregressive extension."""
import numpy as np
import pytest
import torch

from occwm.models.forecaster import autoregressive_rollout
from occwm.scenarios import ScenarioGenerator, builtin_trajectories, sample_futures, summarise
from occwm.scenarios.oracle import SyntheticOracle, parked_car_world, world_window
from occwm.scenarios.rollout import sample_seed
from occwm.window import OccWindow
from occwm.scenarios.search import critical_search
from tests.helpers import TINY_GRID


@pytest.fixture(scope='module')
def scene():
    """Ego at 8 m/s, a car parked 20 m ahead in its lane; the recorded ego brakes to a stop."""
    world = parked_car_world(distance=20.0, speed=8.0)
    window = world_window(world, present=4, horizon=6)
    trajs = builtin_trajectories(window.past_traj, horizon=6, num_random=0)
    plans = {'through': trajs['keep_lane'], 'around': trajs['lane_change_left'],
             'stop': trajs['stop']}
    return world, window, plans


def test_recorded_window(scene):
    _, window, plans = scene
    np.testing.assert_allclose(window.past_traj[:, 0], [-16, -12, -8, -4, 0])
    np.testing.assert_allclose(window.future_traj[:, 0], [3.5, 6, 7.5, 8, 8, 8])
    np.testing.assert_allclose(plans['through'][:, 0], 4.0 * np.arange(1, 7), atol=1e-4)


@pytest.mark.parametrize('clear_ego', [True, False])
def test_through_collides_around_does_not(scene, clear_ego):
    world, window, plans = scene
    gen = ScenarioGenerator(SyntheticOracle(world, 4, clear_ego=clear_ego))
    res = gen.evaluate(window, plans, k=2, seed=0, gt=True)
    by = {(r.trajectory, r.source, r.sample): r.summary for r in res}
    assert len(res) == 3 * (2 + 1)
    for source, sample in (('model', 0), ('model', 1), ('gt', 0)):
        through = by[('through', source, sample)]
        # front bumper 3.43 m ahead of the rear axle: reaches the car's rear (20 m) at 16.6 m
        assert through['collision'] and through['first_collision_s'] == 2.5
        assert through['at_fault_collision'] and through['min_clearance_m'] < 0.5
        assert through['progress_m'] == pytest.approx(16.0, abs=0.01)
        around = by[('around', source, sample)]
        assert not around['collision'] and not around['offroad']
        assert 1.0 < around['min_clearance_m'] < 2.5
        assert not by[('stop', source, sample)]['collision']
    summary = summarise(res)
    assert summary['through']['agreement'] == 1.0 and summary['around']['agreement'] == 1.0
    assert summary['through']['model']['p_collision'] == 1.0


def test_critical_search_ranks_the_collision_first(scene):
    world, window, plans = scene
    gen = ScenarioGenerator(SyntheticOracle(world, 4))
    cands = critical_search(gen, window, plans['around'], 'around', num=4, k=1, seed=1,
                            max_lateral=3.5, max_speed=0.0)
    risks = [c.risk for c in cands]
    assert risks == sorted(risks, reverse=True) and len(cands) == 5
    top = cands[0]
    assert top.results[0].summary['collision'] and top.lateral_m < -1.0  # back into the car
    assert not next(c for c in cands if c.name == 'around').results[0].summary['collision']


class NoisyStandIn:
    """Untrained but deterministic: frame j of a forecast marks one voxel per row at an x
    index drawn from the row's generator and at the y index of the pose's x (metres)."""
    num_past, num_future = 2, 3

    def forecast(self, past_occ, traj, generator=None, **kwargs):
        B = past_occ.shape[0]
        gens = generator if isinstance(generator, (list, tuple)) else [generator] * B
        out = torch.full((B, self.num_future, *TINY_GRID.shape), 17, dtype=torch.uint8)
        for b in range(B):
            for j in range(self.num_future):
                i = int(torch.randint(0, 32, (1,), generator=gens[b]))
                y = int(round(float(traj[b, self.num_past + j, 0]))) % 32
                out[b, j, i, y, 0] = 4
        return out

    def rollout(self, past_occ, traj, num_future, **kwargs):
        return autoregressive_rollout(self, past_occ, traj, num_future, **kwargs)


def _window(P=2):
    occ = np.full((P, *TINY_GRID.shape), 17, np.uint8)
    return OccWindow(occ, np.zeros((P, 3)), P, scene_name='s', tokens=['t0'] * (P - 1) + ['tok'])


def test_seeds_common_random_numbers_and_batch_independence():
    model, window = NoisyStandIn(), _window()
    trajs = {'a': np.array([[1.0 * (k + 1), 0, 0] for k in range(3)]),
             'b': np.array([[2.0 * (k + 1), 0, 0] for k in range(3)])}
    one = sample_futures(model, window, trajs, k=3, seed=7, batch_size=1)
    big = sample_futures(model, window, trajs, k=3, seed=7, batch_size=6)
    alone = sample_futures(model, window, {'b': trajs['b']}, k=3, seed=7)
    for n in trajs:
        np.testing.assert_array_equal(one[n], big[n])
    np.testing.assert_array_equal(alone['b'], one['b'])
    # the same noise for every trajectory: the random x index of sample s matches
    xa = np.nonzero(one['a'][:, 0] == 4)[1]
    xb = np.nonzero(one['b'][:, 0] == 4)[1]
    np.testing.assert_array_equal(xa, xb)
    assert len(set(xa.tolist())) > 1  # samples differ
    other = sample_futures(model, window, trajs, k=3, seed=8)
    assert not np.array_equal(other['a'], one['a'])
    assert sample_seed(7, 'tok', 0) != sample_seed(7, 'tok2', 0)


def test_autoregressive_extension_re_expresses_the_trajectory():
    # 1 m per step: every chunk sees the poses 1, 2, 3 m ahead of its own present
    model, window = NoisyStandIn(), _window()
    traj = np.array([[1.0 * (k + 1), 0, 0] for k in range(8)])
    out = sample_futures(model, window, {'a': traj}, k=1, seed=0)['a'][0]  # (8, X, Y, Z)
    assert out.shape == (8, *TINY_GRID.shape)
    ys = [int(np.nonzero(f == 4)[1][0]) for f in out]
    # chunks: frames 1-3 (present 0), 4-6 (present = pose 3), 7-8 (last chunk shifted back to
    # end at 8: present = pose 5, keeps its last two frames, 2 and 3 m ahead)
    assert ys == [1, 2, 3, 1, 2, 3, 2, 3]
    gens = [torch.Generator().manual_seed(0)]
    direct = autoregressive_rollout(model, torch.from_numpy(window.past)[None],
                                    torch.from_numpy(np.concatenate([window.past_traj, traj]))[None],
                                    8, generator=gens)
    assert direct.shape == (1, 8, *TINY_GRID.shape)


def test_evaluate_errors():
    with pytest.raises(ValueError, match='has no model'):
        ScenarioGenerator(None).evaluate(_window(), {'a': np.zeros((3, 3))})
    with pytest.raises(ValueError, match='past frames'):
        sample_futures(NoisyStandIn(), _window(P=1), {'a': np.zeros((3, 3))})
    with pytest.raises(ValueError, match="trajectory 'a'"):
        ScenarioGenerator(NoisyStandIn()).evaluate(_window(), {'a': np.full((3, 3), np.inf)})


class SpreadStandIn(NoisyStandIn):
    """Records the agent spread each row was forecast with, as the voxel's z index."""
    sampler = {'agent_spread': 2.0}

    def forecast(self, past_occ, traj, generator=None, agent_spread=0.0, **kwargs):
        out = super().forecast(past_occ, traj, generator=generator)
        spreads = agent_spread if isinstance(agent_spread, list) else [agent_spread] * len(out)
        for b, sp in enumerate(spreads):
            out[b] = torch.roll(out[b], int(sp), dims=-1)  # z index = the spread
        return out


def test_samples_after_the_first_draw_the_agents_motion():
    model, window = SpreadStandIn(), _window()
    trajs = {'a': np.array([[1.0 * (k + 1), 0, 0] for k in range(3)])}
    for bs in (1, 4):
        out = sample_futures(model, window, trajs, k=3, seed=7, batch_size=bs)['a']  # (k, H, X, Y, Z)
        z = [int(np.nonzero(s[0] == 4)[2][0]) for s in out]
        assert z == [0, 2, 2]  # sample 0 as tracked, samples 1, 2 with the model's spread
    one = sample_futures(model, window, trajs, k=1, seed=7)['a']
    assert int(np.nonzero(one[0, 0] == 4)[2][0]) == 0  # a single sample: as tracked
