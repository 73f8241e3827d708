"""Faults injected into a training process of tests/engine/test_checkpoint.py, imported
through the test config's ``custom_imports`` and switched on by environment variables:

* ``OCCWM_TEST_KILL_AT_WRITE=K``: the K-th checkpoint write (to its temporary name) stops
  half way and the process SIGKILLs itself, as a kill during a write would leave it.
* ``OCCWM_TEST_NAN_AT=I,J``: the loss term ``OCCWM_TEST_NAN_TERM`` (default the first)
  is NaN at the 1-based iterations I, J, ... (``FaultHook``).
"""
import os
import signal

from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from occwm.registry import HOOKS

_put = LocalBackend.put
_writes = [0]


def _put_then_die(self, obj, filepath):
    """``LocalBackend.put``; the K-th checkpoint write stops half way with SIGKILL."""
    kill_at = int(os.environ.get('OCCWM_TEST_KILL_AT_WRITE', '0'))
    if kill_at and os.path.basename(str(filepath)).startswith('.tmp_'):
        _writes[0] += 1
        if _writes[0] == kill_at:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    return _put(self, obj, filepath)


LocalBackend.put = _put_then_die


@HOOKS.register_module()
class FaultHook(Hook):
    """Makes one loss term NaN at the iterations of ``OCCWM_TEST_NAN_AT``."""

    def before_train(self, runner) -> None:
        at = {int(i) for i in os.environ.get('OCCWM_TEST_NAN_AT', '').split(',') if i}
        if not at:
            return
        model = runner.model
        parse = model.parse_losses
        term = os.environ.get('OCCWM_TEST_NAN_TERM')

        def parse_losses(losses):
            if MessageHub.get_current_instance().get_info('iter') + 1 in at:
                key = term or next(iter(losses))
                losses = dict(losses, **{key: losses[key] * float('nan')})
            return parse(losses)

        model.parse_losses = parse_losses
