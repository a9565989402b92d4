"""Files written so that a crash or a concurrent reader never sees half of them."""
import json
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ['atomic_write', 'write_json']


@contextmanager
def atomic_write(path: str, mode: str = 'w') -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` in one step.

    Readers see either the old file or the complete new one. If the body raises, the temporary file is removed
    and ``path`` keeps its old content.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=1)
