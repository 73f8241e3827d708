"""occwm: a 4D occupancy world model for autonomous driving."""
import os

from setuptools import find_packages, setup


def read_requirements(name):
    """Pinned requirements of ``name``, comments dropped."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


setup(
    name='occwm',
    version='0.1.0',
    description='4D occupancy world model: sparse-conv tokenizer + trajectory-conditioned DiT',
    packages=find_packages(include=['occwm', 'occwm.*']),
    python_requires='>=3.9',
    install_requires=read_requirements('requirements.txt'),
    extras_require={'test': read_requirements('requirements-test.txt')},
    license='Apache-2.0',
)
