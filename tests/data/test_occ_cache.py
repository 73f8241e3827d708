"""OccCache: the sparse occupancy cache gives back exactly the labels.npz grids."""
import os
import warnings

import numpy as np
import pytest

from occwm.io import labels_path, load_labels, save_labels
from occwm.data.occ_cache import OccCache, decode_sparse, encode_sparse
from occwm.data.transforms import LoadOccWindow
from tests.helpers import TINY_GRID, write_tiny_scenes

KEYS = ('semantics', 'mask_lidar', 'mask_camera')


def random_frame(seed):
    rng = np.random.default_rng(seed)
    sem = np.where(rng.random(TINY_GRID.shape) < 0.2, rng.integers(0, 17, TINY_GRID.shape),
                   TINY_GRID.free_label).astype(np.uint8)
    lidar = (rng.random(TINY_GRID.shape) < 0.5).astype(np.uint8)
    camera = (rng.random(TINY_GRID.shape) < 0.3).astype(np.uint8)
    return sem, lidar, camera


@pytest.fixture
def src(tmp_path):
    path = labels_path(str(tmp_path / 'data'), 'scene-a', 'tok-0')
    save_labels(path, *random_frame(0), grid=TINY_GRID)
    return path


def assert_same(a, b, keys=KEYS):
    assert sorted(a) == sorted(keys)
    for k in keys:
        assert a[k].dtype == np.uint8 and a[k].shape == b[k].shape
        np.testing.assert_array_equal(a[k], b[k])


def test_round_trip_equals_npz(src, tmp_path):
    cache = OccCache(str(tmp_path / 'cache'), TINY_GRID)
    want = load_labels(src, TINY_GRID, KEYS)
    assert not os.path.exists(cache.path_for(src))
    assert_same(cache.load(src, KEYS), want)          # miss: built
    path = cache.path_for(src)
    assert os.path.isfile(path) and path.startswith(str(tmp_path / 'cache' / 'scene-a' / 'tok-0.'))
    mtime = os.stat(path).st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert_same(cache.load(src, KEYS), want)      # hit
        assert_same(cache.load(src), want, keys=('semantics',))
    assert os.stat(path).st_mtime_ns == mtime         # not rewritten
    buf = encode_sparse(want, (1, 2, 3), TINY_GRID)
    out, stamp = decode_sparse(buf, TINY_GRID, KEYS)
    assert stamp == (1, 2, 3)
    assert_same(out, want)


def test_real_occ3d_frame_round_trip(occ3d_sample, tmp_path):
    cache = OccCache(str(tmp_path / 'cache'))
    want = load_labels(occ3d_sample, keys=KEYS)
    assert_same(cache.load(occ3d_sample, KEYS), want)
    assert_same(cache.load(occ3d_sample, KEYS), want)
    assert os.path.getsize(cache.path_for(occ3d_sample)) < 640_000  # smaller than one dense grid


def test_stale_cache_rebuilt(src, tmp_path):
    cache = OccCache(str(tmp_path / 'cache'), TINY_GRID)
    cache.load(src, KEYS)
    save_labels(src, *random_frame(1), grid=TINY_GRID)   # the source changes
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert_same(cache.load(src, KEYS), load_labels(src, TINY_GRID, KEYS))
    _, stamp = decode_sparse(np.load(cache.path_for(src)), TINY_GRID)
    assert stamp == (os.stat(src).st_size, os.stat(src).st_mtime_ns, os.stat(src).st_ino)


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'magic'])
def test_corrupt_cache_rebuilt_with_warning(src, tmp_path, damage):
    cache = OccCache(str(tmp_path / 'cache'), TINY_GRID)
    cache.load(src, KEYS)
    path = cache.path_for(src)
    data = open(path, 'rb').read()
    if damage == 'garbage':
        data = b'not a cache file at all'
    elif damage == 'truncated':
        data = data[:len(data) // 2]
    else:
        buf = np.load(path)
        buf[:8] = 0
        np.save(path, buf)
        data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.warns(UserWarning, match='corrupt occupancy cache'):
        got = cache.load(src, KEYS)
    assert_same(got, load_labels(src, TINY_GRID, KEYS))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert_same(cache.load(src, KEYS), got)     # rebuilt: a valid file again


def test_missing_source_and_missing_key(tmp_path):
    cache = OccCache(str(tmp_path / 'cache'), TINY_GRID)
    with pytest.raises(FileNotFoundError, match='nope.npz'):
        cache.load(str(tmp_path / 'nope.npz'))
    path = str(tmp_path / 'sem_only' / 'labels.npz')
    os.makedirs(os.path.dirname(path))
    np.savez_compressed(path, semantics=random_frame(2)[0])
    assert_same(cache.load(path), load_labels(path, TINY_GRID), keys=('semantics',))
    with pytest.raises(ValueError, match=r"sem_only.*missing key 'mask_lidar'"):
        cache.load(path, KEYS)


def test_load_window_through_cache(tmp_path):
    ann = write_tiny_scenes(tmp_path, lengths=(4,))
    from occwm.infos.layouts import load_scene_infos
    frames = load_scene_infos(ann)['tiny-0']
    paths = [labels_path(str(tmp_path), 'tiny-0', f['token']) for f in frames]
    grid = dict(point_cloud_range=TINY_GRID.point_cloud_range, voxel_size=TINY_GRID.voxel_size)
    plain = LoadOccWindow(grid=grid, with_masks=True)(dict(occ_paths=paths))
    cached = LoadOccWindow(grid=grid, with_masks=True, cache_dir=str(tmp_path / 'cache'))
    for _ in range(2):  # build, then hit
        out = cached(dict(occ_paths=paths))
        for k in ('occ', 'mask_lidar', 'mask_camera'):
            np.testing.assert_array_equal(out[k], plain[k])


def test_cache_tool_builds_every_frame(tmp_path, capsys):
    from tools.cache_occupancy import main
    ann = write_tiny_scenes(tmp_path, lengths=(3, 2))
    grid = [*TINY_GRID.point_cloud_range, TINY_GRID.voxel_size]
    argv = [str(tmp_path), ann, '--cache-dir', str(tmp_path / 'cache'),
            '--grid', *map(str, grid)]
    main(argv)
    assert '5 frames: 5 cached' in capsys.readouterr().out
    cache = OccCache(str(tmp_path / 'cache'), TINY_GRID)
    from occwm.infos.layouts import load_scene_infos
    srcs = [labels_path(str(tmp_path), s, f['token'])
            for s, fs in load_scene_infos(ann).items() for f in fs]
    assert all(cache.is_fresh(p) for p in srcs)
    os.utime(srcs[0], ns=(0, 10**9))                  # the source changes: stale
    assert not cache.is_fresh(srcs[0])
    main(argv)
    assert '5 frames: 1 cached, 4 already fresh' in capsys.readouterr().out
