"""Files written so that a crash or a concurrent reader never sees half of them.

:func:`atomic_write` opens a temporary file (JSON, npz, the probe); :func:`atomic_write_path` hands out a
temporary path for writers that take a path (``torch.save`` of checkpoints, the ``last_checkpoint`` record).
Both replace the target in one rename. The file gets the mode a plain ``open()`` would give it (0666 less the
umask), or the mode of the file it replaces, so that what is published is as readable as any other file.
"""
import errno
import json
import os
import os.path as osp
import shutil
import stat
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ['atomic_write', 'write_json', 'atomic_write_path', 'TMP_SUFFIX']

#: What :func:`atomic_write_path` appends to the path it writes first; readers of checkpoints ignore such
#: files.
TMP_SUFFIX = '.tmp'


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _free(path: str) -> str:
    try:
        return f'{shutil.disk_usage(osp.dirname(osp.abspath(path))).free / 2**20:.0f} MiB free there'
    except OSError:
        return 'free space unknown'


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (a change would be seen by other
    threads creating files meanwhile)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: str) -> int:
    """The permission bits ``path`` should get: those of the file it replaces, or those of a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextmanager
def _replacing(tmp: str, path: str) -> Iterator[None]:
    """Around a body that writes ``tmp``: flush it to disk and rename it over ``path``; on an exception
    remove it.

    The rename is made durable too (the folder is synced where the file system allows it).
    """
    try:
        yield
        # mkstemp (and some writers, such as safetensors) create the file 0600, readable by its owner only
        os.chmod(tmp, _mode_for(path))
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise OSError(exc.errno, f'{exc.strerror} while writing {path} ({_free(path)}); the old file, if '
                          'any, is unchanged. Free space there or write elsewhere.', path) from exc
        raise
    try:  # not every file system lets a directory be opened
        fd = os.open(osp.dirname(osp.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str, mode: str = 'w') -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` in one step.

    Readers see either the old file or the complete new one. If the body raises, the temporary file is removed
    and ``path`` keeps its old content. The temporary name is unique, so concurrent writers do not collide.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    with _replacing(tmp, path):
        with os.fdopen(fd, mode) as f:
            yield f


def write_report(folder: str, stem: str, table: str, obj: Any) -> None:
    """A benchmark's results: ``folder/stem.md`` (the markdown table) and ``folder/stem.json``, atomically."""
    os.makedirs(folder, exist_ok=True)
    with atomic_write(os.path.join(folder, f'{stem}.md')) as f:
        f.write(table)
    write_json(os.path.join(folder, f'{stem}.json'), obj)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=1)


@contextmanager
def atomic_write_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path`` in one rename.

    The temporary file is flushed to disk before the rename, so that a process killed (or a machine that loses
    power) at any moment leaves either the old ``path`` or the complete new one, never a part of it. On an
    exception the temporary file is removed; a kill leaves ``<path>.tmp`` behind, which readers ignore.
    """
    tmp = path + TMP_SUFFIX
    with _replacing(tmp, path):
        yield tmp
