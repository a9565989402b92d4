"""Token sampling: classifier-free guidance, temperature, top-k and top-p,
reproducible with a torch.Generator."""
import math
import numbers
from typing import Any, Mapping, Optional

import torch

#: The sampling settings ``generate`` takes that a config's ``model.sampling`` or a command line sets. A new
#: one is added here, to ``check_sampling_options`` and to ``generate``'s signature; ``GeneratorModel.sample``
#: merges it with the config's defaults (``GeneratorModel.sampling_options``), nothing else does.
SAMPLING_OPTIONS = ('cfg_scale', 'cfg_schedule', 'top_k', 'top_p', 'temperature', 'num_tokens')
CFG_SCHEDULES = ('constant', 'linear')
#: The guidance weight when neither the config nor the call sets one (VAR's d16 setting).
DEFAULT_CFG_SCALE = 1.5


def make_rng(seed: Optional[int]) -> Optional[torch.Generator]:
    """The sampling RNG of ``seed`` (a CPU ``torch.Generator``; the same seed gives the same tokens on every
    device), or None for the global RNG. The one place a seed becomes an RNG."""
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be a number, got {value!r} ({type(value).__name__}).')
    if not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value}.')
    return float(value)


def check_sampling_options(options: Mapping[str, Any], max_tokens: int, where: str = 'sampling') -> None:
    """Raise ``TypeError`` / ``ValueError`` naming the first sampling setting of ``options`` that ``generate``
    cannot use: ``cfg_scale`` a finite number >= 0, ``cfg_schedule`` 'constant' or 'linear', ``top_k`` an
    integer >= 0 (0: off), ``top_p`` in [0, 1] (0 or 1: off), ``temperature`` a finite number > 0,
    ``num_tokens`` None or an integer in [1, ``max_tokens``]. Other keys are not looked at. ``where`` names
    the settings in the message (``'model.sampling'``, say). Costs no device work: the values are Python
    numbers."""
    def fail(name, wanted):
        raise ValueError(f'{where}: {name} must be {wanted}, got {options[name]!r}.')

    if 'cfg_scale' in options and _real(f'{where}: cfg_scale', options['cfg_scale']) < 0:
        fail('cfg_scale', 'a guidance weight >= 0 (0: no guidance)')
    if 'cfg_schedule' in options and options['cfg_schedule'] not in CFG_SCHEDULES:
        fail('cfg_schedule', f'one of {CFG_SCHEDULES}')
    for name in ('top_k', 'num_tokens'):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise TypeError(f'{where}: {name} must be an integer, got {value!r} ({type(value).__name__}).')
    if options.get('top_k') is not None and options['top_k'] < 0:
        fail('top_k', 'an integer >= 0 (0: no top-k filtering)')
    if options.get('num_tokens') is not None and not 1 <= options['num_tokens'] <= max_tokens:
        fail('num_tokens', f'an integer in [1, {max_tokens}] (the first n tokens; None: all {max_tokens})')
    if 'top_p' in options and not 0 <= _real(f'{where}: top_p', options['top_p']) <= 1:
        fail('top_p', 'a probability in [0, 1] (0 or 1: no nucleus filtering)')
    if 'temperature' in options and _real(f'{where}: temperature', options['temperature']) <= 0:
        fail('temperature', 'a finite number > 0 (1: the model\'s distribution)')


def cfg_weight(scale: float, schedule: str, step: int, num_steps: int) -> float:
    """The guidance weight t of step ``step`` (0-based) out of ``num_steps``.

    ``'constant'``: t = scale at every step. ``'linear'`` (VAR): t ramps from 0 at the first step to ``scale``
    at the last one.
    """
    if schedule == 'constant':
        return scale
    if schedule == 'linear':
        return scale * step / max(num_steps - 1, 1)
    raise ValueError(f"cfg_schedule must be 'constant' or 'linear', got {schedule!r}.")


def guide(logits: torch.Tensor, weight: float) -> torch.Tensor:
    """Combine a doubled batch (conditional rows first, unconditional rows last): (1 + t) cond - t uncond."""
    cond, uncond = logits.chunk(2)
    return (1 + weight) * cond - weight * uncond


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0,
                  temperature: float = 1.0) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering over the last dim; removed entries become -inf.

    top-k keeps every logit at least as large as the k-th largest. top-p removes the least likely tokens whose
    probabilities sum to at most ``1 - top_p`` (the most likely token always stays). 0 disables either.
    With both, the one sort top-p needs also gives the k-th largest logit (no separate ``topk``: a sampling
    step of d16 spends about 1 ms on each of the two at 4096 codes).
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be positive, got {temperature}.')
    logits = logits.float() / temperature if temperature != 1.0 else logits.float()
    vocab = logits.shape[-1]
    top_k = top_k if 0 < top_k < vocab else 0
    if top_k and not 0.0 < top_p < 1.0:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float('-inf'))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1)  # ascending
        if top_k:  # the k-th largest; entries below it get probability 0 and so fall into the tail below
            kth = sorted_logits[..., vocab - top_k:vocab - top_k + 1]
            sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float('-inf'))
        tail = sorted_logits.softmax(-1).cumsum(-1) <= 1 - top_p
        tail[..., -1] = False
        logits = logits.masked_fill(tail.scatter(-1, order, tail), float('-inf'))
    return logits


def sample_tokens(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw one token per row of ``logits`` (..., V) -> (...) long."""
    probs = filter_logits(logits, top_k, top_p, temperature).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if generator is not None and generator.device != flat.device:
        # Draw on the generator's device so that the same seed gives the same tokens on every device.
        return torch.multinomial(flat.to(generator.device), 1, generator=generator).to(flat.device).view(
            probs.shape[:-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
