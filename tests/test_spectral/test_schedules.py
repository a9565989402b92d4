import pytest
import torch

from mmspectral.registry import FREQ_SCHEDULES, RegistryKeyError
from mmspectral.spectral import (BaseFreqSchedule, NonUniformFreqSchedule, PiecewiseLinearFreqSchedule,
                                 UniformFreqSchedule, build_freq_schedule)


def eq9(i: int) -> int:
    """The paper's eq. 9, written out."""
    if i <= 32:
        return i
    if i <= 48:
        return 2 * i - 32
    return 12 * i - 512


def test_non_uniform_is_eq9_exactly():
    schedule = NonUniformFreqSchedule(num_tokens=64, image_size=256)
    assert schedule.omegas == tuple(eq9(i) for i in range(1, 65))
    assert (schedule.omega(32), schedule.omega(48), schedule.omega(64)) == (32, 64, 256)


@pytest.mark.parametrize('n,s', [(16, 64), (8, 32), (32, 128), (128, 512), (64, 512), (24, 96)])
def test_non_uniform_generalises_with_the_same_fractions(n, s):
    schedule = NonUniformFreqSchedule(num_tokens=n, image_size=s)
    om = schedule.omegas
    assert om[n // 2 - 1] == s // 8 and om[3 * n // 4 - 1] == s // 4 and om[-1] == s
    steps = schedule.steps
    assert all(b >= a for a, b in zip(steps, steps[1:]))  # eq. 7
    # Linear inside each segment: the steps of a segment differ by at most one.
    for lo, hi in ((0, n // 2), (n // 2, 3 * n // 4), (3 * n // 4, n)):
        assert max(steps[lo:hi]) - min(steps[lo:hi]) <= 1


def test_non_uniform_at_twice_the_size_keeps_the_shape_of_eq9():
    schedule = NonUniformFreqSchedule(num_tokens=128, image_size=512)
    expected = [i if i <= 64 else (2 * i - 64 if i <= 96 else 12 * i - 1024) for i in range(1, 129)]
    assert list(schedule.omegas) == expected


def test_piecewise_with_eq9_knots_equals_non_uniform():
    knots = [(32, 32), (48, 64), (64, 256)]
    assert PiecewiseLinearFreqSchedule(64, 256, knots=knots).omegas == NonUniformFreqSchedule(64, 256).omegas
    explicit = [(k, w) for k, w in enumerate([1, 2, 4, 7, 11, 16], start=1)]
    assert PiecewiseLinearFreqSchedule(6, 16, knots=explicit).omegas == (1, 2, 4, 7, 11, 16)


@pytest.mark.parametrize('n,s', [(64, 256), (16, 64), (10, 32), (7, 7)])
def test_uniform_is_evenly_spaced(n, s):
    schedule = UniformFreqSchedule(n, s)
    assert schedule.omegas[-1] == s and len(schedule) == n
    steps = schedule.steps
    assert min(steps) >= 1 and max(steps) - min(steps) <= 1


def test_invalid_schedules_fail_at_build_time():
    with pytest.raises(ValueError, match='strictly increasing'):
        UniformFreqSchedule(num_tokens=40, image_size=32)
    with pytest.raises(ValueError, match='last knot must be'):
        PiecewiseLinearFreqSchedule(4, 16, knots=[(2, 4), (4, 15)])
    with pytest.raises(ValueError, match='increase in both'):
        PiecewiseLinearFreqSchedule(4, 16, knots=[(1, 5), (2, 5), (4, 16)])
    with pytest.raises(ValueError, match='eq. 7'):
        PiecewiseLinearFreqSchedule(4, 16, knots=[(1, 8), (4, 16)], require_growing_steps=True)
    with pytest.raises(ValueError, match='eq. 7'):
        NonUniformFreqSchedule(16, 64, breakpoints=((0.5, 0.6), (0.75, 0.8)))
    with pytest.raises(ValueError, match='cannot place num_tokens=32 at image_size=64'):
        NonUniformFreqSchedule(num_tokens=32, image_size=64)

    class WrongLength(BaseFreqSchedule):
        def _compute_omegas(self):
            return [1, 2, 4]

    with pytest.raises(ValueError, match='3 cut-offs but num_tokens=4'):
        WrongLength(num_tokens=4, image_size=4)

    class NotEnding(BaseFreqSchedule):
        def _compute_omegas(self):
            return [1, 2, 3]

    with pytest.raises(ValueError, match='must equal image_size=8'):
        NotEnding(num_tokens=3, image_size=8)


def test_token_for_frequency_matches_the_bands():
    schedule = NonUniformFreqSchedule(16, 64)
    cover = schedule.coverage_map()
    prev = 0
    for k, w in enumerate(schedule.omegas, start=1):
        level = torch.maximum(torch.arange(64)[:, None], torch.arange(64)[None, :])
        band = (level >= prev) & (level < w)
        assert (cover[band] == k).all()
        prev = w
    assert schedule.token_for_frequency(0, 0) == 1
    assert schedule.token_for_frequency(63, 0) == 16
    assert schedule.token_for_frequency(7, 3) == 8 and schedule.token_for_frequency(8, 0) == 9
    with pytest.raises(ValueError, match='Frequencies must lie'):
        schedule.token_for_frequency(64, 0)


def test_omega_lookup_and_tensors():
    schedule = NonUniformFreqSchedule(64, 256)
    k = torch.tensor([1, 33, 64])
    assert schedule.omega(k).tolist() == [1, 34, 256]
    with pytest.raises(ValueError, match=r'\[1, 64\]'):
        schedule.omega(0)


def test_build_from_registry_with_defaults_and_typos():
    schedule = build_freq_schedule(dict(type='NonUniformFreqSchedule'), num_tokens=16, image_size=64)
    assert isinstance(schedule, NonUniformFreqSchedule)
    assert build_freq_schedule(schedule, 16, 64) is schedule
    with pytest.raises(ValueError, match='num_tokens=8 but the model uses num_tokens=16'):
        build_freq_schedule(dict(type='UniformFreqSchedule', num_tokens=8), num_tokens=16, image_size=64)
    with pytest.raises(RegistryKeyError, match="Did you mean: 'NonUniformFreqSchedule'"):
        FREQ_SCHEDULES.build(dict(type='NonUniformFreqSchedul', num_tokens=16, image_size=64))
