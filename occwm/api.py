"""A small Python API for those who do not want the command line: load a trained world
model, forecast a window, roll it out further, compare with the baselines, score and
render. Everything here calls the one implementation the tools use
(``occwm.models.forecaster``, ``occwm.evaluation``, ``occwm.visualization``).

Shapes, units and frames (as everywhere in occwm; ``docs/architecture.md``):

* occupancy: ``(T, X, Y, Z) uint8`` Occ3D labels ``0..16``, ``17`` = free, each frame
  in its own ego frame (x forward, y left, z up); the default grid is 200 x 200 x 16
  voxels of 0.4 m over x, y in [-40, 40] m and z in [-1, 5.4] m (``WorldModel.grid``).
* ``past``: ``(T_p, X, Y, Z)``, ``T_p = WorldModel.num_past`` (5) frames at 2 Hz, the
  last one the present.
* ``traj``: ``(T_p + T_f, 3) float32``: the ego pose ``x`` (m), ``y`` (m), ``yaw``
  (rad) of every frame, past and future, in the ego frame of the present (the present's
  row is zero; nuScenes ego frame, origin at the rear-axle centre); frame ``k`` is at
  ``(k - T_p + 1) * 0.5`` s. The future rows are the trajectory the forecast is
  conditioned on; their number sets the horizon ``T_f``.
* a forecast: ``(T_f, X, Y, Z) uint8``, the frames at +0.5 s ... ``+T_f * 0.5`` s,
  each in the ego frame of its ``traj`` row. More than ``WorldModel.num_future`` (6)
  frames are forecast by autoregressive rollout (``OccForecaster.rollout``).

Example (the README's "Python API" section, run by ``tests/test_api.py``)::

    from occwm.api import WorldModel, load_window
    wm = WorldModel.load('work_dirs/occ')               # a work dir or a .pth
    w = load_window('data/synthetic', 'data/synthetic/synthetic_infos_val.pkl', 0)
    future = wm.forecast(w.past, w.traj)                # (6, 200, 200, 16) uint8
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from occwm.grid import OccGrid, check_occupancy
from occwm.runtime import SetupError, quiet_library_warnings
from occwm.window import OccWindow, to_numpy

ArrayLike = Union[np.ndarray, torch.Tensor]
NO_MODEL = ('no trained world model at {}: train one with  python tools/train.py '
            'configs/occ.py  (or give a .pth)')


def find_checkpoint(path: str) -> str:
    """The checkpoint of a work dir (its ``last_checkpoint``) or ``path`` itself.

    Raises:
        SetupError: no such file, or a work dir without a checkpoint yet.
    """
    from occwm.models.forecaster import resolve_checkpoint
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, 'last_checkpoint')):
        raise SetupError(NO_MODEL.format(path))
    ckpt = resolve_checkpoint(path)
    if not os.path.isfile(ckpt):
        raise SetupError(NO_MODEL.format(path))
    return ckpt


def checkpoint_config(checkpoint: str):
    """The training config an mmengine checkpoint carries (``meta['cfg']``, which
    ``Runner.save_checkpoint`` writes), as an ``mmengine.Config``.

    Raises:
        SetupError: the checkpoint holds no config (pass ``config=`` to
            :meth:`WorldModel.load`), or cannot be read (empty, truncated, not a
            checkpoint: ``occwm.models.checkpoint.read_checkpoint``).
    """
    from mmengine.config import Config

    from occwm.models.checkpoint import read_checkpoint
    meta = read_checkpoint(checkpoint, mmap=True).get('meta') or {}
    text = meta.get('cfg')
    if not text:
        raise SetupError(f'{checkpoint} holds no config: pass the training config, '
                         f'WorldModel.load(path, config="configs/occ.py")')
    return Config.fromstring(text, '.py')


class WorldModel:
    """A trained forecaster (``OccForecaster``) for use from Python.

    Build it with :meth:`load`. Attributes: ``model`` (the ``OccForecaster``, eval
    mode), ``checkpoint`` (its path), ``grid`` (``OccGrid``), ``num_past`` (``T_p``,
    5), ``num_future`` (frames of one forecast step, 6), ``device``.
    """

    def __init__(self, model, checkpoint: str = ''):
        self.model, self.checkpoint = model, checkpoint
        self.grid: OccGrid = model.grid
        self.num_past: int = model.num_past
        self.num_future: int = model.num_future
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, path: str, device: str = 'cpu', config=None) -> 'WorldModel':
        """Load a trained world model.

        Args:
            path: the work dir of ``tools/train.py configs/occ.py`` (its last
                checkpoint) or a forecaster checkpoint ``.pth``.
            device: ``'cpu'``, ``'cuda'``, ...
            config: the training config (a path or an ``mmengine.Config``); default the
                one the checkpoint carries.

        Raises:
            SetupError: no checkpoint there (says how to train one), or it is not a
                forecaster's (e.g. the tokenizer's), of another size, unreadable or
                non-finite (``init_forecaster`` loads strictly).
        """
        from mmengine.config import Config

        from occwm.models.forecaster import init_forecaster
        quiet_library_warnings()
        ckpt = find_checkpoint(path)
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        cfg = cfg if cfg is not None else checkpoint_config(ckpt)
        kind = cfg.model.get('type')
        if kind != 'OccForecaster':
            raise SetupError(f'{ckpt} is a {kind} checkpoint, not a world model (OccForecaster): '
                             f'load the work dir of  python tools/train.py configs/occ.py')
        return cls(init_forecaster(cfg.model, ckpt, device), ckpt)

    def _inputs(self, past: ArrayLike, traj: ArrayLike):
        """``past`` ``(1, T_p, X, Y, Z) uint8`` and ``traj`` ``(1, T, 3) float32`` tensors
        on the model's device, checked."""
        past_np = to_numpy(past)
        traj = torch.as_tensor(to_numpy(traj), dtype=torch.float32)
        if past_np.ndim != 4 or len(past_np) != self.num_past:
            raise ValueError(f'past must be (T_p={self.num_past}, X, Y, Z), got {past_np.shape}')
        check_occupancy(past_np, self.grid, 'past')
        if traj.dim() != 2 or traj.shape[1] != 3 or len(traj) <= self.num_past:
            raise ValueError(f'traj must be (T_p + T_f, 3) x, y, yaw rows with T_f >= 1 '
                             f'(T_p = {self.num_past}), got {tuple(traj.shape)}')
        past_t = torch.as_tensor(past_np, dtype=torch.uint8)
        return past_t[None].to(self.device), traj[None].to(self.device)

    def forecast(self, past: ArrayLike, traj: ArrayLike, seed: int = 0,
                 steps: Optional[int] = None, agent_spread: float = 0.0) -> np.ndarray:
        """Forecast the future occupancy under a trajectory.

        Args:
            past: ``(T_p, X, Y, Z) uint8`` observed frames, the last one the present.
            traj: ``(T_p + T_f, 3)`` ego poses (x m, y m, yaw rad) of the past and future
                frames in the present ego frame; ``T_f`` (any ``>= 1``) is the horizon:
                more than :attr:`num_future` frames are rolled out autoregressively.
            seed: seed of the sampled noise (the same seed gives the same forecast).
            steps: sampler steps (default the model's).
            agent_spread: 0: the tracked agents move as tracked (the most likely
                future); e.g. 1.0: their velocities are drawn (from ``seed``) with the
                spread calibrated on the training scenes, so seeds give different
                futures where the agents' motion is uncertain
                (``OccForecaster.forecast``).

        Returns:
            ``(T_f, X, Y, Z) uint8`` forecast frames, each in its own ego frame.

        Raises:
            ValueError: shapes or labels that do not fit the model.
        """
        past_t, traj_t = self._inputs(past, traj)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        out = self.model.rollout(past_t, traj_t, traj_t.shape[1] - self.num_past,
                                 generator=gen, steps=steps,
                                 agent_spread=agent_spread)  # (1, T_f, X, Y, Z)
        return out[0].to(torch.uint8).cpu().numpy()

    def baselines(self, past: ArrayLike, traj: ArrayLike) -> Dict[str, np.ndarray]:
        """The forecasts every model is scored beside (``occwm.evaluation.baselines``):
        ``'copy_last'`` (the present for every future frame) and ``'warp'`` (the
        present warped into each future ego frame, static world).

        Args:
            past, traj: as :meth:`forecast`.

        Returns:
            ``{'copy_last': (T_f, X, Y, Z) uint8, 'warp': (T_f, X, Y, Z) uint8}``.
        """
        from occwm.evaluation.baselines import baseline_forecasts
        past_t, traj_t = self._inputs(past, traj)
        out = baseline_forecasts(past_t[0, -1].cpu(), traj_t[0, self.num_past:].cpu(), self.grid)
        return {name: v.numpy() for name, v in out.items()}

    def score(self, forecast: ArrayLike, truth: ArrayLike) -> Dict[str, List[float]]:
        """IoU and mIoU (percent) of each forecast frame against its ground truth (one
        window; classes absent from a frame's truth are left out of its mean). For
        published numbers use ``tools/test.py`` (whole sets, the protocols).

        Args:
            forecast, truth: ``(T_f, X, Y, Z)`` labels.

        Returns:
            ``{'iou': [T_f floats], 'miou': [T_f floats]}``.
        """
        from occwm.evaluation.functional import confusion_counts, iou_from_counts, miou
        pred, gt = to_numpy(forecast), to_numpy(truth)
        if pred.shape != gt.shape or pred.ndim != 4:
            raise ValueError(f'forecast and truth must both be (T_f, X, Y, Z), got '
                             f'{pred.shape} and {gt.shape}')
        n, free = self.grid.num_classes, self.grid.free_label
        out: Dict[str, List[float]] = {'iou': [], 'miou': []}
        for p, g in zip(pred, gt):
            c = confusion_counts(p, g, n, free)
            out['iou'].append(100.0 * float(iou_from_counts(c.geo_tp, c.geo_fp, c.geo_fn)))
            out['miou'].append(100.0 * miou(c.tp, c.fp, c.fn))
        return out

    def render(self, past: ArrayLike, forecast: ArrayLike, path: str,
               traj: Optional[ArrayLike] = None, truth: Optional[ArrayLike] = None,
               view: str = 'bev', past_shown: Optional[int] = 1, title: Optional[str] = None
               ) -> str:
        """Draw a forecast (headless): ground truth | forecast | errors per frame when
        ``truth`` is given, else the past and the forecast.

        Args:
            past: ``(T_p, X, Y, Z)`` observed frames.
            forecast: ``(T_f, X, Y, Z)`` forecast frames.
            path: ``.png`` / ``.jpg`` (one picture) or ``.gif`` / ``.mp4`` (a video).
            traj: optional ``(T_p + T_f, 3)`` poses, drawn as the ego's path.
            truth: optional ``(T_f', X, Y, Z)`` recorded future frames.
            view: ``'bev'``, ``'chase'`` or ``'orbit'``.
            past_shown: past frames in a picture (default 1, the present; ``None``: all).
            title: written on the picture.

        Returns:
            The path written.
        """
        from occwm.visualization.figures import window_image, window_video
        from occwm.visualization.media import IMAGE_EXTS, save_image, write_video
        past_np, pred = to_numpy(past), to_numpy(forecast)
        occ = past_np if truth is None else np.concatenate([past_np, to_numpy(truth)])
        win = OccWindow(occ=occ, traj=None if traj is None else to_numpy(traj),
                        num_past=len(past_np))
        if os.path.splitext(path)[1].lower() in IMAGE_EXTS:
            return save_image(window_image(win, [pred], view=view, past_shown=past_shown,
                                           title=title, grid=self.grid), path)
        return write_video(window_video(win, [pred], view=view, title=title or '',
                                        grid=self.grid), path)


def load_window(data_root: str, infos: str, index: int, num_past: int = 5,
                num_future: int = 6, grid: Optional[OccGrid] = None) -> OccWindow:
    """Window ``index`` of a data set (every start of every scene, in order), as numpy
    arrays: ``.past`` ``(T_p, X, Y, Z)``, ``.future`` ``(T_f, X, Y, Z)`` (the recorded
    ground truth), ``.traj`` ``(T_p + T_f, 3)`` (present ego frame), ``.present``,
    ``.scene_name``, ``.present_token``, ``.mask_camera``.

    Args:
        data_root: folder holding ``gts/`` (e.g. ``data/synthetic``).
        infos: its info pkl (any layout occwm reads).
        index: the window.
        num_past, num_future: frames before / after the present (incl. the present in
            ``num_past``).

    Raises:
        SetupError: the info pkl is missing (how to make the synthetic set).
        IndexError: ``index`` out of range (gives the number of windows).
    """
    from occwm.grid import DEFAULT_GRID
    from occwm.visualization.sources import dataset_window
    if not os.path.isfile(infos):
        raise SetupError(f'{infos} not found: make the synthetic set with  python '
                         f'tools/make_synthetic.py data/synthetic')
    win, _ = dataset_window(data_root, infos, index, num_past, num_future, grid or DEFAULT_GRID)
    return win.numpy()
