"""tools/gpu_check.sh and the training-throughput mode of tools/benchmark_train.py,
tried on the CPU at tiny sizes (the GPU run itself needs a GPU machine)."""
import os
import subprocess

from tests.conftest import REPO
from tests.helpers import TINY_GRID
from tools.benchmark_train import main as benchmark_train

SCRIPT = os.path.join(REPO, 'tools', 'gpu_check.sh')


def test_script_parses_and_explains_itself():
    assert subprocess.run(['bash', '-n', SCRIPT]).returncode == 0
    out = subprocess.run(['bash', SCRIPT, '--help'], capture_output=True, text=True)
    assert out.returncode == 0 and '--device cpu --tiny' in out.stdout
    bad = subprocess.run(['bash', SCRIPT, '--frobnicate'], capture_output=True, text=True)
    assert bad.returncode == 2 and 'unknown option' in bad.stderr


def test_training_throughput_per_batch_size_on_cpu(capsys):
    pcr = f'[{",".join(str(v) for v in TINY_GRID.point_cloud_range)}]'
    benchmark_train([os.path.join(REPO, 'configs', 'occ_nuscenes.py'), '--device', 'cpu',
                     '--batch-sizes', '1', '2', '--steps', '1', '--cfg-options',
                     f'model.tokenizer.grid.point_cloud_range={pcr}',
                     'model.tokenizer.grid.z_offset=0.0', 'model.dit.preset=tiny'])
    out = capsys.readouterr().out
    assert out.startswith('device cpu: ') and 'autocast bfloat16' in out
    rows = [ln for ln in out.splitlines() if ln.startswith('| 1 |') or ln.startswith('| 2 |')]
    assert len(rows) == 2 and all('GiB (RSS)' in r for r in rows), out
