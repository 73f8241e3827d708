"""Training checkpoints that survive a kill, resume exactly and never hold a diverged
model (``default_hooks.checkpoint`` and ``default_hooks.nan_guard`` of every config).

* :class:`OccCheckpointHook` (mmengine's ``CheckpointHook``) writes each checkpoint to a
  temporary name in its folder (``occwm.io.atomic_path``), fsyncs it, reads it back
  (``occwm.models.checkpoint.verify_checkpoint``: CRCs, weights-only load) and only
  then renames it into place; ``last_checkpoint`` likewise; the checkpoint falling out
  of ``max_keep_ckpts`` is deleted after that, never before. A kill at any moment
  leaves the previous checkpoints and ``last_checkpoint`` intact (at worst a
  ``.tmp_*.pth`` beside them). Weights (parameters) with a NaN / inf are never written
  (:class:`TrainingDiverged`). Each checkpoint records ``meta['occwm']`` (what the
  weights are: ``describe_model``) and ``rng``: the torch (CPU, CUDA), numpy and Python
  random states of every rank and the train sampler's seed.
* Exact resume: mmengine's ``IterBasedTrainLoop`` resumes by running the dataloader
  over the batches already trained (the sampler's order, epoch restarts and the
  augmentation draws of the workers replay as they were), which also draws on the
  global random generators when the pipeline runs in the main process. So the saved
  states are restored after that replay, right before the first new batch is loaded;
  and validation leaves the random states as it found them (the uninterrupted run
  validates between the save and the next batch, the resumed one does not). With one
  thread on a CPU, a run killed and resumed ends with the same weights bit for bit
  (``tests/engine/test_checkpoint.py``).
* :class:`NanGuardHook`: a non-finite loss or gradient norm skips that optimizer step;
  the run stops (:class:`TrainingDiverged`: the iteration, the non-finite loss terms,
  the last good checkpoint) unless ``max_skips`` bad steps are allowed. Under
  ``AmpOptimWrapper`` only the loss is checked: its ``GradScaler`` already skips steps
  with non-finite gradients.
* :func:`resume_checkpoint`: what ``tools/train.py --resume`` continues from: the
  requested checkpoint, else the newest intact one in the work dir (said in one line).
"""
from __future__ import annotations

import os
import random
import re
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from occwm.io import atomic_path
from occwm.models.checkpoint import describe_model, non_finite_weights, verify_checkpoint
from occwm.registry import HOOKS
from occwm.runtime import SetupError

CKPT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


class TrainingDiverged(SetupError):
    """Training met a non-finite loss, gradient norm or weight; the message (one line)
    names the iteration, what was non-finite and the last good checkpoint."""


def rng_state() -> dict:
    """The random states of this process, in types ``torch.load(weights_only=True)``
    reads: ``{'torch', 'cuda' (if CUDA), 'numpy', 'python'}``."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(torch=torch.get_rng_state(),
                 numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                            has_gauss=int(has_gauss), cached_gaussian=float(gauss)),
                 python=random.getstate())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s states."""
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
    n = state['numpy']
    np.random.set_state(('MT19937', n['keys'].cpu().numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached_gaussian']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))


def last_good(work_dir: str) -> str:
    """The checkpoint ``work_dir/last_checkpoint`` names, or a phrase saying there is none."""
    path = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().strip()
    return 'none (no checkpoint saved yet)'


def _fsync(path: str) -> None:
    """Flush ``path`` (a file or folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # folders cannot be fsynced on some file systems
        pass
    finally:
        os.close(fd)


class _RestoreAfterReplay:
    """Stands in for the train loop's dataloader iterator while mmengine replays the
    ``skip`` batches already trained; restores ``state`` (:func:`set_rng_state`) before
    the first new batch is loaded, then puts the real iterator back."""

    def __init__(self, loop, skip: int, state: dict):
        self.loop, self.inner, self.skip, self.state = loop, loop.dataloader_iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return next(self.inner)
        set_rng_state(self.state)
        self.loop.dataloader_iterator = self.inner
        return next(self.inner)


@HOOKS.register_module()
class OccCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic, verified writes, ``meta['occwm']``,
    the random states of an exact resume and no non-finite weights (module docstring).
    Arguments: those of ``CheckpointHook``. A checkpoint folder that is not local
    (``backend_args`` of a remote store) is written by mmengine as before.

    Raises (from training):
        TrainingDiverged: the weights to save hold a NaN / inf (nothing is written, no
            older checkpoint is deleted).
        SetupError: a written checkpoint fails to read back (it is not renamed into
            place; the older ones stay).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ranks_rng: Optional[List[dict]] = None
        self._resume_rng: Optional[dict] = None
        self._val_rng: Optional[dict] = None

    # --- what a checkpoint records --------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse non-finite weights; add ``meta['occwm']`` and ``rng``."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        bad = non_finite_weights(model, checkpoint)
        if bad:
            raise TrainingDiverged(
                f'the weights at iteration {runner.iter + 1} are non-finite ({bad}): not '
                f'saved; the last good checkpoint is {last_good(runner.work_dir)}')
        checkpoint['meta']['occwm'] = describe_model(model, runner.cfg.pretty_text)
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        checkpoint['rng'] = dict(ranks=self._ranks_rng or [rng_state()],
                                 sampler=dict(type=type(sampler).__name__,
                                              seed=getattr(sampler, 'seed', None)))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, keep this rank's saved random states for :meth:`before_train_epoch`
        and check the sampler's seed."""
        saved = checkpoint.get('rng')
        if not runner._resume or not isinstance(saved, dict):
            return
        ranks = saved.get('ranks') or []
        if not ranks:
            return
        if len(ranks) != get_world_size():
            runner.logger.warning(f'the checkpoint holds the random states of {len(ranks)} '
                                  f'processes, this run has {get_world_size()}: rank 0\'s are '
                                  f'used, the batches after resume differ from the first run\'s')
        self._resume_rng = ranks[get_rank()] if len(ranks) == get_world_size() else ranks[0]
        seed = (saved.get('sampler') or {}).get('seed')
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        if seed is not None and getattr(sampler, 'seed', seed) != seed:
            runner.logger.warning(f'the train sampler\'s seed {sampler.seed} is not the '
                                  f'checkpoint\'s {seed}: the data order after resume differs '
                                  f'(keep randomness.seed as it was)')

    # --- exact resume ---------------------------------------------------------------
    def before_train_epoch(self, runner) -> None:
        """Restore the saved random states: after the iteration loop's replay of the
        batches already trained, or now (an epoch loop resumes at an epoch start)."""
        if self._resume_rng is None:
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator') and runner.iter > 0:
            loop.dataloader_iterator = _RestoreAfterReplay(loop, runner.iter, self._resume_rng)
        else:
            set_rng_state(self._resume_rng)
        self._resume_rng = None

    def before_val(self, runner) -> None:
        self._val_rng = rng_state()

    def after_val(self, runner) -> None:
        """Leave the random states as validation found them."""
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
            self._val_rng = None

    # --- atomic, verified writes -----------------------------------------------------
    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        state = rng_state()
        self._ranks_rng = all_gather_object(state) if get_world_size() > 1 else [state]
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        path = os.path.join(self.out_dir, self.filename_tmpl.format(step))
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        if is_main_process():
            with atomic_path(path) as tmp:
                runner.save_checkpoint(self.out_dir, os.path.basename(tmp), self.file_client_args,
                                       save_optimizer=self.save_optimizer,
                                       save_param_scheduler=self.save_param_scheduler,
                                       meta=meta, by_epoch=self.by_epoch,
                                       backend_args=self.backend_args, **self.args)
                _fsync(tmp)
                verify_checkpoint(tmp)
            with atomic_path(os.path.join(runner.work_dir, 'last_checkpoint')) as tmp:
                with open(tmp, 'w') as f:
                    f.write(path)
                    f.flush()
                    os.fsync(f.fileno())
            _fsync(self.out_dir)
            if outdated is not None:
                old = os.path.join(self.out_dir, self.filename_tmpl.format(outdated))
                if os.path.isfile(old):
                    os.remove(old)
        self._ranks_rng = None


@HOOKS.register_module()
class NanGuardHook(Hook):
    """Stop (or skip) on a non-finite loss or gradient norm, before the optimizer step.

    The hook wraps the optimizer wrapper's ``backward`` (notes a non-finite loss, then
    back-propagates as before, so the processes of a distributed run stay in step) and
    ``step`` (skips the step when the loss or the gradient norm was non-finite, agreed
    by all processes). After the iteration, a bad step stops training, unless fewer
    than ``max_skips`` were skipped so far (a warning per skip).

    Args:
        max_skips: bad steps skipped (no optimizer step) before the run stops; 0 (the
            default) stops at the first.

    Raises (from training):
        TrainingDiverged: one line: the iteration, the non-finite loss terms (or the
            gradient norm with the finite losses), the skips so far and the last good
            checkpoint, which stays (nothing is saved after the bad step).
    """

    priority = 'VERY_HIGH'  # before the EMA, logger and checkpoint hooks

    def __init__(self, max_skips: int = 0):
        self.max_skips = int(max_skips)
        self.skipped: List[int] = []
        self._loss_bad = False
        self._step_bad: Optional[float] = None  # the gradient norm of a skipped step

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper) or getattr(wrapper, '_nan_guard', False):
            return  # OptimWrapperDict: only the losses after each iteration are checked
        backward, step = wrapper.backward, wrapper.step

        def guarded_backward(loss, **kwargs):
            if not bool(torch.isfinite(loss.detach()).all()):
                self._loss_bad = True
            backward(loss, **kwargs)

        def guarded_step(**kwargs):
            norm = self._grad_norm(wrapper)
            bad = torch.tensor(float(self._loss_bad or not np.isfinite(norm)))
            if get_world_size() > 1:
                import torch.distributed as dist
                device = next(iter(wrapper.optimizer.param_groups[0]['params'])).device
                bad = bad.to(device)
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            self._loss_bad = False
            if bool(bad):
                self._step_bad = norm
                return  # no optimizer step; update_params then clears the gradients
            step(**kwargs)

        # the parameter schedulers' step counter (mmengine wraps step once, marked so)
        guarded_step._with_counter = getattr(step, '_with_counter', False)
        wrapper.backward, wrapper.step, wrapper._nan_guard = guarded_backward, guarded_step, True

    @staticmethod
    def _grad_norm(wrapper) -> float:
        """The 2-norm of all gradients (``nan`` for any non-finite one); 0.0 under a
        ``GradScaler`` (``AmpOptimWrapper``: it checks the gradients itself)."""
        if hasattr(wrapper, 'loss_scaler'):
            return 0.0
        grads = [p.grad for g in wrapper.optimizer.param_groups for p in g['params']
                 if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        losses = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                  for k, v in (outputs or {}).items() if 'loss' in k}
        bad_terms = {k: v for k, v in losses.items() if not np.isfinite(v)}
        norm, self._step_bad = self._step_bad, None
        if not bad_terms and norm is None:
            return
        it = runner.iter + 1
        self.skipped.append(it)
        if bad_terms:
            names = sorted(bad_terms, key=lambda k: (k == 'loss', k))  # the total last
            what = 'non-finite loss terms ' + ', '.join(f'{k}={bad_terms[k]}' for k in names)
        else:
            what = (f'non-finite gradient norm {norm} (losses finite: '
                    + ', '.join(f'{k}={v:.4g}' for k, v in losses.items()) + ')')
        if len(self.skipped) <= self.max_skips:
            runner.logger.warning(f'nan_guard: {what} at iteration {it}: optimizer step skipped '
                                  f'({len(self.skipped)} of {self.max_skips} skips allowed)')
            return
        skips = (f' after skipping {len(self.skipped) - 1} bad steps (iterations '
                 f'{", ".join(map(str, self.skipped[:-1]))})' if len(self.skipped) > 1 else '')
        raise TrainingDiverged(
            f'training diverged at iteration {it}: {what}{skips}; nothing saved after it, the '
            f'last good checkpoint is {last_good(runner.work_dir)} (lower the learning rate and '
            f'--resume, or allow skips: --cfg-options default_hooks.nan_guard.max_skips=N)')


def _numbered_checkpoints(work_dir: str) -> List[str]:
    """``iter_N.pth`` / ``epoch_N.pth`` of ``work_dir``, newest (largest N) first."""
    if not os.path.isdir(work_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(work_dir)
             for m in [CKPT_NAME.match(name)] if m]
    return [os.path.join(work_dir, name) for _, name in sorted(found, reverse=True)]


def resume_checkpoint(work_dir: str, requested: Optional[str] = None
                      ) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint ``--resume`` continues from, read back whole first
    (``verify_checkpoint``).

    Args:
        work_dir: the run's work dir.
        requested: an explicit checkpoint; ``None``: the one ``last_checkpoint`` names.

    Returns:
        ``(path, note)``: the requested checkpoint and ``None`` when it is intact; else
        the newest intact ``iter_N.pth`` / ``epoch_N.pth`` of ``work_dir`` and a line
        saying so. ``(None, None)`` when ``requested`` is ``None`` and ``work_dir`` holds
        no checkpoint yet.

    Raises:
        SetupError: an explicit ``requested`` does not exist; or the checkpoint is
            damaged (or ``last_checkpoint`` names a missing file) and no other one in
            ``work_dir`` is intact (one line).
    """
    if requested is not None and not os.path.isfile(requested):
        raise SetupError(f'--resume: checkpoint {requested} not found')
    if requested is None:
        pointer = os.path.join(work_dir, 'last_checkpoint')
        if os.path.isfile(pointer):
            with open(pointer) as f:
                requested = f.read().strip()
            if not os.path.isabs(requested) and not os.path.isfile(requested):
                requested = os.path.join(work_dir, requested)
        elif not _numbered_checkpoints(work_dir):
            return None, None
    reason = f'{work_dir} has no last_checkpoint'
    if requested is not None:
        try:
            verify_checkpoint(requested)
            return requested, None
        except SetupError as e:
            reason = str(e)
    for path in _numbered_checkpoints(work_dir):
        if requested is not None and os.path.abspath(path) == os.path.abspath(requested):
            continue
        try:
            verify_checkpoint(path)
        except SetupError:
            continue
        return path, (f'--resume: {reason}; resuming from {path} instead, the newest intact '
                      f'checkpoint in {work_dir}')
    raise SetupError(f'--resume: {reason}, and {work_dir} holds no intact checkpoint: train '
                     f'from the start (without --resume) or give one with --resume PATH')
