"""The pictures that tell the story of a forecast: a window of frames (observed past,
ground-truth future, forecast samples) as one image or as a video.

* :func:`window_image`: rows ground truth / forecast sample(s) / errors, one column per
  frame (past frames first, the time written on every panel), a legend underneath.
  Without forecasts it is a strip of the frames, wrapped into rows.
* :func:`window_video`: one video frame per time step with the panels ground truth |
  forecast(s) | errors side by side (past steps show the observed input).
* :func:`orbit_video`: one frame seen from a camera circling the ego.

Times are ``(k - present) * dt`` seconds (2 Hz: ``dt = 0.5``). Each frame is drawn in its
own ego frame; the trajectory is re-expressed in the ego frame of every panel, the part
already driven in grey.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.visualization import canvas
from occwm.visualization.geometry import error_codes, to_numpy
from occwm.visualization.render import OccRenderer, orbit_camera, render_occupancy

GT_NAME, PRED_NAME, ERR_NAME = 'Ground truth', 'Forecast', 'Errors'


@dataclass
class Window:
    """Frames to show, in time order: ``T_p`` observed past frames (the last is the
    present) then ``T_f`` future frames.

    Args:
        past: ``(T_p, X, Y, Z)`` observed labels (``T_p`` may be 0: ``None``).
        future: ``(T_g, X, Y, Z)`` ground-truth future labels, ``T_g <= T_f`` (a long
            rollout may run past the recorded frames), or ``None``.
        preds: forecast samples, each ``(T_f, X, Y, Z)`` labels.
        traj: ``(R, 3)`` ego waypoints ``x, y, yaw`` (metres, radians), all in one ego
            frame (e.g. the present's), of frames ``traj_start .. traj_start + R - 1``.
        traj_start: the frame of ``traj``'s first row (default ``len - R``: the rows are
            the last ``R`` frames; ``R = T_p + T_f`` covers all).
        masks: ``(T_p + T_g, X, Y, Z)`` camera-visibility masks of the recorded frames;
            voxels where 0 are drawn pale.
        dt: seconds between frames (0.5 at 2 Hz).
        future_times: optional seconds after the present of each future frame.
        present: the frame at time 0 (default ``T_p - 1``, the last past frame).
        pred_name: what the ``preds`` are called in the pictures (``'Forecast'``;
            e.g. ``'Reconstruction'`` for a tokenizer).
    """

    past: Optional[np.ndarray] = None
    future: Optional[np.ndarray] = None
    preds: Sequence[np.ndarray] = field(default_factory=list)
    traj: Optional[np.ndarray] = None
    masks: Optional[np.ndarray] = None
    dt: float = 0.5
    future_times: Optional[Sequence[float]] = None
    traj_start: Optional[int] = None
    present: Optional[int] = None
    pred_name: str = PRED_NAME

    def __post_init__(self):
        self.past = None if self.past is None else to_numpy(self.past)
        self.future = None if self.future is None else to_numpy(self.future)
        self.preds = [to_numpy(p) for p in self.preds]
        self.masks = None if self.masks is None else to_numpy(self.masks)
        self.traj = None if self.traj is None else np.asarray(to_numpy(self.traj), np.float64)
        lens = {len(p) for p in self.preds}
        if len(lens) > 1:
            raise ValueError(f'forecast samples differ in length: {sorted(lens)}')
        if self.future_times is not None and len(self.future_times) != self.num_future:
            raise ValueError(f'{len(self.future_times)} times for {self.num_future} future frames')

    @property
    def num_past(self) -> int:
        return 0 if self.past is None else len(self.past)

    @property
    def num_future(self) -> int:
        return max([len(p) for p in self.preds] + [0 if self.future is None else len(self.future)])

    def __len__(self) -> int:
        return self.num_past + self.num_future

    def time(self, k: int) -> float:
        """Seconds of frame ``k`` relative to the present (frame ``T_p - 1``)."""
        if self.future_times is not None and k >= self.num_past:
            return float(self.future_times[k - self.num_past])
        present = self.num_past - 1 if self.present is None else self.present
        return (k - present) * self.dt

    def time_label(self, k: int) -> str:
        t = self.time(k)
        return '0 s' if abs(t) < 1e-9 else f'{t:+g} s'

    def truth(self, k: int) -> Optional[np.ndarray]:
        """Recorded labels of frame ``k`` (past or ground-truth future), or ``None``."""
        if k < self.num_past:
            return self.past[k]
        f = k - self.num_past
        return self.future[f] if self.future is not None and f < len(self.future) else None

    def mask(self, k: int) -> Optional[np.ndarray]:
        return self.masks[k] if self.masks is not None and k < len(self.masks) else None

    def traj_row(self, k: int) -> Optional[int]:
        """Row of ``traj`` holding frame ``k``'s pose, or ``None``."""
        if self.traj is None:
            return None
        start = len(self) - len(self.traj) if self.traj_start is None else self.traj_start
        r = k - start
        return r if 0 <= r < len(self.traj) else None


class _Panels:
    """Renders the panels of a window at one size, reusing one renderer."""

    def __init__(self, win: Window, renderer: OccRenderer, view, grid: OccGrid,
                 semantic: bool, show_ego: bool = True):
        self.win, self.r, self.view, self.grid = win, renderer, view, grid
        self.semantic, self.show_ego = semantic, show_ego

    def _draw(self, occ, k: int, mask=None, errors=False, label='', view=None) -> np.ndarray:
        row = None if errors else self.win.traj_row(k)  # red would read as false positives
        img = render_occupancy(occ, self.grid, view=view or self.view,
                               traj=self.win.traj if row is not None else None,
                               traj_index=row, show_ego=self.show_ego, renderer=self.r,
                               mask=mask, errors=errors)
        if label:
            canvas.draw_text(img, label, (8, 6), max(14, min(24, img.shape[0] // 16)))
        return img

    def truth(self, k: int, label: str = '', view=None) -> np.ndarray:
        occ = self.win.truth(k)
        if occ is None:
            return canvas.blank_panel(self.r.width, self.r.height, 'no ground truth')
        return self._draw(occ, k, self.win.mask(k), label=label, view=view)

    def pred(self, s: int, k: int, label: str = '', view=None) -> np.ndarray:
        if k < self.win.num_past:
            return self.truth(k, label + ' (input)' if label else 'input', view)
        return self._draw(self.win.preds[s][k - self.win.num_past], k, label=label, view=view)

    def errors(self, s: int, k: int, label: str = '', view=None) -> np.ndarray:
        gt = self.win.truth(k)
        if k < self.win.num_past or gt is None:
            return canvas.blank_panel(self.r.width, self.r.height,
                                      'observed' if k < self.win.num_past else 'no ground truth')
        codes = error_codes(gt, self.win.preds[s][k - self.win.num_past], self.grid.free_label,
                            self.semantic)
        return self._draw(codes, k, errors=True, label=label, view=view)

    def panel(self, kind: str, s: int, k: int, label: str = '', view=None) -> np.ndarray:
        """The ``kind`` (``'truth'``, ``'pred'``, ``'errors'``) panel of frame ``k``
        (sample ``s``)."""
        if kind == 'truth':
            return self.truth(k, label, view)
        return getattr(self, kind)(s, k, label, view)


@contextlib.contextmanager
def _renderer_of(size: Tuple[int, int], renderer: Optional[OccRenderer], backend: str = 'auto'):
    """``renderer`` when it has ``size = (w, h)``, else a new one closed on exit."""
    if renderer is not None and (renderer.width, renderer.height) == tuple(size):
        yield renderer
        return
    with OccRenderer(*size, backend=backend) as r:
        yield r


def _progress(items, show: bool, desc: str):
    """``items`` wrapped in a tqdm bar when ``show``."""
    if not show:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc)


def legend_entries(win: Window, errors: bool, semantic: bool = True, grid=DEFAULT_GRID):
    """Legend entries of a window: its classes, the ego, the trajectory, pale voxels
    and (with ``errors``) the error colours."""
    entries = canvas.class_entries([win.past, win.future, *win.preds], grid.free_label,
                                   grid.class_names)
    dimmed = win.masks is not None and bool(np.any(win.masks == 0))
    entries += canvas.extra_entries(True, win.traj is not None, dimmed)
    if errors:
        entries += canvas.error_entries(semantic)
    return entries


def _rows(win: Window, errors: bool) -> List[Tuple[str, str, int]]:
    """(kind, name, sample) of the rows / panels: truth, each sample, errors of sample 0."""
    has_truth = win.past is not None or win.future is not None
    rows = [('truth', GT_NAME, 0)] if has_truth or not win.preds else []
    n = len(win.preds)
    rows += [('pred', win.pred_name if n == 1 else f'Sample {s + 1}', s) for s in range(n)]
    if errors and n and win.future is not None:
        rows.append(('errors', ERR_NAME if n == 1 else f'{ERR_NAME} (sample 1)', 0))
    return rows


def window_image(win: Window, view: Union[str, dict] = 'bev',
                 panel_size: Tuple[int, int] = (320, 320), errors: bool = True,
                 semantic: bool = True, past_shown: Optional[int] = None,
                 future_shown: Optional[Sequence[int]] = None, cols: int = 6,
                 title: Optional[str] = None, grid: OccGrid = DEFAULT_GRID,
                 renderer: Optional[OccRenderer] = None, progress: bool = False) -> np.ndarray:
    """One picture of a window.

    With forecasts: rows ground truth, forecast sample(s), errors of the first sample
    (TP / FP / FN, wrong class with ``semantic``); columns the last ``past_shown`` past
    frames (default all) then the future frames ``future_shown`` (indices into the
    future, default all). Without forecasts: the frames in rows of ``cols`` panels.
    Every panel carries its time; a legend is drawn underneath.

    Args:
        win: the frames.
        view: camera preset name or camera dict (see ``render.VIEWS``).
        panel_size: ``(w, h)`` of one panel, pixels.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    P = win.num_past
    past = range(P) if past_shown is None else range(max(0, P - past_shown), P)
    fut = range(win.num_future) if future_shown is None else future_shown
    frames = list(past) + [P + f for f in fut]
    rows = _rows(win, errors)
    jobs = [(kind, s, k) for kind, _, s in rows for k in frames]  # row-major panels
    with _renderer_of(panel_size, renderer) as r:
        draw = _Panels(win, r, view, grid, semantic)
        tiles = [draw.panel(kind, s, k, win.time_label(k))
                 for kind, s, k in _progress(jobs, progress, 'panels')]
    if win.preds:
        names = [name for _, name, _ in rows]
        panels = [tiles[i:i + len(frames)] for i in range(0, len(tiles), len(frames))]
    else:  # a sequence: wrap into rows of `cols` panels
        names = None
        panels = [tiles[i:i + cols] for i in range(0, len(tiles), cols)]
    entries = legend_entries(win, errors and bool(win.preds), semantic, grid)
    return canvas.grid_image(panels, names, title, entries, font=max(16, panel_size[1] // 16))


def window_video(win: Window, size: Tuple[int, int] = (1280, 720), view: Union[str, dict] = 'bev',
                 errors: bool = True, semantic: bool = True, title: str = '',
                 orbit_step: float = 0.0, grid: OccGrid = DEFAULT_GRID,
                 renderer: Optional[OccRenderer] = None, progress: bool = False
                 ) -> List[np.ndarray]:
    """Video frames of a window, one per time step (past steps first).

    Each frame of ``size = (W, H)`` pixels shows the panels ground truth | forecast
    sample(s) | errors of the first sample side by side, in rows when there are many
    samples (only ground truth without forecasts), the time in the title and on every
    panel, and the legend underneath.
    With ``orbit_step`` (degrees per frame) the camera circles the ego (orbit view).

    Returns:
        list of ``len(win)`` ``(H, W, 3) uint8`` RGB frames.
    """
    rows = _rows(win, errors)
    entries = legend_entries(win, any(k == 'errors' for k, _, _ in rows), semantic, grid)
    legend = canvas.legend_strip(entries, size[0], 16)
    _, _, pw, ph = canvas.panel_layout(size, len(rows), legend.shape[0])
    out = []
    with _renderer_of((pw, ph), renderer) as r:
        draw = _Panels(win, r, view, grid, semantic)
        for k in _progress(range(len(win)), progress, 'frames'):
            cam = orbit_camera(180.0 + orbit_step * k) if orbit_step else None
            t = win.time_label(k)
            panels = [draw.panel(kind, s, k, f'{name}  {t}', cam) for kind, name, s in rows]
            phase = 'observed' if k < win.num_past else 'forecast' if win.preds else 'future'
            head = f'{title}   t = {t} ({phase})' if title else f't = {t} ({phase})'
            out.append(canvas.video_frame(panels, size, head, legend))
    return out


def orbit_video(occ: np.ndarray, size: Tuple[int, int] = (1280, 720), num_frames: int = 36,
                mask: Optional[np.ndarray] = None, traj: Optional[np.ndarray] = None,
                title: str = '', grid: OccGrid = DEFAULT_GRID,
                renderer: Optional[OccRenderer] = None, progress: bool = False
                ) -> List[np.ndarray]:
    """``num_frames`` video frames of one ``(X, Y, Z)`` grid seen from a camera that
    circles the ego once, starting behind it; ``traj`` ``(T, 3)`` is in the grid's ego
    frame."""
    views = [orbit_camera(180.0 + 360.0 * i / num_frames) for i in range(num_frames)]
    return _single_frame(occ, size, views, mask, traj, title, grid, renderer, progress)


def frame_image(occ: np.ndarray, size: Tuple[int, int] = (1280, 720), view='bev',
                mask: Optional[np.ndarray] = None, traj: Optional[np.ndarray] = None,
                title: str = '', grid: OccGrid = DEFAULT_GRID,
                renderer: Optional[OccRenderer] = None) -> np.ndarray:
    """One ``(X, Y, Z)`` grid as a ``size = (W, H)`` picture with a title and a legend;
    ``traj`` ``(T, 3)`` is in the grid's ego frame; voxels where ``mask`` is 0 are pale."""
    return _single_frame(occ, size, [view], mask, traj, title, grid, renderer, False)[0]


def _single_frame(occ, size, views, mask, traj, title, grid, renderer, progress):
    win = Window(past=to_numpy(occ)[None], masks=None if mask is None else to_numpy(mask)[None])
    entries = legend_entries(win, False, grid=grid) + canvas.extra_entries(False, traj is not None)
    legend = canvas.legend_strip(entries, size[0], 16)
    _, _, pw, ph = canvas.panel_layout(size, 1, legend.shape[0])
    out = []
    with _renderer_of((pw, ph), renderer) as r:
        for view in _progress(views, progress, 'frames'):
            panel = render_occupancy(occ, grid, view=view, traj=traj, renderer=r, mask=mask)
            out.append(canvas.video_frame([panel], size, title, legend))
    return out


def render_comparison(gt: np.ndarray, pred: np.ndarray, out_path: str,
                      times: Optional[Sequence[float]] = None, past: Optional[np.ndarray] = None,
                      traj: Optional[np.ndarray] = None, grid: OccGrid = DEFAULT_GRID,
                      view: Union[str, dict] = 'bev', panel_size: Tuple[int, int] = (400, 400),
                      errors: bool = True, past_shown: Optional[int] = 1) -> str:
    """Write a PNG: ground truth, forecast and error rows, one column per frame.

    Args:
        gt, pred: ``(T, X, Y, Z)`` integer labels of the future frames.
        out_path: PNG path; its folder is created, the write is atomic.
        times: seconds after the present, one per future frame (default ``0.5, 1.0,
            ...``, i.e. 2 Hz); written on each panel as ``+0.5 s``.
        past: optional ``(T_p, X, Y, Z)`` observed frames; the last ``past_shown`` of
            them (default 1, the present; ``None``: all) lead the columns.
        traj: optional ``(R, 3)`` waypoints ``x, y, yaw`` in the present ego frame of the
            last ``R`` frames of past + future (e.g. present and future: ``R = T + 1``).
        grid, view: see :func:`render.render_occupancy`.
        panel_size: ``(width, height)`` of one panel in pixels.
        errors: add the error row (TP / FP / FN / wrong class).

    Returns:
        ``out_path``.

    Raises:
        ValueError: ``gt`` and ``pred`` differ in shape, or ``times`` in length.
    """
    from occwm.visualization.media import save_image
    gt, pred = to_numpy(gt), to_numpy(pred)
    if gt.shape != pred.shape or gt.ndim != 4:
        raise ValueError(f'gt and pred must both be (T, X, Y, Z), got {gt.shape} and {pred.shape}')
    if times is not None and len(times) != len(gt):
        raise ValueError(f'{len(times)} times for {len(gt)} frames')
    if past is not None and past_shown is not None:
        past = to_numpy(past)[-past_shown:]
    win = Window(past=past, future=gt, preds=[pred], traj=traj, future_times=times)
    return save_image(window_image(win, view, panel_size, errors, grid=grid), out_path)
