"""Trajectories no road vehicle drives are errors (occwm.scenarios.trajectories.
check_trajectory), not scored: a 1e9 m plan once came out as "no collision, risk 0.0".
Every way in is covered: a file, the Python API, the tool."""
import json
import os

import numpy as np
import pytest

from occwm.scenarios import ScenarioGenerator, builtin_trajectories, load_trajectories
from occwm.scenarios.oracle import SyntheticOracle, parked_car_world, world_window, write_world
from occwm.scenarios.trajectories import check_trajectory

THROUGH = [[4.0 * (k + 1), 0.0, 0.0] for k in range(6)]                   # 8 m/s


def test_a_1e9_m_trajectory_in_a_file_is_named(tmp_path):
    path = str(tmp_path / 'plans.json')
    with open(path, 'w') as f:
        json.dump({'ok': THROUGH, 'far': [[1e9, 0.0, 0.0]] + THROUGH[1:]}, f)
    with pytest.raises(ValueError) as e:
        load_trajectories(path)
    assert str(e.value) == (
        f"{path}: trajectory 'far': row 0 (+0.5 s): speed 2e+09 m/s over the 0.5 s before this "
        f"pose, above 70 m/s (252 km/h): faster than any road vehicle (rows are x, y in "
        f"metres, present ego frame, 2 Hz)")


def test_an_impossible_braking_is_named(tmp_path):
    # 10 m/s, then standing still within one 0.5 s step: 20 m/s^2 > 15
    plan = [[5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [5.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"plan: trajectory 'stop': row 0 \(\+0.5 s\): "
                                         r"acceleration 20 m/s\^2 \(speed 10 m/s before this "
                                         r"pose, 0 m/s after it\), above 15 m/s\^2"):
        check_trajectory(plan, 'stop', 'plan')
    npz = str(tmp_path / 'plans.npz')
    np.savez(npz, stop=np.array(plan))
    with pytest.raises(ValueError, match=r"plans.npz: trajectory 'stop': row 0"):
        load_trajectories(npz)


def test_builtin_and_search_trajectories_pass():
    world = parked_car_world(distance=20.0, speed=8.0)
    window = world_window(world, present=4, horizon=6)
    for name, traj in builtin_trajectories(window.past_traj, horizon=12, num_random=8).items():
        check_trajectory(traj, name)
    check_trajectory(window.recorded_traj, 'recorded')


def test_the_api_refuses_it():
    world = parked_car_world(distance=20.0, speed=8.0)
    window = world_window(world, present=4, horizon=6)
    far = np.array(THROUGH, np.float32)
    far[3, 1] = 1e9
    with pytest.raises(ValueError, match=r"trajectory 'far': row 3 \(\+2 s\): speed 2e\+09 m/s"):
        ScenarioGenerator(SyntheticOracle(world, 4)).evaluate(window, {'far': far}, k=1, gt=True)


def test_the_tool_refuses_it(tmp_path):
    from tools import generate_scenarios
    paths = write_world(parked_car_world(distance=20.0, speed=8.0, num_frames=11),
                        str(tmp_path / 'data'))
    plans = str(tmp_path / 'plans.json')
    with open(plans, 'w') as f:
        json.dump({'far': [[1e9, 0.0, 0.0]] + THROUGH[1:]}, f)
    out = str(tmp_path / 'out')
    with pytest.raises(SystemExit) as e:
        generate_scenarios.main(['--gt', '--infos', paths['infos'], '--gt-root', paths['gts'],
                                 '--trajectories', plans, '--no-render', '--out', out])
    assert str(e.value.code).startswith(f"error: {plans}: trajectory 'far': row 0 (+0.5 s): "
                                        f"speed 2e+09 m/s")
    assert not os.path.exists(os.path.join(out, 'index.jsonl'))
