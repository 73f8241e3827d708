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
