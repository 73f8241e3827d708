"""Check that every requirement of the CUDA image resolves to a wheel for its platform
and Python: docker/requirements-cuda.txt, requirements.txt (less the torch and spconv
that the CUDA builds replace) and requirements-test.txt, as tools/install.sh --cuda
installs them.

    python tools/check_wheels.py [--python-version 3.11] [--keep DIR] [--index-url URL]

Runs one ``pip download --no-deps --only-binary=:all: --implementation cp
--python-version 3.11 --platform manylinux_2_28_x86_64 ...`` for all of them (the
manylinux tags a glibc-2.35 image accepts, since pip matches each tag exactly), then
prints the wheel each one resolved to. pip runs ``--isolated``: only the index that the
image's pip uses counts (the default one, or ``--index-url``), not this machine's pip
configuration (a local folder of CPU wheels would satisfy ``torch==2.13.0`` here).
Needs the network; downloads about 0.8 GB (pip keeps them in its cache). Exit status 1
when a requirement has no such wheel, or when torch resolved to a CPU-only build.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA_FILE = os.path.join('docker', 'requirements-cuda.txt')
REPLACED = ('torch', 'spconv')  # requirements.txt's CPU builds, replaced by CUDA_FILE's
# glibc 2.35 (Ubuntu 22.04, the image's base) accepts all of these; pip matches exactly.
PLATFORMS = ('manylinux_2_35_x86_64', 'manylinux_2_34_x86_64', 'manylinux_2_31_x86_64',
             'manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64',
             'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux1_x86_64', 'linux_x86_64')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--python-version', default='3.11', help="the image's Python")
    parser.add_argument('--index-url', help='the index to check (default: pip\'s default index)')
    parser.add_argument('--keep', help='download into this folder and keep the wheels')
    return parser.parse_args(argv)


def requirement_name(line: str) -> str:
    """The distribution name of a requirement line, normalised (PEP 503)."""
    name = re.split(r'[<>=!~;\[\s]', line, maxsplit=1)[0]
    return re.sub(r'[-_.]+', '-', name).lower()


def read_requirements(path: str, drop=()) -> list:
    """Requirement lines of ``path`` without comments, options and ``drop`` names."""
    out = []
    with open(os.path.join(REPO, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-') and requirement_name(line) not in drop:
                out.append(line)
    return out


def image_requirements() -> list:
    """What ``tools/install.sh --cuda`` installs, in its order."""
    return (read_requirements(CUDA_FILE) + read_requirements('requirements.txt', REPLACED)
            + read_requirements('requirements-test.txt'))


def wheel_name(filename: str) -> str:
    return requirement_name(filename.split('-', 1)[0])


def check(requirements, python_version='3.11', index_url=None, dest=None) -> dict:
    """``{requirement: wheel file or None}``: one ``pip download`` of all of them.

    Raises:
        RuntimeError: pip failed (a requirement without a matching wheel, no network);
            the message is pip's.
    """
    with tempfile.TemporaryDirectory() as tmp:
        dest = dest or tmp
        cmd = [sys.executable, '-m', 'pip', '--isolated', 'download', '--no-deps',
               '--only-binary=:all:', '--implementation', 'cp', '--python-version',
               python_version, '--disable-pip-version-check', '-d', dest]
        for p in PLATFORMS:
            cmd += ['--platform', p]
        if index_url:
            cmd += ['--index-url', index_url]
        out = subprocess.run(cmd + list(requirements), capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip()
                               else f'pip exited with {out.returncode}')
        files = {wheel_name(f): f for f in os.listdir(dest) if f.endswith('.whl')}
    return {r: files.get(requirement_name(r)) for r in requirements}


def main(argv=None) -> int:
    args = parse_args(argv)
    reqs = image_requirements()
    print(f'checking {len(reqs)} requirements for CPython {args.python_version}, manylinux '
          f'x86_64 (pip download --only-binary=:all:) ...', flush=True)
    try:
        found = check(reqs, args.python_version, args.index_url, args.keep)
    except RuntimeError as e:
        print(f'error: {e}')
        return 1
    bad = 0
    for req, wheel in found.items():
        print(f'  {req:32s} {wheel or "NO WHEEL"}')
        bad += wheel is None
    torch_wheel = next((w for r, w in found.items() if requirement_name(r) == 'torch'), None)
    if torch_wheel and '+cpu' in torch_wheel:
        print(f'error: torch resolved to the CPU-only build {torch_wheel}')
        bad += 1
    if args.keep:
        print(f'wheels in {os.path.abspath(args.keep)}')
    print('all requirements resolve' if not bad else f'{bad} requirement(s) do not resolve')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
