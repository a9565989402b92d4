"""The value range a tokenizer's images live in, and the one mapping to and from [0, 1].

A tokenizer owns its range (``TiTokTokenizer(value_range=...)``); its data preprocessor, perceptual loss and
every decode to [0, 1] take it from there, through the functions below. ``lo`` and ``hi`` are Python floats,
so each mapping is the same two elementwise operations wherever it runs.
"""
from typing import Sequence, Tuple

__all__ = ['check_value_range', 'to_unit', 'from_unit', 'uint8_normalisation', 'UNIT_RANGE']

#: The range of images in [0, 1] (TiTok's, and the default of every component).
UNIT_RANGE = (0.0, 1.0)


def check_value_range(value_range, owner: str = 'value_range') -> Tuple[float, float]:
    """``(lo, hi)`` as two Python floats with ``hi > lo``; a ValueError naming ``owner`` otherwise."""
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f'{owner}: value_range must be (lo, hi) with hi > lo, e.g. (0.0, 1.0) or '
                         f'(-1.0, 1.0); got {value_range!r}.') from None
    if not hi > lo:
        raise ValueError(f'{owner}: value_range must be (lo, hi) with hi > lo, got {value_range!r}.')
    return lo, hi


def to_unit(x, value_range: Sequence[float]):
    """Images in ``value_range`` -> [0, 1] (not clamped): ``(x - lo) / (hi - lo)``."""
    lo, hi = value_range
    return (x - lo) / (hi - lo)


def from_unit(x, value_range: Sequence[float]):
    """Images in [0, 1] -> ``value_range``: ``x * (hi - lo) + lo``."""
    lo, hi = value_range
    return x * (hi - lo) + lo


def uint8_normalisation(value_range: Sequence[float]) -> Tuple[float, float]:
    """``(mean, std)`` with ``(x - mean) / std`` mapping uint8 values 0..255 onto ``value_range``."""
    lo, hi = value_range
    std = 255.0 / (hi - lo)
    return -lo * std, std
