"""2D layout of the pictures: text, legends and grids of rendered panels.

All images are ``(H, W, 3) uint8`` RGB. Text is drawn with Pillow's built-in scalable
font (``ImageFont.load_default(size)``, Pillow >= 10.1).
"""
from __future__ import annotations

from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np

from occwm.grid import OCC3D_CLASS_NAMES
from occwm.visualization.geometry import (CLASS_PALETTE, EGO_COLOR, ERROR_NAMES, ERROR_PALETTE,
                                          TRAJ_COLOR)
from occwm.window import to_numpy

Entry = Tuple[str, Sequence[int]]  # legend entry: (name, RGB uint8)
WHITE, BLACK, BLANK = (255, 255, 255), (0, 0, 0), (242, 242, 242)


@lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def text_size(text: str, size: int) -> Tuple[int, int]:
    """``(width, height)`` in pixels of ``text`` at font ``size``."""
    left, top, right, bottom = _font(size).getbbox(text)
    return right - left, bottom - top


def draw_text(img: np.ndarray, text: str, xy: Tuple[int, int], size: int = 20,
              color: Sequence[int] = BLACK, halo: Optional[Sequence[int]] = WHITE,
              anchor: str = 'la') -> np.ndarray:
    """Write ``text`` on ``img`` in place at ``xy`` (pixels, Pillow ``anchor``, default
    left / ascender) with an optional halo for legibility over voxels; returns ``img``."""
    from PIL import Image, ImageDraw
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    kw = dict(stroke_width=max(2, size // 8), stroke_fill=tuple(halo)) if halo is not None else {}
    draw.text(xy, text, fill=tuple(int(c) for c in color), font=_font(size), anchor=anchor, **kw)
    img[...] = np.asarray(pil)
    return img


def blank_panel(width: int, height: int, text: str = '', size: int = 18) -> np.ndarray:
    """A light grey ``(height, width, 3)`` panel with centred grey ``text``."""
    img = np.full((height, width, 3), BLANK, dtype=np.uint8)
    if text:
        draw_text(img, text, (width // 2, height // 2), size, color=(150, 150, 150), halo=None,
                  anchor='mm')
    return img


def class_entries(grids: Sequence[np.ndarray], free_label: int = 17,
                  names: Sequence[str] = OCC3D_CLASS_NAMES,
                  palette: np.ndarray = CLASS_PALETTE) -> List[Entry]:
    """Legend entries of the classes present in any of ``grids`` (``(..., X, Y, Z)``
    labels), free excluded, in label order."""
    present = set()
    for g in grids:
        if g is not None:
            present.update(int(v) for v in np.unique(to_numpy(g)))
    return [(names[c], tuple(palette[c])) for c in sorted(present) if c != free_label]


def error_entries(semantic: bool = True) -> List[Entry]:
    """Legend entries of the error view (``geometry.ERROR_PALETTE``)."""
    codes = (1, 2, 3, 4) if semantic else (1, 2, 3)
    return [(ERROR_NAMES[c], tuple(ERROR_PALETTE[c])) for c in codes]


def extra_entries(ego: bool = True, traj: bool = False, dimmed: bool = False) -> List[Entry]:
    """Legend entries of the ego box, the trajectory and the dimmed voxels."""
    out = [('ego vehicle', EGO_COLOR)] if ego else []
    if traj:
        out.append(('ego trajectory', TRAJ_COLOR))
    if dimmed:
        out.append(('not seen by cameras (pale)', (200, 200, 200)))
    return out


def _swatch_row(entry: Entry, size: int) -> Tuple[int, int]:
    w, _ = text_size(entry[0], size)
    return size + 8 + w + 18, size + 8  # swatch, gap, text, gap; row height


def _draw_entry(img: np.ndarray, entry: Entry, x: int, y: int, size: int) -> None:
    img[y + 2:y + size + 2, x:x + size] = (90, 90, 90)
    img[y + 3:y + size + 1, x + 1:x + size - 1] = entry[1]
    draw_text(img, entry[0], (x + size + 8, y + size // 2 + 2), size, halo=None, anchor='lm')


def legend_strip(entries: Sequence[Entry], width: int, size: int = 16) -> np.ndarray:
    """A legend flowing left to right, wrapping at ``width`` pixels; ``(h, width, 3)``."""
    rows, x = [[]], 10
    for e in entries:
        w, _ = _swatch_row(e, size)
        if x + w > width and rows[-1]:
            rows.append([])
            x = 10
        rows[-1].append((e, x))
        x += w
    line = size + 10
    img = np.full((len(rows) * line + 8, width, 3), WHITE, dtype=np.uint8)
    for r, items in enumerate(rows):
        for e, x in items:
            _draw_entry(img, e, x, 4 + r * line, size)
    return img


def legend_column(entries: Sequence[Entry], height: int, size: int = 16) -> np.ndarray:
    """A legend in columns of at most ``height`` pixels; ``(height, w, 3)``."""
    line = size + 10
    per_col = max(1, (height - 16) // line)
    cols = [list(entries[i:i + per_col]) for i in range(0, len(entries), per_col)] or [[]]
    widths = [max([_swatch_row(e, size)[0] for e in c] or [0]) for c in cols]
    img = np.full((height, sum(widths) + 16, 3), WHITE, dtype=np.uint8)
    x = 8
    for c, w in zip(cols, widths):
        for i, e in enumerate(c):
            _draw_entry(img, e, x, 8 + i * line, size)
        x += w
    return img


def grid_image(panels: Sequence[Sequence[Optional[np.ndarray]]],
               row_names: Optional[Sequence[str]] = None, title: Optional[str] = None,
               legend: Sequence[Entry] = (), font: int = 20, gap: int = 4) -> np.ndarray:
    """Assemble equal-size panels into one picture.

    Args:
        panels: rows of ``(h, w, 3) uint8`` panels; ``None`` leaves a blank cell.
        row_names: one name per row, written left of the row.
        title: written above the grid.
        legend: entries drawn in a strip under the grid.
        font: font size of the names and the title, pixels.
        gap: white pixels between panels.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    h, w = next(p for row in panels for p in row if p is not None).shape[:2]
    n_rows, n_cols = len(panels), max(len(r) for r in panels)
    left = (max(text_size(n, font)[0] for n in row_names) + 24) if row_names else 0
    top = font * 2 if title else 0
    body = np.full((top + n_rows * (h + gap), left + n_cols * (w + gap), 3), WHITE, np.uint8)
    for r, row in enumerate(panels):
        y = top + r * (h + gap)
        for c, p in enumerate(row):
            if p is not None:
                body[y:y + h, left + c * (w + gap):left + c * (w + gap) + w] = p
        if row_names:
            draw_text(body, row_names[r], (12, y + h // 2), font, halo=None, anchor='lm')
    if title:
        draw_text(body, title, (left + 8, font // 2), font, halo=None)
    if legend:
        body = np.concatenate([body, legend_strip(legend, body.shape[1], max(14, font - 4))])
    return body


def video_frame(panels: Sequence[np.ndarray], size: Tuple[int, int], title: str,
                legend_img: np.ndarray, font: int = 24) -> np.ndarray:
    """One video frame of fixed ``size = (W, H)``: ``title`` on top, the panels (all of
    the size :func:`panel_layout` gives for their number) in a grid of rows, and
    ``legend_img`` (a :func:`legend_strip` of width W) at the bottom."""
    W, H = size
    img = np.full((H, W, 3), WHITE, dtype=np.uint8)
    draw_text(img, title, (12, 8), font, halo=None)
    rows, cols, w, h = panel_layout(size, len(panels), legend_img.shape[0], font)
    top = font + 20
    for i, p in enumerate(panels):
        y, x = top + (i // cols) * (h + 4), (i % cols) * (w + 4)
        img[y:y + p.shape[0], x:x + p.shape[1]] = p
    lh = min(legend_img.shape[0], H)
    img[H - lh:] = legend_img[:lh, :W]
    return img


def panel_layout(size: Tuple[int, int], n: int, legend_h: int, font: int = 24
                 ) -> Tuple[int, int, int, int]:
    """``(rows, cols, w, h)``: the grid of ``n`` panels in a :func:`video_frame` of
    ``size = (W, H)`` that gives the largest square-ish panels (4 px gaps).

    Raises:
        ValueError: the frame leaves no room for the panels.
    """
    W, H = size
    avail = H - (font + 20) - legend_h
    best = None
    for rows in range(1, n + 1):
        cols = -(-n // rows)  # ceil
        w, h = (W - 4 * (cols - 1)) // cols, (avail - 4 * (rows - 1)) // rows
        if best is None or min(w, h) > min(best[2], best[3]):
            best = (rows, cols, w, h)
    if best is None or min(best[2], best[3]) < 16:
        raise ValueError(f'frame size {size} leaves no room for {n} panels')
    return best
