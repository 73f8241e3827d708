"""Every tool answers --help, and fails with a message that says what to do."""
import glob
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

TOOLS = sorted(glob.glob(os.path.join(REPO, 'tools', '*.py')))
TOOLS = [t for t in TOOLS if not t.endswith('__init__.py')]


@pytest.mark.parametrize('tool', TOOLS, ids=os.path.basename)
def test_help(tool):
    out = subprocess.run([sys.executable, tool, '--help'], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'usage' in out.stdout.lower()


def test_forecast_missing_checkpoint_message(tmp_path):
    out = subprocess.run([sys.executable, 'tools/test.py', 'configs/occ.py',
                          str(tmp_path / 'none.pth')], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode != 0 and 'none.pth not found' in out.stderr


# ---------------------------------------------------------------- newcomer mistakes
# Each ends in one line on stderr, "error: ..." saying what to do, and a non-zero exit.

def run_tool(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=180, env=env)


def assert_one_line_error(out, *texts):
    err = out.stderr.strip()
    assert out.returncode != 0, out.stdout
    assert 'Traceback' not in err and '\n' not in err and err.startswith('error: '), err
    for text in texts:
        assert text in err, err


@pytest.mark.parametrize('config', ['configs/vae.py', 'configs/occ.py'])
def test_train_without_data(tmp_path, config):
    root = f'{tmp_path}/data/synthetic/'  # a fresh clone: nothing made yet
    out = run_tool('tools/train.py', config, '--work-dir', str(tmp_path / 'w'), '--cfg-options',
                   f'train_dataloader.dataset.data_root={root}',
                   f'val_dataloader.dataset.data_root={root}')
    assert_one_line_error(out, 'no data yet', 'python tools/make_synthetic.py data/synthetic',
                          'occ_nuscenes.py')


def test_train_from_the_wrong_folder(tmp_path):
    out = run_tool(os.path.join(REPO, 'tools', 'train.py'), 'configs/vae.py', cwd=str(tmp_path))
    assert_one_line_error(out, 'run the tools from the repository root', f'cd {REPO}')


def test_forecast_missing_infos(tmp_path):
    out = run_tool('tools/forecast.py', 'configs/occ.py', str(tmp_path / 'none.pth'), '--out',
                   str(tmp_path / 'out'), '--infos', str(tmp_path / 'missing.pkl'))
    assert_one_line_error(out, f'--infos {tmp_path / "missing.pkl"} not found')


@pytest.fixture
def open3d_without_libusb(tmp_path):
    """An environment in which ``import open3d`` fails as open3d-cpu does on a machine
    without libusb (pip install alone): a stand-in package first on the path."""
    fake = tmp_path / 'fake' / 'open3d'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        "raise ImportError('libusb-1.0.so.0: cannot open shared object file: No such file '\n"
        "                  'or directory')\n")
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(
        [str(tmp_path / 'fake'), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}


def test_missing_libusb_forecast(tmp_path, open3d_without_libusb):
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    out = run_tool('tools/forecast.py', 'configs/occ.py', str(ckpt), '--out', str(tmp_path / 'o'),
                   env=open3d_without_libusb)
    assert_one_line_error(out, 'libusb-1.0.so.0', 'sudo apt-get install libusb-1.0-0',
                          'bash tools/install.sh')


def test_missing_libusb_visualize(tmp_path, open3d_without_libusb):
    import numpy as np

    from occwm.io import save_labels
    frame = str(tmp_path / 'labels.npz')
    save_labels(frame, np.full((200, 200, 16), 17, np.uint8))
    for out_file in ('frame.png', 'frame.ply'):  # the renderer, the mesh export
        out = run_tool('tools/visualize.py', frame, '--out', str(tmp_path / out_file),
                       env=open3d_without_libusb)
        assert_one_line_error(out, 'sudo apt-get install libusb-1.0-0')
