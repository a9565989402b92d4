import json

import pytest

from mmspectral.fileio import atomic_write, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'meta.json'
    write_json(str(path), dict(done=1))
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as f:
            f.write('{"done": 2, "trunc')
            raise RuntimeError('killed half way')
    assert json.loads(path.read_text()) == dict(done=1)
    assert [p.name for p in tmp_path.iterdir()] == ['meta.json']


def test_write_replaces_in_one_step(tmp_path):
    path = tmp_path / 'sub' / 'meta.json'
    write_json(str(path), dict(done=1))
    with atomic_write(str(path)) as f:
        f.write('{"done": 2}')
        assert json.loads(path.read_text()) == dict(done=1)  # a reader still sees the complete old file
    assert json.loads(path.read_text()) == dict(done=2)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    from mmspectral.fileio import atomic

    path = tmp_path / 'metrics.json'
    atomic.write_json(str(path), dict(old=1))

    def full(*args):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(atomic.os, 'fsync', full)
    with pytest.raises(OSError, match=r'No space left on device while writing .*metrics.json \(\d+ MiB free'):
        atomic.write_json(str(path), dict(new=2))
    monkeypatch.undo()
    assert json.loads(path.read_text()) == dict(old=1)
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.json']  # no temporary file left


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_written_files_respect_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask):
    import os
    import stat

    from mmspectral.fileio import atomic_write_path

    def mode(path):
        return stat.S_IMODE(os.stat(path).st_mode)

    old = os.umask(umask)
    try:
        write_json(str(tmp_path / 'metrics.json'), dict(a=1))  # mkstemp creates its file 0600
        with atomic_write_path(str(tmp_path / 'model.safetensors')) as tmp:
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))  # as the safetensors writer does
        plain = tmp_path / 'plain.txt'
        plain.write_text('a file written with open()')
        for name in ('metrics.json', 'model.safetensors'):
            assert mode(tmp_path / name) == mode(plain) == 0o666 & ~umask
        os.chmod(tmp_path / 'metrics.json', 0o640)
        write_json(str(tmp_path / 'metrics.json'), dict(a=2))
        assert mode(tmp_path / 'metrics.json') == 0o640
    finally:
        os.umask(old)
