"""Write scenarios to disk: one folder per (window, trajectory), an index and a report.

Layout (every file written atomically)::

    DIR/index.jsonl     one row per (window, trajectory, sample): scene, token, trajectory,
                        sample, source ('model' | 'gt'), collision, first_collision_s,
                        at_fault_collision, offroad, first_offroad_s, min_clearance_m, ...,
                        risk, scenario (folder relative to DIR)
    DIR/report.md       a short Markdown report
    DIR/summary.json    run settings, counts, timings, agreement with ground truth
    DIR/scenarios/<scene>/<token>/<trajectory>/
        trajectory.json     the trajectory (schema of ``occwm.scenarios.trajectories``), the
                            past poses and the recorded future, present ego frame
        metrics.json        per-sample summaries and per-frame scores, their aggregate,
                            the ground-truth summary, the agreement
        occ/sample_<s>/frame_<t>/labels.npz   forecast frame t (1 = +0.5 s) of sample s,
                            Occ3D layout (semantics; masks all ones), in the ego frame of
                            the planned pose t
        render.png          bird's-eye panels: recorded future (if any) and the riskiest
                            samples, the trajectory drawn in each frame, collisions marked
"""
from __future__ import annotations

import json
import os
import re
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from occwm.io import atomic_path, save_labels
from occwm.geometry import EGO_LENGTH, EGO_REAR, EGO_WIDTH, FRAME_DT, relative_se2
from occwm.grid import DEFAULT_GRID, OccGrid
from occwm.scenarios.rollout import RolloutResult, summarise
from occwm.window import OccWindow


def safe_name(name: str) -> str:
    """A folder name for ``name``: characters other than ``A-Za-z0-9._~+-`` become ``_``."""
    return re.sub(r'[^A-Za-z0-9._~+-]', '_', str(name)) or '_'


def scenario_dir(window: OccWindow, trajectory: str) -> str:
    """``scenarios/<scene>/<token>/<trajectory>`` relative to the output folder."""
    return os.path.join('scenarios', safe_name(window.scene_name), safe_name(window.present_token),
                        safe_name(trajectory))


def write_json(path: str, obj) -> None:
    """JSON with ``None`` for non-finite floats, written atomically."""
    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.ndarray):
            return clean(o.tolist())
        if isinstance(o, (np.floating, float)):
            return float(o) if np.isfinite(o) else None
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.bool_):
            return bool(o)
        return o
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        json.dump(clean(obj), f, indent=1)


def _per_frame(r: RolloutResult) -> Dict[str, list]:
    sc = r.score
    return {k: np.round(getattr(sc, k), 3).tolist() if getattr(sc, k).dtype.kind == 'f'
            else getattr(sc, k).tolist()
            for k in ('collision', 'collision_now', 'collision_lagged', 'at_fault', 'offroad',
                      'offroad_frac', 'clearance_vehicle', 'clearance_pedestrian', 'ttc')}


def write_scenario(out_dir: str, window: OccWindow, name: str, traj: np.ndarray,
                   results: Sequence[RolloutResult], seed: int = 0, save_occ: bool = True,
                   render: bool = True, render_samples: int = 1,
                   grid: OccGrid = DEFAULT_GRID) -> str:
    """Write the folder of one scenario (module docstring).

    Args:
        out_dir: the output folder DIR.
        window: the scene window; traj: ``(H, 3)`` the trajectory ``name``.
        results: its ``RolloutResult`` (model samples with ``occ`` kept, and/or 'gt').
        render_samples: model samples drawn in ``render.png`` (the riskiest first).

    Returns:
        the scenario folder relative to ``out_dir``.
    """
    rel = scenario_dir(window, name)
    folder = os.path.join(out_dir, rel)
    fmt = lambda a: None if a is None else np.round(np.asarray(a, np.float64), 4).tolist()  # noqa: E731
    write_json(os.path.join(folder, 'trajectory.json'), dict(
        name=name, dt=FRAME_DT, frame='present ego frame (nuScenes: rear axle centre), x, y m, yaw rad',
        trajectory=fmt(traj), past=fmt(window.past_traj), recorded=fmt(window.recorded_traj),
        scene=window.scene_name, token=window.present_token))
    model = [r for r in results if r.source == 'model']
    gt = next((r for r in results if r.source == 'gt'), None)
    summ = summarise(results)[name] if results else {}
    write_json(os.path.join(folder, 'metrics.json'), dict(
        scene=window.scene_name, token=window.present_token, trajectory=name, seed=seed, k=len(model),
        model=summ.get('model'), gt=summ.get('gt'), agreement=summ.get('agreement'),
        samples=[dict(sample=r.sample, risk=r.extra.get('risk'), **r.summary,
                      per_frame=_per_frame(r)) for r in model],
        gt_per_frame=_per_frame(gt) if gt is not None else None))
    if save_occ:
        for r in model:
            for t, frame in enumerate(r.occ if r.occ is not None else []):
                save_labels(os.path.join(folder, 'occ', f'sample_{r.sample:02d}',
                                         f'frame_{t + 1:02d}', 'labels.npz'), frame, grid=grid)
    if render:
        ranked = sorted([r for r in model if r.occ is not None],
                        key=lambda r: -r.extra.get('risk', 0.0))[:render_samples]
        render_scenario(os.path.join(folder, 'render.png'), window, traj, ranked, gt, grid)
    return rel


_RENDER_FAILED: List[str] = []


def render_scenario(path: str, window: OccWindow, traj: np.ndarray,
                    samples: Sequence[RolloutResult], gt: Optional[RolloutResult] = None,
                    grid: OccGrid = DEFAULT_GRID, panel: int = 240, max_cols: int = 4) -> Optional[str]:
    """A PNG of bird's-eye panels (``occwm.visualization.render.render_occupancy``): a row
    for the recorded future (when scored) and one per sample; column 0 is the present,
    then the future frames (at most ``max_cols`` in all, evenly spaced). Each panel
    shows its frame with the whole trajectory re-expressed in that frame; a colliding
    frame gets a red border. A rendering failure (no headless context) warns once and
    returns ``None``: the data files are written regardless."""
    import cv2
    if _RENDER_FAILED:
        return None
    try:
        from occwm.visualization.render import OccRenderer, render_occupancy
        full = np.concatenate([np.zeros((1, 3)), np.asarray(traj, np.float64)])  # (H + 1, 3)
        rows = []
        if gt is not None and gt.occ is not None:
            rows.append(('recorded', gt.occ, np.asarray(window.recorded_traj, np.float64), gt))
        for r in (r for r in samples if r.occ is not None):
            rows.append((f'sample {r.sample} risk {r.extra.get("risk", 0):.2f}', r.occ,
                         np.asarray(traj, np.float64), r))
        if not rows:
            return None
        H = max(len(occ) for _, occ, _, _ in rows)
        cols = np.unique(np.linspace(0, H, min(max_cols, H + 1)).round().astype(int))
        left, top = 200, 30
        canvas = np.full((top + len(rows) * panel, left + len(cols) * panel, 3), 255, np.uint8)
        with OccRenderer(panel, panel) as rend:
            for i, (label, occ, poses, res) in enumerate(rows):
                y0 = top + i * panel
                cv2.putText(canvas, label, (5, y0 + panel // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                            (0, 0, 0), 1, cv2.LINE_AA)
                for c, t in enumerate(cols):
                    if t > len(occ):
                        continue
                    frame = window.present if t == 0 else occ[t - 1]
                    pose = np.zeros(3) if t == 0 else poses[t - 1]
                    img = render_occupancy(frame, grid, traj=relative_se2(pose, full), renderer=rend)
                    img = np.ascontiguousarray(img)
                    if t > 0 and res.score is not None and res.score.collision[t - 1]:
                        cv2.rectangle(img, (0, 0), (panel - 1, panel - 1), (255, 0, 0), 6)
                    cv2.putText(img, f'+{t * FRAME_DT:g} s', (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                                (0, 0, 0), 1, cv2.LINE_AA)
                    x0 = left + c * panel
                    canvas[y0:y0 + panel, x0:x0 + panel] = img
        cv2.putText(canvas, 'rows: frames in their own ego frame; red line: trajectory; '
                    'red border: collision', (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        ok, data = cv2.imencode('.png', cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError('cv2 could not encode the PNG')
        with atomic_path(path) as tmp, open(tmp, 'wb') as f:
            f.write(data.tobytes())
        return path
    except (RuntimeError, ImportError, OSError) as e:
        _RENDER_FAILED.append(str(e))
        warnings.warn(f'scenario renders skipped ({e}); the data files are still written')
        return None


def write_index(out_dir: str, rows: Sequence[Dict[str, object]]) -> str:
    """``DIR/index.jsonl``, one JSON object per line, atomically. Returns its path."""
    path = os.path.join(out_dir, 'index.jsonl')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        for row in rows:
            f.write(json.dumps({k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                                for k, v in row.items()}) + '\n')
    return path


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return '-'
    if isinstance(v, bool):
        return 'yes' if v else 'no'
    if isinstance(v, float):
        return f'{v:.{digits}f}'
    return str(v)


def write_report(out_dir: str, rows: Sequence[Dict[str, object]], settings: Dict[str, object],
                 timings: Dict[str, object], top: int = 10) -> str:
    """``DIR/report.md``: settings, per (window, trajectory) table, the riskiest rollouts,
    agreement with ground truth, timings. Returns its path."""
    model = [r for r in rows if r['source'] == 'model']
    gt = {(r['scene'], r['token'], r['trajectory']): r for r in rows if r['source'] == 'gt'}
    groups: Dict[tuple, list] = {}
    for r in model:
        groups.setdefault((r['scene'], r['token'], r['trajectory']), []).append(r)
    keys = list(groups) or list(gt)
    lines = ['# occwm scenarios', '',
             f'Collision: the ego footprint (nuScenes ego, {EGO_LENGTH:.3f} x {EGO_WIDTH:.3f} m, x in '
             f'[{-EGO_REAR:.3f}, {EGO_LENGTH - EGO_REAR:.3f}] m from the rear axle) over an obstacle voxel in the height band (module '
             '`occwm.scenarios.scoring`); risk: `occwm.scenarios.search.risk_score`.', '',
             '## Settings', '']
    lines += [f'- {k}: `{v}`' for k, v in settings.items()]
    lines += ['', '## Per window and trajectory', '',
              '| scene | token | trajectory | P(collision) | GT collision | agreement | '
              'P(offroad) | min clearance m | min TTC s | progress m |',
              '|---|---|---|---|---|---|---|---|---|---|']
    agreements = []
    for key in keys:
        ms, g = groups.get(key, []), gt.get(key)
        pc = float(np.mean([m['collision'] for m in ms])) if ms else None
        po = float(np.mean([m['offroad'] for m in ms])) if ms else (g['offroad'] if g else None)
        agree = None
        if ms and g:
            hits = [m['first_collision_s'] is not None and m['first_collision_s'] <= g['horizon_s']
                    for m in ms]
            agree = float(np.mean([h == g['collision'] for h in hits]))
            agreements += [h == g['collision'] for h in hits]
        src = ms or [g]
        clear = [m['min_clearance_m'] for m in src if m['min_clearance_m'] is not None]
        ttc = [m['min_ttc_s'] for m in src if m['min_ttc_s'] is not None]
        prog = float(np.mean([m['progress_m'] for m in src]))
        lines.append(f'| {key[0]} | {key[1][:8]} | {key[2]} | {_fmt(pc)} | '
                     f'{_fmt(g["collision"]) if g else "-"} | {_fmt(agree)} | {_fmt(po)} | '
                     f'{_fmt(min(clear) if clear else None)} | {_fmt(min(ttc) if ttc else None)} | '
                     f'{_fmt(prog, 1)} |')
    ranked = sorted(rows, key=lambda r: -(r.get('risk') or 0.0))[:top]
    lines += ['', f'## The {len(ranked)} riskiest rollouts', '',
              '| risk | source | scene | token | trajectory | sample | first collision s | '
              'offroad | min clearance m | scenario |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in ranked:
        lines.append(f'| {_fmt(r.get("risk"))} | {r["source"]} | {r["scene"]} | {r["token"][:8]} | '
                     f'{r["trajectory"]} | {r["sample"]} | {_fmt(r["first_collision_s"], 1)} | '
                     f'{_fmt(r["offroad"])} | {_fmt(r["min_clearance_m"])} | `{r.get("scenario", "")}` |')
    lines += ['', '## Agreement with ground truth', '']
    if agreements:
        lines.append(f'Model samples whose collision flag equals the recorded future\'s (same '
                     f'horizon): {np.mean(agreements):.3f} over {len(agreements)} samples.')
    else:
        lines.append('Not measured (needs both model samples and a recorded future).')
    lines += ['', '## Timings', '']
    lines += [f'- {k}: {_fmt(v, 3)}' for k, v in timings.items()]
    path = os.path.join(out_dir, 'report.md')
    with atomic_path(path) as tmp, open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def agreement_rate(rows: Sequence[Dict[str, object]]) -> Optional[Dict[str, float]]:
    """Over all (window, trajectory) with both: the fraction of model samples whose
    collision flag (within the ground truth's horizon) equals the ground truth's, plus
    the counts of the four cases. ``None`` without pairs."""
    gt = {(r['scene'], r['token'], r['trajectory']): r for r in rows if r['source'] == 'gt'}
    cases = dict(tp=0, tn=0, fp=0, fn=0)
    for r in rows:
        g = gt.get((r['scene'], r['token'], r['trajectory']))
        if r['source'] != 'model' or g is None:
            continue
        hit = r['first_collision_s'] is not None and r['first_collision_s'] <= g['horizon_s']
        cases[('t' if hit == g['collision'] else 'f') + ('p' if hit else 'n')] += 1
    n = sum(cases.values())
    if not n:
        return None
    return dict(agreement=(cases['tp'] + cases['tn']) / n, n=n, **cases)
