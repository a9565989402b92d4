import json

import torch

from mmspectral.fileio import write_report
from mmspectral.utils.timing import measure_alternating


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
