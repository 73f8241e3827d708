"""The pictures that tell the story of a forecast: a window of frames (observed past,
ground-truth future) and forecasts of its future, as one image or as a video.

* :func:`window_image`: rows ground truth / forecast sample(s) / errors, one column per
  frame (past frames first, the time written on every panel), a legend underneath.
  Without forecasts it is a strip of the frames, wrapped into rows.
* :func:`window_video`: one video frame per time step with the panels ground truth |
  forecast(s) | errors side by side (past steps show the observed input).
* :func:`orbit_video`: one frame seen from a camera circling the ego.

The frames come from an :class:`occwm.window.OccWindow` (its recorded frames, trajectory
and camera masks; voxels the cameras do not see are drawn pale), the forecasts
``(T_f, X, Y, Z)`` separately. Step ``k`` (0 = the first past frame) is at
``(k - time_origin) * FRAME_DT`` seconds, the origin being the present. Each frame is
drawn in its own ego frame; the trajectory is re-expressed in the ego frame of every
panel, the part already driven in grey.
"""
from __future__ import annotations

import contextlib
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from occwm.geometry import FRAME_DT
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.visualization import canvas
from occwm.visualization.geometry import error_codes
from occwm.visualization.render import OccRenderer, orbit_camera, render_occupancy
from occwm.window import OccWindow, to_numpy

GT_NAME, PRED_NAME, ERR_NAME = 'Ground truth', 'Forecast', 'Errors'


def num_steps(win: OccWindow, preds: Sequence = ()) -> int:
    """Time steps of a picture of ``win`` and the forecasts ``preds`` of its future: the
    past, then the longer of the forecasts and the recorded future."""
    P = win.num_past
    return P + max([len(p) for p in preds] + [win.num_recorded - P])


class _Frames:
    """What a picture of ``win`` and the forecasts ``preds`` shows at each time step.

    Steps ``k = 0 .. len - 1``: the ``P = win.num_past`` observed frames, then ``T_f``
    future frames, ``T_f`` the longest of the forecasts and the recorded future (a long
    rollout may run past the recorded frames). Recorded labels, masks and trajectory rows
    of step ``k`` are ``win``'s frame ``k``.

    Args:
        win: the window (numpy or torch arrays).
        preds: forecast samples, each ``(T_f, X, Y, Z)`` labels of the future steps.
        pred_name: what the forecasts are called (e.g. ``'Reconstruction'``).
        future_times: optional seconds after the present of each future step.
        time_origin: the step at time 0 (default ``P - 1``, the present).

    Raises:
        ValueError: forecasts of different lengths, or ``future_times`` of another length
            than the future.
    """

    def __init__(self, win: OccWindow, preds: Sequence = (), pred_name: str = PRED_NAME,
                 future_times: Optional[Sequence[float]] = None,
                 time_origin: Optional[int] = None):
        self.win = win.numpy()
        self.preds = [to_numpy(p) for p in preds]
        self.pred_name = pred_name
        lens = sorted({len(p) for p in self.preds})
        if len(lens) > 1:
            raise ValueError(f'forecast samples differ in length: {lens}')
        self.num_past = P = self.win.num_past
        self.num_future = num_steps(self.win, self.preds) - P
        if future_times is not None and len(future_times) != self.num_future:
            raise ValueError(f'{len(future_times)} times for {self.num_future} future frames')
        self.future_times = future_times
        self.origin = P - 1 if time_origin is None else time_origin

    def __len__(self) -> int:
        return self.num_past + self.num_future

    @property
    def traj(self) -> Optional[np.ndarray]:
        return self.win.traj

    @property
    def has_truth(self) -> bool:
        return self.win.num_recorded > 0

    @property
    def has_future_truth(self) -> bool:
        return self.win.num_recorded > self.num_past

    def time(self, k: int) -> float:
        """Seconds of step ``k`` relative to the present."""
        if self.future_times is not None and k >= self.num_past:
            return float(self.future_times[k - self.num_past])
        return (k - self.origin) * FRAME_DT

    def time_label(self, k: int) -> str:
        t = self.time(k)
        return '0 s' if abs(t) < 1e-9 else f'{t:+g} s'

    def truth(self, k: int) -> Optional[np.ndarray]:
        """Recorded labels of step ``k``, or ``None``."""
        return self.win.occ[k] if k < self.win.num_recorded else None

    def mask(self, k: int) -> Optional[np.ndarray]:
        m = self.win.mask_camera
        return m[k] if m is not None and k < len(m) else None

    def traj_row(self, k: int) -> Optional[int]:
        """Row of ``traj`` holding step ``k``'s pose, or ``None``."""
        return k if self.traj is not None and k < len(self.traj) else None

    def content(self, kind: str, s: int, k: int, grid: OccGrid = DEFAULT_GRID,
                semantic: bool = True):
        """What panel ``kind`` (``'truth'``, ``'pred'``, ``'errors'``) of sample ``s``
        shows at step ``k``.

        Returns:
            ``(occ, mask, errors, note)``: ``(X, Y, Z)`` labels (error codes when
            ``errors``) and the camera mask to dim them, or ``occ = None`` and the
            ``note`` written on an empty panel. Past steps of the forecast rows show the
            observed input.
        """
        P, truth = self.num_past, self.truth(k)
        if kind == 'truth' or (kind == 'pred' and k < P):
            return truth, self.mask(k), False, 'no ground truth'
        if k < P:
            return None, None, False, 'observed'
        f = k - P
        pred = self.preds[s][f] if f < len(self.preds[s]) else None
        if kind == 'pred' or pred is None:
            return pred, None, False, 'no forecast'
        if truth is None:
            return None, None, False, 'no ground truth'
        return error_codes(truth, pred, grid.free_label, semantic), None, True, ''

    def rows(self, errors: bool) -> List[Tuple[str, str, int]]:
        """(kind, name, sample) of the rows / panels: truth, each sample, errors of
        sample 0."""
        rows = [('truth', GT_NAME, 0)] if self.has_truth or not self.preds else []
        n = len(self.preds)
        rows += [('pred', self.pred_name if n == 1 else f'Sample {s + 1}', s) for s in range(n)]
        if errors and n and self.has_future_truth:
            rows.append(('errors', ERR_NAME if n == 1 else f'{ERR_NAME} (sample 1)', 0))
        return rows

    def legend(self, errors: bool, semantic: bool = True, grid: OccGrid = DEFAULT_GRID):
        """Legend entries: the classes shown, the ego, the trajectory, pale voxels and
        (with ``errors``) the error colours."""
        entries = canvas.class_entries([self.win.occ, *self.preds], grid.free_label,
                                       grid.class_names)
        m = self.win.mask_camera
        entries += canvas.extra_entries(True, self.traj is not None,
                                        m is not None and bool(np.any(m == 0)))
        if errors:
            entries += canvas.error_entries(semantic)
        return entries


class _Panels:
    """Renders the panels of a window at one size, reusing one renderer."""

    def __init__(self, frames: _Frames, renderer: OccRenderer, view, grid: OccGrid,
                 semantic: bool, show_ego: bool = True):
        self.frames, self.r, self.view, self.grid = frames, renderer, view, grid
        self.semantic, self.show_ego = semantic, show_ego

    def panel(self, kind: str, s: int, k: int, label: str = '', view=None) -> np.ndarray:
        """The ``kind`` (``'truth'``, ``'pred'``, ``'errors'``) panel of step ``k``
        (sample ``s``), ``label`` written on it."""
        occ, mask, errors, note = self.frames.content(kind, s, k, self.grid, self.semantic)
        if occ is None:
            return canvas.blank_panel(self.r.width, self.r.height, note)
        if kind == 'pred' and k < self.frames.num_past:
            label = label + ' (input)' if label else 'input'
        row = None if errors else self.frames.traj_row(k)  # red would read as false positives
        img = render_occupancy(occ, self.grid, view=view or self.view,
                               traj=self.frames.traj if row is not None else None,
                               traj_index=row, show_ego=self.show_ego, renderer=self.r,
                               mask=mask, errors=errors)
        if label:
            canvas.draw_text(img, label, (8, 6), max(14, min(24, img.shape[0] // 16)))
        return img


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


def window_image(win: OccWindow, preds: Sequence = (), *, pred_name: str = PRED_NAME,
                 future_times: Optional[Sequence[float]] = None,
                 time_origin: Optional[int] = None, view: Union[str, dict] = 'bev',
                 panel_size: Tuple[int, int] = (320, 320), errors: bool = True,
                 semantic: bool = True, past_shown: Optional[int] = None,
                 future_shown: Optional[Sequence[int]] = None, cols: int = 6,
                 title: Optional[str] = None, grid: OccGrid = DEFAULT_GRID,
                 renderer: Optional[OccRenderer] = None, progress: bool = False) -> np.ndarray:
    """One picture of a window and forecasts of its future.

    With forecasts: rows ground truth, forecast sample(s), errors of the first sample
    (TP / FP / FN, wrong class with ``semantic``); columns the last ``past_shown`` past
    frames (default all) then the future frames ``future_shown`` (indices into the
    future, default all). Without forecasts: the frames in rows of ``cols`` panels.
    Every panel carries its time; a legend is drawn underneath.

    Args:
        win: the recorded frames, trajectory and camera masks.
        preds: forecast samples, each ``(T_f, X, Y, Z)`` labels of the future frames.
        pred_name: what a single forecast is called (``'Reconstruction'``, ...).
        future_times: seconds after the present of each future frame (default
            ``FRAME_DT`` steps).
        time_origin: the frame at time 0 (default the present, ``win.num_past - 1``).
        view: camera preset name or camera dict (see ``render.VIEWS``).
        panel_size: ``(w, h)`` of one panel, pixels.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    frames = _Frames(win, preds, pred_name, future_times, time_origin)
    P = frames.num_past
    past = range(P) if past_shown is None else range(max(0, P - past_shown), P)
    fut = range(frames.num_future) if future_shown is None else future_shown
    steps = list(past) + [P + f for f in fut]
    rows = frames.rows(errors)
    jobs = [(kind, s, k) for kind, _, s in rows for k in steps]  # row-major panels
    with _renderer_of(panel_size, renderer) as r:
        draw = _Panels(frames, r, view, grid, semantic)
        tiles = [draw.panel(kind, s, k, frames.time_label(k))
                 for kind, s, k in _progress(jobs, progress, 'panels')]
    if frames.preds:
        names = [name for _, name, _ in rows]
        panels = [tiles[i:i + len(steps)] for i in range(0, len(tiles), len(steps))]
    else:  # a sequence: wrap into rows of `cols` panels
        names = None
        panels = [tiles[i:i + cols] for i in range(0, len(tiles), cols)]
    entries = frames.legend(errors and bool(frames.preds), semantic, grid)
    return canvas.grid_image(panels, names, title, entries, font=max(16, panel_size[1] // 16))


def window_video(win: OccWindow, preds: Sequence = (), *, pred_name: str = PRED_NAME,
                 future_times: Optional[Sequence[float]] = None,
                 time_origin: Optional[int] = None, size: Tuple[int, int] = (1280, 720),
                 view: Union[str, dict] = 'bev', errors: bool = True, semantic: bool = True,
                 title: str = '', orbit_step: float = 0.0, grid: OccGrid = DEFAULT_GRID,
                 renderer: Optional[OccRenderer] = None, progress: bool = False
                 ) -> List[np.ndarray]:
    """Video frames of a window and forecasts of its future, one per time step (past
    steps first; ``win``, ``preds``, ``pred_name``, ``future_times``, ``time_origin`` as
    in :func:`window_image`).

    Each frame of ``size = (W, H)`` pixels shows the panels ground truth | forecast
    sample(s) | errors of the first sample side by side, in rows when there are many
    samples (only ground truth without forecasts), the time in the title and on every
    panel, and the legend underneath.
    With ``orbit_step`` (degrees per frame) the camera circles the ego (orbit view).

    Returns:
        list of ``P + T_f`` ``(H, W, 3) uint8`` RGB frames.
    """
    frames = _Frames(win, preds, pred_name, future_times, time_origin)
    rows = frames.rows(errors)
    entries = frames.legend(any(k == 'errors' for k, _, _ in rows), semantic, grid)
    legend = canvas.legend_strip(entries, size[0], 16)
    _, _, pw, ph = canvas.panel_layout(size, len(rows), legend.shape[0])
    out = []
    with _renderer_of((pw, ph), renderer) as r:
        draw = _Panels(frames, r, view, grid, semantic)
        for k in _progress(range(len(frames)), progress, 'frames'):
            cam = orbit_camera(180.0 + orbit_step * k) if orbit_step else None
            t = frames.time_label(k)
            panels = [draw.panel(kind, s, k, f'{name}  {t}', cam) for kind, name, s in rows]
            phase = ('observed' if k < frames.num_past else
                     'forecast' if frames.preds else 'future')
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
    occ, mask = to_numpy(occ), None if mask is None else to_numpy(mask)
    entries = canvas.class_entries([occ], grid.free_label, grid.class_names)
    entries += canvas.extra_entries(True, traj is not None,
                                    mask is not None and bool(np.any(mask == 0)))
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
            ...``, i.e. ``FRAME_DT`` steps); written on each panel as ``+0.5 s``.
        past: optional ``(T_p, X, Y, Z)`` observed frames; the last ``past_shown`` of
            them (default 1, the present; ``None``: all) lead the columns.
        traj: optional ``(R, 3)`` waypoints ``x, y, yaw`` in the present ego frame of the
            last ``R`` frames of past + future (e.g. present and future: ``R = T + 1``);
            ``R`` must cover the frames shown.
        grid, view: see :func:`render.render_occupancy`.
        panel_size: ``(width, height)`` of one panel in pixels.
        errors: add the error row (TP / FP / FN / wrong class).

    Returns:
        ``out_path``.

    Raises:
        ValueError: ``gt`` and ``pred`` differ in shape, ``times`` in length, or
        ``traj`` covers fewer frames than shown.
    """
    from occwm.visualization.media import save_image
    gt, pred = to_numpy(gt), to_numpy(pred)
    if gt.shape != pred.shape or gt.ndim != 4:
        raise ValueError(f'gt and pred must both be (T, X, Y, Z), got {gt.shape} and {pred.shape}')
    if times is not None and len(times) != len(gt):
        raise ValueError(f'{len(times)} times for {len(gt)} frames')
    past = gt[:0] if past is None else to_numpy(past)
    if past_shown is not None:
        past = past[len(past) - min(past_shown, len(past)):]
    occ = np.concatenate([past, gt])  # (P + T, X, Y, Z)
    if traj is not None:
        traj = to_numpy(traj)
        if len(traj) < len(occ):
            raise ValueError(f'traj has {len(traj)} rows for the {len(occ)} frames shown '
                             f'(past_shown={past_shown}); give a pose for every frame')
        traj = traj[len(traj) - len(occ):]
    win = OccWindow(occ=occ, traj=traj, num_past=len(past))
    img = window_image(win, [pred], future_times=times, view=view, panel_size=panel_size,
                       errors=errors, grid=grid)
    return save_image(img, out_path)
