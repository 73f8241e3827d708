"""Domain-gap statistics: hand-computed values on a tiny grid, set resolution, the tool."""
import json
import math

import numpy as np
import pytest

from occwm.grid import OccGrid
from occwm.occupancy.domain_gap import (GapCounts, format_gap_table, frame_counts, gap_stats,
                                        isolated_voxels, label_files, occupied_neighbours,
                                        set_counts)

GRID = OccGrid((0.0, 0.0, 0.0, 2.0, 2.0, 1.2), 0.4)          # (5, 5, 3), free = 17
FREE = GRID.free_label
ROAD, CAR, MANMADE, VEG = 11, 4, 15, 16


def tiny() -> np.ndarray:
    """Two road voxels side by side (z 0), a lone car voxel in the top corner (z 2), two
    vegetation voxels touching at a corner (z 1 and 2): 5 of 75 voxels occupied."""
    sem = np.full(GRID.shape, FREE, np.uint8)
    sem[0, 0, 0] = sem[1, 0, 0] = ROAD
    sem[4, 0, 2] = CAR
    sem[2, 2, 1] = sem[3, 3, 2] = VEG
    return sem


def test_isolated_voxels():
    iso = isolated_voxels(tiny() != FREE)
    assert np.argwhere(iso).tolist() == [[4, 0, 2]]            # corner neighbours count
    assert not isolated_voxels(np.zeros((3, 3, 3), bool)).any()
    one = np.zeros((3, 3, 3), bool)
    one[1, 1, 1] = True
    assert isolated_voxels(one).sum() == 1


def test_sparse_share_per_class():
    """A 3 x 3 road layer: its 4 corners have 3 occupied neighbours (sparse), its edge
    middles 5 and its centre 8; a 3-voxel post: 1, 2, 1 (all sparse)."""
    sem = np.full(GRID.shape, FREE, np.uint8)
    sem[:3, :3, 0] = ROAD
    sem[4, 4, :] = MANMADE
    nb = occupied_neighbours(sem != FREE)
    assert nb[0, 0, 0] == 3 and nb[1, 0, 0] == 5 and nb[1, 1, 0] == 8
    assert nb[4, 4].tolist() == [1, 2, 1] and nb[1, 1, 1] == 9   # a free voxel above the layer
    s = gap_stats(frame_counts(sem, GRID))
    assert math.isclose(s['sparse']['driveable_surface'], 4 / 9)
    assert s['sparse']['manmade'] == 1.0 and math.isnan(s['sparse']['car'])
    assert 'sparse (<= 4 of 26 neighbours occupied)' in format_gap_table({'a': s})


def test_hand_computed_statistics():
    mask_lidar = np.zeros(GRID.shape, np.uint8)
    mask_lidar[:2] = 1                                          # 2 * 5 * 3 = 30 voxels
    s = gap_stats(frame_counts(tiny(), GRID, mask_lidar=mask_lidar))
    assert s['frames'] == 1
    assert math.isclose(s['nonfree'], 5 / 75)
    assert math.isclose(s['isolated'], 1 / 5)
    assert math.isclose(s['observed'], 30 / 75)
    share = s['class_share']
    assert math.isclose(share['driveable_surface'], 2 / 5) and math.isclose(share['car'], 1 / 5)
    assert math.isclose(share['vegetation'], 2 / 5) and share['manmade'] == 0
    assert s['road_z'] == 0
    z = s['z']
    road = z['driveable_surface']
    assert road['hist'].tolist() == [1, 0, 0] and road['mean'] == 0
    assert z['car']['mean'] == 2 and z['car']['above_road'] == 2
    assert z['vegetation']['hist'].tolist() == [0, 0.5, 0.5]
    assert z['vegetation']['mean'] == 1.5 and z['vegetation']['above_road'] == 1.5
    assert math.isnan(z['manmade']['mean']) and z['manmade']['hist'].tolist() == [0, 0, 0]


def test_mask_and_pooling():
    mask = np.zeros(GRID.shape, bool)
    mask[:2] = True                                             # x < 0.8 m: the two road voxels
    s = gap_stats(frame_counts(tiny(), GRID, mask=mask))
    assert math.isclose(s['nonfree'], 2 / 30) and s['isolated'] == 0
    assert math.isnan(s['observed'])                           # no mask_lidar given
    # Pooling adds counts: the empty frame halves the non-free share, not the class shares.
    empty = np.full(GRID.shape, FREE, np.uint8)
    both = frame_counts(tiny(), GRID) + frame_counts(empty, GRID)
    p = gap_stats(both)
    assert p['frames'] == 2 and math.isclose(p['nonfree'], 5 / 150)
    assert math.isclose(p['class_share']['car'], 1 / 5)
    assert math.isnan(gap_stats(frame_counts(empty, GRID))['isolated'])
    with pytest.raises(ValueError, match='cannot add'):
        both + GapCounts(num_z=4)


def test_bad_frames():
    with pytest.raises(ValueError, match='grid shape'):
        frame_counts(np.full((4, 4, 4), FREE, np.uint8), GRID)
    bad = tiny()
    bad[0, 0, 0] = 40
    with pytest.raises(ValueError, match='labels must be'):
        frame_counts(bad, GRID)


def test_table_lists_the_sets_side_by_side():
    a = gap_stats(frame_counts(tiny(), GRID))
    text = format_gap_table({'tiny': a, 'again': a})
    head = text.splitlines()[0]
    assert 'tiny' in head and 'again' in head
    assert 'non-free % of voxels' in text and '6.67' in text   # 5 / 75
    assert 'isolated % of occupied' in text and '20.00' in text
    assert 'vegetation: % of its voxels in each z index' in text


@pytest.fixture(scope='module')
def small_set(tmp_path_factory):
    from occwm.synthetic.scenes import write_synthetic_dataset
    root = str(tmp_path_factory.mktemp('gap'))
    return write_synthetic_dataset(root, num_train=1, num_val=0, num_frames=2, progress=False)


def test_label_files(small_set, tmp_path):
    pkl, root = small_set['train'], small_set['data_root']
    name, paths = label_files(pkl)
    assert name == pkl and len(paths) == 2
    assert label_files(f'{root},{pkl}')[1] == paths
    assert label_files(f'syn={root}/gts') == ('syn', sorted(paths))
    assert label_files(f'{root}/gts/*/*/labels.npz')[1] == sorted(paths)
    with pytest.raises(FileNotFoundError, match='no labels.npz'):
        label_files(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='info pkl not found'):
        label_files(f'{root},{root}/nope.pkl')
    counts = set_counts(paths, mask_key='mask_camera')
    assert counts.frames == 2 and counts.mask_voxels == counts.voxels > 0


def test_tool(small_set, tmp_path, capsys):
    from tools.domain_gap import main
    out = tmp_path / 'gap.json'
    assert main([f"a={small_set['train']}", f"b={small_set['gts']}", '--json', str(out),
                 '--no-progress']) == 0
    text = capsys.readouterr().out
    assert 'non-free % of voxels' in text and ' a ' in text.splitlines()[1] + ' '
    stats = json.loads(out.read_text())
    assert set(stats) == {'a', 'b'} and stats['a']['nonfree'] == stats['b']['nonfree']
    assert main(['nope=/does/not/exist']) == 1
