"""occwm.runtime: the thread plan (pure rules, then applied in a fresh process), the
dataloader fit, and the one-line message of a missing system library."""
import importlib
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from occwm import runtime
from occwm.runtime import SetupError, ThreadPlan, plan_threads
from tests.conftest import REPO


@pytest.mark.parametrize('cpus, env, workers, want', [
    # (intra-op threads, inter-op threads, max workers, source)
    (2, {}, 2, (2, 1, 0, 'auto')),        # 2 cores: 2 threads, no worker
    (1, {}, 2, (1, 1, 0, 'auto')),        # 1 core: no worker
    (4, {}, 2, (3, 1, 1, 'auto')),
    (16, {}, 2, (14, 1, 4, 'auto')),      # the config's 2 workers, the rest threads
    (16, {}, 0, (16, 1, 4, 'auto')),      # no workers wanted: every CPU a thread
    (16, {'LOCAL_WORLD_SIZE': '4'}, 2, (3, 1, 1, 'auto')),  # torchrun: 4 CPUs a rank
    (2, {'OCCWM_THREADS': '6'}, 2, (5, 1, 1, 'OCCWM_THREADS=6')),
    (8, {'OMP_NUM_THREADS': '2'}, 2, (2, 1, 2, 'OMP_NUM_THREADS=2')),  # the user's count
    (2, {'OMP_NUM_THREADS': '2'}, 2, (2, 1, 0, 'OMP_NUM_THREADS=2')),
    (2, {'OCCWM_THREADS': '1', 'OMP_NUM_THREADS': '8'}, 2, (1, 1, 0, 'OCCWM_THREADS=1')),
    (2, {'OCCWM_THREADS': 'off'}, 2, (None, None, None, 'OCCWM_THREADS=off')),
])
def test_plan_rules(cpus, env, workers, want):
    plan = plan_threads(cpus, env, workers)
    assert (plan.intra_op, plan.inter_op, plan.max_workers, plan.source) == want
    if not plan.off:  # never more threads + workers than the budget
        assert plan.intra_op + min(workers, plan.max_workers) <= max(plan.budget, plan.intra_op)
    assert 'threads' in plan.describe()


@pytest.mark.parametrize('value', ['0', 'two', '-3'])
def test_plan_bad_value(value):
    with pytest.raises(SetupError, match='OCCWM_THREADS=off'):
        plan_threads(2, {'OCCWM_THREADS': value})


def test_cgroup_limit(tmp_path):
    (tmp_path / 'cpu.max').write_text('150000 100000\n')
    assert runtime.cgroup_cpu_limit(str(tmp_path)) == 1.5
    (tmp_path / 'cpu.max').write_text('max 100000\n')
    assert runtime.cgroup_cpu_limit(str(tmp_path)) is None
    v1 = tmp_path / 'v1'
    (v1 / 'cpu').mkdir(parents=True)
    (v1 / 'cpu' / 'cpu.cfs_quota_us').write_text('300000')
    (v1 / 'cpu' / 'cpu.cfs_period_us').write_text('100000')
    assert runtime.cgroup_cpu_limit(str(v1)) == 3.0
    (v1 / 'cpu' / 'cpu.cfs_quota_us').write_text('-1')
    assert runtime.cgroup_cpu_limit(str(v1)) is None
    assert 1 <= runtime.available_cpus() <= (os.cpu_count() or 1)


CHILD = '''
import json, os, sys
from occwm.runtime import configure_threads
plan = configure_threads()
import torch
print(json.dumps(dict(intra=torch.get_num_threads(), inter=torch.get_num_interop_threads(),
                      omp=os.environ.get('OMP_NUM_THREADS'), wait=os.environ.get('OMP_WAIT_POLICY'),
                      early=plan.early, again=configure_threads() is plan)))
'''


def run_child(**env):
    base = {k: v for k, v in os.environ.items()
            if k not in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', 'KMP_BLOCKTIME', 'OCCWM_THREADS')}
    out = subprocess.run([sys.executable, '-c', CHILD], capture_output=True, text=True,
                         cwd=REPO, timeout=120, env={**base, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_configure_threads_in_a_fresh_process():
    got = run_child(OCCWM_THREADS='2')  # as on a 2-core machine, wherever the test runs
    assert got == dict(intra=2, inter=1, omp='2', wait='PASSIVE', early=True, again=True)
    got = run_child(OCCWM_THREADS='3', OMP_WAIT_POLICY='ACTIVE')  # the user's setting stays
    assert (got['intra'], got['omp'], got['wait']) == (3, '3', 'ACTIVE')
    got = run_child(OCCWM_THREADS='off')  # torch's defaults, nothing exported
    assert got['omp'] is None and got['wait'] is None


def test_fit_dataloaders(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, '_set_torch_threads', lambda intra, inter: calls.append(intra))
    cfg = Config(dict(train_dataloader=dict(num_workers=2, persistent_workers=True),
                      val_dataloader=dict(num_workers=2, persistent_workers=True,
                                          prefetch_factor=2),
                      test_dataloader=dict(num_workers=0)))
    monkeypatch.setattr(runtime, '_PLAN', None)
    assert runtime.fit_dataloaders(cfg) is None  # nothing configured in this process
    assert cfg.train_dataloader.num_workers == 2
    monkeypatch.setattr(runtime, '_PLAN', ThreadPlan(2, 2, 1, 1, 1, 'auto'))
    plan = runtime.fit_dataloaders(cfg)
    assert cfg.train_dataloader.num_workers == 1 and cfg.val_dataloader.num_workers == 1
    assert (plan.intra_op, plan.max_workers) == (1, 1) and calls == []
    monkeypatch.setattr(runtime, '_PLAN', ThreadPlan(1, 1, 1, 1, 0, 'auto'))
    runtime.fit_dataloaders(cfg)
    assert cfg.train_dataloader.num_workers == 0 and not cfg.train_dataloader.persistent_workers
    assert 'prefetch_factor' not in cfg.val_dataloader
    monkeypatch.setattr(runtime, '_PLAN', ThreadPlan(4, 4, 2, 1, 2, 'auto'))
    plan = runtime.fit_dataloaders(cfg)  # no workers left: the threads take the budget
    assert plan.intra_op == 4 and calls == [4]


def test_missing_system_library(monkeypatch):
    def fail(name):
        raise ImportError('libusb-1.0.so.0: cannot open shared object file: No such file '
                          'or directory')
    monkeypatch.setattr(importlib, 'import_module', fail)
    with pytest.raises(SetupError) as e:
        runtime.require_open3d()
    msg = str(e.value)
    assert '\n' not in msg
    assert 'libusb-1.0.so.0' in msg and 'sudo apt-get install libusb-1.0-0' in msg
    assert 'bash tools/install.sh' in msg


def test_missing_package(monkeypatch):
    def fail(name):
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)
    monkeypatch.setattr(importlib, 'import_module', fail)
    with pytest.raises(SetupError, match='open3d .* is not installed'):
        runtime.require_open3d()
    assert runtime.missing_library(OSError('libEGL.so.1: cannot open shared object file')) \
        == 'libEGL.so.1'
    assert runtime.missing_library(ImportError('something else')) is None
