"""The runner of occwm's tools: mmengine's ``Runner`` with a readable console.

* :class:`OccRunner` keeps on the terminal what a user reads (progress, checkpoints,
  metrics, warnings that matter) and sends the rest to the log file only
  (``<work_dir>/<timestamp>/<timestamp>.log``, which still holds everything): the
  system-environment and config dump, the hook table, the SyncBN note of CPU runs,
  mmengine's own deprecation notices of ``FileClient`` (which its ``CheckpointHook``
  creates itself) and its note that an epoch ended under an iteration loop. ``verbose = True`` in the config (``--verbose`` of the tools) puts
  them back on the terminal. Known-harmless warnings of the pinned libraries are
  silenced (``occwm.runtime.quiet_library_warnings``).
* ``OccRunner.load_checkpoint`` (``load_from`` of ``tools/test.py`` and
  ``tools/forecast.py``, ``--resume``) is strict and checks the file first: one-line
  ``SetupError`` for a wrong, damaged or non-finite checkpoint (``occwm.models.checkpoint``).
* :class:`ProgressLoggerHook` prints the first training iteration at once, then every
  ``interval`` iterations and at least every ``max_seconds``, so the first progress
  line (with mmengine's ETA) comes after one iteration, not after ``interval`` of them.
"""
from __future__ import annotations

import logging
import time
from typing import Optional

from mmengine.hooks import LoggerHook
from mmengine.runner import Runner

from occwm.registry import HOOKS, RUNNERS
from occwm.runtime import quiet_library_warnings

# Console records moved to the log file unless verbose: (start of the message, why).
FILE_ONLY = (
    ('\n' + '-' * 60 + '\nSystem environment:', 'environment dump'),
    ('Config:\n', 'config dump'),
    ('Hooks will be executed in the following order', 'hook table'),
    ('Distributed training is not used, all SyncBatchNorm', 'SyncBN note'),
    ('"FileClient" will be deprecated', "mmengine's own CheckpointHook"),
    ('"HardDiskBackend" is the alias of "LocalBackend"', "mmengine's own CheckpointHook"),
    # DefaultSampler under an iteration loop: an epoch ends, the loader restarts (the
    # configs' train_dataloader could use InfiniteSampler instead)
    ('Reach the end of the dataloader, it will be restarted', 'a new epoch'),
)


class ConsoleFilter(logging.Filter):
    """Drops the records of :data:`FILE_ONLY` from the handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage() if record.args else str(record.msg)
        return not any(msg.startswith(start) for start, _ in FILE_ONLY)


@RUNNERS.register_module()
class OccRunner(Runner):
    """mmengine ``Runner`` whose console shows progress and results only (see the
    module docstring); config key ``verbose`` (default ``False``) shows everything."""

    def build_logger(self, log_level='INFO', log_file: Optional[str] = None, **kwargs):
        logger = super().build_logger(log_level=log_level, log_file=log_file, **kwargs)
        quiet_library_warnings()
        if not self.cfg.get('verbose', False):
            for h in logger.handlers:  # the console handler, not the log file's
                if (type(h) is logging.StreamHandler
                        and not any(isinstance(f, ConsoleFilter) for f in h.filters)):
                    h.addFilter(ConsoleFilter())
        return logger

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = True,
                        revise_keys=((r'^module\.', ''),)):
        """mmengine's ``Runner.load_checkpoint`` (``load_from``, ``resume``), strict by
        default, the checkpoint read and checked against the model before any hook sees
        it (``occwm.models.checkpoint``).

        Raises:
            SetupError: the file is unreadable (missing, empty, truncated, not a
                checkpoint), of another model type, grid or size, has missing /
                unexpected keys (``strict``) or non-finite weights; one line naming it.
        """
        from mmengine.model import is_model_wrapper
        from mmengine.runner.checkpoint import _load_checkpoint_to_model

        from occwm.models.checkpoint import check_checkpoint, read_checkpoint
        checkpoint = read_checkpoint(filename, map_location)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        check_checkpoint(model, checkpoint, filename, strict, revise_keys)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        _load_checkpoint_to_model(model, checkpoint, strict, logger='current',
                                  revise_keys=list(revise_keys))
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


def build_runner(cfg) -> Runner:
    """:class:`OccRunner` of an mmengine config (``Runner.from_cfg``)."""
    return OccRunner.from_cfg(cfg)


@HOOKS.register_module()
class ProgressLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook`` that also logs the first training iteration and at
    least every ``max_seconds`` (on a slow or shared machine 20 iterations can take
    minutes), and the experiment name only every ``interval_exp_name`` iterations.

    Args:
        interval: log every ``interval`` iterations (as ``LoggerHook``).
        max_seconds: log at the first iteration that ends this long after the last
            line.
        **kwargs: the other arguments of ``LoggerHook``.
    """

    def __init__(self, interval: int = 20, max_seconds: float = 60.0, **kwargs):
        super().__init__(interval=interval, **kwargs)
        self.max_seconds = float(max_seconds)
        self._last = None

    def before_train(self, runner) -> None:
        self._last = time.monotonic()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval_exp_name):
            runner.logger.info(f'Exp name: {runner.experiment_name}')
        done = runner.iter + 1
        now = time.monotonic()
        due = (done == 1 or done % self.interval == 0 or done == runner.max_iters
               or (self._last is not None and now - self._last >= self.max_seconds))
        if not due:
            return
        self._last = now
        tag, log_str = runner.log_processor.get_log_after_iter(runner, batch_idx, 'train')
        runner.logger.info(log_str)
        runner.visualizer.add_scalars(tag, step=done, file_path=self.json_log_path)
