import os
import socket
import sys

# Tests never touch the network: a pretrained=True call in a library would otherwise retry for ~46 s.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO_ROOT, 'tests', 'data')
if DATA_DIR not in sys.path:
    sys.path.insert(0, DATA_DIR)


@pytest.fixture(scope='session', autouse=True)
def _register_modules():
    from mmspectral.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def subprocess_env():
    """Environment for tools run as subprocesses: the package importable, no network, calm OpenMP."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO_ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env.update(HF_HUB_OFFLINE='1', OMP_WAIT_POLICY='PASSIVE', OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return env


@pytest.fixture
def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
