"""tools/motion_ceiling.py: the oracle displacement on a hand-made agent, and the tool on
a small synthetic set."""
import numpy as np

from occwm.motion import MovingAgent
from tools.motion_ceiling import main, oracle_agents

FREE, CAR = 17, 4


def test_oracle_reads_the_displacement_from_the_future():
    """A 3 x 2 car the tracker thinks moves 1 voxel a frame along x; 3 frames later the
    recorded future shows it 6 voxels on: the oracle's shift is 2 voxels a frame."""
    present = np.full((20, 20, 4), FREE, np.uint8)
    present[2:5, 8:10, 0] = CAR
    future = np.full_like(present, FREE)
    future[8:11, 8:10, 0] = CAR
    cells = np.argwhere((present == CAR).any(-1))
    a = MovingAgent(CAR, cells, np.array([1.0, 0.0]), 0.0, cells.mean(0))
    (b,) = oracle_agents([a], future, 3)
    assert np.allclose(b.shift, [2.0, 0.0], atol=0.2) and b.turn == 0.0
    assert np.allclose(a.shift, [1.0, 0.0])                      # the input is not changed
    (c,) = oracle_agents([a], np.full_like(present, FREE), 3)   # nothing there: unchanged
    assert c is a


def test_tool_prints_the_three_forecasts(tmp_path, capsys):
    from occwm.synthetic.scenes import write_synthetic_dataset
    write_synthetic_dataset(str(tmp_path), num_train=1, num_val=0, num_frames=12, progress=False)
    rc = main([str(tmp_path), str(tmp_path / 'synthetic_infos_train.pkl'), '--no-progress',
               '--horizons', '2', '6'])
    out = capsys.readouterr().out
    assert rc == 0 and '1 windows' in out
    rows = [line.split() for line in out.splitlines()
            if line.split()[:1] in (['warp'], ['tracker'], ['oracle'])]
    assert [r[0] for r in rows] == ['warp', 'warp', 'tracker', 'tracker', 'oracle', 'oracle']
    assert [r[1] for r in rows[:2]] == ['1.0', '3.0']
    car = [r[5] for r in rows]  # method, horizon, 's', bicycle, bus, car, ...
    assert all(v == '-' or 0 <= float(v) <= 100 for v in car)


def test_tool_without_data(tmp_path, capsys):
    rc = main([str(tmp_path), str(tmp_path / 'missing.pkl'), '--no-progress'])
    assert rc == 2 and 'missing.pkl' in capsys.readouterr().err
