"""Token-frequency schedules: which DCT cut-off ``w_k`` the prefix ``s_1..s_k`` reconstructs.

A schedule holds ``omegas = (w_1, ..., w_N)``: strictly increasing ints ending at the image size, so the last
prefix reconstructs the full image (paper eq. 5). Token ``k`` (1-based) adds the L-shaped band of frequencies
``(u, v)`` with ``w_{k-1} <= max(u, v) < w_k`` (``w_0 = 0``). Every schedule is validated when built.
"""
from abc import ABC, abstractmethod
from typing import List, Optional, Sequence, Tuple, Union

import torch

from mmspectral.registry import FREQ_SCHEDULES
from mmspectral.utils import build_component
from mmspectral.utils.checks import check_range

__all__ = ['BaseFreqSchedule', 'UniformFreqSchedule', 'NonUniformFreqSchedule', 'PiecewiseLinearFreqSchedule']


def _fill_segments(knots: Sequence[Tuple[int, int]]) -> List[int]:
    """Integer values between knots ``(token, omega)`` with non-decreasing steps inside each segment.

    A segment of ``L`` tokens that covers ``D`` frequencies gets steps ``D // L``, and the remaining ``D % L``
    steps one larger, placed last. With convex knots (eq. 7) the steps never shrink across segments either.
    """
    values: List[int] = []
    for (t0, w0), (t1, w1) in zip(knots[:-1], knots[1:]):
        length, span = t1 - t0, w1 - w0
        base, extra = divmod(span, length)
        w = w0
        for j in range(length):
            w += base + (1 if j >= length - extra else 0)
            values.append(w)
    return values


class BaseFreqSchedule(ABC):
    """A validated sequence of cut-offs ``w_1 < ... < w_N = image_size``.

    Args:
        num_tokens: N, the number of latent tokens.
        image_size: side length in pixels (the number of DCT frequencies per axis of a square image).
    """

    #: whether steps ``w_k - w_{k-1}`` must never shrink (the paper's eq. 7)
    require_growing_steps = False

    def __init__(self, num_tokens: int, image_size: int) -> None:
        if int(num_tokens) != num_tokens or num_tokens < 1:
            raise ValueError(f'{type(self).__name__}: num_tokens must be a positive int, got {num_tokens!r}.')
        if int(image_size) != image_size or image_size < 1:
            raise ValueError(f'{type(self).__name__}: image_size must be a positive int, got {image_size!r}.')
        self.num_tokens = int(num_tokens)
        self.image_size = int(image_size)
        self.omegas: Tuple[int, ...] = tuple(int(w) for w in self._compute_omegas())
        self._validate()

    @abstractmethod
    def _compute_omegas(self) -> Sequence[int]:
        """The N cut-offs, before validation."""

    def _validate(self) -> None:
        name, om = type(self).__name__, self.omegas
        if len(om) != self.num_tokens:
            raise ValueError(f'{name}: the schedule has {len(om)} cut-offs but num_tokens={self.num_tokens}; '
                             'give exactly one cut-off per token.')
        if om[0] < 1:
            raise ValueError(f'{name}: the first cut-off must be >= 1 (the DC term), got {om[0]}.')
        bad = [k + 1 for k in range(1, len(om)) if om[k] <= om[k - 1]]
        if bad:
            k = bad[0]
            raise ValueError(f'{name}: cut-offs must be strictly increasing, but w_{k}={om[k - 1]} does not '
                             f'exceed w_{k - 1}={om[k - 2]} (tokens {bad[:5]}...). With '
                             f'num_tokens={self.num_tokens} and image_size={self.image_size}, '
                             'use fewer tokens or a larger image.')
        if om[-1] != self.image_size:
            raise ValueError(f'{name}: the last cut-off must equal image_size={self.image_size} so that all '
                             f'tokens reconstruct the full image, got w_N={om[-1]}.')
        if self.require_growing_steps:
            steps = self.steps
            shrink = [k + 1 for k in range(1, len(steps)) if steps[k] < steps[k - 1]]
            if shrink:
                k = shrink[0]
                raise ValueError(f'{name}: steps must never shrink (paper eq. 7), but w_{k} - w_{k - 1} = '
                                 f'{steps[k - 1]} < w_{k - 1} - w_{k - 2} = {steps[k - 2]}.')

    # ----------------------------------------------------------------- queries
    @property
    def steps(self) -> Tuple[int, ...]:
        """``w_k - w_{k-1}`` for k = 1..N (``w_0 = 0``)."""
        prev = (0,) + self.omegas[:-1]
        return tuple(w - p for w, p in zip(self.omegas, prev))

    def omega(self, k: Union[int, torch.Tensor]) -> Union[int, torch.Tensor]:
        """The cut-off of prefix length ``k`` (1 <= k <= N); ``k`` may be a tensor of prefix lengths."""
        if isinstance(k, torch.Tensor):
            check_range(k, 1, self.num_tokens, f'Prefix lengths must lie in [1, {self.num_tokens}]')
            return self.omegas_tensor(k.device)[k.long() - 1]
        if not 1 <= k <= self.num_tokens:
            raise ValueError(f'Prefix length must lie in [1, {self.num_tokens}], got {k}.')
        return self.omegas[int(k) - 1]

    def omegas_tensor(self, device: Union[str, torch.device, None] = None) -> torch.Tensor:
        """``omegas`` as a long tensor of shape (N,)."""
        return torch.tensor(self.omegas, dtype=torch.long, device=device)

    def token_for_frequency(self, u: Union[int, torch.Tensor], v: Union[int, torch.Tensor]):
        """The first prefix length k whose low-pass block covers frequency (u, v), i.e. ``max(u, v) < w_k``.

        ``u`` and ``v`` are 0-based DCT indices below ``image_size``; tensors are handled element-wise.
        """
        level = torch.maximum(torch.as_tensor(u), torch.as_tensor(v))
        if (level < 0).any() or (level >= self.image_size).any():
            raise ValueError(f'Frequencies must lie in [0, {self.image_size}), got max(u, v) in '
                             f'[{level.min().item()}, {level.max().item()}].')
        k = torch.searchsorted(self.omegas_tensor(level.device), level.long(), right=True) + 1
        return int(k) if k.dim() == 0 else k

    def coverage_map(self) -> torch.Tensor:
        """``(S, S)`` long map: the token (1..N) that first covers each DCT frequency of a square image."""
        idx = torch.arange(self.image_size)
        return self.token_for_frequency(idx[:, None], idx[None, :])

    def __len__(self) -> int:
        return self.num_tokens

    def __repr__(self) -> str:
        head = ', '.join(map(str, self.omegas[:6]))
        return (f'{type(self).__name__}(num_tokens={self.num_tokens}, image_size={self.image_size}, '
                f'omegas=({head}, ..., {self.omegas[-1]}))')


@FREQ_SCHEDULES.register_module()
class UniformFreqSchedule(BaseFreqSchedule):
    """Evenly spaced cut-offs: ``w_k = round(k * S / N)`` (needs N <= S)."""

    def _compute_omegas(self) -> Sequence[int]:
        n, s = self.num_tokens, self.image_size
        return [(2 * k * s + n) // (2 * n) for k in range(1, n + 1)]


@FREQ_SCHEDULES.register_module()
class PiecewiseLinearFreqSchedule(BaseFreqSchedule):
    """Cut-offs interpolated between user-given knots ``(token k, cut-off w_k)``.

    ``(0, 0)`` is implied and the last knot must be ``(num_tokens, image_size)``. Between knots the steps are
    integers that never shrink inside a segment (see ``_fill_segments``). A knot at every token gives an
    explicit schedule.

    Args:
        knots: increasing ``(k, w)`` pairs.
        require_growing_steps: also enforce the paper's eq. 7 (steps never shrink) over the whole schedule.
    """

    def __init__(self, num_tokens: int, image_size: int, knots: Sequence[Sequence[int]] = (),
                 require_growing_steps: bool = False) -> None:
        self.knots = [tuple(int(v) for v in knot) for knot in knots]
        self.require_growing_steps = require_growing_steps
        super().__init__(num_tokens, image_size)

    def _compute_omegas(self) -> Sequence[int]:
        name = type(self).__name__
        if not self.knots:
            raise ValueError(f'{name} needs knots=[(k, w_k), ...] '
                             f'ending at ({self.num_tokens}, {self.image_size}).')
        if any(len(knot) != 2 for knot in self.knots):
            raise ValueError(f'{name}: every knot is a pair (token k, cut-off w_k), got {self.knots}.')
        knots = [(0, 0)] + [k for k in self.knots if k != (0, 0)]
        for (t0, w0), (t1, w1) in zip(knots[:-1], knots[1:]):
            if t1 <= t0 or w1 <= w0:
                raise ValueError(f'{name}: knots must increase in both token and cut-off, got ({t0}, {w0}) '
                                 f'then ({t1}, {w1}).')
            if w1 - w0 < t1 - t0:
                raise ValueError(f'{name}: tokens {t0 + 1}..{t1} would cover only {w1 - w0} new frequencies '
                                 f'between cut-offs {w0} and {w1}; each token needs at least one. '
                                 'Move the knots.')
        if knots[-1] != (self.num_tokens, self.image_size):
            raise ValueError(f'{name}: the last knot must be (num_tokens, image_size) = ({self.num_tokens}, '
                             f'{self.image_size}), got {knots[-1]}.')
        return _fill_segments(knots)


@FREQ_SCHEDULES.register_module()
class NonUniformFreqSchedule(PiecewiseLinearFreqSchedule):
    """The paper's non-uniform token-frequency mapping (eq. 9) and its generalisation to any N and image size.

    Knots are fractions ``(k / N, w_k / S)``; the default ``((0.5, 0.125), (0.75, 0.25))`` reproduces eq. 9
    exactly for N = 64, S = 256: ``w_k = k`` up to k = 32, ``2k - 32`` up to k = 48, ``12k - 512`` up to 64.
    For other sizes the breakpoints keep the same fractions of N and S, each segment is linear, and steps
    never shrink (eq. 7, enforced). A size whose first segment would need less than one frequency per token
    (S/8 < N/2, e.g. N = 32 at 64 px) fails at build time: use fewer tokens, a larger image, or another
    schedule.

    Args:
        breakpoints: interior knots as fractions ``(token fraction, frequency fraction)``.
    """

    require_growing_steps = True

    def __init__(self, num_tokens: int, image_size: int,
                 breakpoints: Sequence[Sequence[float]] = ((0.5, 0.125), (0.75, 0.25))) -> None:
        self.breakpoints = [tuple(float(v) for v in b) for b in breakpoints]
        for a, b in self.breakpoints:
            if not (0 < a < 1 and 0 < b < 1):
                raise ValueError('NonUniformFreqSchedule: breakpoints are fractions in (0, 1), '
                                 f'got {(a, b)}.')
        knots = [(round(a * num_tokens), round(b * image_size)) for a, b in self.breakpoints]
        knots.append((num_tokens, image_size))
        for (t0, w0), (t1, w1) in zip([(0, 0)] + knots[:-1], knots):
            if t1 <= t0 or w1 - w0 < t1 - t0:
                raise ValueError(
                    f'NonUniformFreqSchedule cannot place num_tokens={num_tokens} at '
                    f'image_size={image_size}: its breakpoints put tokens {t0 + 1}..{t1} on cut-offs '
                    f'{w0}..{w1}, fewer than one new frequency per token. Use fewer tokens (the first half '
                    'of the tokens needs image_size / 8 >= num_tokens / 2), a larger image, '
                    'or UniformFreqSchedule / PiecewiseLinearFreqSchedule.')
        super().__init__(num_tokens, image_size, knots=knots, require_growing_steps=True)


def build_freq_schedule(cfg, num_tokens: Optional[int] = None, image_size: Optional[int] = None):
    """Build a schedule from a config dict (``num_tokens`` / ``image_size`` fill in missing keys)
    or pass one."""
    default_args = {k: v for k, v in (('num_tokens', num_tokens), ('image_size', image_size))
                    if v is not None}
    schedule = build_component(cfg, FREQ_SCHEDULES, default_args=default_args, expected_type=BaseFreqSchedule)
    for key, want in default_args.items():
        if getattr(schedule, key) != want:
            raise ValueError(f'The frequency schedule has {key}={getattr(schedule, key)} but the model uses '
                             f'{key}={want}; drop {key} from the schedule config or make them agree.')
    return schedule
