"""tools/quickstart.py: the plan of stages and the final summary table."""
import json

from tools import quickstart


def test_plan_has_the_real_sets_only_where_the_data_is(tmp_path):
    names = [n for n, _ in quickstart.stages('quick', str(tmp_path))]
    assert names == ['data', 'tokenizer', 'forecaster', 'synthetic_val']
    quick = dict(quickstart.stages('quick', str(tmp_path)))
    assert quick['data'][0][2] == 'data/synthetic' and '--lidar' not in quick['data'][0]
    assert 'custom_hooks.0.momentum=0.05' in quick['forecaster'][0]  # EMA of the last 20 of 200
    assert 'configs/occ.py' in quick['synthetic_val'][0]
    (tmp_path / 'nuscenes_seq11').mkdir()
    (tmp_path / 'pandaset_002').mkdir()
    plan = dict(quickstart.stages('full', str(tmp_path)))
    assert list(plan)[-2:] == ['nuscenes_seq11', 'pandaset_002']
    assert {'train_cfg.max_iters=1800', 'param_scheduler.1.end=1800'} <= set(plan['forecaster'][0])
    assert not any('momentum' in a for a in plan['forecaster'][0])  # the config's own EMA
    assert '--lidar' in plan['data'][0] and 'configs/occ_lidar.py' in plan['synthetic_val'][0]
    assert '--resume' in plan['tokenizer'][0]  # an interrupted run continues
    out_json = [c[c.index('--out-json') + 1] for c in plan['pandaset_002'] if '--out-json' in c]
    assert out_json == ['outputs/metrics/pandaset_002.json']


def test_summary_table_reads_the_reports(tmp_path):
    r = {'mIoU@1s': 80.0, 'IoU@1s': 90.0, 'copy_last/mIoU@1s': 40.0, 'copy_last/IoU@1s': 50.0,
         'warp/mIoU@1s': 70.0, 'warp/IoU@1s': 85.5, 'dynamic_mIoU@1s': 75.0,
         'warp/dynamic_mIoU@1s': 55.0}
    (tmp_path / 'synthetic_val.json').write_text(json.dumps(r))
    table = quickstart.summary_table(str(tmp_path)).splitlines()
    assert table[2] == '| synthetic_val | 1s | 80.0 / 90.0 | 40.0 / 50.0 | 70.0 / 85.5 | 75.0 / 55.0 | - |'
    assert table[3].startswith('| synthetic_val | 2s | nan / nan')
    assert len(table) == 5  # header, rule, three horizons of the one set present


def test_summary_table_reads_per_frame_reports(tmp_path):
    """tools/forecast.py's reports hold per-frame lists, not the flat entries."""
    r = {'frames': ['0.5s', '1s'], 'miou_per_frame': [90.0, 80.0], 'iou_per_frame': [95.0, 85.0],
         'drop_zero_iou': True, 'paired_miou_per_frame': [88.0, 78.0],
         'baselines': {'warp': {'miou_per_frame': [85.0, 70.0], 'iou_per_frame': [90.0, 80.0],
                                'paired_miou_per_frame': [60.0, 50.0]}}}
    (tmp_path / 'pandaset_002.json').write_text(json.dumps(r))
    table = quickstart.summary_table(str(tmp_path)).splitlines()
    assert table[2] == '| pandaset_002 | 1s | 80.0 / 85.0 | nan / nan | 70.0 / 80.0 | nan / nan | 78.0 / 50.0 |'
