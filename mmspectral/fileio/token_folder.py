"""The token-folder format: what tools/extract_tokens.py writes and TokenDataset / the inference API read.

A token folder holds one ``meta.json`` (:data:`TOKEN_FOLDER_META`: the extraction's sizes, progress, classes
and the identity of the tokenizer checkpoint) and, per extraction process, memory-mappable ``.npy`` shards of
token ids, labels and done-marks (:func:`shard_paths`). This module is the format's one writer of the record
(:func:`write_token_meta`), its one reader (:func:`read_token_meta`) and its one agreement check with a model
(:func:`token_meta_problems`); nothing else opens ``meta.json``.
"""
import json
import os.path as osp
from typing import List, Mapping, Optional, Tuple

from .atomic import write_json
from .provenance import file_identity

__all__ = ['TOKEN_FOLDER_META', 'shard_paths', 'write_token_meta', 'read_token_meta', 'token_meta_problems',
           'token_class_names', 'tokenizer_mismatch']

#: The record of a token folder (its file name on disk).
TOKEN_FOLDER_META = 'meta.json'

EXTRACT_HINT = 'tools/extract_tokens.py TOKENIZER_CONFIG CHECKPOINT --out <this folder>'


def shard_paths(root: str, rank: int, world_size: int) -> dict:
    """The files of one extraction shard: token ids, labels, and the done-marks that make it resumable."""
    stem = osp.join(root, f'shard{rank:03d}-of-{world_size:03d}')
    return dict(tokens=stem + '_tokens.npy', labels=stem + '_labels.npy', done=stem + '_done.npy')


def write_token_meta(root: str, meta: Mapping) -> None:
    """Write (atomically) the record of the token folder ``root``."""
    write_json(osp.join(root, TOKEN_FOLDER_META), dict(meta))


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def read_token_meta(root: str, require_complete: bool = True) -> dict:
    """The record of the token folder ``root``; a FileNotFoundError when there is none and, with
    ``require_complete``, a RuntimeError while the extraction is unfinished (each saying what to run)."""
    path = osp.join(root, TOKEN_FOLDER_META)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{root!r} holds no extracted tokens ({TOKEN_FOLDER_META} missing). Run '
                                f'{EXTRACT_HINT} first.')
    meta = _load(path)
    if require_complete and not meta.get('complete'):
        raise RuntimeError(f'The token extraction in {root!r} is unfinished ({meta.get("done", "?")} of '
                           f'{meta.get("num_images", "?")} images). Run the same tools/extract_tokens.py '
                           'command again: it continues where it stopped.')
    return meta


def token_class_names(root: Optional[str]) -> Tuple[str, ...]:
    """The class names recorded in the token folder ``root`` (empty when there is none or it is
    unreadable)."""
    path = osp.join(root, TOKEN_FOLDER_META) if root else None
    if path is None or not osp.isfile(path):
        return ()
    try:
        return tuple(_load(path).get('classes', ()))
    except (OSError, ValueError):
        return ()


def tokenizer_mismatch(meta: Mapping, root: str, checkpoint: Optional[str]) -> Optional[str]:
    """Why the tokens of ``root`` do not come from the tokenizer checkpoint that will decode them, if so.

    Compares the size, then the SHA-256, of the file recorded at extraction with ``checkpoint``'s (tokens
    extracted before the record existed cannot be checked).
    """
    if not checkpoint or 'checkpoint_sha256' not in meta:
        return None
    path = osp.expanduser(str(checkpoint))
    if not osp.isfile(path):
        return None  # the path checks report a missing file
    same = osp.getsize(path) == meta.get('checkpoint_size') and \
        file_identity(path)['sha256'] == meta['checkpoint_sha256']
    if same:
        return None
    return (f'the tokens in {root!r} were extracted with the tokenizer checkpoint {meta.get("checkpoint")} '
            f'(sha256 {meta["checkpoint_sha256"][:12]}...), but model.tokenizer_checkpoint={checkpoint!r} is '
            'another file: the generator would learn one tokenizer\'s tokens and decode them with another. '
            'Extract the tokens again with that checkpoint, or point model.tokenizer_checkpoint at the one '
            'that made them.')


def token_meta_problems(meta: Mapping, root: str, where: str,
                        expected: Mapping[str, Tuple[Optional[int], str]] = (),
                        tokenizer_checkpoint: Optional[str] = None) -> List[str]:
    """How the tokens of ``root`` (record ``meta``) disagree with what a model expects, as sentences that say
    what to do: ``expected`` maps ``num_tokens`` / ``vocab_size`` to ``(value, owner)`` pairs (``owner`` names
    the config key that wants the value; None values are not checked), and ``tokenizer_checkpoint`` is the
    file that will decode them (:func:`tokenizer_mismatch`)."""
    problems = []
    for key, wants in dict(expected).items():
        for want, owner in wants:
            if isinstance(want, int) and key in meta and meta[key] != want:
                problems.append(f'{where}: the tokens in {root!r} have {key}={meta[key]} but '
                                f'{owner}={want}: they were extracted with another tokenizer. Extract '
                                'them again with the tokenizer of this config, '
                                f'or set {owner}={meta[key]}.')
    problem = tokenizer_mismatch(meta, root, tokenizer_checkpoint)
    if problem:
        problems.append(f'{where}: {problem}')
    return problems
