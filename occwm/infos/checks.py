"""Plausibility checks of the frames of an info pkl, beyond the keys and values of one
frame (``occwm.infos.layouts`` runs them on every pkl it reads): every frame has its own
token, timestamps are in the layout's unit, and the ego poses move as a road vehicle
can (the bounds and their sources: ``occwm.geometry.MAX_SPEED``, ``MAX_ACCEL``).

Each check raises a one-line ``ValueError`` naming the pkl, the scene and the frame:

    nuscenes_infos_val.pkl: scene 'scene-0103' frame 7: ego2global_translation: speed
    2e+12 m/s over the 0.5 s before this pose, above 70 m/s (252 km/h): faster than any
    road vehicle (token 3e8750f3...)

The frames are normalised frame dicts of ``layouts`` (``token`` str, ``timestamp`` int
µs, ``ego2global_translation`` ``(3,)`` metres in the global frame) that still carry
their place in the pkl under ``'where'`` (``"scene 'scene-0103' frame 7"``,
``"infos[12] (scene 'scene-0103')"``).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np

from occwm.geometry import TIME_UNITS, implausible_motion, timestamp_unit_mistake


def frame_place(frame: dict, scene: Optional[str]) -> str:
    """Where ``frame`` is: its ``'where'``, with the scene name in front unless it names
    a scene already."""
    where = frame.get('where', '?')
    if scene is None or 'scene ' in where:
        return where
    return f'scene {scene!r} {where}'


def check_unique_tokens(frames: Iterable[dict], path: str) -> None:
    """Every frame of the pkl has its own token (tokens name the ``gts/`` folders and the
    forecast files: with two frames of one token, ``tools/eval_occ.py`` would score one
    window with another window's forecast).

    Raises:
        ValueError: naming ``path``, the token and both places.
    """
    seen: Dict[str, dict] = {}
    for f in frames:
        first = seen.setdefault(f['token'], f)
        if first is not f:
            raise ValueError(f"{path}: {f.get('where', '?')}: duplicate token {f['token']} "
                             f"(also at {first.get('where', '?')}); every frame needs its own "
                             f'token: the ground truth and forecast files are named by it')


def check_timestamp_unit(frames: List[dict], path: str, scene: Optional[str],
                         unit: str = 'µs') -> None:
    """The median time between frames of one scene is plausible
    (``occwm.geometry.timestamp_unit_mistake``).

    Args:
        frames: the scene's frames, ``timestamp`` in µs (as normalised).
        unit: the unit the layout stores (``'µs'``; ``'s'`` for mmdet3d 1.x, whose
            seconds were multiplied by 1e6): the message names the unit to convert from.

    Raises:
        ValueError: naming ``path``, the scene and its first frame, two stored
            timestamps and the probable unit.
    """
    stored = np.array([f['timestamp'] for f in frames], np.float64) * 1e-6 / TIME_UNITS[unit]
    problem = timestamp_unit_mistake(stored, unit)
    if problem:
        raise ValueError(f'{path}: {frame_place(frames[0], scene)}: timestamp: {problem} '
                         f'(stored {stored[0]:.17g}, then {stored[1]:.17g})')


def check_ego_motion(frames: List[dict], path: str, scene: Optional[str]) -> None:
    """The ego2global translations of one time-ordered scene move as a road vehicle can
    (``occwm.geometry.implausible_motion``).

    Raises:
        ValueError: naming ``path``, the scene, the frame and its token, the speed or
            acceleration and the bound.
    """
    if len(frames) < 2:
        return
    positions = np.stack([np.asarray(f['ego2global_translation'], np.float64)
                          for f in frames])                               # (L, 3) m, global
    times = np.array([f['timestamp'] for f in frames], np.float64) * 1e-6  # (L,) s
    found = implausible_motion(positions, times)
    if found:
        k, text = found
        raise ValueError(f'{path}: {frame_place(frames[k], scene)}: ego2global_translation: '
                         f"{text} (token {frames[k]['token']})")
