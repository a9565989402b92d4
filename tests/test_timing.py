import json

import torch

from mmspectral.analysis.speed import measure_alternating
from mmspectral.fileio import write_report


def test_measure_alternating_takes_turns_after_the_warm_up():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ('a', 'b', 'c')}
    times, foreign = measure_alternating(fns, repeats=3, device=torch.device('cpu'), warmup=2)
    assert calls == ['a', 'b', 'c'] * 5  # two warm-up rounds, then three timed ones, always in turn
    assert {k: len(v) for k, v in times.items()} == {'a': 3, 'b': 3, 'c': 3}
    assert all(t >= 0 for v in times.values() for t in v) and isinstance(foreign, float)


def test_write_report_writes_the_table_and_the_json(tmp_path):
    write_report(str(tmp_path / 'new'), 'bench', '| a |\n', {'x': 1})
    assert (tmp_path / 'new' / 'bench.md').read_text() == '| a |\n'
    assert json.loads((tmp_path / 'new' / 'bench.json').read_text()) == {'x': 1}


def test_sampling_cost_model_counts_what_each_mode_computes():
    """FLOPs and weight bytes of a sampling step (mmspectral/analysis/speed.py): guidance doubles the matmul
    rows, the uncached sampler recomputes every earlier position, and the weights a step reads are the
    blocks' and the head's."""
    import torch

    from mmspectral.analysis.speed import sampling_flops, step_weight_bytes, time_sampling
    from mmspectral.models import SpectralARGenerator
    torch.manual_seed(0)
    gen = SpectralARGenerator(depth=2, width=64, num_heads=2, vocab_size=32, num_tokens=8,
                              num_classes=3).eval()
    c, v = gen.width, gen.vocab_size
    assert step_weight_bytes(gen, 4) == 4 * (2 * 12 * c * c + c * v)
    cached, uncached = sampling_flops(gen, 4, False, True), sampling_flops(gen, 4, False, False)
    guided = sampling_flops(gen, 4, True, True)
    assert guided == 2 * cached and uncached > 2 * cached
    assert sampling_flops(gen, 8, False, True) == 2 * cached
    seconds, peak_mib, foreign = time_sampling(gen, torch.tensor([0, 1]), dict(seed=0, cfg_scale=1.5), False,
                                               2, torch.device('cpu'))
    # other processes' CPU seconds: a difference of two /proc readings, which may round below zero
    assert seconds > 0 and peak_mib > 0 and foreign > -1
