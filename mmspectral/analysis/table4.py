"""The measurements of Table 4 as an experiment (tools/analysis/table4_gap.py runs them; docs/design.md has
the design and the decision rule, written before the first run).

* the class-conditional unigram per position, the rate every generator is measured against
  (:func:`unigram_probs`, :func:`unigram_ce`, its smoothing :func:`unigram_alpha`) and the controls' token
  replacement (:func:`replace_span`);
* the small generators' training loop (:func:`train_generator`) and their token readouts
  (:func:`token_readouts`);
* the pre-stated decision rule over paired seeds (:func:`compare`) and the spreads the tables print.
"""
import logging
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['CODEBOOK', 'UNIGRAM_ALPHAS', 'SIZES', 'unigram_alpha', 'unigram_probs', 'unigram_ce',
           'replace_span', 'build_generator', 'train_generator', 'token_readouts', 'select', 'spread',
           'compare']

#: codes in the tiny tokenizers' book
CODEBOOK = 512
#: the additive smoothings the unigram baseline chooses from
UNIGRAM_ALPHAS = (0.001, 0.01, 0.1, 0.5, 1.0)
#: the small generators of the grid
SIZES = {'S': dict(depth=1, width=64, num_heads=1), 'M': dict(depth=2, width=128, num_heads=2)}


# ------------------------------------------------------------------------------------------ the unigram rate
def unigram_alpha(train_ids, train_labels, num_classes: int = 10) -> float:
    """The additive smoothing of the unigram baseline: the one of ``UNIGRAM_ALPHAS`` whose unigram, fitted
    on the first 90% of the training tokens, gives the last 10% the lowest cross-entropy (no held-out
    data)."""
    cut = int(0.9 * len(train_ids))
    scores = {alpha: sum(unigram_ce(train_ids[:cut], train_labels[:cut], train_ids[cut:], train_labels[cut:],
                                    num_classes, alpha)) for alpha in UNIGRAM_ALPHAS}
    return min(scores, key=scores.get)


def unigram_probs(train_ids, train_labels, num_classes: int = 10, alpha: float = None) -> torch.Tensor:
    """``(num_classes, N, CODEBOOK)`` float64: the class-conditional unigram per position, estimated on the
    training tokens with additive smoothing ``alpha`` (default: chosen by :func:`unigram_alpha`)."""
    if alpha is None:
        alpha = unigram_alpha(train_ids, train_labels, num_classes)
    if int(train_ids.max()) >= CODEBOOK:
        raise ValueError(f'token ids beyond the {CODEBOOK}-code book')
    n = train_ids.shape[1]
    counts = torch.zeros(num_classes, n, CODEBOOK, dtype=torch.float64)
    pos = torch.arange(n).expand_as(train_ids)
    counts.index_put_((train_labels.long()[:, None].expand_as(train_ids), pos, train_ids), torch.ones(
        train_ids.shape, dtype=torch.float64), accumulate=True)
    return (counts + alpha) / (counts.sum(-1, keepdim=True) + alpha * CODEBOOK)


def unigram_ce(train_ids, train_labels, held_ids, held_labels, num_classes: int = 10,
               alpha: float = None) -> list:
    """Held-out cross-entropy (nats) per position of a class-conditional unigram per position, estimated on
    the training tokens with additive smoothing ``alpha`` (default: chosen by :func:`unigram_alpha`)."""
    if int(held_ids.max()) >= CODEBOOK:
        raise ValueError(f'token ids beyond the {CODEBOOK}-code book')
    n = train_ids.shape[1]
    probs = unigram_probs(train_ids, train_labels, num_classes, alpha)
    held_pos = torch.arange(n).expand_as(held_ids)
    ce = -probs[held_labels.long()[:, None].expand_as(held_ids), held_pos, held_ids].log()
    return ce.mean(0).tolist()


def replace_span(ids: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, span, rng) -> torch.Tensor:
    """``ids`` with positions ``span[0] .. span[1] - 1`` replaced by independent draws from the unigram of
    each row's class at that position (``probs`` from :func:`unigram_probs`)."""
    out = ids.clone()
    for pos in range(*span):
        out[:, pos] = torch.multinomial(probs[labels.long(), pos], 1, generator=rng)[:, 0]
    return out


# ------------------------------------------------------------------------------------------------ generators
def build_generator(cfg, size: dict, seed: int):
    """The config's generator at ``size`` (a :data:`SIZES` entry), initialised from ``seed``."""
    from mmspectral.registry import GENERATORS
    torch.manual_seed(seed)
    return GENERATORS.build(dict(cfg.model.generator.to_dict(), **size))


def train_generator(cfg, size: dict, ids: torch.Tensor, labels: torch.Tensor, seed: int,
                    budgets: Iterable[int], on_budget: Callable, *, warmup: int, batch_size: int,
                    decay_to: Optional[float] = None) -> None:
    """AdamW (the config's optimiser and weight-decay groups) on ``ids`` / ``labels``; the learning rate warms
    up linearly from 0.01x over ``warmup`` steps, then stays constant (``decay_to`` None) or decays
    linearly to ``decay_to`` x at the last budget. ``on_budget(step, generator)`` is called at every
    budget, in eval mode."""
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    gen = build_generator(cfg, size, seed)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # the constructor logs every parameter's decay group
    try:
        optim = build_optim_wrapper(gen, cfg.optim_wrapper.to_dict())
    finally:
        logger.setLevel(level)
    base = [group['lr'] for group in optim.optimizer.param_groups]
    rng = torch.Generator().manual_seed(seed)
    order, cursor, last = torch.randperm(len(ids), generator=rng), 0, max(budgets)
    for step in range(1, last + 1):
        if step <= warmup:
            factor = 0.01 + 0.99 * (step - 1) / warmup
        elif decay_to is None:
            factor = 1.0
        else:
            factor = 1.0 - (1.0 - decay_to) * (step - warmup) / max(last - warmup, 1)
        for group, lr in zip(optim.optimizer.param_groups, base):
            group['lr'] = lr * factor
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(ids), generator=rng), 0
        batch = order[cursor:cursor + batch_size]
        cursor += batch_size
        gen.train()
        logits = gen(ids[batch], labels[batch])
        optim.update_params(F.cross_entropy(logits.transpose(1, 2), ids[batch]))
        if step in budgets:
            gen.eval()
            on_budget(step, gen)


@torch.no_grad()
def token_readouts(gen, tokens: dict, limit: int = 500) -> dict:
    """Teacher-forced cross-entropy per position (``ce``, nats) and next-token accuracy (``acc``) on the first
    ``limit`` held-out tokens (``tokens['held_ids']``, ``tokens['held_labels']``)."""
    ids, labels = tokens['held_ids'][:limit], tokens['held_labels'][:limit].long()
    logits = gen(ids, labels)
    ce = F.cross_entropy(logits.transpose(1, 2), ids, reduction='none')  # (B, N)
    return dict(ce=ce.mean(0).tolist(), acc=float((logits.argmax(-1) == ids).float().mean()))


# ------------------------------------------------------------------------------------------ the decision rule
def select(flat: Sequence[dict], **keys) -> List[dict]:
    """The records whose fields equal ``keys``."""
    return [r for r in flat if all(r[k] == v for k, v in keys.items())]


def spread(values) -> str:
    """``mean [min, max]`` of the values that are not NaN, to two decimals; 'n/a' when none is."""
    values = [v for v in values if v == v]
    if not values:
        return 'n/a'
    return f'{np.mean(values):.2f} [{min(values):.2f}, {max(values):.2f}]'


def compare(flat: Sequence[dict], challenger: str, base: str, metric: str, better: str,
            cells) -> Dict:
    """The pre-stated rule (docs/design.md): per cell the paired differences (positive: the challenger does
    better); a cell favours the challenger when at least 5/6 of them are positive, the base when at least 5/6
    are negative (an exact tie counts for neither)."""
    out, favour, against = [], 0, 0
    for size, data, budget in cells:
        diffs = []
        for r in select(flat, row=challenger, size=size, data=data, budget=budget):
            twin = select(flat, row=base, size=size, data=data, budget=budget, tseed=r['tseed'],
                          gseed=r['gseed'])
            if twin:
                d = twin[0][metric] - r[metric] if better == 'lower' else r[metric] - twin[0][metric]
                if d == d:  # NaN where a readout is missing (learnability before the reference stage)
                    diffs.append(d)
        n = len(diffs)
        positive, negative = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        verdict = 'none' if not n else ('challenger' if positive >= -(-5 * n // 6) else
                                        'base' if negative >= -(-5 * n // 6) else 'tie')
        favour += verdict == 'challenger'
        against += verdict == 'base'
        out.append(dict(size=size, data=data, budget=budget, pairs=n, positive=positive, negative=negative,
                        mean_diff=float(np.mean(diffs)) if n else float('nan'), verdict=verdict))
    total = len(cells)
    if not any(c['pairs'] for c in out):
        verdict = 'not measured'
    elif favour >= -(-2 * total // 3) and against <= max(1, total // 12):
        verdict = 'supported at tiny scale'
    elif against >= -(-2 * total // 3) and favour <= max(1, total // 12):
        verdict = 'contradicted'
    else:
        verdict = 'inconclusive'
    return dict(challenger=challenger, base=base, metric=metric, cells=out, favour=favour, against=against,
                verdict=verdict)
