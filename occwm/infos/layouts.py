"""Read every info-pkl layout in use and normalise it to occwm's scene-keyed frame_infos.

Users arrive with info pkls made for OccWorld, DOME or I²-World, or by
mmdetection3d / UniAD. ``load_infos`` takes any of them as they are and returns
``{scene_name: [frame_info, ...]}`` with the frame_info of ``occwm.infos.fields``
(frames in time order). One small adapter per layout turns the pkl into frames; the
checks, sorting, splitting and trajectory fields are shared, so the same frames
give the same windows whichever layout they came from.

Layouts (``detect_layout`` names; checked against each repository's loader):

- ``occworld``: ``{'metadata', 'infos': {scene_name: [frame, ...]}}``, frames in time
  order. OccWorld (wzzheng/OccWorld) ``nuscenes_infos_{train,val}_temporal_v3_scene.pkl``
  and occwm's own pkls. Required per frame: ``token``, ``timestamp`` (int µs),
  ``ego2global_translation`` (3,) / ``ego2global_rotation`` (4,) w, x, y, z,
  ``lidar2ego_translation`` / ``lidar2ego_rotation``.
- ``dome``: the same scene-keyed file whose frames also carry ``pose_mode`` (one-hot
  turn command, kept; zyy721/DOME ``dataset/dataset.py``). Required: as ``occworld``
  plus ``pose_mode``.
- ``i2world``: ``{'infos': [frame, ...], 'metadata'}``, a flat list with ``occ_path``
  ``.../gts/<scene>/<token>`` and ``prev`` (lzzzzzm/II-World
  ``mmdet3d/datasets/nuscenes_world_dataset.py``). Required: as ``occworld`` plus
  ``occ_path``.
- ``flat``: ``{'infos': [frame, ...], 'metadata'}`` without ``occ_path`` (mmdetection3d
  0.x and UniAD converters). Required: as ``occworld``; ``scene_token`` to group by.
- ``mmdet3d_v2``: ``{'metainfo', 'data_list': [frame, ...]}`` (mmdetection3d 1.x
  ``update_infos_to_v2``). Required: ``token``, ``timestamp`` (float seconds),
  ``ego2global`` (4, 4), ``lidar_points['lidar2ego']`` (4, 4); ``scene_token`` optional.

Scene names. Occ3D-nuScenes ``gts/`` folders are named by the scene NAME
(``scene-0103``), which flat lists do not carry. The name of a frame is, in order:
the folder of its ``occ_path``; ``scene_names[scene_token]``; ``scene_names[token]``
(``scene_names_from_nuscenes`` gives both maps from a nuScenes root); the
``scene_token`` itself; else the frame joins a pool that is cut into sequences at
time gaps and named ``seq-0000``, ``seq-0001``, ... (the last two fall-backs warn:
their ``gts/`` paths will not match Occ3D folders).

Order and gaps. Scene-keyed layouts must already be in time order (OccWorld's and
DOME's loaders trust the order; an unsorted scene is an error); flat lists are sorted
by timestamp within each scene. A scene is cut where two consecutive keyframes are
more than ``max_gap_s`` apart (nuScenes keyframes are ~0.5 s apart) or, where frames
carry ``prev``, where a frame's ``prev`` is not the previous frame's token (I²-World's
sequence rule). The parts are named ``<scene>``, ``<scene>@1``, ``<scene>@2``, ...
and keep ``occ_path = 'gts/<scene>/<token>'`` in the original scene folder; each cut
warns (``warnings.warn``) naming the file, the scene, the two timestamps and the gap.

Trajectories. occwm always derives the trajectory fields from the ego2global poses
(``occwm.infos.fields.add_trajectories``). Fields stored by a source are kept only when a scene
carries all five and was not cut; otherwise all five are recomputed (I²-World's
``gt_ego_fut_trajs``, for one, are in the LiDAR frame, not the ego frame).
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from occwm.geometry import matrix_to_quaternion
from occwm.infos.checks import check_ego_motion, check_timestamp_unit, check_unique_tokens
from occwm.infos.fields import add_trajectories
from occwm.io import read_pickle

KNOWN_LAYOUTS = ('occworld', 'dome', 'i2world', 'flat', 'mmdet3d_v2')
DEFAULT_MAX_GAP_S = 0.6
POSE_KEYS = ('ego2global_translation', 'ego2global_rotation',
             'lidar2ego_translation', 'lidar2ego_rotation')
REQUIRED_KEYS = ('token', 'timestamp') + POSE_KEYS
TRAJ_KEYS = ('gt_ego_fut_trajs', 'gt_ego_fut_masks', 'gt_ego_his_trajs',
             'ego_fut_traj', 'ego_his_traj')
SPLIT_SEP = '@'

# An adapter yields (scene name or None, frames, in_time_order) groups; a frame is a
# normalised dict with a 'where' entry (its place in the pkl) used by error messages.
Group = Tuple[Optional[str], List[dict], bool]


# ----------------------------------------------------------------------------- reading


def _first_frame(data) -> dict:
    """The first frame of a pkl of any known layout, or {}."""
    if isinstance(data, dict) and isinstance(data.get('infos'), dict):
        for frames in data['infos'].values():
            if isinstance(frames, (list, tuple)) and frames and isinstance(frames[0], dict):
                return frames[0]
    for key in ('infos', 'data_list'):
        seq = data.get(key) if isinstance(data, dict) else None
        if isinstance(seq, (list, tuple)) and seq and isinstance(seq[0], dict):
            return seq[0]
    return {}


def detect_layout(data, path: str = '<pkl>') -> str:
    """Name the layout of an unpickled info file (one of ``KNOWN_LAYOUTS``).

    Args:
        data: the unpickled object.
        path: the file, for the error message.

    Raises:
        ValueError: not a known layout; the message names ``path``, the known layouts
            and the keys found.
    """
    if isinstance(data, dict):
        first = _first_frame(data)
        if isinstance(data.get('infos'), dict):
            return 'dome' if 'pose_mode' in first else 'occworld'
        if isinstance(data.get('infos'), (list, tuple)):
            return 'i2world' if 'occ_path' in first else 'flat'
        if isinstance(data.get('data_list'), (list, tuple)):
            return 'mmdet3d_v2'
        found = (f'a dict with keys {sorted(map(str, data))[:20]}'
                 + ''.join(f'; {k!r} is a {type(data[k]).__name__}'
                           for k in ('infos', 'data_list') if k in data))
    else:
        found = f'a {type(data).__name__}'
    raise ValueError(
        f"{path}: unknown info layout: found {found}. Known layouts: "
        "occworld/dome {'infos': {scene_name: [frame, ...]}}, i2world/flat {'infos': "
        "[frame, ...]}, mmdet3d_v2 {'data_list': [frame, ...]} (see occwm.infos.layouts)")


# ------------------------------------------------------------------------- frame checks
def _fault(path: str, where: str, msg: str) -> ValueError:
    return ValueError(f'{path}: {where}: {msg}')


def _check_keys(frame, keys, path: str, where: str, layout: str) -> None:
    if not isinstance(frame, dict):
        raise _fault(path, where, f'frame is a {type(frame).__name__}, not a dict')
    missing = [k for k in keys if k not in frame]
    if missing:
        raise _fault(path, where, f'missing required key(s) {missing} for layout {layout!r} '
                                  f'(frame keys: {sorted(map(str, frame))[:25]})')


def _vector(value, n: int, name: str, path: str, where: str) -> np.ndarray:
    try:
        v = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise _fault(path, where, f'{name} is not numeric ({e})') from e
    if v.shape != (n,):
        raise _fault(path, where, f'{name} has {v.size} values, want {n}')
    if not np.all(np.isfinite(v)):
        raise _fault(path, where, f'non-finite {name} {v.tolist()}')
    return v


def _pose(translation, rotation, name: str, path: str, where: str
          ) -> Tuple[np.ndarray, np.ndarray]:
    """Checked ``(3,)`` translation and ``(4,)`` w, x, y, z quaternion, float64."""
    t = _vector(translation, 3, f'{name}_translation', path, where)
    q = _vector(rotation, 4, f'{name}_rotation', path, where)
    if np.linalg.norm(q) < 1e-6:
        raise _fault(path, where, f'zero-norm {name}_rotation quaternion {q.tolist()}')
    return t, q


def _pose_from_matrix(matrix, name: str, path: str, where: str
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """A ``(4, 4)`` transform to translation + w, x, y, z quaternion
    (``occwm.geometry.matrix_to_quaternion``: float32-rounded mmdet3d matrices convert)."""
    try:
        T = np.asarray(matrix, np.float64)
    except (TypeError, ValueError) as e:
        raise _fault(path, where, f'{name} is not a numeric matrix ({e})') from e
    if T.shape != (4, 4):
        raise _fault(path, where, f'{name} has shape {T.shape}, want (4, 4)')
    if not np.all(np.isfinite(T)):
        raise _fault(path, where, f'non-finite {name} matrix')
    try:
        q = matrix_to_quaternion(T)                                    # (4,) w, x, y, z
    except ValueError as e:
        raise _fault(path, where, f'{name} {e}') from e
    return T[:3, 3].copy(), q


def _timestamp_us(value, seconds: bool, path: str, where: str) -> int:
    try:
        ts = float(value)
    except (TypeError, ValueError) as e:
        raise _fault(path, where, f'timestamp {value!r} is not a number') from e
    if not np.isfinite(ts):
        raise _fault(path, where, f'non-finite timestamp {value!r}')
    if seconds:
        return int(round(ts * 1e6))
    return int(value) if isinstance(value, (int, np.integer)) else int(round(ts))


def _occ_rel(occ_path: str) -> str:
    """``'./data\\nuscenes/gts/scene-0103/<token>[/labels.npz]'`` ->
    ``'gts/scene-0103/<token>'`` (the last two folders: scene and token)."""
    parts = [p for p in str(occ_path).replace('\\', '/').split('/') if p not in ('', '.')]
    if parts and parts[-1].endswith('.npz'):
        parts = parts[:-1]
    return '/'.join(['gts'] + parts[-2:])


def _fix_separators(frame: dict) -> None:
    """Windows ``\\`` to ``/`` in path strings (``*_path`` keys and camera ``data_path``)."""
    for k, v in frame.items():
        if k.endswith('_path') and isinstance(v, str):
            frame[k] = v.replace('\\', '/')
    cams = frame.get('cams')
    if isinstance(cams, dict):
        for cam in cams.values():
            if isinstance(cam, dict) and isinstance(cam.get('data_path'), str):
                cam['data_path'] = cam['data_path'].replace('\\', '/')


def _normalise(raw: dict, path: str, where: str, layout: str) -> dict:
    """A checked shallow copy of a frame in the occworld / i2world / flat layouts."""
    _check_keys(raw, REQUIRED_KEYS + (('occ_path',) if layout == 'i2world' else ()),
                path, where, layout)
    f = dict(raw)
    f['token'] = str(raw['token'])
    f['timestamp'] = _timestamp_us(raw['timestamp'], False, path, where)
    for name in ('ego2global', 'lidar2ego'):
        f[f'{name}_translation'], f[f'{name}_rotation'] = _pose(
            raw[f'{name}_translation'], raw[f'{name}_rotation'], name, path, where)
    if 'occ_path' in raw:
        f['occ_path'] = _occ_rel(raw['occ_path'])
    _fix_separators(f)
    f['where'] = where
    return f


# ------------------------------------------------------------------------------ adapters
def _adapt_scene_keyed(data, path, layout, scene_names) -> List[Group]:
    groups = []
    for scene, frames in data['infos'].items():
        if not isinstance(frames, (list, tuple)):
            raise _fault(path, f'scene {scene!r}',
                         f'frames are a {type(frames).__name__}, not a list')
        norm = [_normalise(fr, path, f'scene {scene!r} frame {i}', layout)
                for i, fr in enumerate(frames)]
        if layout == 'dome':
            for i, fr in enumerate(frames):
                _check_keys(fr, ('pose_mode',), path, f'scene {scene!r} frame {i}', layout)
        groups.append((str(scene), norm, True))
    return groups


def adapt_occworld(data, path: str, scene_names=None) -> List[Group]:
    """OccWorld / occwm scene-keyed ``{'infos': {scene: [frame, ...]}}``, time-ordered."""
    return _adapt_scene_keyed(data, path, 'occworld', scene_names)


def adapt_dome(data, path: str, scene_names=None) -> List[Group]:
    """DOME: the OccWorld scene-keyed file whose frames carry ``pose_mode`` (kept)."""
    return _adapt_scene_keyed(data, path, 'dome', scene_names)


def _name_of(f: dict, scene_names: Optional[Dict[str, str]]) -> Tuple[Optional[str], str]:
    """(scene name or None, how it was found) of a flat-list frame (module docstring)."""
    if 'occ_path' in f:
        return f['occ_path'].split('/')[1], 'occ_path'
    names = scene_names or {}
    st = f.get('scene_token')
    if st is not None and st in names:
        return str(names[st]), 'scene_names'
    if f['token'] in names:
        return str(names[f['token']]), 'scene_names'
    if st is not None:
        return str(st), 'scene_token'
    return None, 'none'


def _group_flat(frames: List[dict], scene_names) -> List[Group]:
    """Group flat-list frames by scene name (first appearance order; sorted later)."""
    groups: Dict[Optional[str], List[dict]] = {}
    for f in frames:
        name, how = _name_of(f, scene_names)
        f['_name_from'] = how
        groups.setdefault(name, []).append(f)
    return [(name, fr, False) for name, fr in groups.items()]


def _where_flat(key: str, index: int, raw) -> str:
    """``infos[12]`` plus the frame's scene (occ_path folder or scene_token) when known."""
    scene = None
    if isinstance(raw, dict):
        if isinstance(raw.get('occ_path'), str):
            scene = repr(_occ_rel(raw['occ_path']).split('/')[1])
        elif raw.get('scene_token') is not None:
            scene = f"token {raw['scene_token']}"
    return f'{key}[{index}]' + (f' (scene {scene})' if scene else '')


def _adapt_list(data, path, layout, scene_names) -> List[Group]:
    frames = data['infos']
    norm = [_normalise(fr, path, _where_flat('infos', i, fr), layout)
            for i, fr in enumerate(frames)]
    return _group_flat(norm, scene_names)


def adapt_i2world(data, path: str, scene_names=None) -> List[Group]:
    """I²-World flat list; scene = the folder of ``occ_path`` (``.../gts/<scene>/<token>``)."""
    return _adapt_list(data, path, 'i2world', scene_names)


def adapt_flat(data, path: str, scene_names=None) -> List[Group]:
    """mmdet3d-0.x / UniAD flat list grouped by ``scene_token`` (names via ``scene_names``)."""
    return _adapt_list(data, path, 'flat', scene_names)


def adapt_mmdet3d_v2(data, path: str, scene_names=None) -> List[Group]:
    """mmdetection3d 1.x ``{'metainfo', 'data_list'}``: timestamps in seconds and
    ``(4, 4)`` ``ego2global`` / ``lidar_points['lidar2ego']`` matrices, converted to µs
    and translation + w, x, y, z quaternion."""
    norm = []
    for i, raw in enumerate(data['data_list']):
        where = _where_flat('data_list', i, raw)
        _check_keys(raw, ('token', 'timestamp', 'ego2global', 'lidar_points'), path, where,
                    'mmdet3d_v2')
        lidar = raw['lidar_points']
        if not isinstance(lidar, dict) or 'lidar2ego' not in lidar:
            raise _fault(path, where, "missing required key lidar_points['lidar2ego'] "
                                      "for layout 'mmdet3d_v2'")
        f = dict(raw)
        f['token'] = str(raw['token'])
        f['timestamp'] = _timestamp_us(raw['timestamp'], True, path, where)
        f['ego2global_translation'], f['ego2global_rotation'] = _pose_from_matrix(
            raw['ego2global'], 'ego2global', path, where)
        f['lidar2ego_translation'], f['lidar2ego_rotation'] = _pose_from_matrix(
            lidar['lidar2ego'], 'lidar2ego', path, where)
        if 'occ_path' in raw:
            f['occ_path'] = _occ_rel(raw['occ_path'])
        f['where'] = where
        norm.append(f)
    return _group_flat(norm, scene_names)


# the container each layout uses: a layout may be forced over another of the same container
_CONTAINER = dict(occworld='infos dict', dome='infos dict', i2world='infos list',
                  flat='infos list', mmdet3d_v2='data_list')

ADAPTERS: Dict[str, Callable[..., List[Group]]] = dict(
    occworld=adapt_occworld, dome=adapt_dome, i2world=adapt_i2world, flat=adapt_flat,
    mmdet3d_v2=adapt_mmdet3d_v2)


# --------------------------------------------------------------------- order and splits
def _check_order(frames: List[dict], path: str, scene: str, ordered: bool) -> List[dict]:
    """Sort (flat lists) or check the order (scene-keyed); duplicates are errors."""
    if not ordered:
        frames = sorted(frames, key=lambda f: f['timestamp'])  # stable
    for a, b in zip(frames, frames[1:]):
        where = b['where'] if repr(scene) in b['where'] else f"scene {scene!r} {b['where']}"
        if b['timestamp'] == a['timestamp']:
            raise _fault(path, where,
                         f"duplicate timestamp {b['timestamp']} (also at {a['where']}, "
                         f"tokens {a['token']} and {b['token']})")
        if b['timestamp'] < a['timestamp']:
            raise _fault(path, where,
                         f"timestamps are not increasing ({a['timestamp']} then "
                         f"{b['timestamp']}); scene-keyed layouts must be in time order "
                         f"(OccWorld's loader trusts it)")
    return frames


def _cuts(frames: List[dict], max_gap_us: int) -> List[Tuple[int, str]]:
    """Indices ``k`` where a new sequence starts at ``frames[k]``, with the reason."""
    cuts = []
    for k in range(1, len(frames)):
        a, b = frames[k - 1], frames[k]
        gap = b['timestamp'] - a['timestamp']
        if gap > max_gap_us:
            cuts.append((k, f'timestamps {a["timestamp"]} and {b["timestamp"]} are '
                            f'{gap / 1e6:.3f} s apart (> {max_gap_us / 1e6:g} s)'))
        elif 'prev' in b and b['prev'] != a['token']:
            cuts.append((k, f"frame {b['token']} (timestamp {b['timestamp']}) has prev "
                            f"{b['prev']!r}, not the previous frame {a['token']}"))
    return cuts


def _pieces(frames, cuts) -> List[List[dict]]:
    bounds = [0] + [k for k, _ in cuts] + [len(frames)]
    return [frames[s:e] for s, e in zip(bounds, bounds[1:])]


def load_infos(path: str, layout: str = 'auto', scene_names: Optional[Dict[str, str]] = None,
               max_gap_s: float = DEFAULT_MAX_GAP_S) -> Dict[str, List[dict]]:
    """Read an info pkl of any known layout as occwm's ``{scene_name: [frame_info, ...]}``.

    Args:
        path: the info pkl.
        layout: one of ``KNOWN_LAYOUTS`` or ``'auto'`` (``detect_layout``).
        scene_names: optional ``{scene_token or sample token: scene name}``, e.g. from
            ``scene_names_from_nuscenes``; needed by flat lists without ``occ_path``.
        max_gap_s: a scene is cut where consecutive frames are more than this many
            seconds apart (default 0.6 s; nuScenes keyframes are ~0.5 s apart).

    Returns:
        ``{scene_name: [frame_info, ...]}`` in time order, scenes in the pkl's order
        (flat lists: by first timestamp). Each frame_info (``occwm.infos.fields``) holds
        ``token`` str, ``timestamp`` int µs, ``scene_name``, ``ego2global_translation``
        (3,) / ``ego2global_rotation`` (4,) w, x, y, z and the same for ``lidar2ego``,
        all float64, ``occ_path`` ``'gts/<scene folder>/<token>'``, the trajectory
        fields, and the source frame's other keys (paths with ``/`` separators).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming ``path`` (and the scene and frame where it applies): not a
            pickle, unknown layout, missing keys, non-finite or zero-norm poses,
            duplicate tokens or timestamps, timestamps in another unit (a median frame
            period outside 0.01-10 s), an unsorted scene in a scene-keyed layout, ego
            poses faster or accelerating harder than a road vehicle can
            (``occwm.infos.checks``).

    Warns:
        UserWarning: a scene cut at a time gap or a broken ``prev`` chain; frames with
        no scene name (occupancy paths will not match Occ3D's folders).
    """
    data = read_pickle(path)
    detected = detect_layout(data, path)
    if layout == 'auto':
        layout = detected
    elif layout not in ADAPTERS:
        raise ValueError(f'{path}: unknown layout {layout!r}; known: {list(KNOWN_LAYOUTS)} or auto')
    elif _CONTAINER[layout] != _CONTAINER[detected]:
        raise ValueError(f'{path}: layout {layout!r} requested, but the file is laid out '
                         f'as {detected!r}')
    groups = ADAPTERS[layout](data, path, scene_names)
    if not groups or not any(fr for _, fr, _ in groups):
        raise ValueError(f'{path}: no frames (layout {layout!r})')

    check_unique_tokens((f for _, fr, _ in groups for f in fr), path)
    unit = 's' if layout == 'mmdet3d_v2' else 'µs'
    for name, fr, _ in groups:  # before the order: int-rounded seconds read as duplicates
        check_timestamp_unit(fr, path, name, unit)
    groups = [(name, _check_order(fr, path, name or '<unnamed>', ordered), ordered)
              for name, fr, ordered in groups if fr]
    if not groups[0][2]:  # flat lists: scenes by first timestamp, then name
        groups.sort(key=lambda g: (g[1][0]['timestamp'], str(g[0])))
    out: Dict[str, List[dict]] = {}
    fallback = set()  # how unnamed frames were named, for one warning
    for name, frames, _ in groups:
        cuts = _cuts(frames, int(round(max_gap_s * 1e6)))
        if name is None:  # no scene information: time-gap sequences, cut silently
            names = [f'seq-{k:04d}' for k in range(len(cuts) + 1)]
            fallback.add('time-gap sequences seq-XXXX')
        else:
            if frames[0].get('_name_from') == 'scene_token':
                fallback.add('their scene_token')
            names = [name] + [f'{name}{SPLIT_SEP}{k}' for k in range(1, len(cuts) + 1)]
            for (_, reason), part_name in zip(cuts, names[1:]):
                warnings.warn(f'{path}: scene {name!r} is cut where {reason}; the frames from '
                              f'there on form scene {part_name!r}', stacklevel=2)
        for part_name, part in zip(names, _pieces(frames, cuts)):
            check_ego_motion(part, path, part_name)
            if part_name in out:
                raise ValueError(f'{path}: scene name {part_name!r} occurs twice '
                                 f'(after cutting scenes at time gaps)')
            out[part_name] = _finish_scene(part, part_name, name or part_name, bool(cuts))
    if fallback:
        warnings.warn(f'{path}: frames without a scene name (no occ_path, no scene_names '
                      f"entry) are named by {' and '.join(sorted(fallback))}, so their gts/ "
                      "paths will not match Occ3D's scene folders: pass scene_names="
                      'scene_names_from_nuscenes(dataroot, version)', stacklevel=2)
    return out


def _finish_scene(frames: List[dict], scene_name: str, folder: str, was_cut: bool
                  ) -> List[dict]:
    """Set ``scene_name`` and ``occ_path`` (in the original ``folder``), drop the
    bookkeeping keys, and fill the trajectory fields unless all are there and the
    scene was not cut."""
    for f in frames:
        f.setdefault('occ_path', f"gts/{folder}/{f['token']}")
        f['scene_name'] = scene_name
        f.pop('where', None)
        f.pop('_name_from', None)
    if was_cut or not all(k in f for f in frames for k in TRAJ_KEYS):
        add_trajectories(frames)
    return frames


def scene_names_from_nuscenes(dataroot: str, version: str = 'v1.0-trainval'
                              ) -> Dict[str, str]:
    """``{scene_token: scene name}`` and ``{sample token: scene name}`` in one dict,
    read with nuscenes-devkit's ``NuScenes`` tables (tokens are unique across tables).

    Args:
        dataroot: the nuScenes root holding ``<version>/scene.json`` etc.
        version: e.g. ``'v1.0-trainval'``, ``'v1.0-mini'``.

    Raises:
        whatever ``NuScenes`` raises for a missing or broken table (it names the path).
    """
    from nuscenes.nuscenes import NuScenes
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    names = {s['token']: s['name'] for s in nusc.scene}
    names.update({s['token']: names[s['scene_token']] for s in nusc.sample})
    return names


def load_scene_infos(path: str, layout: str = 'auto', scene_names: Optional[Dict[str, str]] = None
                     ) -> Dict[str, List[dict]]:
    """Read an info pkl of any supported layout (OccWorld, DOME, I²-World, mmdet3d 0.x /
    UniAD flat lists, mmdet3d 1.x) as ``{scene_name: [frame_info, ...]}``, frames in time
    order; ``load_infos`` with its defaults.

    Raises:
        FileNotFoundError / ValueError naming ``path`` (see ``load_infos``): the file is
        missing, not a pickle or of no known layout, a frame misses keys or has a bad
        pose, or a scene-keyed scene's timestamps are not increasing.
    """
    return load_infos(path, layout=layout, scene_names=scene_names)
