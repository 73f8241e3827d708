"""The process side of occwm: how many threads it uses, which system libraries it needs,
the one-line errors that say what is missing, and the library warnings it silences. Nothing here imports torch at module
level: :func:`configure_threads` must run before torch (and spconv) load, because their
OpenMP runtimes read their settings once, when the library loads.

Threads (:func:`configure_threads`, the first thing every training / evaluation tool
does; :func:`fit_dataloaders` once the config is read):

* CPUs: those this process may run on (``os.sched_getaffinity``), fewer under a cgroup
  CPU quota (containers, CI runners), divided among the processes of one node under
  ``torchrun`` (``LOCAL_WORLD_SIZE``).
* Budget: torch intra-op threads plus dataloader workers never exceed the CPUs. A
  worker mostly waits, but when it decodes a batch it competes with the training
  threads; on 2 cores 2 intra-op threads beside 2 workers beside other jobs turn every
  OpenMP barrier into a wait for a descheduled thread (the 35x slowdown of issue 13).
  Workers: at most a quarter of the CPUs (and at most what the config asks); intra-op
  threads: the rest. 2 CPUs: 2 threads, no worker (a worker that mostly waits holds a
  core back: the forecaster's training step took 2.6 s with 1 thread + 1 worker, 1.2 s
  with 2 threads, idle 2-core machine; loading a batch in the main process costs
  0.03 s); 1 CPU: 1 thread; 16 CPUs and a config of 2 workers: 14 threads + 2 workers. Inter-op threads: 1 (occwm runs no
  inter-op parallel work). Each worker runs 1 torch thread (torch's DataLoader sets it).
* OpenMP: torch's wheel bundles GNU libgomp (``torch/lib/libgomp.so.1``), and spconv
  bundles a second one of its own (``spconv.libs/libgomp-*.so``, used by its CPU
  kernels), which ``torch.set_num_threads`` does not reach; both read
  ``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY`` when they load. occwm exports
  ``OMP_NUM_THREADS`` = the intra-op threads and ``OMP_WAIT_POLICY=PASSIVE`` (libgomp
  then sleeps at once at a barrier instead of spinning ``GOMP_SPINCOUNT`` = 300,000
  turns, which on a shared core steals the time of the thread it waits for), and
  ``KMP_BLOCKTIME=0``, the same for Intel's OpenMP where a build uses it (torch's
  pip wheel does not). Values the user exported are left as they are.
* mmengine: ``env_cfg.mp_cfg`` of mmengine 0.10 sets ``OMP_NUM_THREADS=1`` only for
  distributed runs and only when unset, so it agrees with the plan; it has no knob for
  the workers' threads (torch's DataLoader already gives each worker 1 thread).

Override, in one place, the environment variable ``OCCWM_THREADS``:

* ``OCCWM_THREADS=N``: plan for ``N`` CPUs (threads + workers fit in ``N``).
* ``OCCWM_THREADS=off``: occwm sets nothing: torch's defaults (one intra-op thread per
  CPU, the config's workers), the behaviour before this module.
* unset: the CPUs found as above. An ``OMP_NUM_THREADS`` the user exported is kept as
  the intra-op thread count, the workers fit in what is left.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import re
import sys
import warnings
from typing import Mapping, Optional

ENV = 'OCCWM_THREADS'
OFF = ('off', 'torch', 'default')
DEFAULT_WORKERS = 2  # what the configs ask for (configs/vae.py, configs/occ.py)

# Debian / Ubuntu packages of the shared libraries occwm's dependencies load
# (tools/install.sh installs them).
SYSTEM_PACKAGES = {
    'libusb-1.0.so.0': 'libusb-1.0-0',
    'libEGL.so.1': 'libegl1',
    'libGL.so.1': 'libgl1',
    'libgomp.so.1': 'libgomp1',
    'libvulkan.so.1': 'libvulkan1',
    'libX11.so.6': 'libx11-6',
    'libGLdispatch.so.0': 'libglvnd0',
}


class SetupError(RuntimeError):
    """A problem of the user's setup (a missing system library, no data yet, no
    checkpoint yet, the wrong folder) whose message is one line that says what to do.
    Tools print it as ``error: <message>`` and exit non-zero."""


@dataclasses.dataclass(frozen=True)
class ThreadPlan:
    """How many threads and workers one occwm process uses.

    Attributes:
        cpus: CPUs this process may run on (affinity, cgroup quota, per local rank).
        budget: CPUs planned for (``cpus``, or ``OCCWM_THREADS``).
        intra_op: torch intra-op threads (``torch.set_num_threads``); ``None``: torch's
            default (``OCCWM_THREADS=off``).
        inter_op: torch inter-op threads; ``None``: torch's default.
        max_workers: the most dataloader workers of one loader; ``None``: the config's.
        source: what decided it: ``'auto'``, ``'OCCWM_THREADS=N'``,
            ``'OMP_NUM_THREADS=N'`` or ``'OCCWM_THREADS=off'``.
        user_intra: ``intra_op`` was fixed by the user (``OMP_NUM_THREADS``), so fewer
            workers do not give it more threads.
        early: set before torch loaded (the OpenMP settings took effect).
    """

    cpus: int
    budget: int
    intra_op: Optional[int]
    inter_op: Optional[int]
    max_workers: Optional[int]
    source: str
    user_intra: bool = False
    early: bool = True

    @property
    def off(self) -> bool:
        """occwm leaves torch's defaults alone."""
        return self.intra_op is None

    def describe(self) -> str:
        """One line for a tool's log."""
        if self.off:
            return (f'threads: torch defaults ({ENV}=off; {self.cpus} CPUs available), '
                    f'dataloader workers as configured')
        note = '' if self.early else ' (torch loaded first: OpenMP settings not applied)'
        return (f'threads: {self.cpus} CPU{"s" * (self.cpus != 1)} available -> '
                f'{self.intra_op} torch thread{"s" * (self.intra_op != 1)} + at most '
                f'{self.max_workers} dataloader worker{"s" * (self.max_workers != 1)} '
                f'[{self.source}; override with {ENV}=N or {ENV}=off]{note}')


_PLAN: Optional[ThreadPlan] = None


def cgroup_cpu_limit(root: str = '/sys/fs/cgroup') -> Optional[float]:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), or ``None`` without a quota."""
    try:
        with open(os.path.join(root, 'cpu.max')) as f:
            quota, period = f.read().split()[:2]
        return None if quota == 'max' else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, 'cpu', 'cpu.cfs_quota_us')) as f:
            quota = int(f.read())
        with open(os.path.join(root, 'cpu', 'cpu.cfs_period_us')) as f:
            period = int(f.read())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask (``os.sched_getaffinity``; else
    ``os.cpu_count()``), capped by a cgroup quota (rounded up), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


def _positive_int(text: str, name: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise SetupError(f'{name}={text!r}: want a whole number of CPUs >= 1, or '
                         f'{ENV}=off for torch\'s defaults')
    return n


def device_name(device: str = 'cpu') -> str:
    """What a result line names as its hardware: the GPU's name for a CUDA device
    (``torch.cuda.get_device_name``), else the CPU's model name and torch's threads."""
    import torch
    if str(device).startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open('/proc/cpuinfo') as f:
            name = next(ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name'))
    except (OSError, StopIteration):
        name = 'CPU'
    return f'{name}, {torch.get_num_threads()} threads'


def plan_threads(cpus: int, env: Mapping[str, str], workers: int = DEFAULT_WORKERS
                 ) -> ThreadPlan:
    """The thread plan for ``cpus`` CPUs (pure: the environment is an argument).

    Args:
        cpus: CPUs of the machine available to this process (:func:`available_cpus`).
        env: the environment (``OCCWM_THREADS``, ``OMP_NUM_THREADS``,
            ``LOCAL_WORLD_SIZE``).
        workers: dataloader workers the config asks for (the plan gives the rest of
            the budget to intra-op threads).

    Returns:
        The plan (see the module docstring for the rules).

    Raises:
        SetupError: ``OCCWM_THREADS`` or ``OMP_NUM_THREADS`` is not a positive number.
    """
    value = env.get(ENV, '').strip()
    if value.lower() in OFF:
        return ThreadPlan(cpus, cpus, None, None, None, f'{ENV}=off')
    if value:
        budget, source = _positive_int(value, ENV), f'{ENV}={value}'
    else:
        local = env.get('LOCAL_WORLD_SIZE', '1')
        local = int(local) if local.isdigit() and int(local) > 0 else 1
        budget, source = max(1, cpus // local), 'auto'
    omp = env.get('OMP_NUM_THREADS', '').strip()
    if omp and not value:  # the user's OpenMP setting is the intra-op count
        intra = _positive_int(omp, 'OMP_NUM_THREADS')
        max_workers = max(0, min(budget // 4, budget - intra))
        return ThreadPlan(cpus, budget, intra, 1, max_workers, f'OMP_NUM_THREADS={omp}',
                          user_intra=True)
    max_workers = budget // 4
    intra = max(1, budget - min(max(workers, 0), max_workers))
    return ThreadPlan(cpus, budget, intra, 1, max_workers, source)


def configure_threads(workers: int = DEFAULT_WORKERS) -> ThreadPlan:
    """Plan the threads of this process (:func:`plan_threads` on :func:`available_cpus`
    and ``os.environ``) and apply it: export the OpenMP settings (before torch loads,
    where they take effect), then set torch's intra- and inter-op threads. Idempotent:
    later calls return the first plan.

    Call it first thing in a script, before importing torch, mmengine or spconv::

        from occwm.runtime import configure_threads
        configure_threads()
        import torch  # noqa: E402

    Returns:
        The plan (also :func:`current_plan`).
    """
    global _PLAN
    if _PLAN is not None:
        return _PLAN
    early = 'torch' not in sys.modules
    plan = dataclasses.replace(plan_threads(available_cpus(), os.environ, workers), early=early)
    if not plan.off:
        os.environ.setdefault('OMP_NUM_THREADS', str(plan.intra_op))
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
        os.environ.setdefault('KMP_BLOCKTIME', '0')
        _set_torch_threads(plan.intra_op, plan.inter_op)
    _PLAN = plan
    return plan


def current_plan() -> Optional[ThreadPlan]:
    """The plan :func:`configure_threads` applied in this process, or ``None``."""
    return _PLAN


def fit_dataloaders(cfg) -> Optional[ThreadPlan]:
    """Fit the dataloaders of an mmengine config to the plan of this process: cap every
    ``*_dataloader.num_workers`` at ``max_workers`` (``persistent_workers`` off where
    none are left), then give the intra-op threads what the workers leave (unless the
    user fixed them). Does nothing when :func:`configure_threads` was not called in
    this process (e.g. a tool's ``main`` called from a test) or the plan is ``off``.

    Args:
        cfg: an ``mmengine.Config`` (changed in place).

    Returns:
        The updated plan, or ``None`` when nothing was configured.
    """
    global _PLAN
    plan = _PLAN
    if plan is None or plan.off:
        return plan
    used = 0
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        n = min(int(loader.get('num_workers', 0)), plan.max_workers)
        loader['num_workers'] = n
        if n == 0:
            loader['persistent_workers'] = False
            loader.pop('prefetch_factor', None)
        used = max(used, n)
    if not plan.user_intra and plan.budget - used != plan.intra_op:
        plan = dataclasses.replace(plan, intra_op=max(1, plan.budget - used))
        _set_torch_threads(plan.intra_op, None)
    plan = dataclasses.replace(plan, max_workers=used)
    _PLAN = plan
    return plan


def _set_torch_threads(intra: Optional[int], inter: Optional[int]) -> None:
    import torch
    if intra is not None:
        torch.set_num_threads(intra)
    if inter is not None and torch.get_num_interop_threads() != inter:
        try:  # allowed once, before any inter-op work
            torch.set_num_interop_threads(inter)
        except RuntimeError:
            pass


def quiet_library_warnings() -> None:
    """Silence, by their exact text, the warnings the pinned libraries print on every
    run although nothing is wrong:

    * spconv 2.3 indexes with a list (``spconv/pytorch/core.py``), which numpy-style
      indexing in torch >= 2.x reports as "Using a non-tuple sequence for
      multidimensional indexing is deprecated";
    * spconv's ``SparseConvTensor`` (an ``fx`` proxyable class) asks
      ``torch.fx.is_fx_tracing()`` on every construction, which logs "is_fx_tracing will
      return true for both fx.symbolic_trace and torch.export" once (torch >= 2.6).
    """
    warnings.filterwarnings('ignore', message='Using a non-tuple sequence for '
                            'multidimensional indexing', category=UserWarning,
                            module=r'spconv\.')
    logging.getLogger('torch.fx._symbolic_trace').setLevel(logging.ERROR)


def missing_library(err: BaseException) -> Optional[str]:
    """The shared library an ``ImportError`` / ``OSError`` failed to load
    (``'libusb-1.0.so.0'``), or ``None``."""
    m = re.search(r'(lib[\w.+-]*\.so(?:\.[\w.]+)?)\s*:\s*cannot open shared object', str(err))
    return m.group(1) if m else None


def require(module: str, purpose: str):
    """Import ``module`` or raise a one-line :class:`SetupError` saying what to install.

    Args:
        module: e.g. ``'open3d'``.
        purpose: what it is for, e.g. ``'rendering pictures'``.

    Returns:
        The module.

    Raises:
        SetupError: a system library is missing (names its Debian package and
            ``tools/install.sh``), or the Python package is not installed.
    """
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as err:
        lib = missing_library(err)
        if lib is not None:
            pkg = SYSTEM_PACKAGES.get(lib)
            what = (f'install the Debian package {pkg} (sudo apt-get install {pkg})' if pkg
                    else f'install the system package that provides {lib}')
            raise SetupError(f'{module} ({purpose}) cannot load the system library {lib}: '
                             f'{what}, or run  bash tools/install.sh') from err
        if isinstance(err, ModuleNotFoundError) and (err.name or '').split('.')[0] == module:
            raise SetupError(f'{module} ({purpose}) is not installed: run  bash '
                             f'tools/install.sh  (or pip install -r requirements.txt)') from err
        raise


def require_open3d():
    """``import open3d``, or a :class:`SetupError` naming the missing system library
    (open3d-cpu needs ``libusb-1.0.so.0``, Debian ``libusb-1.0-0``)."""
    return require('open3d', 'rendering pictures')
