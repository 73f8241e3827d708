"""Writing pictures and videos atomically: PNG / JPG images, GIF and MP4 sequences.

GIF goes through imageio's Pillow plugin; MP4 (H.264, yuv420p) through imageio's
ffmpeg plugin, which needs ``imageio-ffmpeg`` (a bundled ffmpeg binary). Without it an
MP4 request writes a GIF beside the requested path and says so.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from occwm.io import atomic_path

IMAGE_EXTS = ('.png', '.jpg', '.jpeg')
VIDEO_EXTS = ('.gif', '.mp4')


def save_image(img: np.ndarray, path: str) -> str:
    """Write an ``(H, W, 3) uint8`` RGB image (PNG or JPG by extension) atomically;
    parent folders are created. Returns ``path``.

    Raises:
        ValueError: an unsupported extension or image shape.
    """
    import imageio.v3 as iio
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_EXTS:
        raise ValueError(f'{path}: image extension must be one of {IMAGE_EXTS}')
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'{path}: want an (H, W, 3) uint8 image, got {img.shape} {img.dtype}')
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, img, extension=ext)
    os.chmod(path, 0o644)  # mkstemp creates 0600
    return path


def ffmpeg_available() -> bool:
    """Whether imageio can write MP4 (``imageio-ffmpeg`` and its ffmpeg binary)."""
    try:
        import imageio_ffmpeg
        return os.path.isfile(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # not installed, or no binary for this platform
        return False


def write_gif(frames: Sequence[np.ndarray], path: str, fps: float = 2.0, loop: int = 0) -> str:
    """Write ``(H, W, 3) uint8`` frames as an animated GIF (``loop=0``: forever).

    Pillow merges consecutive identical frames, so a GIF may hold fewer frames than
    given when some repeat.
    """
    import imageio.v3 as iio
    frames = _check_frames(frames, path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension='.gif', plugin='pillow',
                    duration=int(round(1000.0 / fps)), loop=loop)
    os.chmod(path, 0o644)
    return path


def write_mp4(frames: Sequence[np.ndarray], path: str, fps: float = 2.0) -> str:
    """Write frames as an H.264 MP4 (yuv420p, plays everywhere). Odd sizes are padded
    with white to even ones.

    Raises:
        RuntimeError: ffmpeg is unavailable (see :func:`ffmpeg_available`).
    """
    import imageio.v2 as iio2
    if not ffmpeg_available():
        raise RuntimeError('MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg==0.8.1')
    frames = _check_frames(frames, path)
    h, w = frames[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    with atomic_path(path) as tmp:
        writer = iio2.get_writer(tmp, format='FFMPEG', mode='I', fps=fps, codec='libx264',
                                 pixelformat='yuv420p', macro_block_size=1,
                                 ffmpeg_log_level='error', output_params=['-crf', '18'])
        try:
            for f in frames:
                writer.append_data(np.pad(f, pad, constant_values=255))
        finally:
            writer.close()
    os.chmod(path, 0o644)
    return path


def write_video(frames: Sequence[np.ndarray], path: str, fps: float = 2.0) -> str:
    """Write frames as GIF or MP4 by ``path``'s extension.

    An MP4 request without ffmpeg writes ``<path minus .mp4>.gif`` instead and warns
    with what to install.

    Returns:
        The path actually written.

    Raises:
        ValueError: an extension other than .gif / .mp4, or no / unequal frames.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == '.gif':
        return write_gif(frames, path, fps)
    if ext != '.mp4':
        raise ValueError(f'{path}: video extension must be one of {VIDEO_EXTS}')
    if ffmpeg_available():
        return write_mp4(frames, path, fps)
    gif = os.path.splitext(path)[0] + '.gif'
    warnings.warn(f'ffmpeg is unavailable (pip install imageio-ffmpeg==0.8.1), so MP4 cannot '
                  f'be written; writing a GIF instead: {gif}', stacklevel=2)
    return write_gif(frames, gif, fps)


def _check_frames(frames: Sequence[np.ndarray], path: str) -> list:
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError(f'{path}: no frames to write')
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or any(f.shape != shape for f in frames):
        raise ValueError(f'{path}: frames must all be (H, W, 3), got '
                         f'{sorted({f.shape for f in frames})}')
    return [f.astype(np.uint8, copy=False) for f in frames]
