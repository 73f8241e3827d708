"""tools/generate_scenarios.py on a synthetic parked-car scene written to disk: the
index, report and scenario folders, and its messages on bad input."""
import json
import os
import pickle

import numpy as np
import pytest

from occwm.scenarios.oracle import parked_car_world, write_world
from tools import generate_scenarios


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('parked')
    paths = write_world(parked_car_world(distance=20.0, speed=8.0, num_frames=11), str(root))
    # the minimal OccWorld-layout pkl: only token, timestamp and the poses per frame
    with open(paths['infos'], 'rb') as f:
        data = pickle.load(f)
    keep = ('token', 'timestamp', 'ego2global_translation', 'ego2global_rotation',
            'lidar2ego_translation', 'lidar2ego_rotation')
    data['infos'] = {s: [{k: fr[k] for k in keep} for fr in frames]
                     for s, frames in data['infos'].items()}
    minimal = os.path.join(str(root), 'minimal_infos.pkl')
    with open(minimal, 'wb') as f:
        pickle.dump(data, f)
    plans = os.path.join(str(root), 'plans.json')
    with open(plans, 'w') as f:
        json.dump({'through': [[4.0 * (k + 1), 0.0, 0.0] for k in range(6)],
                   'around': [[4.0 * (k + 1), min(3.5, 0.9 * (k + 1)), 0.0] for k in range(6)]}, f)
    return dict(paths, minimal=minimal, plans=plans, root=str(root))


def run(argv):
    generate_scenarios.main(argv)


def test_gt_mode_writes_index_report_and_scenarios(dataset, tmp_path):
    out = str(tmp_path / 'out')
    run(['--gt', '--infos', dataset['minimal'], '--gt-root', dataset['gts'],
         '--trajectories', dataset['plans'], '--out', out])
    rows = [json.loads(line) for line in open(os.path.join(out, 'index.jsonl'))]
    assert [(r['trajectory'], r['source'], r['sample']) for r in rows] == [
        ('through', 'gt', 0), ('around', 'gt', 0)]
    for key in ('scene', 'token', 'trajectory', 'sample', 'collision', 'first_collision_s',
                'offroad', 'min_clearance_m', 'risk', 'scenario'):
        assert key in rows[0]
    through, around = rows
    assert through['collision'] and through['first_collision_s'] == 2.5
    assert not around['collision'] and not around['offroad']
    folder = os.path.join(out, through['scenario'])
    assert sorted(os.listdir(folder)) == ['metrics.json', 'render.png', 'trajectory.json']
    metrics = json.load(open(os.path.join(folder, 'metrics.json')))
    assert metrics['gt']['collision'] and metrics['gt_per_frame']['collision'][4]
    report = open(os.path.join(out, 'report.md')).read()
    assert '| through |' in report and 'riskiest' in report
    summary = json.load(open(os.path.join(out, 'summary.json')))
    assert summary['rows'] == 2 and summary['collisions'] == 1


def test_builtin_set_with_the_recorded_future(dataset, tmp_path):
    out = str(tmp_path / 'out')
    run(['--gt', '--infos', dataset['infos'], '--gt-root', dataset['root'], '--num-random', '1',
         '--no-render', '--search', '2', '--out', out])
    rows = {r['trajectory']: r for r in map(json.loads, open(os.path.join(out, 'index.jsonl')))}
    assert {'keep_lane', 'lane_change_left', 'random_00', 'recorded'} <= set(rows)
    assert rows['keep_lane']['collision'] and not rows['recorded']['collision']
    assert not rows['lane_change_left']['collision']
    assert sum(1 for n in rows if n.startswith('keep_lane~')) == 2  # the searched perturbations


@pytest.mark.parametrize('argv, message', [
    (['--trajectories', '{root}/bad.json'], 'bad.json: not valid JSON'),
    (['--trajectories', '{plans}', '--horizon', '8'], 'want the horizon of 8'),
    (['--trajectories', '{root}/none.json'], 'trajectory file not found'),
    (['--windows', '5'], 'out of range'),
    (['--horizon', '9'], 'lower --horizon'),
])
def test_bad_input_messages(dataset, tmp_path, argv, message):
    with open(os.path.join(dataset['root'], 'bad.json'), 'w') as f:
        f.write('{"a": [[1, 0, 0]')
    argv = [a.format(**dataset) for a in argv]
    with pytest.raises(SystemExit) as e:
        run(['--gt', '--infos', dataset['infos'], '--gt-root', dataset['gts'], '--no-render',
             '--out', str(tmp_path / 'o')] + argv)
    assert message in str(e.value.code)


def test_needs_a_model_or_gt(dataset, tmp_path):
    with pytest.raises(SystemExit) as e:
        run(['--infos', dataset['infos'], '--gt-root', dataset['gts'], '--out', str(tmp_path)])
    assert 'CONFIG CHECKPOINT' in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        run(['--gt', '--infos', dataset['infos'], '--gt-root', str(tmp_path / 'nowhere'),
             '--out', str(tmp_path)])
    assert 'is not a folder' in str(e.value.code)
    assert not np.any([f.endswith('.jsonl') for f in os.listdir(tmp_path)])


def test_baseline_in_the_model_place(dataset, tmp_path):
    """--baseline warp: the present warped along each plan; the parked car ahead stays
    where it is, so driving through it collides (as in the recorded world) and the
    frozen present agrees too; agreement with the ground truth is reported."""
    for name in ('warp', 'copy_last'):
        out = str(tmp_path / name)
        run(['--baseline', name, '--infos', dataset['infos'], '--gt-root', dataset['gts'],
             '--trajectories', dataset['plans'], '--no-render', '--k', '2', '--out', out])
        rows = [json.loads(line) for line in open(os.path.join(out, 'index.jsonl'))]
        model_rows = [r for r in rows if r['source'] == 'model']
        assert len(model_rows) == 4  # 2 plans x 2 samples, identical samples
        summary = json.load(open(os.path.join(out, 'summary.json')))
        assert summary['settings']['source'] == f'baseline:{name}'
        assert summary['agreement']['n'] == 4
    with pytest.raises(SystemExit):
        run(['--baseline', 'warp', '--gt', '--infos', dataset['infos'], '--gt-root',
             dataset['gts'], '--out', str(tmp_path / 'x')])
