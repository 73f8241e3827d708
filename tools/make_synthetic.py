"""Write the embedded SYNTHETIC data set (procedural driving scenes, no real data).

    python tools/make_synthetic.py data/synthetic --num-train 24 --num-val 6 --frames 20 --seed 0

Writes ``OUT_DIR/gts/synthetic-XXXX/<token>/labels.npz`` (Occ3D layout) and
``OUT_DIR/synthetic_infos_{train,val}.pkl`` (OccWorld-style scene-keyed infos); the
val scenes are held out (drawn from different seeds). See ``occwm.synthetic.scenes``.

``--lidar`` writes the same scenes (names, seeds, tokens, poses, splits) with occupancy
seen through a simulated spinning LiDAR instead of the clean volumetric rasterisation::

    python tools/make_synthetic.py data/synthetic_lidar --lidar --ray-cast own

Each frame is swept by a simulated nuScenes HDL-32E (``occwm.synthetic.lidar``: 32 beams,
1080 azimuth steps, occlusion, porous vegetation, range noise, drop-outs; the agents as
tracked boxes), written in occwm's frame format (``occwm.occupancy.frames``) and built
into occupancy by the same builder as real LiDAR (``occwm.occupancy.builder``:
aggregation over the scene, box-carried movers, ray-cast ``mask_lidar``; ``--ray-cast
all`` casts the rays of every aggregated sweep, ``own`` (faster) each frame's own sweep).
``mask_camera`` is ``mask_lidar`` within ``camera_range`` (40 m) horizontally, the range
rule of the clean set (no camera model). ``--keep-scans`` keeps the sweeps under
``OUT_DIR/lidar/<scene>/`` (a frame-format folder ``tools/build_occupancy.py`` reads).

Cost of a 20-frame scene, one thread (measured on a 2-core machine, CPU seconds): clean
0.6 s; ``--lidar --ray-cast own`` 9 s (sweeps 4.5 s, builder 4 s), so 30 scenes take
about 4.5 min of CPU (6.3 min wall on a shared machine); ``--ray-cast all`` about 48 s
(builder 43 s: every frame casts the rays of all 20 sweeps), 30 scenes about 25 min.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.synthetic.scenes import SyntheticSceneConfig, write_synthetic_dataset


class LidarOccupancy:
    """``scene_occupancy`` of ``write_synthetic_dataset``: simulated sweeps of a world ->
    frame files -> ``builder.build_sequence``; adds up the seconds of each stage."""

    def __init__(self, grid: OccGrid, cfg: SyntheticSceneConfig, lidar_cfg, ray_cast: str,
                 scans_dir=None):
        self.grid, self.cfg, self.lidar_cfg = grid, cfg, lidar_cfg
        self.ray_cast, self.scans_dir = ray_cast, scans_dir
        self.seconds = defaultdict(float)
        self.points = []                                   # returns per sweep

    def __call__(self, world, scene_name: str):
        from occwm.occupancy.builder import build_sequence
        from occwm.occupancy.frames import frame_path, load_frames, write_frame, write_scene_json
        from occwm.synthetic.lidar import simulate_scans
        start = time.perf_counter()
        scans = simulate_scans(world, self.lidar_cfg)
        self.points += [len(s.points) for s in scans]
        t1 = time.perf_counter()
        tmp = None if self.scans_dir else tempfile.mkdtemp(prefix='occwm_lidar_')
        src = os.path.join(self.scans_dir, scene_name) if self.scans_dir else tmp
        try:
            for i, s in enumerate(scans):
                write_frame(frame_path(src, i), s.points, s.labels, s.lidar2ego, s.ego2global,
                            s.timestamp, s.boxes, s.box_ids, s.box_labels)
            write_scene_json(src, scene_name)
            frames = load_frames(src, scene_name)
            t2 = time.perf_counter()
            occ = build_sequence(frames, self.grid, ray_cast=self.ray_cast, progress=False)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        t3 = time.perf_counter()
        self.seconds['simulate'] += t1 - start
        self.seconds['frame files'] += t2 - t1
        self.seconds['build'] += t3 - t2
        sem = np.stack([o['semantics'] for o in occ])                    # (L, X, Y, Z)
        lidar = np.stack([o['mask_lidar'] for o in occ])
        ex, ey = self.grid.column_centers()
        near = np.hypot(ex[:, None], ey[None, :]) <= self.cfg.camera_range  # (X, Y)
        return sem, lidar, (lidar.astype(bool) & near[..., None]).astype(np.uint8)


# --rough-foliage: the LidarConfig settings of docs/domain_gap.md ("Relief and foliage")
ROUGH_FOLIAGE = dict(vegetation_hit=(0.05, 0.5), foliage_gaps=0.2, crown_ragged=1.0, leaf_gaps=0.35)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('out_dir', help='data root to write (e.g. data/synthetic)')
    p.add_argument('--num-train', type=int, default=24, help='training scenes (default 24)')
    p.add_argument('--num-val', type=int, default=6, help='held-out validation scenes (default 6)')
    p.add_argument('--frames', type=int, default=20, help='frames per scene (default 20)')
    p.add_argument('--seed', type=int, default=0, help='data set seed (default 0)')
    p.add_argument('--frame-rate', type=float, default=2.0, help='Hz (default 2, nuScenes keyframes)')
    p.add_argument('--pc-range', type=float, nargs=6, default=list(DEFAULT_GRID.point_cloud_range),
                   metavar=('XMIN', 'YMIN', 'ZMIN', 'XMAX', 'YMAX', 'ZMAX'),
                   help='grid range in metres, ego frame (default Occ3D: -40 -40 -1 40 40 5.4)')
    p.add_argument('--voxel-size', type=float, default=DEFAULT_GRID.voxel_size,
                   help='voxel edge in metres (default 0.4)')
    p.add_argument('--overwrite', action='store_true',
                   help='write even if OUT_DIR already holds synthetic info pkls')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    lid = p.add_argument_group('simulated LiDAR (--lidar)')
    lid.add_argument('--lidar', action='store_true',
                     help='occupancy built from a simulated nuScenes HDL-32E sweep per frame '
                          '(default: the clean volumetric generator)')
    lid.add_argument('--ray-cast', choices=('all', 'own', 'none'), default='own',
                     help="builder's mask_lidar: rays of every aggregated sweep (all, slow), of "
                          "each frame's own sweep (own, default) or the occupied voxels (none)")
    lid.add_argument('--beams', type=int, default=32, help='LiDAR beams (default 32)')
    lid.add_argument('--azimuth-steps', type=int, default=1080,
                     help='firings per turn (default 1080)')
    lid.add_argument('--dropout', type=float, default=0.03,
                     help='share of returns dropped at random (default 0.03)')
    lid.add_argument('--range-noise', type=float, default=0.02,
                     help='std of the range noise, metres (default 0.02)')
    lid.add_argument('--tilt-std', type=float, default=0.3,
                     help="std of the body's pitch and roll per frame, degrees (default 0.3)")
    lid.add_argument('--terrain-relief', type=float, default=0.0, metavar='M',
                     help='open ground and terrain rise by up to M metres per scene (smooth '
                          'hills, 0.15 m bumps); default 0: flat (docs/domain_gap.md)')
    lid.add_argument('--rough-foliage', action='store_true',
                     help='foliage of varying density (stop chance 0.05-0.5 a cell), crowns '
                          'with open patches, ragged edges and leafless cubes '
                          '(docs/domain_gap.md); default: solid crowns, stop chance 0.35')
    lid.add_argument('--lidar-seed', type=int, default=0, help='noise seed (default 0)')
    lid.add_argument('--keep-scans', action='store_true',
                     help='keep the simulated sweeps under OUT_DIR/lidar/<scene>/ (frame format)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        grid = OccGrid(tuple(args.pc_range), args.voxel_size)
    except ValueError as e:
        print(f'error: bad grid: {e}', file=sys.stderr)
        return 2
    existing = [f for f in ('synthetic_infos_train.pkl', 'synthetic_infos_val.pkl')
                if os.path.exists(os.path.join(args.out_dir, f))]
    if existing and not args.overwrite:
        print(f'error: {args.out_dir} already holds {", ".join(existing)}; pass --overwrite to '
              f'replace the synthetic data set or choose another OUT_DIR', file=sys.stderr)
        return 1
    if args.frames < 1 or args.num_train < 0 or args.num_val < 0:
        print('error: --frames must be >= 1 and the scene counts >= 0', file=sys.stderr)
        return 2
    cfg = SyntheticSceneConfig(frame_rate=args.frame_rate)
    occupancy, metadata = None, None
    if args.lidar:
        from occwm.synthetic.lidar import LidarConfig
        try:
            lidar_cfg = LidarConfig(num_beams=args.beams, azimuth_steps=args.azimuth_steps,
                                    dropout=args.dropout, range_noise=args.range_noise,
                                    tilt_std=args.tilt_std, seed=args.lidar_seed,
                                    terrain_relief=args.terrain_relief,
                                    terrain_roughness=0.15 if args.terrain_relief > 0 else 0.0,
                                    **(ROUGH_FOLIAGE if args.rough_foliage else {}))
        except ValueError as e:
            print(f'error: bad LiDAR settings: {e}', file=sys.stderr)
            return 2
        scans_dir = os.path.join(args.out_dir, 'lidar') if args.keep_scans else None
        occupancy = LidarOccupancy(grid, cfg, lidar_cfg, args.ray_cast, scans_dir)
        metadata = dict(occupancy=f'simulated LiDAR ({args.beams} beams x {args.azimuth_steps} '
                                  f'azimuth steps) -> occwm.occupancy.builder, ray_cast='
                                  f'{args.ray_cast}',
                        lidar=dataclasses.asdict(lidar_cfg), ray_cast=args.ray_cast,
                        mask_camera=f'mask_lidar within {cfg.camera_range} m (no camera model)')
    source = (f'simulated-LiDAR occupancy (ray_cast {args.ray_cast})' if args.lidar
              else 'clean volumetric occupancy')
    print(f'writing a SYNTHETIC data set (procedural scenes, not real data; {source}): '
          f'{args.num_train} train + {args.num_val} val scenes x {args.frames} frames, '
          f'seed {args.seed}, grid {grid.shape} -> {args.out_dir}')
    start = time.time()
    out = write_synthetic_dataset(args.out_dir, args.num_train, args.num_val, args.frames,
                                  args.seed, grid, cfg, progress=not args.no_progress,
                                  scene_occupancy=occupancy, metadata=metadata)
    seconds = time.time() - start
    scenes = args.num_train + args.num_val
    print(f'wrote {out["num_frames"]} synthetic frames in {seconds:.1f} s '
          f'({seconds / max(scenes, 1):.1f} s a scene):')
    if occupancy is not None:
        parts = ', '.join(f'{k} {v / max(scenes, 1):.1f} s' for k, v in occupancy.seconds.items())
        pts = np.asarray(occupancy.points)
        print(f'  per scene: {parts}; {pts.mean():.0f} returns a sweep '
              f'(min {pts.min()}, max {pts.max()})' if len(pts) else f'  per scene: {parts}')
    print(f'  occupancy  {out["gts"]}/synthetic-XXXX/<token>/labels.npz')
    for split in ('train', 'val'):
        print(f'  {split:5s} pkl  {out[split]}  ({len(out["scenes"][split])} scenes)')
    if args.lidar and args.keep_scans:
        print(f'  sweeps     {os.path.join(args.out_dir, "lidar")}/synthetic-XXXX/frames/*.npz')
    return 0


if __name__ == '__main__':
    sys.exit(main())
