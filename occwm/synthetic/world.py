"""The world model of the SYNTHETIC scene generator (``occwm.synthetic.scenes``).

It holds the label ids, ``SyntheticSceneConfig``, the road network and map geometry
(``Road``, ``StaticMap``), the agents and their kinematics (``Agent``, speed profiles,
platoons), the ego trajectory and ``build_world``, which draws a ``SyntheticWorld``;
rasterising it into occupancy grids is ``occwm.synthetic.scenes``'s job.

World of one scene (global frame, metres, planar; deterministic per seed through one
``np.random.default_rng(seed)``):

* roads: a main road of straights and constant-curvature arcs (radius >= 80 m), 2-3
  lanes of 3.5 m each way (right-hand traffic: lanes of the +s direction lie at d < 0),
  optional parking strips, raised sidewalks, sometimes a median barrier; sometimes a
  straight cross road (a full intersection or a T-junction);
* beside them terrain, other_flat patches with barriers and cones, trees (trunk +
  ellipsoid crown), hedges, lamp posts (manmade) and rows of buildings (manmade; a
  front and two side walls, a roof when it is below the grid top; no back wall, which
  a sensor on the road would never see);
* agents: the ego drives one lane of the main road with a smooth speed profile
  (0-14 m/s, sometimes stopping) and turns with the road; a car may lead or follow it
  in its lane; platoons of cars / trucks / buses drive the other lanes (some oncoming);
  parked cars stand in the parking strips; cars wait at the cross road; pedestrians
  walk (or stand) on the sidewalks; bicycles ride the kerb edge of an oncoming lane.

Static things are painted once into a global 2-D map of columns (ground label and one
vertical interval of an object label per cell, ``map_resolution`` metres per cell).
Heights are relative to the top of the ground layer, so the world is independent of
the grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from occwm.geometry import EGO_LENGTH, EGO_REAR, EGO_WIDTH, apply_se2
from occwm.grid import DEFAULT_GRID, OccGrid

NONE = 255  # "no label" in the static map
BARRIER, BICYCLE, BUS, CAR, PEDESTRIAN, CONE, TRUCK = 1, 2, 3, 4, 7, 8, 10
ROAD, OTHER_FLAT, SIDEWALK, TERRAIN, MANMADE, VEGETATION = 11, 12, 13, 14, 15, 16


@dataclass
class SyntheticSceneConfig:
    """The knobs of the synthetic world (ranges are inclusive ``(low, high)``)."""
    frame_rate: float = 2.0                 # Hz (nuScenes keyframes); timestamps in µs
    ground_z: float = 0.0                   # m, ego frame: the road layer contains this z
    lane_width: float = 3.5                 # m
    lanes_per_direction: Tuple[int, int] = (2, 3)   # main road; the cross road has 1-2
    sidewalk_width: Tuple[float, float] = (2.0, 4.5)  # m
    ground_extent: Tuple[float, float] = (4.0, 20.0)  # m of labelled ground beyond a sidewalk
    max_speed: float = 14.0                 # m/s, ego and traffic
    max_accel: float = 2.0                  # m/s^2, smooth speed changes
    p_stop: float = 0.3                     # chance that the ego stops once
    p_curved: float = 0.6                   # chance that the main road has arcs
    min_turn_radius: float = 80.0           # m
    p_intersection: float = 0.6             # chance of a cross road (a third are T-junctions)
    p_parking: float = 0.5                  # per side: a parking strip with parked cars
    p_buildings: float = 0.7                # per side: a row of buildings
    p_median_barrier: float = 0.25
    p_work_zone: float = 0.35               # an other_flat patch fenced by barriers and cones
    vehicles_per_lane: Tuple[int, int] = (0, 3)
    pedestrians: Tuple[int, int] = (2, 10)
    p_bicycle: float = 0.4
    # length, width, rear overhang (m): the nuScenes ego of occwm.geometry
    ego_size: Tuple[float, float, float] = (EGO_LENGTH, EGO_WIDTH, EGO_REAR)
    lidar_range: float = 50.0               # m, horizontal, for mask_lidar
    camera_range: float = 40.0              # m, horizontal, for mask_camera
    map_resolution: float = 0.2             # m per cell of the static world map


@dataclass
class Road:
    """A road: centreline samples and its cross-section. Lateral offset ``d`` is
    positive to the left of the +s direction; side index 0 = right (d < 0), 1 = left."""
    xy: np.ndarray                  # (S, 2) float64 centreline, global metres
    heading: np.ndarray             # (S,) float64 radians (unwrapped)
    s: np.ndarray                   # (S,) float64 arc length, metres
    lanes: int                      # per direction
    lane_width: float
    parking: Tuple[bool, bool]      # (right, left) parking strips of 2.5 m
    sidewalk: Tuple[float, float]   # (right, left) widths in metres, 0 = none

    def half_width(self, side: int) -> float:
        """Metres from the centreline to the kerb on ``side`` (0 right, 1 left)."""
        return self.lanes * self.lane_width + 2.5 * self.parking[side]

    def pose(self, s, d) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Global ``x, y, heading`` of the points at arc length ``s``, lateral offset ``d``."""
        s, d = np.asarray(s, np.float64), np.asarray(d, np.float64)
        h = np.interp(s, self.s, self.heading)
        centre = np.stack([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1]),
                           h], -1)                                    # (..., 3) centreline pose
        p = apply_se2(np.stack([np.zeros_like(d), d], -1), centre)    # (..., 2) d to its left
        return p[..., 0], p[..., 1], h


@dataclass
class Agent:
    """A box that may move: ``poses`` ``(L, 3)`` global x, y, yaw of its centre."""
    label: int
    size: Tuple[float, float, float]  # length, width, height (m)
    poses: np.ndarray                 # (L, 3) float64
    valid: np.ndarray                 # (L,) bool: on the road's extent
    kind: str                         # moving / lead / parked / waiting / pedestrian / bicycle
    base: float = 0.0                 # m above the top of the ground layer


@dataclass
class StaticMap:
    """Columns of the static world: ``ground`` label (NONE = free) and one object
    interval ``[z0, z1]`` (metres above the ground top) of label ``label`` per cell.
    Arrays are ``(NX, NY)``, indexed ``[ix, iy]`` along global x, y."""
    origin: np.ndarray      # (2,) global x, y of the corner of cell (0, 0)
    res: float
    ground: np.ndarray      # (NX, NY) uint8
    label: np.ndarray       # (NX, NY) uint8
    z0: np.ndarray          # (NX, NY) float32
    z1: np.ndarray          # (NX, NY) float32

    def lookup(self, x: np.ndarray, y: np.ndarray):
        """Map values at global points (any shape): ``ground, label, z0, z1``."""
        i = np.floor((x - self.origin[0]) / self.res).astype(np.int64)
        j = np.floor((y - self.origin[1]) / self.res).astype(np.int64)
        ok = (i >= 0) & (i < self.ground.shape[0]) & (j >= 0) & (j < self.ground.shape[1])
        i, j = np.where(ok, i, 0), np.where(ok, j, 0)
        ground = np.where(ok, self.ground[i, j], NONE)
        label = np.where(ok, self.label[i, j], NONE)
        return ground, label, self.z0[i, j], self.z1[i, j]

    def window(self, x: float, y: float, yaw: float, r: float):
        """Cells within ``r`` (box) of ``(x, y)``: ``(slices, qx, qy)`` with the cell
        centres in the frame of the pose ``(x, y, yaw)``; ``None`` outside the map."""
        i0, j0 = np.floor((np.array([x, y]) - r - self.origin) / self.res).astype(int)
        i1, j1 = np.ceil((np.array([x, y]) + r - self.origin) / self.res).astype(int) + 1
        i0, j0 = max(i0, 0), max(j0, 0)
        i1, j1 = min(i1, self.ground.shape[0]), min(j1, self.ground.shape[1])
        if i0 >= i1 or j0 >= j1:
            return None
        q = apply_se2(self.centers(i0, i1, j0, j1), (x, y, yaw), inverse=True)  # (nx, ny, 2)
        return (slice(i0, i1), slice(j0, j1)), q[..., 0], q[..., 1]

    def centers(self, i0: int = 0, i1: Optional[int] = None, j0: int = 0,
                j1: Optional[int] = None) -> np.ndarray:
        """``(nx, ny, 2) float64`` global x, y of the centres of cells ``[i0, i1) x [j0, j1)``."""
        i1 = self.ground.shape[0] if i1 is None else i1
        j1 = self.ground.shape[1] if j1 is None else j1
        px = self.origin[0] + (np.arange(i0, i1) + 0.5) * self.res  # (nx,)
        py = self.origin[1] + (np.arange(j0, j1) + 0.5) * self.res  # (ny,)
        return np.stack(np.meshgrid(px, py, indexing='ij'), -1)

    def paint(self, win, mask: np.ndarray, label: int, z0, z1) -> None:
        """Set the object interval of the cells ``mask`` of window ``win``."""
        for arr, val in ((self.label, label), (self.z0, z0), (self.z1, z1)):
            sub = arr[win]
            sub[mask] = val[mask] if np.ndim(val) else val

    def box(self, x, y, yaw, length, width, label, z0, z1) -> None:
        """Paint an oriented box footprint with the interval ``[z0, z1]``."""
        w = self.window(x, y, yaw, 0.5 * np.hypot(length, width))
        if w is not None:
            self.paint(w[0], (np.abs(w[1]) <= length / 2) & (np.abs(w[2]) <= width / 2), label, z0, z1)

    def cylinder(self, x, y, radius, label, z0, z1) -> None:
        """Paint a disc footprint (thin things are inflated to a voxel by the caller)."""
        w = self.window(x, y, 0.0, radius)
        if w is not None:
            self.paint(w[0], np.hypot(w[1], w[2]) <= radius, label, z0, z1)


@dataclass
class SyntheticWorld:
    """A whole synthetic scene: roads, static map, agents and the ego poses."""
    seed: int
    cfg: SyntheticSceneConfig
    roads: List[Road]
    static: StaticMap
    agents: List[Agent]
    ego: np.ndarray          # (L, 3) float64 global x, y, yaw of the ego origin (rear axle)
    timestamps: np.ndarray   # (L,) int64 microseconds
    meta: Dict = field(default_factory=dict)


def _speed_profile(rng, t: np.ndarray, v0: float, vmax: float, amax: float, p_stop: float,
                   knot_dt: float = 3.0) -> np.ndarray:
    """Smooth speeds ``(T,)`` in ``[0, vmax]`` at sorted times ``t``: random knots every
    ``knot_dt`` s (|dv| limited so that |a| <= amax), smoothstep in between; with
    chance ``p_stop`` two consecutive knots are 0 (a stop)."""
    n = int(np.ceil((t[-1] - t[0]) / knot_dt)) + 2
    dv = amax * knot_dt / 1.5  # smoothstep peaks at 1.5x the mean slope
    v = np.empty(n)
    v[0] = v0
    for k in range(1, n):
        v[k] = np.clip(v[k - 1] + rng.uniform(-dv, dv), 0.0, vmax)
    if rng.random() < p_stop:
        k = rng.integers(1, n - 1)
        v[k:k + 2] = 0.0
    for k in range(1, n):                   # re-impose the acceleration limit both ways
        v[k] = min(v[k], v[k - 1] + dv)
    for k in range(n - 2, -1, -1):
        v[k] = min(v[k], v[k + 1] + dv)
    u = (t - t[0]) / knot_dt
    k = np.minimum(np.floor(u).astype(int), n - 2)
    f = u - k
    return v[k] + (v[k + 1] - v[k]) * f * f * (3 - 2 * f)


def _integrate(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distance travelled ``(T,)`` from ``t[0]`` (trapezoid rule)."""
    return np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * np.diff(t))])


def _make_road(rng, cfg, start_xy, heading0, length, lanes, curvy, straight=()) -> Road:
    """A road of straights and arcs (``curvy``), straight over the ``straight`` s-window."""
    ds = 0.25
    s = np.arange(0.0, length + ds, ds)
    kappa = np.zeros_like(s)
    if curvy:
        pos = rng.uniform(0, 60)
        while pos < length:
            radius = rng.uniform(cfg.min_turn_radius, 5 * cfg.min_turn_radius)
            arc = rng.uniform(np.deg2rad(10), np.deg2rad(60)) * radius  # arc length
            kappa[(s >= pos) & (s < pos + arc)] = rng.choice([-1, 1]) / radius
            pos += arc + rng.uniform(20, 120)
    if straight:
        kappa[(s >= straight[0]) & (s <= straight[1])] = 0.0
    heading = heading0 + np.concatenate([[0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * ds)])
    step = np.stack([np.cos(heading[:-1] + 0.5 * np.diff(heading)),
                     np.sin(heading[:-1] + 0.5 * np.diff(heading))], 1) * ds
    xy = np.asarray(start_xy, np.float64) + np.concatenate([np.zeros((1, 2)), np.cumsum(step, 0)])
    sidewalk = tuple(float(rng.uniform(*cfg.sidewalk_width)) if rng.random() < 0.9 else 0.0
                     for _ in range(2))
    parking = tuple(bool(rng.random() < cfg.p_parking) for _ in range(2))
    return Road(xy, heading, s, lanes, cfg.lane_width, parking, sidewalk)


def _road_frame(smap: StaticMap, road: Road):
    """Signed lateral offset ``d`` ``(NX, NY)`` of every map cell from ``road`` and the
    cells beside it (not past its ends); ``None`` when the road misses the map."""
    from scipy import ndimage  # a dependency of nuscenes-devkit
    shape = smap.ground.shape
    ij = np.floor((road.xy - smap.origin) / smap.res).astype(np.int64)  # (S, 2)
    ok = np.all((ij >= 0) & (ij < np.asarray(shape)), axis=1)
    if not ok.any():
        return None
    feature = np.ones(shape, bool)
    feature[ij[ok, 0], ij[ok, 1]] = False
    ids = np.zeros(shape, np.int64)
    ids[ij[ok, 0], ij[ok, 1]] = np.nonzero(ok)[0]
    near = ndimage.distance_transform_edt(feature, return_distances=False, return_indices=True)
    near = ids[near[0], near[1]]  # (NX, NY) index of the nearest centreline sample
    sample = np.stack([road.xy[near, 0], road.xy[near, 1], road.heading[near]], -1)  # (NX, NY, 3)
    q = apply_se2(smap.centers(), sample, inverse=True)  # (NX, NY, 2) in the nearest sample's frame
    along, d = q[..., 0], q[..., 1]
    beside = ~(((near == 0) & (along < 0)) | ((near == len(road.s) - 1) & (along > 0)))
    return d, beside


def _ground(smap: StaticMap, roads: List[Road], extents):
    """Paint terrain into ``smap.ground``; return the sidewalk and road masks ``(NX, NY)``."""
    terrain, sidewalk, road_m = (np.zeros(smap.ground.shape, bool) for _ in range(3))
    for road, ext in zip(roads, extents):
        frame = _road_frame(smap, road)
        if frame is None:
            continue
        d, beside = frame
        left = d > 0
        W = np.where(left, road.half_width(1), road.half_width(0))
        sw = np.where(left, road.sidewalk[1], road.sidewalk[0])
        ad = np.abs(d)
        terrain |= beside & (ad < W + sw + np.where(left, ext[1], ext[0]))
        sidewalk |= beside & (ad >= W) & (ad < W + sw)
        road_m |= beside & (ad < W)
    smap.ground[terrain] = TERRAIN
    return sidewalk, road_m


def _roadside(rng, cfg, smap: StaticMap, road: Road, s_lo: float, s_hi: float, skip) -> None:
    """Buildings, trees, hedges, lamp posts and work zones along both sides of ``road``
    between arc lengths ``s_lo`` and ``s_hi``; ``skip(s)`` is true near crossings."""
    free_ground = lambda win, m: not np.isin(smap.ground[win][m], (ROAD, SIDEWALK)).any()  # noqa: E731
    for side, sign in ((0, -1.0), (1, 1.0)):
        edge = road.half_width(side) + road.sidewalk[side]  # outer edge of the sidewalk
        if rng.random() < cfg.p_buildings:                  # a row of buildings
            setback, pos = rng.uniform(1.0, 6.0), s_lo + rng.uniform(0, 10)
            while pos < s_hi:
                front, depth = rng.uniform(8, 30), rng.uniform(8, 20)
                height, thick = rng.uniform(3.0, 15.0), 0.5
                x, y, h = road.pose(pos + front / 2, sign * (edge + setback + depth / 2))
                w = smap.window(float(x), float(y), float(h), 0.5 * np.hypot(front, depth))
                if w is not None and not skip(pos + front / 2):
                    win, qx, qy = w
                    inside = (np.abs(qx) <= front / 2) & (np.abs(qy) <= depth / 2)
                    if inside.any() and free_ground(win, inside):
                        walls = inside & ((np.abs(qx) > front / 2 - thick)
                                          | (sign * qy < -depth / 2 + thick))
                        smap.paint(win, inside & ~walls, MANMADE, height - 0.4, height)
                        smap.paint(win, walls, MANMADE, 0.0, height)
                        smap.ground[win][inside] = NONE
                pos += front + rng.uniform(2, 12)
        elif rng.random() < 0.6:                           # a hedge
            d, pos = sign * (edge + rng.uniform(1.0, 4.0)), s_lo + rng.uniform(0, 20)
            height, width = rng.uniform(0.8, 1.6), rng.uniform(0.8, 1.2)
            while pos < s_hi:
                end = pos + rng.uniform(5, 25)
                for s in np.arange(pos, end, 1.0):
                    if not skip(s):
                        x, y, h = road.pose(s, d)
                        smap.box(float(x), float(y), float(h), 1.2, width, VEGETATION, 0.0, height)
                pos = end + rng.uniform(5, 30)
        for s in np.arange(s_lo + rng.uniform(0, 10), s_hi, 1.0):  # trees and lamp posts
            if skip(s):
                continue
            if rng.random() < 0.12:
                x, y, _ = road.pose(s, sign * (edge + rng.uniform(0.6, 3.0)))
                radius, half, top = rng.uniform(1.3, 2.6), rng.uniform(1.0, 2.0), rng.uniform(4.5, 9.0)
                w = smap.window(float(x), float(y), 0.0, radius)
                if w is not None:
                    r = np.hypot(w[1], w[2])
                    zc = top - half
                    span = half * np.sqrt(np.clip(1 - (r / radius) ** 2, 0, 1))
                    smap.paint(w[0], r <= radius, VEGETATION, zc - span, zc + span)
                    smap.paint(w[0], r <= 0.45, VEGETATION, 0.0, top)  # trunk, one voxel wide
            elif rng.random() < 0.035:
                x, y, _ = road.pose(s, sign * (edge + 0.5))
                smap.cylinder(float(x), float(y), 0.45, MANMADE, 0.0, rng.uniform(5.0, 9.0))
        if rng.random() < cfg.p_work_zone:                 # other_flat + barriers + cones
            s, ln, wd = rng.uniform(s_lo, s_hi), rng.uniform(8, 15), rng.uniform(4, 8)
            if skip(s):
                continue
            x, y, h = road.pose(s, sign * (edge + 0.6 + wd / 2))
            w = smap.window(float(x), float(y), float(h), 0.5 * np.hypot(ln, wd))
            if w is None:
                continue
            win, qx, qy = w
            inside = (np.abs(qx) <= ln / 2) & (np.abs(qy) <= wd / 2)
            if not free_ground(win, inside):
                continue
            smap.ground[win][inside & (smap.ground[win] != NONE)] = OTHER_FLAT
            front = inside & (sign * qy < -wd / 2 + 0.5)
            smap.paint(win, front, BARRIER, 0.0, 1.0)
            for a in np.arange(-ln / 2, ln / 2 + 0.1, 2.5):
                for b in (-wd / 2 + 1.0, wd / 2):  # two rows of cones
                    cx, cy = apply_se2(np.array([a, b * sign]), (x, y, h))
                    smap.cylinder(float(cx), float(cy), 0.45, CONE, 0.0, 0.7)


def _platoon(rng, road: Road, d: float, direction: int, s_lead: float, tf, v, times,
             count: int, labels=(CAR, CAR, CAR, CAR, CAR, CAR, TRUCK, TRUCK, BUS), kind='moving'):
    """``count`` vehicles one behind the other in the lane at ``d``, all moving with the
    speed profile ``v`` (sampled at ``tf``) in ``direction`` (+1 along s, -1 against)."""
    travelled = np.interp(times, tf, _integrate(tf, v))  # (L,)
    agents, offset, prev = [], 0.0, None
    for _ in range(count):
        label = int(rng.choice(labels))
        size = {CAR: (rng.uniform(4.2, 5.0), rng.uniform(1.8, 2.0), rng.uniform(1.45, 1.8)),
                TRUCK: (rng.uniform(6.5, 10.0), 2.5, rng.uniform(2.8, 3.8)),
                BUS: (rng.uniform(10.5, 12.5), 2.55, rng.uniform(3.1, 3.4))}[label]
        if prev is not None:
            offset -= prev / 2 + size[0] / 2 + rng.uniform(4, 25)
        prev = size[0]
        s = s_lead + direction * (offset + travelled)
        agents.append(_on_road(road, s, d, direction, label, size, kind))
    return agents


def _on_road(road: Road, s, d, direction, label, size, kind, base=0.0) -> Agent:
    """An agent at arc lengths ``s`` ``(L,)`` and lateral offset ``d`` of ``road``."""
    x, y, h = road.pose(s, d)
    yaw = h if direction > 0 else h + np.pi
    valid = (s >= road.s[0] + size[0]) & (s <= road.s[-1] - size[0])
    return Agent(label, tuple(float(v) for v in size), np.stack([x, y, yaw], 1), valid, kind, base)


def build_world(seed: int, num_frames: int, grid: OccGrid = DEFAULT_GRID,
                cfg: Optional[SyntheticSceneConfig] = None) -> SyntheticWorld:
    """Draw the whole synthetic scene of ``seed`` (deterministic) for ``num_frames``
    frames at ``cfg.frame_rate``; ``grid`` sets how far the static map must reach."""
    cfg = cfg or SyntheticSceneConfig()
    rng = np.random.default_rng(seed)
    L, lw = num_frames, cfg.lane_width
    times = np.arange(L) / cfg.frame_rate                    # (L,) seconds
    tf = np.arange(-5.0, times[-1] + 5.0 + 1e-9, 0.05)       # fine times for integration
    # The ego: a speed profile first, then a road long enough for it.
    v0 = 0.0 if rng.random() < 0.1 else rng.uniform(2.0, cfg.max_speed)
    v_ego = _speed_profile(rng, tf, v0, cfg.max_speed, cfg.max_accel, cfg.p_stop)
    s_ego_f = 200.0 + _integrate(tf, v_ego) - np.interp(0.0, tf, _integrate(tf, v_ego))
    s_ego = np.interp(times, tf, s_ego_f)                    # (L,) arc length of the ego
    lanes = int(rng.integers(cfg.lanes_per_direction[0], cfg.lanes_per_direction[1] + 1))
    cross = None
    if rng.random() < cfg.p_intersection:
        cross = float(rng.uniform(s_ego[0] - 10, s_ego[-1] + 40))
    length = s_ego_f[-1] + 250.0
    main = _make_road(rng, cfg, rng.uniform(-1000, 1000, 2), rng.uniform(-np.pi, np.pi), length,
                      lanes, rng.random() < cfg.p_curved,
                      () if cross is None else (cross - 45.0, cross + 45.0))
    roads, branches = [main], ()
    if cross is not None:
        x, y, h = main.pose(cross, 0.0)
        hc = float(h) + np.pi / 2 + rng.uniform(-0.3, 0.3)
        branches = ((1,), (-1,))[int(rng.integers(0, 2))] if rng.random() < 1 / 3 else (-1, 1)
        lo, hi = (-150.0 if -1 in branches else 0.0), (150.0 if 1 in branches else 0.0)
        start = apply_se2(np.array([lo, 0.0]), (float(x), float(y), hc))  # lo metres along hc
        side = _make_road(rng, cfg, start, hc, hi - lo, int(rng.integers(1, 3)), False)
        side.s = side.s + lo                                 # s = 0 at the crossing
        side.parking = (False, False)
        roads.append(side)
    ego_lane = int(rng.integers(0, lanes))
    ex, ey, eh = main.pose(s_ego, -(ego_lane + 0.5) * lw)
    ego = np.stack([ex, ey, eh], 1)                          # (L, 3)

    # Static map over the ego's path plus the grid's reach.
    lo_r, hi_r = np.asarray(grid.point_cloud_range[:2]), np.asarray(grid.point_cloud_range[3:5])
    reach = float(np.hypot(*np.maximum(np.abs(lo_r), np.abs(hi_r)))) + 12.0
    origin = ego[:, :2].min(0) - reach
    n = np.ceil((ego[:, :2].max(0) + reach - origin) / cfg.map_resolution).astype(int)
    smap = StaticMap(origin, cfg.map_resolution, np.full(n, NONE, np.uint8),
                     np.full(n, NONE, np.uint8), np.zeros(n, np.float32), np.zeros(n, np.float32))
    extents = [tuple(rng.uniform(*cfg.ground_extent, 2)) for _ in roads]
    sidewalk, road_m = _ground(smap, roads, extents)
    smap.ground[sidewalk] = SIDEWALK
    smap.ground[road_m] = ROAD
    cross_half = 0.0 if cross is None else max(roads[1].half_width(i) + roads[1].sidewalk[i]
                                               for i in range(2))
    main_half = max(main.half_width(i) + main.sidewalk[i] for i in range(2))
    skip_main = lambda s: cross is not None and abs(s - cross) < cross_half + 4.0  # noqa: E731
    s_lo, s_hi = s_ego[0] - reach, s_ego[-1] + reach
    _roadside(rng, cfg, smap, main, s_lo, s_hi, skip_main)
    if cross is not None:
        _roadside(rng, cfg, smap, roads[1], roads[1].s[0], roads[1].s[-1],
                  lambda s: abs(s) < main_half + 4.0)
    if rng.random() < cfg.p_median_barrier:
        for s in np.arange(s_lo, s_hi, 1.0):
            if not skip_main(s):
                x, y, h = main.pose(s, 0.0)
                smap.box(float(x), float(y), float(h), 1.2, 0.6, BARRIER, 0.0, 0.9)

    # Agents.
    agents: List[Agent] = []
    e_t = lambda dt: np.interp(times + dt, tf, s_ego_f)  # noqa: E731  ego arc length at t + dt
    car = lambda: (rng.uniform(4.2, 5.0), rng.uniform(1.8, 2.0), rng.uniform(1.45, 1.8))  # noqa: E731
    front, rear = cfg.ego_size[0] - cfg.ego_size[2], cfg.ego_size[2]
    d_ego = -(ego_lane + 0.5) * lw
    if rng.random() < 0.75:  # a lead car: where the ego will be tau seconds later
        size, tau = car(), rng.uniform(1.0, 2.5)
        agents.append(_on_road(main, e_t(tau) + front + size[0] / 2 + rng.uniform(2, 6),
                               d_ego, 1, CAR, size, 'lead'))
    if rng.random() < 0.5:   # a follower
        size, tau = car(), rng.uniform(1.0, 2.5)
        agents.append(_on_road(main, e_t(-tau) - rear - size[0] / 2 - rng.uniform(2, 6),
                               d_ego, 1, CAR, size, 'lead'))
    bike = rng.random() < cfg.p_bicycle
    for i in range(lanes):
        for direction in (1, -1):
            if direction == 1 and i == ego_lane:
                continue
            v = _speed_profile(rng, tf, rng.uniform(3.0, cfg.max_speed), cfg.max_speed,
                               cfg.max_accel, 0.15)
            s_lead = s_ego[0] + (rng.uniform(-30, 70) if direction == 1 else rng.uniform(10, 130))
            count = int(rng.integers(cfg.vehicles_per_lane[0], cfg.vehicles_per_lane[1] + 1))
            kerb_bike = bike and direction == -1 and i == lanes - 1
            agents += _platoon(rng, main, -direction * (i + 0.5) * lw, direction, s_lead, tf, v,
                               times, count, (CAR,) if kerb_bike else
                               (CAR, CAR, CAR, CAR, CAR, CAR, TRUCK, TRUCK, BUS))
    if bike:  # rides the kerb edge of the outermost oncoming lane
        s = s_ego[0] + rng.uniform(0, 60) - rng.uniform(3, 6) * times
        agents.append(_on_road(main, s, lanes * lw - 0.25, -1, BICYCLE, (1.8, 0.6, 1.7), 'bicycle'))
    for side, sign in ((0, -1.0), (1, 1.0)):
        if main.parking[side]:
            d = sign * (lanes * lw + 1.25)
            for s in np.arange(s_lo, s_hi, 7.5):
                if rng.random() < 0.7 and not skip_main(s):
                    agents.append(_on_road(main, np.full(L, s + rng.uniform(-1, 1)), d,
                                           int(rng.choice([1, -1])), CAR, car(), 'parked'))
        sw = main.sidewalk[side]
        if sw >= 2.0:
            for _ in range(int(rng.integers(cfg.pedestrians[0], cfg.pedestrians[1] + 1)) // 2 + 1):
                d = sign * (main.half_width(side) + rng.uniform(0.5, sw - 1.1))
                speed = 0.0 if rng.random() < 0.25 else rng.uniform(0.8, 1.6)
                direction = int(rng.choice([1, -1]))
                s = s_ego[0] + rng.uniform(-30, s_ego[-1] - s_ego[0] + 60) + direction * speed * times
                size = (rng.uniform(0.6, 0.8), rng.uniform(0.6, 0.75), rng.uniform(1.6, 1.85))
                agents.append(_on_road(main, s, d, direction, PEDESTRIAN, size, 'pedestrian',
                                       base=grid.voxel_size))
    if cross is not None:    # cars waiting at the crossing, and cars leaving it
        side = roads[1]
        for b in branches:
            stop = main_half + 2.0
            d_in, d_out = b * 0.5 * lw, -b * 0.5 * lw  # lanes towards / away from the crossing
            agents += _platoon(rng, side, d_in, -b, b * (stop + 2.5), tf, np.zeros_like(tf), times,
                               int(rng.integers(0, 3)), (CAR,), 'waiting')
            if rng.random() < 0.5:
                v = _speed_profile(rng, tf, rng.uniform(3, 10), cfg.max_speed, cfg.max_accel, 0.0)
                agents += _platoon(rng, side, d_out, b, b * (stop + 40.0), tf, v, times,
                                   int(rng.integers(1, 3)), (CAR, CAR, TRUCK))
    t0 = 1_600_000_000_000_000 + int(rng.integers(0, 10 ** 13))
    timestamps = t0 + np.round(times * 1e6).astype(np.int64)
    meta = dict(lanes=lanes, ego_lane=ego_lane, cross=cross, branches=branches)
    return SyntheticWorld(int(seed), cfg, roads, smap, agents, ego, timestamps, meta)
