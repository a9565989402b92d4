import os
import re
import socket
import subprocess
import sys
import warnings

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
    from mmspectral.apis import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='module')
def codec_models(tmp_path_factory):
    """Two tiny generators with random weights over one tokenizer (tests/tiny_models.py)."""
    from tiny_models import generator, tokenizer_checkpoint
    work = tmp_path_factory.mktemp('codec')
    tok_ckpt = tokenizer_checkpoint(work)
    model, gen_ckpt = generator(work, tok_ckpt, seed=1)
    other, _ = generator(work, tok_ckpt, seed=2)
    return dict(work=work, model=model, other=other, tok_ckpt=tok_ckpt, gen_ckpt=gen_ckpt)


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


def pick_free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


# torchrun's rendezvous and gloo's loopback connections can fail on a busy machine for reasons outside the
# code under test (a port taken between choosing and binding it, a connection reset while ranks start).
_TRANSIENT_LAUNCH = re.compile(r'EADDRINUSE|address already in use|Connection reset by peer|'
                               r'Connection refused|Broken pipe|timed out|DistNetworkError', re.IGNORECASE)


def run_launch(args, env, cwd, port_key='PORT', timeout=300):
    """Run a multi-process launch; retry once, on a new port, if it failed to connect. Returns stdout +
    stderr.

    A failure that is not a connection problem, or one that repeats, fails the test with the output.
    """
    for attempt in (1, 2):
        out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        text = out.stdout + out.stderr
        if out.returncode == 0:
            return text
        if attempt == 1 and _TRANSIENT_LAUNCH.search(text):
            warnings.warn(f'multi-process launch failed to connect; retrying on a new port:\n{text[-1500:]}')
            env = dict(env, **{port_key: str(pick_free_port())})
            continue
        raise AssertionError(f'exit status {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}')
