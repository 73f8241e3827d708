"""A simulated spinning LiDAR that looks at the SYNTHETIC world (``occwm.synthetic.world``).

``simulate_scan(world, t)`` renders frame ``t`` of a ``SyntheticWorld`` to one LiDAR
sweep with a per-point Occ3D label, as the nuScenes LIDAR_TOP (Velodyne HDL-32E) sees it
by default, plus the tracked boxes of the world's agents. The output is what occwm's
"bring your own LiDAR" frame format holds (``occwm.occupancy.frames.write_frame``);
``tools/make_synthetic.py --lidar`` writes it and builds occupancy from it with the
same builder as real data.

Sensor (``LidarConfig``, defaults = HDL-32E as mounted on the nuScenes car):
``num_beams`` = 32 beams at evenly spaced elevations from -30.67 deg to +10.67 deg
(1.33 deg apart), ``azimuth_steps`` = 1080 firings per turn (0.33 deg), so 34,560 rays a
sweep; returns between ``min_range`` and ``max_range`` (1-70 m) of the sensor. It sits
``mount = (0.944, 0, 1.840)`` m in the ego frame (x forward, y left, z up, origin on the
road under the rear axle; the nuScenes scene-0103 LIDAR_TOP calibration) with its x axis
turned ``mount_yaw`` = -90 deg (nuScenes: LiDAR x right, y forward), level in the
calibration (the body tilt below is noise). A sweep is instantaneous at the frame's
timestamp (no rolling shutter / motion skew).

World geometry (all heights in metres above the road surface, which lies at
``world.cfg.ground_z`` in the ego frame):

* the ground: a surface per static-map cell (``map_resolution`` = 0.2 m), at the road
  height, ``kerb_height`` higher on sidewalk cells; cells the map leaves unlabelled
  (far from the roads, under buildings) are ground of label ``open_ground_label``
  (``TERRAIN``; ``NONE`` = 255 drops those returns, the ray still stops);
* static objects: the one vertical interval ``[z0, z1]`` of each map cell (buildings,
  trees, hedges, posts, barriers, cones; an interval with ``z0 <= 0`` stands on the
  ground; they stand on the ground's relief). ``VEGETATION`` is porous: a ray crossing a
  vegetation cell is stopped there with a probability of ``vegetation_hit`` (scattered
  returns in depth, as from foliage); a range draws it per cell from a smooth random field
  (``foliage_scale`` m across), so one tree is dense and the next one a loose scatter of
  returns through its crown. Crowns are ragged: a share ``foliage_gaps`` of their area is
  open (patches about a voxel across, from a smooth random field) and each cell's top is
  lowered and its bottom raised by up to ``crown_ragged`` m (another field), so the
  foliage is not a solid block; inside a crown the leaves are clumped: a share
  ``leaf_gaps`` of its ``leaf_size`` m cubes (global frame, a hash of the cube and the
  world's seed) hold none, and a ray crossing such a cube goes on;
* relief: cells of open ground and ``TERRAIN`` (not roads, sidewalks or other flat
  ground) are raised by a smooth random field of up to an amplitude drawn per scene
  from ``[0, terrain_relief]`` metres (``relief_scale`` m across, skewed towards low
  ground: the field squared) plus a
  per-cell bump of ``terrain_roughness`` m (half-normal std): embankments and rough
  verges. Relief and the foliage roughness above are off by default (flat open ground,
  whole crowns, ``vegetation_hit`` 0.35): with them on (``tools/make_synthetic.py
  --terrain-relief 2.5 --rough-foliage``) the height and sparseness statistics moved
  towards real LiDAR occupancy, but a tokenizer trained on them reconstructed the real
  sequences no better (``docs/domain_gap.md``, "Relief and foliage");
* agents: oriented boxes standing on the ground under their centre; a car is a body
  (the lower 55 % of its height, full footprint) plus a cabin (x in [-0.35, 0.2] of
  its length, full height), as ``occwm.synthetic.scenes.render_occupancy`` draws it.

Ray casting is exact against this geometry (no voxelisation): an Amanatides & Woo DDA
in 2-D over the static map's 0.2 m cells (each cell tests the ray's height interval
across it against the ground surface and the object interval), on two levels (blocks of
8 x 8 cells whose highest surface lies below the ray are skipped whole), and slab tests
against the agents' boxes (only the rays within a box's azimuth window); the nearest hit
wins. ``occwm.occupancy.visibility.traverse_voxels`` marks the union of the voxels rays
cross in a 3-D grid and returns no per-ray first hit, hence the 2-D walk here. Cost on
this repo's 2-core machine, one thread: about 0.23 s of CPU a sweep of 34,560 rays (about
0.8 M cell steps; a one-level walk took 4.5 M steps and 0.9 s), 4.5 s a 20-frame scene.

Noise (seeded per ``(cfg.seed, world.seed, t)``, deterministic): Gaussian range noise of
``range_noise`` metres along each ray, a share ``dropout`` of returns dropped, and a
body pitch and roll per frame (``tilt_std`` degrees) that tilt the sensor against the
written calibration, as an unmodelled suspension / road-grade tilt does on a real car
(the builder uses planar poses): the aggregated road spreads over neighbouring layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
from scipy import ndimage, special

from occwm.geometry import apply_se2, relative_se2, se2_to_matrix, wrap_angle
from occwm.synthetic.world import CAR, NONE, SIDEWALK, TERRAIN, VEGETATION, SyntheticWorld


@dataclass(frozen=True)
class LidarConfig:
    """A spinning LiDAR; the defaults are the nuScenes LIDAR_TOP (Velodyne HDL-32E)."""
    num_beams: int = 32                     # beams (rings), evenly spaced in elevation
    min_elevation: float = -30.67           # deg, lowest beam
    max_elevation: float = 10.67            # deg, highest beam
    azimuth_steps: int = 1080               # firings per turn
    min_range: float = 1.0                  # m, closer returns are dropped
    max_range: float = 70.0                 # m, farther returns are dropped
    mount: Tuple[float, float, float] = (0.943713, 0.0, 1.84023)  # m, ego frame, z above the road
    mount_yaw: float = -90.0                # deg, LiDAR x axis in the ego frame (nuScenes: x right)
    range_noise: float = 0.02               # m, std of the Gaussian range error
    dropout: float = 0.03                   # share of returns dropped at random
    # chance a ray stops in a vegetation cell it crosses: a number, or a (low, high) range
    # drawn per cell from a smooth random field (dense and sparse crowns)
    vegetation_hit: Union[float, Tuple[float, float]] = 0.35
    foliage_scale: float = 4.0              # m, size of the vegetation_hit field's patches
    foliage_gaps: float = 0.0               # share of a crown's area left open
    crown_ragged: float = 0.0               # m, most a crown cell's top / bottom is cut by
    leaf_gaps: float = 0.0                  # share of a crown's leaf_size cubes without leaves
    leaf_size: float = 0.4                  # m, edge of those cubes
    terrain_relief: float = 0.0             # m, largest per-scene rise of open ground / terrain
    relief_scale: float = 8.0               # m, size of the relief field's hills
    terrain_roughness: float = 0.0          # m, half-normal std of a per-cell bump
    tilt_std: float = 0.3                   # deg, std of the body's pitch and roll per frame
    kerb_height: float = 0.25               # m, sidewalk surface above the road
    open_ground_label: int = TERRAIN        # label of unlabelled map ground; 255 drops it
    seed: int = 0                           # noise seed (with the world seed and the frame)

    def __post_init__(self):
        if self.num_beams < 1 or self.azimuth_steps < 1:
            raise ValueError(f'need num_beams >= 1 and azimuth_steps >= 1, got '
                             f'{self.num_beams}, {self.azimuth_steps}')
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f'need 0 <= min_range < max_range, got {self.min_range}, '
                             f'{self.max_range}')
        hit = self.vegetation_hit_range
        if not (0 <= self.dropout < 1 and hit.shape in ((1,), (2,)) and np.all((hit >= 0) & (hit <= 1))
                and hit[0] <= hit[-1] and self.range_noise >= 0 and self.tilt_std >= 0):
            raise ValueError(f'need dropout in [0, 1), vegetation_hit in [0, 1] (a number or a '
                             f'(low, high) range), range_noise >= 0 and tilt_std >= 0; got '
                             f'{self.dropout}, {self.vegetation_hit}, {self.range_noise}, '
                             f'{self.tilt_std}')
        if not (0 <= self.foliage_gaps < 1 and 0 <= self.leaf_gaps < 1 and self.crown_ragged >= 0
                and self.leaf_size > 0):
            raise ValueError(f'need foliage_gaps, leaf_gaps in [0, 1), crown_ragged >= 0 and '
                             f'leaf_size > 0; got {self.foliage_gaps}, {self.leaf_gaps}, '
                             f'{self.crown_ragged}, {self.leaf_size}')
        if min(self.terrain_relief, self.terrain_roughness) < 0 or \
                min(self.foliage_scale, self.relief_scale) <= 0:
            raise ValueError(f'need terrain_relief, terrain_roughness >= 0 and foliage_scale, '
                             f'relief_scale > 0; got {self.terrain_relief}, '
                             f'{self.terrain_roughness}, {self.foliage_scale}, {self.relief_scale}')

    @property
    def vegetation_hit_range(self) -> np.ndarray:
        """``vegetation_hit`` as ``(1,) float64`` ``[p]`` or ``(2,)`` ``[low, high]``
        (``[0]`` the low end, ``[-1]`` the high end either way)."""
        return np.atleast_1d(np.asarray(self.vegetation_hit, dtype=np.float64))

    @property
    def num_rays(self) -> int:
        """Rays per sweep: ``num_beams * azimuth_steps`` (34,560 by default)."""
        return self.num_beams * self.azimuth_steps


@dataclass
class LidarScan:
    """One simulated sweep, in the fields of ``occwm.occupancy.frames.write_frame``.

    points ``(N, 3) float32`` metres, LiDAR frame; labels ``(N,) uint8`` 0..16;
    ring ``(N,) uint8`` beam index (0 = lowest); lidar2ego, ego2global ``(4, 4) float64``;
    timestamp ``float`` seconds; boxes ``(M, 7) float32`` ego frame
    ``(x, y, z_center, length, width, height, yaw)``; box_ids ``(M,) int64`` persistent
    track ids (the agent's index in ``world.agents``); box_labels ``(M,) uint8``.
    """
    points: np.ndarray
    labels: np.ndarray
    ring: np.ndarray
    lidar2ego: np.ndarray
    ego2global: np.ndarray
    timestamp: float
    boxes: np.ndarray
    box_ids: np.ndarray
    box_labels: np.ndarray


# ----------------------------------------------------------------------------- sensor
def ray_directions(cfg: LidarConfig) -> Tuple[np.ndarray, np.ndarray]:
    """Unit directions of one sweep in the LiDAR frame, firing order (azimuth-major).

    Returns:
        ``dirs`` ``(R, 3) float64`` with ``R = azimuth_steps * num_beams`` (ray
        ``a * num_beams + b`` is beam ``b`` at azimuth ``2 pi a / azimuth_steps``
        from the LiDAR x axis) and ``ring`` ``(R,) int64`` = ``b``.
    """
    el = np.deg2rad(np.linspace(cfg.min_elevation, cfg.max_elevation, cfg.num_beams))  # (B,)
    az = 2 * np.pi * np.arange(cfg.azimuth_steps) / cfg.azimuth_steps                  # (A,)
    ce, se = np.cos(el)[None, :], np.sin(el)[None, :]
    dirs = np.stack([np.cos(az)[:, None] * ce, np.sin(az)[:, None] * ce,
                     np.broadcast_to(se, (len(az), len(el)))], -1)                     # (A, B, 3)
    ring = np.broadcast_to(np.arange(cfg.num_beams), (len(az), len(el)))
    return dirs.reshape(-1, 3), ring.reshape(-1)


def lidar_to_ego(cfg: LidarConfig, ground_z: float = 0.0) -> np.ndarray:
    """``(4, 4) float64`` LiDAR -> ego: ``mount`` (z above the road at ``ground_z``),
    turned by ``mount_yaw`` about z."""
    T = se2_to_matrix(cfg.mount[0], cfg.mount[1], np.deg2rad(cfg.mount_yaw))
    T[2, 3] = ground_z + cfg.mount[2]
    return T


# ----------------------------------------------------------------------------- agents
def agent_boxes(world: SyntheticWorld, t: int, kerb_height: float = 0.25,
                max_distance: float = np.inf) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The agents of frame ``t`` as tracked boxes in that frame's ego frame.

    An agent stands on the ground under its centre (``kerb_height`` up on a sidewalk).
    Agents not ``valid`` at ``t`` or farther than ``max_distance`` metres (horizontally)
    from the ego origin are left out.

    Returns:
        ``boxes`` ``(M, 7) float64`` ``(x, y, z_center, length, width, height, yaw)``
        metres / radians, ego frame; ``ids`` ``(M,) int64`` (index in ``world.agents``,
        persistent over the scene); ``labels`` ``(M,) uint8``.
    """
    rows, ids, labels = [], [], []
    ground_z = world.cfg.ground_z
    for i, a in enumerate(world.agents):
        if not a.valid[t]:
            continue
        x, y, yaw = relative_se2(world.ego[t], a.poses[t])                 # ego frame
        if np.hypot(x, y) > max_distance:
            continue
        ground = world.static.lookup(a.poses[t, :1], a.poses[t, 1:2])[0][0]
        bottom = ground_z + (kerb_height if ground == SIDEWALK else 0.0)
        length, width, height = a.size
        rows.append((x, y, bottom + height / 2, length, width, height, yaw))
        ids.append(i)
        labels.append(a.label)
    return (np.asarray(rows, np.float64).reshape(-1, 7), np.asarray(ids, np.int64),
            np.asarray(labels, np.uint8))


def _box_parts(boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Solids to cast against: ``(P, 8)`` rows ``(cx, cy, yaw, half_length, half_width,
    z_low, z_high, box index)``; a car gives a body and a cabin, other agents one box."""
    parts = []
    for m, (x, y, zc, length, width, height, yaw) in enumerate(boxes):
        lo, hi = zc - height / 2, zc + height / 2
        if labels[m] == CAR:
            parts.append((x, y, yaw, length / 2, width / 2, lo, lo + 0.55 * height, m))
            cx, cy = apply_se2(np.array([-0.075 * length, 0.0]), (x, y, yaw))  # cabin centre
            parts.append((cx, cy, yaw, 0.275 * length, width / 2, lo, hi, m))
        else:
            parts.append((x, y, yaw, length / 2, width / 2, lo, hi, m))
    return np.asarray(parts, np.float64).reshape(-1, 8)


def _cast_parts(o: np.ndarray, d: np.ndarray, parts: np.ndarray, chunk: int = 4096
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest hit of rays ``o + t d`` (``t >= 0``) with oriented boxes (slab test,
    Kay & Kajiya 1986), testing only the (ray, box) pairs whose azimuths overlap.

    Args:
        o: ``(3,)`` origin; d: ``(N, 3)`` unit directions; parts: ``(P, 8)``
        ``_box_parts`` rows; all in one frame.

    Returns:
        ``t`` ``(N,) float64`` metres (inf: no hit) and ``part`` ``(N,) int64`` (-1).
    """
    t_hit, which = np.full(len(d), np.inf), np.full(len(d), -1, np.int64)
    if not len(parts):
        return t_hit, which
    c, s = np.cos(parts[:, 2]), np.sin(parts[:, 2])                        # (P,)
    px, py = o[0] - parts[:, 0], o[1] - parts[:, 1]
    p = np.stack([c * px + s * py, -s * px + c * py,
                  np.full(len(parts), o[2])], -1)                          # (P, 3) o, box frames
    lo = np.stack([-parts[:, 3], -parts[:, 4], parts[:, 5]], -1)            # (P, 3)
    hi = np.stack([parts[:, 3], parts[:, 4], parts[:, 6]], -1)
    # Azimuth window of each box seen from o (all azimuths when o is above / in it).
    corners = np.stack(np.meshgrid([-1, 1], [-1, 1]), -1).reshape(4, 2)    # (4, 2)
    local = corners[None] * parts[:, None, 3:5]                             # (P, 4, 2) box frame
    world_c = apply_se2(local, parts[:, None, :3])                          # (P, 4, 2)
    centre = np.arctan2(parts[:, 1] - o[1], parts[:, 0] - o[0])             # (P,)
    spread = wrap_angle(np.arctan2(world_c[..., 1] - o[1], world_c[..., 0] - o[0])
                        - centre[:, None])                                  # (P, 4)
    a_lo, a_hi = spread.min(1) - 1e-6, spread.max(1) + 1e-6
    over = np.all(np.abs(p[:, :2]) <= parts[:, 3:5], axis=1)
    a_lo[over], a_hi[over] = -np.pi, np.pi
    az = np.arctan2(d[:, 1], d[:, 0])                                       # (N,)
    rays, part = [], []
    for i in range(0, len(d), chunk):
        rel = wrap_angle(az[i:i + chunk, None] - centre[None])              # (n, P)
        r, q = np.nonzero((rel >= a_lo) & (rel <= a_hi))
        rays.append(r + i)
        part.append(q)
    r, q = np.concatenate(rays), np.concatenate(part)                       # (K,) pairs
    v = np.stack([d[r, 0] * c[q] + d[r, 1] * s[q], -d[r, 0] * s[q] + d[r, 1] * c[q],
                  d[r, 2]], -1)                                             # (K, 3) box frame
    with np.errstate(divide='ignore', invalid='ignore'):
        t0, t1 = (lo[q] - p[q]) / v, (hi[q] - p[q]) / v                     # (K, 3)
    parallel = v == 0
    inside = (p[q] >= lo[q]) & (p[q] <= hi[q])
    tmin = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t0, t1))
    tmax = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t0, t1))
    near, far = tmin.max(-1), tmax.min(-1)                                  # (K,)
    ok = (near <= far) & (far >= 0)
    r, q, near = r[ok], q[ok], np.maximum(near[ok], 0.0)
    order = np.lexsort((near, r))                                           # by ray, then t
    first = np.r_[True, r[order][1:] != r[order][:-1]]
    t_hit[r[order][first]] = near[order][first]
    which[r[order][first]] = q[order][first]
    return t_hit, which


# ----------------------------------------------------------------------------- static world
COARSE = 8      # static-map cells per side of a block of the coarse (skipping) level


@dataclass
class _Solids:
    """The static world as flat per-cell tables, for ``_cast_static``.

    ``zs`` ``(NX * NY, 3) float64``: ground surface height, object interval low and high
    (ego z, metres; low = -inf for objects on the ground, low > high for no object);
    ``labs`` ``(NX * NY, 2) uint8``: ground label (``open_ground_label`` where the map
    has none), object label; ``top`` ``(NX // COARSE + 1, NY // COARSE + 1) float64``:
    the highest surface in each coarse block; ``top_all``: the highest of all;
    ``veg_hit`` ``(NX * NY,) float64``: the chance a ray stops in the cell's vegetation.
    """
    origin: np.ndarray
    res: float
    shape: Tuple[int, int]
    zs: np.ndarray
    labs: np.ndarray
    top: np.ndarray
    top_all: float
    veg_hit: np.ndarray


def smooth_field(rng: np.random.Generator, shape: Tuple[int, int], scale: float) -> np.ndarray:
    """``(NX, NY) float64`` in ``(0, 1)``, uniformly distributed per cell, smooth over
    about ``scale`` cells: white noise blurred by a Gaussian of std ``scale / 2`` cells,
    standardised and mapped through the normal CDF."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), max(scale / 2.0, 1e-3), mode='wrap')
    return special.ndtr((f - f.mean()) / max(float(f.std()), 1e-12))


def leafy(p: np.ndarray, cfg: LidarConfig, world_seed: int) -> np.ndarray:
    """``(n,) bool``: whether the ``cfg.leaf_size`` cube (global frame) holding each point
    of ``p`` ``(n, 3)`` metres has leaves; a share ``cfg.leaf_gaps`` of the cubes has
    none (a fixed hash of the cube index, ``cfg.seed`` and ``world_seed``)."""
    k = np.floor(p / cfg.leaf_size).astype(np.int64).astype(np.uint64)     # (n, 3) cube index
    h = (k[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ k[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
         ^ k[:, 2] * np.uint64(0x165667B19E3779F9)
         ^ np.uint64((cfg.seed * 1_000_003 + world_seed) % 2 ** 63))
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return (h >> np.uint64(11)).astype(np.float64) / 2.0 ** 53 >= cfg.leaf_gaps


def _solids(world: SyntheticWorld, cfg: LidarConfig) -> _Solids:
    """Tables of the static map of ``world`` (ground surface, object intervals)."""
    smap, g0 = world.static, world.cfg.ground_z
    rng = np.random.default_rng([cfg.seed, world.seed, 2 ** 31])  # a stream of its own
    cells = smap.res
    open_ground = (smap.ground == NONE) | (smap.ground == TERRAIN)
    relief = np.zeros(smap.ground.shape)
    if cfg.terrain_relief > 0:
        amplitude = cfg.terrain_relief * rng.random()  # per scene: flat verges to embankments
        relief += amplitude * smooth_field(rng, relief.shape, cfg.relief_scale / cells) ** 2
    if cfg.terrain_roughness > 0:
        relief += cfg.terrain_roughness * np.abs(rng.standard_normal(relief.shape))
    base = g0 + np.where(open_ground, relief, 0.0)                            # (NX, NY) ground top
    label, z0, z1 = smap.label, smap.z0.astype(np.float64), smap.z1.astype(np.float64)
    veg = label == VEGETATION
    if veg.any() and cfg.foliage_gaps > 0:  # open patches in the crowns
        gap = smooth_field(rng, label.shape, 0.8 / cells) < cfg.foliage_gaps
        label = np.where(veg & gap, np.uint8(NONE), label)
    if veg.any() and cfg.crown_ragged > 0:  # ragged tops and bottoms, never below 0.3 m
        cut = cfg.crown_ragged * smooth_field(rng, label.shape, 1.2 / cells)
        top = np.where(veg, np.maximum(z1 - cut, np.minimum(z1, 0.3)), z1)
        z0 = np.where(veg & (z0 > 0), np.minimum(z0 + cfg.crown_ragged - cut, top), z0)
        z1 = top
    obj = label != NONE
    h = base + np.where(smap.ground == SIDEWALK, cfg.kerb_height, 0.0)       # (NX, NY)
    lo = np.where(obj, np.where(z0 <= 0, -np.inf, base + z0), np.inf)
    hi = np.where(obj, base + z1, -np.inf)
    hit = cfg.vegetation_hit_range
    veg_hit = np.full(h.shape, hit[0])
    if hit[-1] > hit[0]:
        veg_hit = hit[0] + (hit[-1] - hit[0]) * smooth_field(rng, h.shape, cfg.foliage_scale / cells)
    glab = np.where(smap.ground == NONE, cfg.open_ground_label, smap.ground).astype(np.uint8)
    surface = np.maximum(h, hi)                                               # (NX, NY)
    NX, NY = surface.shape
    pad = np.full((-(-NX // COARSE) * COARSE, -(-NY // COARSE) * COARSE), g0)
    pad[:NX, :NY] = surface
    top = pad.reshape(pad.shape[0] // COARSE, COARSE, pad.shape[1] // COARSE, COARSE).max((1, 3))
    return _Solids(np.asarray(smap.origin, np.float64), float(smap.res), (NX, NY),
                   np.stack([h, lo, hi], -1).reshape(-1, 3),
                   np.stack([glab, label], -1).reshape(-1, 2), top, float(top.max()),
                   veg_hit.reshape(-1))


def _dda_start(o: np.ndarray, d: np.ndarray, t: np.ndarray, res: float):
    """DDA state of rays ``o + t d`` at parameter ``t`` on a 2-D grid of cell size ``res``
    (``o`` relative to the grid corner): ``cell`` ``(n, 2) int64`` (chosen 1 µm further
    along the ray, so a ray on a cell face starts in the cell it enters), ``t_next``
    ``(n, 2)`` parameter of the next x / y face, ``t_delta`` ``(n, 2)`` per cell."""
    dxy = d[:, :2]
    p = o[:2] + dxy * t[:, None]                                              # (n, 2) metres
    cell = np.floor((p + dxy * 1e-6) / res).astype(np.int64)
    with np.errstate(divide='ignore', invalid='ignore'):
        inv = np.where(dxy != 0, 1.0 / np.where(dxy != 0, dxy, 1.0), np.inf)
        t_next = np.where(dxy != 0, t[:, None] + ((cell + (dxy > 0)) * res - p) * inv, np.inf)
    return cell, t_next, np.abs(res * inv)


def _cast_static(world: SyntheticWorld, o: np.ndarray, d: np.ndarray, t_max: np.ndarray,
                 cfg: LidarConfig, rng: np.random.Generator, solids: Optional[_Solids] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """First hit of rays with the static world (ground and map objects).

    A two-level 2-D DDA (Amanatides & Woo 1987), every live ray one step an iteration:
    on the coarse level a ray walks blocks of ``COARSE`` x ``COARSE`` cells and skips
    each block whose highest surface lies below the ray across it; in the other blocks
    it walks the static map's cells, testing the ray's height interval across a cell
    against the cell's ground surface and object interval, and goes back to the coarse
    level where it leaves the block.

    Args:
        o: ``(3,)`` origin, d: ``(N, 3)`` unit directions, global frame; t_max: ``(N,)``
        metres, a ray ends there (a nearer agent or the maximum range).

    Returns:
        ``t`` ``(N,) float64`` metres (inf: no hit before ``t_max``), ``label`` ``(N,)
        uint8`` (``NONE`` = 255 where nothing was hit, or the hit ground is unlabelled and
        ``open_ground_label`` is 255).
    """
    S = solids or _solids(world, cfg)
    N = len(d)
    t_out, lab_out = np.full(N, np.inf), np.full(N, NONE, np.uint8)
    oc = np.asarray(o, np.float64).copy()
    oc[:2] -= S.origin                                                        # map-corner frame
    oz, big = oc[2], S.res * COARSE
    coarse_shape, fine_shape = np.asarray(S.top.shape), np.asarray(S.shape)
    # A pool per level: ray ids, entry parameter t_in, cell, t of the next x / y face,
    # t per cell; the fine pool also holds each ray's block.
    idx = np.arange(N)
    cpool = (idx, np.zeros(N)) + _dda_start(oc, d, np.zeros(N), big)
    fpool = (idx[:0], np.zeros(0), np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros((0, 2)),
             np.zeros((0, 2), np.int64))

    def advance(t_in, cell, t_next, t_delta, t_ex, ray):
        """One cell along each ray (in place); the new entry parameter is ``t_ex``."""
        axis = np.argmin(t_next, axis=1)
        rows = np.arange(len(axis))
        cell[rows, axis] += np.where(d[ray, axis] > 0, 1, -1)
        t_next[rows, axis] += t_delta[rows, axis]
        t_in[:] = t_ex

    for _ in range(100_000):                                                  # a safety bound
        if not len(cpool[0]) and not len(fpool[0]):
            break
        # Coarse level: skip a block the ray passes above; enter the others.
        ray, t_in, cell, t_next, t_delta = cpool
        dz, tm = d[ray, 2], t_max[ray]
        t_ex = np.minimum(np.minimum(t_next[:, 0], t_next[:, 1]), tm)
        z_a, z_b = oz + dz * t_in, oz + dz * t_ex
        live = (np.all((cell >= 0) & (cell < coarse_shape), axis=1) & (t_in < tm)
                & ~((dz >= 0) & (z_a > S.top_all)))
        ci = np.where(live[:, None], cell, 0)
        enter = live & (np.minimum(z_a, z_b) <= S.top[ci[:, 0], ci[:, 1]])
        skip = live & ~enter
        new_f = (ray[enter], t_in[enter]) + _dda_start(oc, d[ray[enter]], t_in[enter], S.res) \
            + (cell[enter],)
        ray, t_in, cell, t_next, t_delta, t_ex = (a[skip] for a in (ray, t_in, cell, t_next,
                                                                     t_delta, t_ex))
        advance(t_in, cell, t_next, t_delta, t_ex, ray)
        cpool = (ray, t_in, cell, t_next, t_delta)
        # Fine level: the ground surface and the object interval of the cell.
        ray, t_in, cell, t_next, t_delta, block = fpool
        dz, tm = d[ray, 2], t_max[ray]
        t_ex = np.minimum(np.minimum(t_next[:, 0], t_next[:, 1]), tm)
        z_a, z_b = oz + dz * t_in, oz + dz * t_ex
        live = np.all((cell >= 0) & (cell < fine_shape), axis=1) & (t_in < tm)
        flat_id = np.where(live, cell[:, 0] * S.shape[1] + cell[:, 1], 0)
        zs, labs = S.zs[flat_id], S.labs[flat_id]                             # (n, 3), (n, 2)
        with np.errstate(divide='ignore', invalid='ignore'):
            t_g = np.where(z_a <= zs[:, 0], t_in, (zs[:, 0] - oz) / dz)
            ta, tb = (zs[:, 1] - oz) / dz, (zs[:, 2] - oz) / dz
        hit_g = live & (np.minimum(z_a, z_b) <= zs[:, 0])
        within = (oz >= zs[:, 1]) & (oz <= zs[:, 2])                          # for level rays
        s_lo = np.where(dz == 0, np.where(within, -np.inf, np.inf), np.minimum(ta, tb))
        s_hi = np.where(dz == 0, np.where(within, np.inf, -np.inf), np.maximum(ta, tb))
        t_o = np.maximum(t_in, s_lo)
        hit_o = live & (labs[:, 1] != NONE) & (t_o <= np.minimum(t_ex, s_hi))
        porous = hit_o & (labs[:, 1] == VEGETATION)
        if porous.any():                                                      # foliage
            pr = np.flatnonzero(porous)
            stop = rng.random(len(pr)) < S.veg_hit[flat_id[pr]]
            if cfg.leaf_gaps > 0:  # no leaves in this cube: the ray goes on
                p = o + d[ray[pr]] * t_o[pr, None]                           # (n, 3) global
                stop &= leafy(p, cfg, world.seed)
            hit_o[pr] = stop
        t_g, t_o = np.where(hit_g, t_g, np.inf), np.where(hit_o, t_o, np.inf)
        hit = hit_g | hit_o
        t_out[ray[hit]] = np.minimum(t_g, t_o)[hit]
        lab_out[ray[hit]] = np.where(t_o <= t_g, labs[:, 1], labs[:, 0])[hit]
        go = live & ~hit
        ray, t_in, cell, t_next, t_delta, block, t_ex = (a[go] for a in (ray, t_in, cell, t_next,
                                                                         t_delta, block, t_ex))
        advance(t_in, cell, t_next, t_delta, t_ex, ray)
        up = np.any(cell // COARSE != block, axis=1)                         # left the block
        stay = ~up
        fpool = tuple(np.concatenate([a, b]) for a, b in zip(
            (ray[stay], t_in[stay], cell[stay], t_next[stay], t_delta[stay], block[stay]), new_f))
        back = (ray[up], t_in[up]) + _dda_start(oc, d[ray[up]], t_in[up], big)
        cpool = tuple(np.concatenate([a, b]) for a, b in zip(cpool, back))
    return t_out, lab_out


# ----------------------------------------------------------------------------- the sweep
def simulate_scan(world: SyntheticWorld, t: int, cfg: LidarConfig = LidarConfig(),
                  solids: Optional[_Solids] = None) -> LidarScan:
    """One LiDAR sweep of frame ``t`` of ``world`` (method: module docstring).

    Returns:
        a ``LidarScan``: the returns in the LiDAR frame with the label of the surface
        they hit, the sensor and ego poses, the timestamp in seconds and the agents'
        boxes (``agent_boxes``, those within ``max_range``) in the ego frame.

    Raises:
        ValueError: ``t`` outside the world's frames.
    """
    L = len(world.ego)
    if not 0 <= t < L:
        raise ValueError(f'frame {t} is outside the world (frames 0..{L - 1})')
    rng = np.random.default_rng([cfg.seed, world.seed, t])
    lidar2ego = lidar_to_ego(cfg, world.cfg.ground_z)
    ego2global = se2_to_matrix(*world.ego[t])
    dirs_l, ring = ray_directions(cfg)                                       # (R, 3) LiDAR frame
    # The sensor's true pose: the calibration tilted by the body's pitch and roll of this
    # frame, which the written lidar2ego (and so the builder) does not know.
    roll, pitch = np.deg2rad(cfg.tilt_std) * rng.standard_normal(2)
    cr, sr, cp, sp = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch)
    tilt = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]]) @ \
        np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])                    # R_y(pitch) R_x(roll)
    true2ego = lidar2ego.copy()
    true2ego[:3, :3] = tilt @ lidar2ego[:3, :3]
    # Agents in the ego frame, the static map in the global frame (planar world: the
    # ego's z is the global z); t is metres along the unit rays in both.
    d_ego = dirs_l @ true2ego[:3, :3].T                                      # (R, 3)
    boxes, ids, labels = agent_boxes(world, t, cfg.kerb_height, cfg.max_range + 15.0)
    parts = _box_parts(boxes, labels)                                        # (P, 8) ego frame
    t_a, part = _cast_parts(true2ego[:3, 3], d_ego, parts)
    l2g = ego2global @ true2ego
    t_s, lab_s = _cast_static(world, l2g[:3, 3], dirs_l @ l2g[:3, :3].T,
                              np.minimum(t_a, cfg.max_range), cfg, rng, solids)
    agent = t_a < t_s
    r = np.where(agent, t_a, t_s)                                            # (R,) metres
    lab = lab_s.copy()
    lab[agent] = labels[parts[part[agent], 7].astype(np.int64)]
    r = r + cfg.range_noise * rng.standard_normal(len(r))                   # range noise
    keep = (np.isfinite(r) & (r >= cfg.min_range) & (r <= cfg.max_range) & (lab != NONE)
            & (rng.random(len(r)) >= cfg.dropout))                          # drop-outs
    near = np.hypot(boxes[:, 0], boxes[:, 1]) <= cfg.max_range
    return LidarScan(points=(dirs_l[keep] * r[keep, None]).astype(np.float32),
                     labels=lab[keep], ring=ring[keep].astype(np.uint8),
                     lidar2ego=lidar2ego, ego2global=ego2global,
                     timestamp=float(world.timestamps[t]) / 1e6,
                     boxes=boxes[near].astype(np.float32), box_ids=ids[near],
                     box_labels=labels[near])


def simulate_scans(world: SyntheticWorld, cfg: LidarConfig = LidarConfig()) -> List[LidarScan]:
    """``simulate_scan`` of every frame of ``world``, in time order."""
    solids = _solids(world, cfg)                                             # the static map, once
    return [simulate_scan(world, t, cfg, solids) for t in range(len(world.ego))]
