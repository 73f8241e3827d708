"""Shared fixtures. Real nuScenes-derived data is read from ``../shared/data`` next to
the checkout, or from ``$OCCWM_SHARED_DATA``. Without it a test that needs it skips,
except under CI (``CI=true``) where it must be there and the test fails."""
import os

import pytest

from occwm.io import shared_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = shared_data_dir()


def shared_path(*parts: str) -> str:
    """Path under the shared real-data folder; skip (or fail under CI) when absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        msg = (f'real nuScenes-derived data not found at {path}; '
               f'set OCCWM_SHARED_DATA to the folder holding nuscenes_seq11/ etc.')
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def seq11_dir():
    """The real 11-frame nuScenes LiDAR sequence (``nuscenes_seq11``)."""
    return shared_path('nuscenes_seq11')


@pytest.fixture
def occ3d_sample():
    """Path of the official Occ3D-nuScenes ``labels.npz`` frame."""
    return shared_path('occ3d_sample', '29796060110c4163b07f06eff4af0753', 'labels.npz')


@pytest.fixture(autouse=True, scope='session')
def _one_torch_thread():
    """One intra-op thread: tests are small, and torch's thread pool slows down by
    orders of magnitude when the cores are shared with other processes."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
