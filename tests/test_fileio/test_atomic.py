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
