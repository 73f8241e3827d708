"""Headless rendering tests. They skip only when open3d cannot create a headless
context here; under CI (``CI=true``, where the Mesa EGL / Vulkan packages are
installed) that is a failure."""
import os

import cv2
import numpy as np
import pytest

from occwm.grid import DEFAULT_GRID, OCC3D_PALETTE
from occwm.visualization import (OccRenderer, ego_box_mesh, occupancy_to_mesh,
                                 render_comparison, render_occupancy, trajectory_lineset)
from occwm.visualization.geometry import (DIM_ALPHA, EGO_COLOR, ERROR_PALETTE, FN, FP, TP,
                                          WRONG_CLASS, error_codes)
from occwm.visualization.render import VIEWS, orbit_camera, resolve_camera

CAR, TRUCK, FREE = 4, 10, 17
W, H = 320, 240


@pytest.fixture(scope='module')
def renderer():
    try:
        r = OccRenderer(W, H)
    except RuntimeError as err:
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'CI must render headlessly: {err}')
        pytest.skip(f'open3d cannot create a headless context here: {err}')
    yield r
    r.close()


def empty_grid():
    return np.full(DEFAULT_GRID.shape, FREE, dtype=np.uint8)  # (200, 200, 16)


def block(occ, label, x_m, y_m, half=2.0, z=(2, 6)):
    """Fill a square block of side 2*half metres centred at (x_m, y_m), z indices z."""
    vs, (ox, oy, _) = DEFAULT_GRID.voxel_size, DEFAULT_GRID.origin
    xs = slice(int(round((x_m - half - ox) / vs)), int(round((x_m + half - ox) / vs)))
    ys = slice(int(round((y_m - half - oy) / vs)), int(round((y_m + half - oy) / vs)))
    occ[xs, ys, z[0]:z[1]] = label
    return occ


def test_single_voxel_mesh_has_six_outward_faces():
    occ = empty_grid()
    occ[100, 100, 0] = CAR  # voxel [0, 0.4] x [0, 0.4] x [-0.2, 0.2] m (ego frame, layer 0)
    mesh = occupancy_to_mesh(occ)
    v, t = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    assert v.shape == (24, 3) and t.shape == (12, 3)
    np.testing.assert_allclose(v.min(0), [0.0, 0.0, -0.2], atol=1e-9)
    np.testing.assert_allclose(v.max(0), [0.4, 0.4, 0.2], atol=1e-9)
    tri = v[t]  # (12, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    outward = tri.mean(1) - v.mean(0)
    assert np.all(np.einsum('ij,ij->i', normals, outward) > 0)
    colors = np.asarray(mesh.vertex_colors)
    top = np.all(np.isclose(tri[:, :, 2], 0.2), axis=1)  # (12,) triangles of the top face
    assert top.sum() == 2
    # the top face carries the exact palette colour; the other faces are darker
    np.testing.assert_allclose(colors[t[top].ravel()], np.tile(OCC3D_PALETTE[CAR] / 255.0, (6, 1)))
    assert np.all(colors[t[~top].ravel()].sum(1) < (OCC3D_PALETTE[CAR] / 255.0).sum())


def test_only_exposed_faces_are_built():
    occ = empty_grid()
    occ[10:12, 10, 0] = CAR  # two voxels side by side: 10 faces, not 12
    assert len(np.asarray(occupancy_to_mesh(occ).triangles)) == 20
    assert len(np.asarray(occupancy_to_mesh(empty_grid()).triangles)) == 0


def test_ego_box_and_trajectory_geometry():
    v = np.asarray(ego_box_mesh().vertices)
    np.testing.assert_allclose(v.min(0), [-0.657, -0.865, 0.0])  # origin: rear axle
    np.testing.assert_allclose(v.max(0), [4.084 - 0.657, 0.865, 1.56])  # Zoe: 4.084 m long
    ls = trajectory_lineset(np.array([[0, 0, 0], [2, 0, 0], [4, 1, np.pi / 2]]))
    pts, lines = np.asarray(ls.points), np.asarray(ls.lines)
    assert len(lines) == 2 + 3  # 2 path segments + 3 heading ticks
    np.testing.assert_allclose(pts[5], [4, 2, 0.3], atol=1e-9)  # tick of the last waypoint: +y


def test_bev_render_colours_and_orientation(renderer):
    occ = block(empty_grid(), CAR, 0.0, 0.0)  # a 4 m car-class block at the centre
    img = render_occupancy(occ, view='bev', show_ego=False, renderer=renderer)
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[H // 2, W // 2], OCC3D_PALETTE[CAR])
    for y, x in ((0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (H // 2, 10)):
        np.testing.assert_array_equal(img[y, x], [255, 255, 255])
    is_car = np.all(img == OCC3D_PALETTE[CAR], axis=-1)
    px_per_m = (H / 2) / np.tan(np.deg2rad(VIEWS['bev']['fov'] / 2)) / VIEWS['bev']['eye'][2]
    ys, xs = np.nonzero(is_car)
    assert abs((ys.max() - ys.min() + 1) - 4 * px_per_m) <= 2
    assert abs((xs.max() - xs.min() + 1) - 4 * px_per_m) <= 2

    # +x (forward) is up in the image, +y (left) is left
    occ = block(block(empty_grid(), CAR, 20.0, 0.0), TRUCK, 0.0, 20.0)
    img = render_occupancy(occ, view='bev', show_ego=False, renderer=renderer)
    off = int(round(20 * px_per_m))
    np.testing.assert_array_equal(img[H // 2 - off, W // 2], OCC3D_PALETTE[CAR])
    np.testing.assert_array_equal(img[H // 2, W // 2 - off], OCC3D_PALETTE[TRUCK])
    np.testing.assert_array_equal(img[H // 2, W // 2], [255, 255, 255])


def test_ego_box_and_chase_view(renderer):
    img = render_occupancy(empty_grid(), view='bev', renderer=renderer)
    np.testing.assert_array_equal(img[H // 2, W // 2], EGO_COLOR)
    occ = block(empty_grid(), CAR, 10.0, 0.0)
    chase = render_occupancy(occ, view='chase', renderer=renderer)
    assert np.any(np.all(chase == OCC3D_PALETTE[CAR], axis=-1))
    assert not np.array_equal(chase, render_occupancy(occ, view='bev', renderer=renderer))
    with pytest.raises(ValueError, match='view'):
        render_occupancy(occ, view='side', renderer=renderer)


def test_render_occupancy_default_size_with_trajectory(renderer):
    traj = np.array([[0.0, 0.0, 0.0], [5.0, 0.5, 0.1], [10.0, 2.0, 0.3]])
    img = render_occupancy(block(empty_grid(), CAR, 0.0, 8.0), traj=traj)
    assert img.shape == (480, 640, 3)
    assert np.any(np.all(img == [255, 0, 0], axis=-1))  # the trajectory is drawn in red


def test_single_car_voxel_bev_pixel(renderer):
    occ = empty_grid()
    occ[100, 100, 5] = CAR  # one 0.4 m voxel, x and y in [0, 0.4] m
    img = render_occupancy(occ, view='bev', show_ego=False, renderer=renderer)
    px_per_m = (H / 2) / np.tan(np.deg2rad(VIEWS['bev']['fov'] / 2)) / VIEWS['bev']['eye'][2]
    # the voxel centre (0.2, 0.2) m: 0.2 m up (+x) and 0.2 m left (+y) of the image centre
    y, x = int(round(H / 2 - 0.5 - 0.2 * px_per_m)), int(round(W / 2 - 0.5 - 0.2 * px_per_m))
    np.testing.assert_array_equal(img[y, x], OCC3D_PALETTE[CAR])
    is_car = np.all(img == OCC3D_PALETTE[CAR], axis=-1)
    assert 0 < is_car.sum() <= (0.4 * px_per_m + 2) ** 2  # only the voxel is car-coloured
    background = ~is_car
    np.testing.assert_array_equal(np.unique(img[background], axis=0), [[255, 255, 255]])


def test_camera_mask_dims_voxels(renderer):
    occ = block(empty_grid(), CAR, 0.0, 0.0)
    mask = np.ones(DEFAULT_GRID.shape, np.uint8)
    mask[:100] = 0  # x < 0: behind the ego, the lower half of the BEV image
    img = render_occupancy(occ, view='bev', show_ego=False, renderer=renderer, mask=mask)
    seen, unseen = img[H // 2 - 3, W // 2], img[H // 2 + 3, W // 2]
    np.testing.assert_array_equal(seen, OCC3D_PALETTE[CAR])
    expected = np.round((1 - DIM_ALPHA) * OCC3D_PALETTE[CAR] + DIM_ALPHA * 255.0)
    np.testing.assert_allclose(unseen, expected, atol=1)


def test_error_view_colours(renderer):
    gt, pred = empty_grid(), empty_grid()
    gt = block(gt, CAR, 10.0, 0.0)      # ahead: true positive, same class
    pred = block(pred, CAR, 10.0, 0.0)
    pred = block(pred, CAR, -10.0, 0.0)  # behind: false positive
    gt = block(gt, CAR, 0.0, 10.0)      # left: false negative
    gt = block(gt, CAR, 0.0, -10.0)     # right: both occupied, wrong class
    pred = block(pred, TRUCK, 0.0, -10.0)
    codes = error_codes(gt, pred)
    assert set(np.unique(codes)) == {0, TP, FP, FN, WRONG_CLASS}
    img = render_occupancy(codes, view='bev', show_ego=False, renderer=renderer, errors=True)
    px_per_m = (H / 2) / np.tan(np.deg2rad(VIEWS['bev']['fov'] / 2)) / VIEWS['bev']['eye'][2]
    off = int(round(10 * px_per_m))
    cy, cx = H // 2, W // 2
    np.testing.assert_array_equal(img[cy - off, cx], ERROR_PALETTE[TP])
    np.testing.assert_array_equal(img[cy + off, cx], ERROR_PALETTE[FP])
    np.testing.assert_array_equal(img[cy, cx - off], ERROR_PALETTE[FN])
    np.testing.assert_array_equal(img[cy, cx + off], ERROR_PALETTE[WRONG_CLASS])
    np.testing.assert_array_equal(img[cy, cx], [255, 255, 255])
    # geometric only: the wrong-class block is a true positive
    np.testing.assert_array_equal(error_codes(gt, pred, semantic=False)[codes == WRONG_CLASS], TP)
    # masked voxels are ignored
    assert not error_codes(gt, pred, mask=np.zeros_like(gt)).any()


def test_orbit_and_tall_panels(renderer):
    occ = block(empty_grid(), CAR, 0.0, 0.0)
    cam = orbit_camera(180.0, elevation=30.0, radius=50.0)
    np.testing.assert_allclose(cam['eye'], [-50 * np.cos(np.pi / 6), 0, 25], atol=1e-9)
    img = render_occupancy(occ, view='orbit', show_ego=False, renderer=renderer)
    assert np.any(np.all(img == OCC3D_PALETTE[CAR], axis=-1))
    # a panel taller than wide moves the camera back by 1 / aspect
    np.testing.assert_allclose(resolve_camera('bev', 0.5)['eye'], [0, 0, 480.0])
    np.testing.assert_allclose(resolve_camera('bev', 2.0)['eye'], [0, 0, 240.0])


def test_render_comparison_png(renderer, tmp_path):
    t = 6
    gt = np.stack([block(empty_grid(), CAR, 2.0 * i, 5.0) for i in range(t)])  # (6, X, Y, Z)
    pred = gt.copy()
    pred[3:] = FREE
    out = tmp_path / 'nested' / 'cmp.png'
    path = render_comparison(gt, pred, out_path=str(out), panel_size=(160, 120),
                             past=gt[:2], traj=np.zeros((t + 1, 3)))
    assert path == str(out)
    img = cv2.imread(path)[..., ::-1]  # RGB
    assert img.shape[1] > (t + 1) * 160 and img.shape[0] > 3 * 120  # 3 rows, 7 columns
    assert os.listdir(out.parent) == ['cmp.png']  # no temporary file left behind
    # false negatives (blue) in the error row where the forecast is empty
    assert np.any(np.all(img == ERROR_PALETTE[FN], axis=-1))
    path = render_comparison(gt, pred, str(out), times=[0.5 * (i + 1) for i in range(t)],
                             panel_size=(160, 120), errors=False)
    assert cv2.imread(path).shape[0] < img.shape[0]  # two rows
    with pytest.raises(ValueError, match='times'):
        render_comparison(gt, pred, str(out), times=(0.5,))


def test_every_class_stands_out_from_the_background():
    from occwm.grid import OCC3D_CLASS_NAMES
    from occwm.visualization.canvas import class_entries
    from occwm.visualization.geometry import (BACKGROUND, CLASS_PALETTE, MIN_BACKGROUND_DELTA_E,
                                              delta_e)
    assert delta_e((0, 0, 0)) == pytest.approx(100.0, abs=0.1)  # black on white: L* 0 vs 100
    assert delta_e(BACKGROUND) == pytest.approx(0.0)
    d = delta_e(CLASS_PALETTE[:17])  # the semantic classes, free (17) is never drawn
    weak = {OCC3D_CLASS_NAMES[c]: round(float(d[c]), 1) for c in np.flatnonzero(
        d < MIN_BACKGROUND_DELTA_E)}
    assert not weak, f'class colours too close to the white background (CIELAB Delta E): {weak}'
    assert delta_e(OCC3D_PALETTE[15]) < 15 < MIN_BACKGROUND_DELTA_E  # why manmade changed
    # the legend shows the colours drawn
    occ = np.full((2, 2, 2), FREE, np.uint8)
    occ[0, 0, 0] = 15
    assert class_entries([occ]) == [('manmade', tuple(CLASS_PALETTE[15]))]


def test_bev_draws_the_class_palette(renderer):
    from occwm.visualization.geometry import CLASS_PALETTE
    img = render_occupancy(block(empty_grid(), 15, 0.0, 0.0), view='bev', show_ego=False,
                           renderer=renderer)
    np.testing.assert_array_equal(img[H // 2, W // 2], CLASS_PALETTE[15])


def test_runtime_dir(tmp_path, monkeypatch):
    from occwm.visualization.render import ensure_runtime_dir
    monkeypatch.delenv('XDG_RUNTIME_DIR', raising=False)
    path = ensure_runtime_dir()
    assert os.environ['XDG_RUNTIME_DIR'] == path and os.stat(path).st_mode & 0o777 == 0o700
    monkeypatch.setenv('XDG_RUNTIME_DIR', str(tmp_path / 'missing'))  # invalid: replaced
    assert ensure_runtime_dir() == path
    good = tmp_path / 'mine'
    good.mkdir(mode=0o700)
    os.chmod(good, 0o700)
    monkeypatch.setenv('XDG_RUNTIME_DIR', str(good))  # a valid one is kept
    assert ensure_runtime_dir() == str(good)


def test_render_prints_nothing_on_success(renderer, tmp_path):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != 'XDG_RUNTIME_DIR'}
    code = ('from occwm.visualization.render import OccRenderer\n'
            'with OccRenderer(32, 32) as r:\n    r.render([])\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and 'XDG_RUNTIME_DIR' not in out.stderr, out.stderr
