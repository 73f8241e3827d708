"""Small builders shared by the tests: a tiny grid and a tiny on-disk scene."""
import numpy as np

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.io import labels_path, save_labels, save_pickle
from occwm.grid import OccGrid

# 32x32x8; its stated range is the ego frame (z_offset 0): layer 2 is ego z [-0.2, 0.2)
TINY_GRID = OccGrid(point_cloud_range=(-6.4, -6.4, -1.0, 6.4, 6.4, 2.2), voxel_size=0.4, z_offset=0.0)


def write_tiny_scenes(root, lengths=(13, 5), grid=TINY_GRID, speed=2.0, name='infos.pkl'):
    """Write scenes of the given lengths; frame k holds a road layer and a block at x index k.

    The ego drives along +x at ``speed`` m/s (2 Hz) with a slight left turn.
    Returns the pkl path.
    """
    infos = {}
    X, Y, Z = grid.shape
    for s, L in enumerate(lengths):
        scene = f'tiny-{s}'
        frames = []
        for k in range(L):
            occ = np.full(grid.shape, grid.free_label, np.uint8)
            occ[:, :, 2] = 11
            occ[k % X, 3:6, 3:5] = 4
            token = f'{scene}-{k:03d}'
            save_labels(labels_path(str(root), scene, token), occ, grid=grid)
            yaw = 0.02 * k
            frames.append(make_frame_info(
                scene, token, 1_000_000 + 500_000 * k, (speed * 0.5 * k, 0.1 * k * k, 0.0),
                (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))))
        infos[scene] = add_trajectories(frames)
    path = str(root / name)
    save_pickle(path, dict(metadata=dict(version='test'), infos=infos))
    return path


def corrupt_zip_member(path, member='semantics.npy'):
    """Flip one byte in the middle of ``member``'s stored data of the zip (npz) at
    ``path``, in place: reading that member then fails its CRC check (``BadZipFile``) or
    its decompression; the archive's directory stays intact. Returns ``path``."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    data = bytearray(open(path, 'rb').read())
    off = info.header_offset                                  # the member's local header
    start = off + 30 + int.from_bytes(data[off + 26:off + 28], 'little') \
        + int.from_bytes(data[off + 28:off + 30], 'little')
    data[start + info.compress_size // 2] ^= 0xFF
    with open(path, 'wb') as f:
        f.write(bytes(data))
    return path
