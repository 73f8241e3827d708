"""Score an ego trajectory against a sequence of occupancy frames: collision, leaving
the driveable surface, clearance to vehicles and pedestrians, time to collision and
progress. Pure numpy; the inputs are labels, so the same scorer runs on the model's
forecasts and on ground-truth occupancy.

Ego reference point and footprint. Trajectory poses are poses of the nuScenes ego
frame: origin at the centre of the REAR AXLE on the ground, x forward, y left (nuScenes
devkit, ``ego_pose``: "the center of the rear axle projected onto the ground"). The
footprint is the nuScenes ego vehicle, a Renault Zoe, as defined once in
``occwm.geometry`` (``EGO_LENGTH`` x ``EGO_WIDTH`` = 4.084 m x 1.730 m, ``EGO_REAR``
0.657 m: Renault data there). In the ego frame it spans ``x in [-0.657, 3.427]``,
``y in [-0.865, 0.865]`` m (``ScoringConfig.footprint``); the synthetic generator
clears the same body. For comparison: ``occwm.occupancy.builder.EGO_BODY`` (LiDAR
returns on the body, with margin) is ``x in [-1.2, 3.4]``, and BEV-Planner / OmniDrive
put the box centre 1.49 m ahead of the rear axle (``[-0.55, 3.53]``). ``ScoringConfig.ego_rear`` / ``margin`` change it.

Height band. Only voxels that overlap the ego's height band count as obstacles:
``z in (0.2, 1.6)`` m in the ego frame (the top of the road voxel layer to the roof,
``EGO_HEIGHT`` 1.56 m), with z = 0 on the road surface (road layer ``[-0.2, 0.2]`` m ego
z, grid index 0 for built, synthetic and official Occ3D-nuScenes frames alike:
``OccGrid.z_offset``). With ``auto_ground`` (default) the band moves with the road: it
starts at the top face of the most common z layer of ``driveable_surface`` voxels within
20 m of the ego in the present frame.

Classes (``occwm.grid`` class groups). Obstacles: every occupied label except
``FLAT_CLASSES`` 11-14 (driveable_surface, other_flat, sidewalk, terrain), which are
surfaces, scored by offroad instead. ``VEHICLE_CLASSES``: 2-6, 9, 10 (bicycle ...
truck); ``PEDESTRIAN_CLASSES``: 7.

Frames. ``frame_poses[k]`` is the pose, in the present ego frame, of the ego frame in
which occupancy frame ``k`` is expressed: the planned pose itself for a forecast (the
model forecasts the world around the planned ego), the recorded pose for ground truth.
The footprint at the planned pose ``traj[k]`` is moved into frame ``k`` by
``inv(frame_poses[k]) o traj[k]``.

The ego's own body. Occ3D (and occwm's builder and synthetic data) clear the ego's
body in every frame, and a model trained on them learns to; a forecast in the planned
ego frame then cannot show what the ego overlaps at that instant. So collision at step
``k`` (``ScoringConfig.lagged``, default on) is: the footprint at ``traj[k]`` covers an
obstacle of frame ``k`` OR of frame ``k - 1`` (the present frame for the first step).
Frame ``k - 1`` hides only the space the ego itself held at step ``k - 1``. For a
static obstacle this is exact; for a moving one it flags reaching, within ``dt``
(``FRAME_DT`` = 0.5 s), space it held: a 0.5 s time-headway criterion. Ground truth is scored the same
way (its frames clear the recorded ego, whose space nothing else held).

Rasterisation: a voxel column is under the footprint when its centre lies inside the
(rotated) rectangle, so the footprint is exact to half a voxel (0.2 m). Clearance is the
Euclidean distance from the rectangle to the nearest vehicle / pedestrian voxel centre
in the band, so a collision with a vehicle is exactly a vehicle clearance of 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from occwm.geometry import EGO_LENGTH, EGO_REAR, EGO_WIDTH, FRAME_DT, apply_se2, relative_se2
from occwm.grid import (DEFAULT_GRID, DRIVEABLE_CLASSES, FLAT_CLASSES,
                        PEDESTRIAN_CLASSES, VEHICLE_CLASSES, OccGrid)


@dataclass(frozen=True)
class ScoringConfig:
    """Scorer settings (module docstring). Lengths in metres, times in seconds."""
    ego_length: float = EGO_LENGTH    # nuScenes Renault Zoe (occwm.geometry)
    ego_width: float = EGO_WIDTH
    ego_rear: float = EGO_REAR        # rear bumper behind the rear axle (the ego origin)
    margin: float = 0.0               # added on every side of the footprint
    height_band: Tuple[float, float] = (0.2, 1.6)  # ego frame z, road surface at z = 0
    auto_ground: bool = True          # move the band with the road layer (module docstring)
    ground_radius: float = 20.0       # m around the ego used to find the road layer
    offroad_frac: float = 0.1         # offroad: this fraction of the footprint off the road
    ttc_horizon: float = 3.0          # s; a longer time to collision is reported as none
    lagged: bool = True               # also test frame k - 1 (module docstring)
    stopped_speed: float = 0.5        # m/s; a collision below it is not the ego's fault
    dt: float = FRAME_DT              # s between trajectory poses

    @property
    def footprint(self) -> Tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` of the footprint in the ego's own frame, m."""
        m = self.margin
        return (-self.ego_rear - m, self.ego_length - self.ego_rear + m,
                -self.ego_width / 2 - m, self.ego_width / 2 + m)


# ----------------------------------------------------------------------------- grids
def band_layers(grid: OccGrid, band: Tuple[float, float], shift: float = 0.0) -> np.ndarray:
    """``(Z,) bool``: layers whose z interval overlaps ``(band[0] + shift, band[1] + shift)``
    (open interval: a layer only touching the band is out)."""
    lo = grid.origin[2] + np.arange(grid.shape[2]) * grid.voxel_size
    return (lo + grid.voxel_size > band[0] + shift + 1e-6) & (lo < band[1] + shift - 1e-6)


def ground_shift(present: np.ndarray, cfg: ScoringConfig = ScoringConfig(),
                 grid: OccGrid = DEFAULT_GRID) -> float:
    """Metres to add to ``cfg.height_band`` so that it starts on the road (module docstring).

    Args:
        present: ``(X, Y, Z)`` labels of the present frame.

    Returns:
        top face of the most common ``driveable_surface`` layer within
        ``cfg.ground_radius`` of the ego minus ``cfg.height_band[0]``; 0 without road
        voxels or with ``auto_ground`` off.
    """
    if not cfg.auto_ground:
        return 0.0
    cx, cy = grid.column_centers()
    near = np.hypot(cx[:, None], cy[None, :]) <= cfg.ground_radius  # (X, Y)
    road = np.isin(present, DRIVEABLE_CLASSES) & near[..., None]  # (X, Y, Z)
    per_layer = road.sum(axis=(0, 1))  # (Z,)
    if per_layer.sum() == 0:
        return 0.0
    top = grid.origin[2] + (int(np.argmax(per_layer)) + 1) * grid.voxel_size
    return float(top - cfg.height_band[0])


@dataclass
class BevMaps:
    """Bird's-eye maps of one frame, ``(X, Y)`` each: ``obstacle``, ``vehicle`` and
    ``pedestrian`` (bool, any voxel of the class in the height band) and ``ground``
    (int8: 1 driveable, 0 other flat ground, -1 unknown: no flat voxel in the column)."""
    obstacle: np.ndarray
    vehicle: np.ndarray
    pedestrian: np.ndarray
    ground: np.ndarray


def bev_maps(occ: np.ndarray, layers: np.ndarray, free_label: int = DEFAULT_GRID.free_label
             ) -> BevMaps:
    """Collapse ``occ`` ``(X, Y, Z)`` labels to ``BevMaps`` over the band ``layers`` ``(Z,)``.

    The ground of a column is its topmost flat-class voxel (11-14) at or below the top
    band layer (a raised kerb of sidewalk beats the road under it)."""
    occ = np.asarray(occ)
    band = occ[..., layers]  # (X, Y, Zb)
    obstacle = ((band != free_label) & ~np.isin(band, FLAT_CLASSES)).any(-1)
    vehicle = np.isin(band, VEHICLE_CLASSES).any(-1)
    pedestrian = np.isin(band, PEDESTRIAN_CLASSES).any(-1)
    top = int(np.nonzero(layers)[0].max()) + 1 if layers.any() else occ.shape[-1]
    flat = np.isin(occ[..., :top], FLAT_CLASSES)  # (X, Y, top)
    has = flat.any(-1)
    k = top - 1 - np.argmax(flat[..., ::-1], axis=-1)  # index of the topmost flat voxel
    label = np.take_along_axis(occ[..., :top], k[..., None], -1)[..., 0]
    ground = np.where(has, np.isin(label, DRIVEABLE_CLASSES).astype(np.int8), -1).astype(np.int8)
    return BevMaps(obstacle, vehicle, pedestrian, ground)


# ----------------------------------------------------------------------------- footprint
def footprint_mask(pose: np.ndarray, cfg: ScoringConfig = ScoringConfig(),
                   grid: OccGrid = DEFAULT_GRID) -> np.ndarray:
    """``(X, Y) bool``: columns whose centre lies inside the footprint at ``pose``
    ``(3,)`` (x m, y m, yaw rad in the grid's ego frame)."""
    cells = np.stack(np.meshgrid(*grid.column_centers(), indexing='ij'), -1)  # (X, Y, 2)
    q = apply_se2(cells, pose, inverse=True)  # (X, Y, 2) in the footprint's frame
    qx, qy = q[..., 0], q[..., 1]
    x0, x1, y0, y1 = cfg.footprint
    return (qx >= x0) & (qx <= x1) & (qy >= y0) & (qy <= y1)


def box_distance(pose: np.ndarray, points: np.ndarray,
                 cfg: ScoringConfig = ScoringConfig()) -> np.ndarray:
    """``(N,)`` Euclidean distances in metres from the footprint at ``pose`` ``(3,)`` to
    ``points`` ``(N, 2)`` (0 inside), same frame."""
    q = apply_se2(points[:, :2], pose, inverse=True)  # (N, 2) in the footprint's frame
    qx, qy = q[:, 0], q[:, 1]
    x0, x1, y0, y1 = cfg.footprint
    dx = np.maximum(np.maximum(x0 - qx, qx - x1), 0.0)
    dy = np.maximum(np.maximum(y0 - qy, qy - y1), 0.0)
    return np.hypot(dx, dy)


def time_to_collision(pose: np.ndarray, speed: float, points: np.ndarray,
                      cfg: ScoringConfig = ScoringConfig()) -> float:
    """Seconds until the footprint at ``pose``, moving straight along its heading at
    constant ``speed`` (m/s; negative = reversing), first covers one of ``points``
    ``(N, 2)`` (a frozen world, as nuPlan's constant-velocity TTC projection
    ``time_to_collision_within_bound`` but against occupancy). 0 when a point is
    already inside; ``inf`` when none is ever hit."""
    if len(points) == 0:
        return float('inf')
    q = apply_se2(points[:, :2], pose, inverse=True)  # (N, 2) in the footprint's frame
    qx, qy = q[:, 0], q[:, 1]
    x0, x1, y0, y1 = cfg.footprint
    lateral = (qy >= y0) & (qy <= y1)
    inside = lateral & (qx >= x0) & (qx <= x1)
    if inside.any():
        return 0.0
    if abs(speed) < 1e-6:
        return float('inf')
    gap = (qx - x1) if speed > 0 else (x0 - qx)  # distance ahead of the moving edge
    hit = lateral & (gap >= 0)
    return float(gap[hit].min() / abs(speed)) if hit.any() else float('inf')


# ----------------------------------------------------------------------------- scoring
@dataclass
class RolloutScore:
    """Per-frame scores of one trajectory against one occupancy sequence, ``(H,)`` each:
    ``collision`` / ``offroad`` bool; ``clearance_vehicle`` / ``clearance_pedestrian``
    metres (inf: none in the grid); ``ttc`` seconds (inf: none within the horizon);
    ``offroad_frac`` fraction of the footprint on non-driveable ground;
    ``collision_now`` / ``collision_lagged`` the two halves of ``collision`` (obstacle of
    frame k / of frame k - 1); ``at_fault``: a collision while the ego moves (faster than
    ``ScoringConfig.stopped_speed``) with an obstacle in the front half of the footprint
    (a simplification of nuPlan's at-fault rule: a stopped ego, or one hit only in its
    rear half, is being hit: recorded agents do not react to the ego, as in nuPlan's
    non-reactive replay); plus the trajectory ``traj`` ``(H, 3)`` and ``dt``."""
    collision: np.ndarray
    at_fault: np.ndarray
    collision_now: np.ndarray
    collision_lagged: np.ndarray
    offroad: np.ndarray
    offroad_frac: np.ndarray
    clearance_vehicle: np.ndarray
    clearance_pedestrian: np.ndarray
    ttc: np.ndarray
    traj: np.ndarray
    dt: float = FRAME_DT
    extra: Dict = field(default_factory=dict)

    def summary(self) -> Dict[str, object]:
        """JSON-ready summary: ``collision`` bool, ``first_collision_s`` (None if none),
        ``offroad`` bool, ``first_offroad_s``, ``min_clearance_m`` (vehicles and
        pedestrians; None if none), ``at_fault_collision`` bool, ``min_clearance_vehicle_m``,
        ``min_clearance_pedestrian_m``, ``min_ttc_s`` (None if none within
        ``ttc_horizon``), ``progress_m`` (path length before the first collision, all
        of it without one), ``path_length_m``, ``horizon_s``."""
        def first(flags):
            idx = np.nonzero(flags)[0]
            return float((idx[0] + 1) * self.dt) if len(idx) else None

        def finite(v):
            v = float(v)
            return round(v, 3) if np.isfinite(v) else None

        steps = np.linalg.norm(np.diff(np.concatenate([np.zeros((1, 2)), self.traj[:, :2]]), axis=0),
                               axis=1)  # (H,) metres per step
        hit = np.nonzero(self.collision)[0]
        progress = steps[:hit[0]].sum() if len(hit) else steps.sum()
        clear = np.minimum(self.clearance_vehicle, self.clearance_pedestrian)
        return dict(collision=bool(self.collision.any()), first_collision_s=first(self.collision),
                    at_fault_collision=bool(self.at_fault.any()),
                    offroad=bool(self.offroad.any()), first_offroad_s=first(self.offroad),
                    min_clearance_m=finite(clear.min()),
                    min_clearance_vehicle_m=finite(self.clearance_vehicle.min()),
                    min_clearance_pedestrian_m=finite(self.clearance_pedestrian.min()),
                    min_ttc_s=finite(self.ttc.min()), progress_m=round(float(progress), 3),
                    path_length_m=round(float(steps.sum()), 3),
                    horizon_s=float(len(self.traj) * self.dt))


def _hits(obstacle: np.ndarray, pose: np.ndarray, cfg: ScoringConfig, grid: OccGrid
          ) -> Tuple[bool, bool]:
    """Whether the footprint at ``pose`` covers an ``obstacle`` ``(X, Y)`` column, and
    whether one of those lies in the front half of the footprint."""
    cx, cy = grid.column_centers()
    i, j = np.nonzero(obstacle & footprint_mask(pose, cfg, grid))
    if not len(i):
        return False, False
    qx = apply_se2(np.stack([cx[i], cy[j]], -1), pose, inverse=True)[:, 0]  # (n,) footprint frame
    x0, x1, _, _ = cfg.footprint
    return True, bool((qx >= 0.5 * (x0 + x1)).any())


def trajectory_speeds(traj: np.ndarray, dt: float = FRAME_DT) -> np.ndarray:
    """``(H,)`` signed speed (m/s) at each pose: the step from the previous pose (the
    present origin for the first) along the pose's heading, divided by ``dt``."""
    prev = np.concatenate([np.zeros((1, 3)), np.asarray(traj, np.float64)[:-1]])
    step = np.asarray(traj, np.float64)[:, :2] - prev[:, :2]  # (H, 2)
    heading = np.stack([np.cos(traj[:, 2]), np.sin(traj[:, 2])], -1)  # (H, 2)
    return (step * heading).sum(-1) / dt


def score_trajectory(occ: np.ndarray, traj: np.ndarray, frame_poses: Optional[np.ndarray] = None,
                     cfg: ScoringConfig = ScoringConfig(), grid: OccGrid = DEFAULT_GRID,
                     shift: float = 0.0, present: Optional[np.ndarray] = None) -> RolloutScore:
    """Score one trajectory against one occupancy sequence (module docstring).

    Args:
        occ: ``(H, X, Y, Z)`` uint8 labels; frame ``k`` at ``(k + 1) * cfg.dt`` s.
        traj: ``(H, 3)`` planned poses (x m, y m, yaw rad), present ego frame.
        frame_poses: ``(H, 3)`` pose of each frame's ego frame in the present frame;
            ``None`` = ``traj`` (a forecast made for this trajectory).
        shift: metres added to the height band (``ground_shift`` of the present frame).
        present: ``(X, Y, Z)`` the present frame (pose zero), the "previous frame" of the
            first step for ``cfg.lagged``; without it the first step is tested on its
            own frame only.

    Raises:
        ValueError: mismatched lengths or a grid of the wrong shape.
    """
    occ, traj = np.asarray(occ), np.asarray(traj, np.float64)
    if occ.ndim != 4 or occ.shape[1:] != tuple(grid.shape):
        raise ValueError(f'occ must be (H, {", ".join(map(str, grid.shape))}), got {occ.shape}')
    if traj.shape != (len(occ), 3):
        raise ValueError(f'traj must be ({len(occ)}, 3) for {len(occ)} frames, got {traj.shape}')
    frame_poses = traj if frame_poses is None else np.asarray(frame_poses, np.float64)
    if frame_poses.shape != traj.shape:
        raise ValueError(f'frame_poses {frame_poses.shape} != traj {traj.shape}')
    layers = band_layers(grid, cfg.height_band, shift)
    cx, cy = grid.column_centers()
    speeds = trajectory_speeds(traj, cfg.dt)
    H = len(traj)
    out = {k: np.zeros(H, bool) for k in ('collision', 'collision_now', 'collision_lagged',
                                          'at_fault', 'offroad')}
    out.update({k: np.full(H, np.inf) for k in ('clearance_vehicle', 'clearance_pedestrian', 'ttc')})
    out['offroad_frac'] = np.zeros(H)
    prev_maps = None if present is None else bev_maps(np.asarray(present), layers, grid.free_label)
    prev_pose = np.zeros(3)
    for k in range(H):
        maps = bev_maps(occ[k], layers, grid.free_label)
        pose = relative_se2(frame_poses[k], traj[k])  # the planned pose in frame k
        foot = footprint_mask(pose, cfg, grid)  # (X, Y)
        out['collision_now'][k], front = _hits(maps.obstacle, pose, cfg, grid)
        if cfg.lagged and prev_maps is not None:  # the planned pose in frame k - 1
            out['collision_lagged'][k], front_prev = _hits(
                prev_maps.obstacle, relative_se2(prev_pose, traj[k]), cfg, grid)
            front = front or front_prev
        out['collision'][k] = out['collision_now'][k] or out['collision_lagged'][k]
        out['at_fault'][k] = out['collision'][k] and front and speeds[k] > cfg.stopped_speed
        prev_maps, prev_pose = maps, frame_poses[k]
        n = max(int(foot.sum()), 1)
        out['offroad_frac'][k] = float(((maps.ground == 0) & foot).sum()) / n
        out['offroad'][k] = out['offroad_frac'][k] > cfg.offroad_frac
        for name, m in (('clearance_vehicle', maps.vehicle), ('clearance_pedestrian', maps.pedestrian)):
            i, j = np.nonzero(m)
            if len(i):
                out[name][k] = box_distance(pose, np.stack([cx[i], cy[j]], -1), cfg).min()
        i, j = np.nonzero(maps.obstacle)
        ttc = time_to_collision(pose, speeds[k], np.stack([cx[i], cy[j]], -1), cfg)
        out['ttc'][k] = ttc if ttc <= cfg.ttc_horizon else np.inf
    return RolloutScore(traj=traj.astype(np.float32), dt=cfg.dt, **out)


def aggregate(summaries: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Aggregate the ``RolloutScore.summary()`` of K sampled futures of one trajectory.

    Returns:
        ``k``; ``p_collision`` and ``p_offroad`` (fraction of samples);
        ``earliest_collision_s``; ``min_clearance_m`` (the smallest over samples) and
        ``mean_min_clearance_m`` (over samples with a value); ``min_ttc_s``;
        ``mean_progress_m``. ``None`` where no sample has a value.
    """
    def vals(key):
        return [s[key] for s in summaries if s.get(key) is not None]

    def mean(v):
        return round(float(np.mean(v)), 3) if v else None

    k = len(summaries)
    return dict(k=k,
                p_collision=mean([float(s['collision']) for s in summaries]),
                p_offroad=mean([float(s['offroad']) for s in summaries]),
                earliest_collision_s=min(vals('first_collision_s'), default=None),
                min_clearance_m=min(vals('min_clearance_m'), default=None),
                mean_min_clearance_m=mean(vals('min_clearance_m')),
                min_ttc_s=min(vals('min_ttc_s'), default=None),
                mean_progress_m=mean(vals('progress_m')))
