"""The forecast window: the one structure that carries a stretch of a scene from the
data pipeline to the model, the metric, the figures, the scenario tools and the scoring
of forecasts on disk, and the rule that cuts scenes into windows.

A window holds ``num_past`` observed frames (the last one is the present), then the
recorded future frames, if any, and the ego trajectory of every frame, all in the
planar ego frame of the present::

    frame      0 ... P-2   P-1        P ... T_r-1          T_r ... T-1
               observed    present    recorded future      planned only (trajectory,
                                                           no occupancy: a rollout past
                                                           the recording)

Made by ``PackOccInputs`` (``data_samples``; the tensors also go to ``inputs``), by
:meth:`OccWindow.from_results` from a dataset item, or directly (a scenario, a single
frame to draw).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

WINDOW_RULES = ('all', 'occworld', 'first')


def window_starts(num_frames: int, window_len: int, rule: str = 'all',
                  stride: int = 1) -> List[int]:
    """First frame index of every window of a scene.

    Args:
        num_frames: frames ``L`` of the scene.
        window_len: frames ``T = num_past + num_future`` of a window.
        rule: ``'all'``: every start ``0 .. L - T`` (I²-World: ``L - 10`` windows for
            T = 11); ``'occworld'``: every start ``0 .. L - T - 2``: OccWorld's
            ``scene_lens = L - return_len - offset`` with ``return_len + offset = 12``
            loaded frames (one more than the 11 it scores) gives ``L - 12`` windows for
            T = 11, so the last start whose 12 frames exist is never used either;
            ``'first'``: only start 0 (DOME test mode), when ``L >= T``.
        stride: frames between starts (``'all'`` / ``'occworld'``).

    Returns:
        The starts in increasing order; empty when the scene is too short.

    Raises:
        ValueError: unknown rule, ``window_len < 1`` or ``stride < 1``.
    """
    need = frames_needed(window_len, rule)
    if stride < 1:
        raise ValueError(f'need window_len >= 1 and stride >= 1, got {window_len}, {stride}')
    if rule == 'first':
        return [0] if num_frames >= need else []
    return list(range(0, num_frames - need + 1, stride))


def frames_needed(window_len: int, rule: str = 'all') -> int:
    """The fewest frames a scene needs for one window under ``rule``
    (:func:`window_starts`): ``window_len``, or ``window_len + 2`` for ``'occworld'``
    (13 for T = 11).

    Raises:
        ValueError: unknown rule or ``window_len < 1``.
    """
    if rule not in WINDOW_RULES:
        raise ValueError(f'unknown window_rule {rule!r}; choose one of {WINDOW_RULES}')
    if window_len < 1:
        raise ValueError(f'need window_len >= 1, got {window_len}')
    return window_len + (2 if rule == 'occworld' else 0)


def token_seed(token: str) -> int:
    """A stable integer of a frame token: CRC32 of its text (0 for an empty token)."""
    return zlib.crc32(str(token).encode()) if token else 0


@dataclass
class OccWindow:
    """A stretch of one scene: observed past, recorded future, ego trajectory.

    Fields (``T_r`` recorded frames, ``T`` trajectory rows, ``T >= T_r``; arrays may be
    numpy arrays or torch tensors, as the producer made them):

    - ``occ``: ``(T_r, X, Y, Z) uint8`` semantics (Occ3D labels 0..16, 17 = free) of
      every recorded frame, each in its own ego frame; ``occ[:num_past]`` observed,
      ``occ[num_past:]`` the recorded (ground-truth) future.
    - ``traj``: ``(T, 3) float32`` ego pose ``x, y`` (metres), ``yaw`` (radians) of every
      frame in the planar ego frame of the present (its row is zero); ``T > T_r`` when
      the trajectory runs past the recording (a planned future). ``None`` only for
      pictures of frames without poses.
    - ``num_past``: observed frames, the present included (``0`` only for pictures of
      a future with no observed frame).
    - ``scene_name``: scene (``<scene>@k`` for the parts of a scene cut at time gaps).
    - ``tokens``: ``T_r`` sample tokens (the present's names forecast files).
    - ``timestamps``: ``(T_r,) int64`` microseconds, or ``None``.
    - ``ego2global``: ``(T_r, 4, 4) float64`` ego -> global poses, or ``None``.
    - ``mask_camera`` / ``mask_lidar``: ``(T_r, X, Y, Z) uint8`` visibility (1 = seen)
      when loaded, else ``None``.
    - ``aug``: what an augmentation did (``RandomFlipRotateOcc``), or ``None``.
    - ``seed``: noise seed of this window's forecast; default the CRC32 of the present
      token (:func:`token_seed`), so a window gets the same forecast in any batch, on
      any rank.
    - ``index``: the window's index in its data set (-1 when not from one).

    Raises:
        ValueError: fields whose lengths disagree, or ``num_past`` outside ``0 .. T_r``.
    """

    occ: Any
    traj: Any = None
    num_past: int = 1
    scene_name: str = ''
    tokens: Sequence[str] = field(default_factory=list)
    timestamps: Any = None
    ego2global: Any = None
    mask_camera: Any = None
    mask_lidar: Any = None
    aug: Optional[dict] = None
    seed: Optional[int] = None
    index: int = -1

    def __post_init__(self):
        T_r = len(self.occ)
        if not 0 <= self.num_past <= T_r:
            raise ValueError(f'num_past={self.num_past} but the window has {T_r} recorded frames')
        if self.traj is not None and len(self.traj) < T_r:
            raise ValueError(f'traj has {len(self.traj)} rows, fewer than the {T_r} frames')
        for name in ('mask_camera', 'mask_lidar', 'timestamps', 'ego2global'):
            v = getattr(self, name)
            if v is not None and len(v) != T_r:
                raise ValueError(f'{name} has {len(v)} frames, the window {T_r}')
        self.tokens = [str(t) for t in self.tokens]
        if self.tokens and len(self.tokens) != T_r:
            raise ValueError(f'{len(self.tokens)} tokens for {T_r} frames')
        if self.seed is None:
            self.seed = token_seed(self.present_token)

    # ------------------------------------------------------------------ views
    @property
    def num_recorded(self) -> int:
        """``T_r``: frames with occupancy."""
        return len(self.occ)

    @property
    def num_future(self) -> int:
        """Future frames of the horizon: trajectory rows after the past (recorded
        frames when there is no trajectory)."""
        return (self.num_recorded if self.traj is None else len(self.traj)) - self.num_past

    @property
    def present_index(self) -> int:
        """Index of the present frame, ``num_past - 1``."""
        return self.num_past - 1

    @property
    def past(self):
        """``(P, X, Y, Z)`` observed frames."""
        return self.occ[:self.num_past]

    @property
    def future(self):
        """``(T_r - P, X, Y, Z)`` recorded future frames (ground truth), or ``None``."""
        return self.occ[self.num_past:] if self.num_recorded > self.num_past else None

    @property
    def present(self):
        """``(X, Y, Z)`` the present frame."""
        return self.occ[self.num_past - 1]

    @property
    def past_traj(self):
        """``(P, 3)`` poses of the observed frames (present ego frame)."""
        return None if self.traj is None else self.traj[:self.num_past]

    @property
    def future_traj(self):
        """``(T - P, 3)`` poses of the future frames (present ego frame)."""
        return None if self.traj is None else self.traj[self.num_past:]

    @property
    def recorded_traj(self):
        """``(T_r - P, 3)`` poses of the recorded future frames (present ego frame), or
        ``None`` without a recorded future or a trajectory."""
        if self.traj is None or self.num_recorded <= self.num_past:
            return None
        return self.traj[self.num_past:self.num_recorded]

    @property
    def present_token(self) -> str:
        """Sample token of the present frame (``''`` when unknown)."""
        return self.tokens[self.num_past - 1] if self.tokens and self.num_past else ''

    def mask(self, kind: Optional[str]):
        """``mask_camera`` (``kind='camera'``) or ``mask_lidar`` (``'lidar'``), or None."""
        return None if kind is None else getattr(self, f'mask_{kind}')

    # ------------------------------------------------------------ conversions
    @classmethod
    def from_results(cls, results: Dict[str, Any]) -> 'OccWindow':
        """From a dataset item's results dict (``OccForecastDataset`` data info after
        ``LoadOccWindow``: ``occ``, ``traj``, ``num_past``, ``scene_name``, ``tokens``,
        ``timestamps``, ``ego2global``, optional masks, ``aug``, ``sample_idx``)."""
        return cls(occ=results['occ'], traj=results.get('traj'),
                   num_past=int(results['num_past']),
                   scene_name=str(results.get('scene_name', '')),
                   tokens=list(results.get('tokens', [])),
                   timestamps=results.get('timestamps'), ego2global=results.get('ego2global'),
                   mask_camera=results.get('mask_camera'), mask_lidar=results.get('mask_lidar'),
                   aug=results.get('aug'), index=int(results.get('sample_idx', -1)))

    def numpy(self) -> 'OccWindow':
        """A copy whose array fields are numpy arrays (``traj`` float64)."""
        arr = {k: to_numpy(getattr(self, k)) for k in
               ('occ', 'timestamps', 'ego2global', 'mask_camera', 'mask_lidar')}
        traj = None if self.traj is None else np.asarray(to_numpy(self.traj), np.float64)
        return replace(self, traj=traj, **arr)

    def with_num_past(self, num_past: int) -> 'OccWindow':
        """The same window with ``num_past`` observed frames, as a model with that
        context needs: more are cut to the last ``num_past``; fewer are padded by
        repeating the oldest frame and its pose (DOME's 4 past frames for a 5-frame
        model). Per-frame fields follow; the present and the future are unchanged.

        Raises:
            ValueError: ``num_past < 1``.
        """
        if num_past < 1:
            raise ValueError(f'num_past must be >= 1, got {num_past}')
        P = self.num_past
        if num_past == P:
            return self
        if num_past < P:
            idx = list(range(P - num_past, self.num_recorded))
        else:
            idx = [0] * (num_past - P) + list(range(self.num_recorded))
        extra = [] if self.traj is None else list(range(self.num_recorded, len(self.traj)))

        def take(v, rows):
            if v is None:
                return None
            if isinstance(v, torch.Tensor):
                return v[torch.as_tensor(rows, dtype=torch.long)]
            return np.asarray(v)[rows]

        return replace(self, occ=take(self.occ, idx), traj=take(self.traj, idx + extra),
                       num_past=num_past, tokens=[self.tokens[i] for i in idx] if self.tokens else [],
                       timestamps=take(self.timestamps, idx), ego2global=take(self.ego2global, idx),
                       mask_camera=take(self.mask_camera, idx), mask_lidar=take(self.mask_lidar, idx))


def to_numpy(x):
    """A numpy array of ``x`` (a torch tensor is detached and moved to the CPU);
    ``None`` stays ``None``."""
    if x is None or isinstance(x, np.ndarray):
        return x
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
