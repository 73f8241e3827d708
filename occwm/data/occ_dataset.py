"""``OccForecastDataset``: deterministic windows of past + future occupancy frames.

Reads the Occ3D-nuScenes occupancy layout (``gts/<scene>/<token>/labels.npz``) with
an info pkl of any supported layout (``occwm.infos.layouts``: OccWorld's
``nuscenes_infos_{train,val}_temporal_v3_scene.pkl``, DOME, I²-World, mmdet3d 0.x /
UniAD flat lists, mmdet3d 1.x ``data_list``, and the pkls of ``tools/build_occupancy.py``
and the synthetic generator), all normalised to occwm's scene-keyed frame_infos.
"""
from __future__ import annotations

import os.path as osp
import warnings
from typing import Dict, List, Optional

import numpy as np
from mmengine.dataset import BaseDataset

from occwm.infos.layouts import DEFAULT_MAX_GAP_S, SPLIT_SEP, load_infos
from occwm.infos.fields import ego2global_of
from occwm.geometry import trajectory_in_frame
from occwm.grid import OCC3D_CLASS_NAMES, OCC3D_PALETTE
from occwm.registry import DATASETS
from occwm.window import frames_needed, window_starts


_SAID = set()  # the short-scene warnings given (test sets are built twice by the tools)


@DATASETS.register_module()
class OccForecastDataset(BaseDataset):
    """Windows of ``num_past + num_future`` consecutive frames of a scene (2 Hz).

    Window ``i`` is fixed at construction: ``__getitem__(i)`` always returns the same
    frames (randomness only in seeded transforms). A scene of ``L`` frames gives
    ``len(range(0, L - T + 1, stride))`` windows with ``T = num_past + num_future``
    (``window_rule='all'``); shorter scenes give none. The present frame is the last
    past frame, ``num_past - 1``.

    Args:
        ann_file: info pkl of any supported layout (relative to ``data_root`` unless
            absolute).
        data_root: folder holding ``gts/<scene>/<token>/labels.npz``.
        layout: the pkl's layout (``occwm.infos.layouts.KNOWN_LAYOUTS``) or
            ``'auto'`` (default: detected).
        scene_names: optional ``{scene_token or sample token: scene name}`` for flat
            lists that carry no ``occ_path`` (``scene_names_from_nuscenes``).
        max_gap_s: scenes are cut where frames are more than this many seconds apart
            (default 0.6 s; parts named ``<scene>``, ``<scene>@1``, ...).
        num_past: past frames including the present (default 5, OccWorld protocol).
        num_future: future frames (default 6: 0.5 s ... 3 s).
        stride: frames between window starts (default 1: every window).
        window_rule: which windows of a scene (``occwm.window.window_starts``):
            ``'all'`` (default; I²-World), ``'occworld'`` (``L - 12`` windows for T = 11,
            as OccWorld's test set) or ``'first'`` (DOME: one per scene).
        gt_root: folder of ``<scene>/<token>/labels.npz`` when the occupancy is not at
            ``<data_root>/gts`` (e.g. scoring forecasts against another copy); the last
            two parts of each frame's ``occ_path`` name the file.
        scenes: optional list of scene names to keep (a name also keeps the parts
            ``<scene>@k`` of a scene cut at time gaps).
        **kwargs: ``pipeline``, ``test_mode``, ``indices`` ... of mmengine's ``BaseDataset``.

    Each data info (before the pipeline) holds:
        ``scene_name`` str; ``tokens`` list of T str; ``timestamps`` (T,) int64 µs;
        ``occ_paths`` list of T ``<data_root>/<occ_path>/labels.npz`` paths (the
        frame_info's ``occ_path``, so the parts of a cut scene read its original
        folder); ``ego2global`` (T, 4, 4) float64;
        ``traj`` (T, 3) float32: x, y (metres) and yaw (radians) of each frame's ego
        pose in the planar ego frame of the present frame (see ``occwm.geometry``);
        ``num_past`` int.

    Scenes too short for a window are skipped (their names and lengths:
    ``short_scenes``; a warning when other scenes give windows; a set with no window at
    all has length 0 and ``shortness()`` says why).

    Raises:
        FileNotFoundError / ValueError from ``load_infos`` naming the pkl.
    """

    METAINFO = dict(classes=OCC3D_CLASS_NAMES, palette=OCC3D_PALETTE.tolist())

    def __init__(self, ann_file: str, data_root: str = '', num_past: int = 5,
                 num_future: int = 6, stride: int = 1, scenes: Optional[List[str]] = None,
                 layout: str = 'auto', scene_names: Optional[Dict[str, str]] = None,
                 max_gap_s: float = DEFAULT_MAX_GAP_S, window_rule: str = 'all',
                 gt_root: Optional[str] = None, **kwargs):
        if num_past < 1 or num_future < 0 or stride < 1:
            raise ValueError(f'need num_past >= 1, num_future >= 0, stride >= 1; got '
                             f'{num_past}, {num_future}, {stride}')
        window_starts(0, 1, window_rule)  # raises on an unknown rule
        self.num_past, self.num_future, self.stride = num_past, num_future, stride
        self.window_rule = window_rule
        self.gt_root = gt_root
        self.scenes = scenes
        self.layout, self.scene_names, self.max_gap_s = layout, scene_names, max_gap_s
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    @property
    def window_len(self) -> int:
        """T = num_past + num_future."""
        return self.num_past + self.num_future

    def load_data_list(self) -> List[dict]:
        """One entry per window, scenes in the pkl's order, windows in time order."""
        infos = load_infos(self.ann_file, layout=self.layout, scene_names=self.scene_names,
                           max_gap_s=self.max_gap_s)
        T = self.window_len
        data_list = []
        self.short_scenes = {}
        for scene_name, frames in infos.items():
            if self.scenes is not None and not (
                    scene_name in self.scenes or scene_name.split(SPLIT_SEP)[0] in self.scenes):
                continue
            starts = window_starts(len(frames), T, self.window_rule, self.stride)
            if not starts:
                self.short_scenes[scene_name] = len(frames)
                continue
            poses = np.stack([ego2global_of(f) for f in frames])  # (L, 4, 4)
            for start in starts:
                win = frames[start:start + T]
                ego2global = poses[start:start + T]
                data_list.append(dict(
                    scene_name=scene_name,
                    tokens=[f['token'] for f in win],
                    timestamps=np.array([int(f['timestamp']) for f in win], np.int64),
                    occ_paths=[self.labels_file(f['occ_path']) for f in win],
                    ego2global=ego2global,
                    traj=trajectory_in_frame(ego2global, self.num_past - 1).astype(np.float32),
                    num_past=self.num_past))
        said = (self.ann_file, T, self.window_rule, tuple(self.short_scenes))
        if data_list and self.short_scenes and said not in _SAID:  # once per process
            _SAID.add(said)
            warnings.warn(f'{self.ann_file}: skipped, too short for a window: '
                          f'{self.shortness()}', stacklevel=2)
        return data_list

    def shortness(self) -> str:
        """Which scenes were too short for a window, and what a window needs, e.g.
        ``scene nuscenes_seq11 has 11 frames, a window needs 13 (5 past + 6 future + 2:
        window_rule 'occworld')``; ``''`` when none was."""
        if not getattr(self, 'short_scenes', None):
            return ''
        items = list(self.short_scenes.items())
        names = ', '.join(f'{n} ({L})' for n, L in items[:5]) + ' ...' * (len(items) > 5)
        which = (f'scene {items[0][0]} has {items[0][1]} frames' if len(items) == 1 else
                 f'{len(items)} scenes are shorter: {names} frames')
        need = frames_needed(self.window_len, self.window_rule)
        rule = (f' + {need - self.window_len}: window_rule {self.window_rule!r}'
                if need > self.window_len else '')
        return (f'{which}, a window needs {need} ({self.num_past} past + {self.num_future} '
                f'future{rule})')

    def _serialize_data(self):
        """mmengine's serialisation, which cannot take an empty list: a set without a
        window has length 0 (callers say why: ``shortness``)."""
        if not self.data_list:
            return np.zeros(0, np.uint8), np.zeros(0, np.int64)
        return super()._serialize_data()

    def labels_file(self, occ_path: str) -> str:
        """The ``labels.npz`` of a frame_info's ``occ_path`` (``'gts/<scene>/<token>'``)."""
        if self.gt_root is not None:
            return osp.join(self.gt_root, *occ_path.split('/')[-2:], 'labels.npz')
        return osp.join(self.data_root, occ_path, 'labels.npz')

    def _join_prefix(self):
        # Paths are built in load_data_list; only the ann_file needs the data root.
        if self.ann_file and not osp.isabs(self.ann_file) and self.data_root:
            self.ann_file = osp.join(self.data_root, self.ann_file)
