"""What made an output folder, recorded in it, so that a resumed run never mixes the outputs of two.

``tools/sample.py`` and ``tools/extract_tokens.py`` resume a half-done folder. Each writes ``provenance.json``
into its folder before the first output: the identity of the checkpoint (size and SHA-256 of the file), the
config and settings that decide the outputs. Resuming compares the record with the new run's and refuses a
folder made differently, naming both.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, Iterable, Optional

from .atomic import write_json

__all__ = ['PROVENANCE_FILE', 'ProvenanceError', 'file_identity', 'claim_folder']

PROVENANCE_FILE = 'provenance.json'


class ProvenanceError(RuntimeError):
    """An output folder was made by another checkpoint or other settings than the run resuming into it."""


def file_identity(path: str) -> Dict[str, Any]:
    """``{'file', 'size', 'sha256'}`` of a local file (the hash reads it once, about 1 s per GB)."""
    path = osp.expanduser(str(path))
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            digest.update(block)
    return dict(file=osp.abspath(path), size=osp.getsize(path), sha256=digest.hexdigest())


def _differences(old: Any, new: Any, where: str = '') -> Iterable[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key == 'file':  # the same file moved or named another way is the same file
                continue
            yield from _differences(old.get(key), new.get(key), f'{where}.{key}' if where else key)
    elif old != new:
        yield f'{where}: {json.dumps(old)} in the folder, {json.dumps(new)} now'


def claim_folder(folder: str, record: Dict[str, Any], has_outputs: bool, what: str,
                 fix: Optional[str] = None, write: bool = True) -> None:
    """Write ``record`` into ``folder``, or check it against the one there; raise :class:`ProvenanceError`.

    Args:
        folder: the output folder (created if needed).
        record: what decides the outputs (nested dicts compared key by key, after a JSON round trip:
            tuples become lists, other objects their ``str``; a ``'file'`` key is informative only).
        has_outputs: whether the folder already holds outputs; a folder with outputs and no record (written
            before records existed, or by hand) is refused too: nothing says what made them. A record with no
            outputs beside it (a run that failed before its first output) is replaced, not compared.
        what: the outputs, as the message names them ('samples', 'tokens').
        fix: what to do instead (default: another folder, or delete this one).
        write: whether this process writes a missing record (rank 0); every rank checks.
    """
    fix = fix or f'Write to another folder, or delete {folder} to start it again.'
    record = json.loads(json.dumps(record, default=str))  # as it will read back (tuples -> lists, ...)
    path = osp.join(folder, PROVENANCE_FILE)
    if osp.isfile(path):
        with open(path) as f:
            old = json.load(f)
        diff = list(_differences(old, record))
        if diff and not has_outputs:
            # A run that stopped before its first output (a bad setting found late) left only its record:
            # nothing can be mixed, so the corrected run replaces the record instead of being refused.
            if write:
                write_json(path, record)
            return
        if diff:
            raise ProvenanceError(f'{folder} holds {what} made differently from this run, which would mix '
                                  'the two: ' + '; '.join(diff[:8]) + f'. {fix}')
        return
    if has_outputs:
        raise ProvenanceError(f'{folder} already holds {what} but no {PROVENANCE_FILE} saying what made '
                              f'them, so this run cannot tell whether resuming would mix two runs. {fix}')
    if write:
        os.makedirs(folder, exist_ok=True)
        write_json(path, record)
