"""Table 4 as an experiment (mmspectral.analysis.table4, run by tools/analysis/table4_gap.py): the pre-stated
decision rule, the unigram rate, the generator loop."""
import json
import math
import os
import os.path as osp

import pytest
import torch
from cli import load_cli, run_cli

from mmspectral.analysis import table4

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'


def records(shift, metric='fd_gap', tseeds=(0, 1), gseeds=(0, 1, 2), budgets=(100, 300), seed=0):
    """Paired records: the base row's metric is noise; the challenger's is the same noise plus ``shift``
    (a callable of the cell, so cells can differ)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for size in ('S', 'M'):
        for data in ('full', 'limited'):
            for budget in budgets:
                for t in tseeds:
                    for g in gseeds:
                        value = float(torch.rand(1, generator=gen)) * 10
                        for row, v in (('base', value), ('new', value + shift(size, data, budget, t, g))):
                            out.append(dict(row=row, size=size, data=data, budget=budget, tseed=t, gseed=g,
                                            **{metric: v}))
    return out


def cells(budgets=(100, 300)):
    return [(s, d, b) for s in ('S', 'M') for d in ('full', 'limited') for b in budgets]


@pytest.mark.parametrize('seed', range(4))
def test_rule_supports_contradicts_or_is_inconclusive(seed):
    # Lower is better for fd_gap: a challenger lower in every pair is supported, higher in every pair
    # contradicted, whatever the noise.
    better = table4.compare(records(lambda *_: -0.5, seed=seed), 'new', 'base', 'fd_gap', 'lower', cells())
    assert better['verdict'] == 'supported at tiny scale' and better['favour'] == 8 and better['against'] == 0
    worse = table4.compare(records(lambda *_: 0.5, seed=seed), 'new', 'base', 'fd_gap', 'lower', cells())
    assert worse['verdict'] == 'contradicted' and worse['against'] == 8
    # For a higher-is-better metric the same data reads the other way round.
    flipped = table4.compare(records(lambda *_: -0.5, 'learnability', seed=seed), 'new', 'base',
                             'learnability', 'higher', cells())
    assert flipped['verdict'] == 'contradicted'
    # Half the cells each way: inconclusive.
    split = table4.compare(records(lambda size, *_: -0.5 if size == 'S' else 0.5, seed=seed), 'new', 'base',
                           'fd_gap', 'lower', cells())
    assert split['verdict'] == 'inconclusive' and split['favour'] == split['against'] == 4


def test_a_cell_needs_five_of_six_pairs_and_ties_count_for_neither():
    # 4 of 6 pairs better in every cell: ties everywhere, inconclusive.
    two_worse = ((1, 1), (1, 2))
    four = table4.compare(records(lambda size, data, budget, t, g: 1.0 if (t, g) in two_worse else -1.0),
                          'new', 'base', 'fd_gap', 'lower', cells())
    assert {c['verdict'] for c in four['cells']} == {'tie'} and four['verdict'] == 'inconclusive'
    five = table4.compare(records(lambda size, data, budget, t, g: -1.0 if (t, g) != (1, 2) else 1.0),
                          'new', 'base', 'fd_gap', 'lower', cells())
    assert five['verdict'] == 'supported at tiny scale'
    # Exactly equal pairs (accuracies can tie) favour neither row.
    tied = table4.compare(records(lambda *_: 0.0, 'acc_gap'), 'new', 'base', 'acc_gap', 'lower', cells())
    assert tied['favour'] == tied['against'] == 0 and tied['verdict'] == 'inconclusive'
    # A readout that is missing everywhere (NaN) is not measured, not a tie.
    missing = table4.compare(records(lambda *_: float('nan'), 'learnability'), 'new', 'base',
                             'learnability', 'higher', cells())
    assert missing['verdict'] == 'not measured' and {c['pairs'] for c in missing['cells']} == {0}
    # Unpaired records are not compared.
    lonely = [r for r in records(lambda *_: -1.0) if not (r['row'] == 'base' and r['tseed'] == 1)]
    result = table4.compare(lonely, 'new', 'base', 'fd_gap', 'lower', cells())
    assert {c['pairs'] for c in result['cells']} == {3}


def test_unigram_rate_matches_direct_counting():
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 6, (400, 3), generator=gen)
    train_labels = torch.arange(400) % 2
    held = torch.randint(0, 6, (50, 3), generator=gen)
    held_labels = torch.arange(50) % 2
    alpha, book = 0.5, table4.CODEBOOK
    ce = table4.unigram_ce(train, train_labels, held, held_labels, num_classes=2, alpha=alpha)
    for j in range(3):
        total = 0.0
        for i in range(50):
            same = train[train_labels == held_labels[i], j]
            count = int((same == held[i, j]).sum())
            total -= math.log((count + alpha) / (len(same) + alpha * book))
        assert ce[j] == pytest.approx(total / 50, rel=1e-9)
    # The smoothing is chosen on the training tokens alone: a deterministic code per (class, position) gets
    # the smallest one and costs almost nothing; codes uniform over 6 of the 512 cost about log(6) with a
    # larger one.
    fixed = train_labels[:, None] * 3 + torch.arange(3)
    assert table4.unigram_alpha(fixed, train_labels, num_classes=2) == min(table4.UNIGRAM_ALPHAS)
    assert sum(table4.unigram_ce(fixed, train_labels, fixed[:50], held_labels, num_classes=2)) < 0.01 * 3
    uniform = sum(table4.unigram_ce(train, train_labels, held, held_labels, num_classes=2))
    assert 3 * math.log(6) < uniform < 3 * math.log(6) + 0.5
    with pytest.raises(ValueError, match='code'):
        table4.unigram_ce(train + book, train_labels, held, held_labels, num_classes=2)


def test_generator_loop_learns_and_reports_at_every_budget():
    from mmspectral.apis import load_config, register_all_modules
    register_all_modules()
    cfg = load_config(osp.join(REPO, GENERATOR_CONFIG))
    # Tokens that follow their class exactly: next-token cross-entropy must fall well below log(512).
    labels = torch.arange(256) % 10
    ids = (labels[:, None] * 7 + torch.arange(16) * 3) % 512
    seen = {}
    table4.train_generator(cfg, table4.SIZES['S'], ids, labels, 0, [60, 120],
                           lambda step, gen: seen.setdefault(step, table4.token_readouts(
                               gen, dict(held_ids=ids[:50], held_labels=labels[:50]))),
                           warmup=10, batch_size=32)
    assert sorted(seen) == [60, 120]
    assert sum(seen[120]['ce']) < sum(seen[60]['ce']) < 16 * math.log(512)
    assert seen[120]['acc'] > 0.5
    with pytest.raises(SystemExit):  # the command line refuses a budget inside the warm-up
        run_cli('tools/analysis/table4_gap.py', ['--budgets', '10', '--warmup', '50'])


def test_a_replaced_span_draws_from_its_class_unigram_and_keeps_the_rest():
    gen = torch.Generator().manual_seed(1)
    train = torch.randint(0, 8, (600, 4), generator=gen)
    train[:, 2] = torch.arange(600) % 2 * 5  # position 2: code 0 for class 0, code 5 for class 1
    labels = torch.arange(600) % 2
    probs = table4.unigram_probs(train, labels, num_classes=2, alpha=0.001)
    assert probs.shape == (2, 4, table4.CODEBOOK)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, dtype=torch.float64))
    held = torch.full((4000, 4), 7)
    held_labels = torch.arange(4000) % 2
    out = table4.replace_span(held, held_labels, probs, (1, 3), torch.Generator().manual_seed(0))
    assert (out[:, [0, 3]] == 7).all() and (held == 7).all()  # outside the span and the input untouched
    assert ((out[:, 2] == 0) == (held_labels == 0)).float().mean() > 0.99  # the class's own code
    # position 1: the class's empirical frequencies, within sampling error
    for c in (0, 1):
        drawn = torch.bincount(out[held_labels == c, 1], minlength=table4.CODEBOOK).double() / 2000
        assert (drawn[:8] - probs[c, 1, :8]).abs().max() < 0.04


def test_jobs_run_side_by_side_with_a_share_of_the_threads_and_a_failure_stops_the_rest(tmp_path):
    import sys
    import time
    tool = load_cli('tools/analysis/table4_gap.py')
    code = ('import os, sys, time; open(sys.argv[1], "w").write(f"{os.environ.get(\'OMP_NUM_THREADS\')} '
            '{time.time()}"); time.sleep(3)')
    marks = [tmp_path / f'mark{i}' for i in range(3)]
    tool.run_commands([([sys.executable, '-c', code, str(m)], str(tmp_path / 'logs' / f'{i}.log'), f'job {i}')
                       for i, m in enumerate(marks)], jobs=2)
    threads, started = zip(*(m.read_text().split() for m in marks))
    assert set(threads) == {str(max(1, torch.get_num_threads() // 2))}
    started = sorted(map(float, started))
    assert started[1] - started[0] < 2.0 < started[2] - started[0]  # two at once, the third after one ended
    failing = [sys.executable, '-c', 'import sys; print("bad input"); sys.exit(3)']
    sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']
    start = time.time()
    with pytest.raises(SystemExit, match=r'job B failed: see .*B\.log'):
        tool.run_commands([(sleeper, str(tmp_path / 'A.log'), 'job A'),
                           (failing, str(tmp_path / 'B.log'), 'job B')], jobs=2)
    assert time.time() - start < 30  # the sleeper was stopped, not waited for
    assert 'bad input' in (tmp_path / 'B.log').read_text()


def test_records_of_worker_runs_are_gathered_in_grid_order(tmp_path):
    tool = load_cli('tools/analysis/table4_gap.py')
    args = tool.parse_args(['--work-dir', str(tmp_path), '--tokenizer-seeds', '0', '--sizes', 'S',
                            '--generator-seeds', '1', '0'])
    grid = [('S', data, g) for data in tool.DATA for g in (1, 0)]
    for row in tool.ROWS:
        for run in reversed(grid):  # written in another order than the grid's
            path = tool.part_file(args, row, 0, *run)
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                json.dump(dict(size=run[0], data=run[1], seed=run[2], budgets={}), f)
    tool.run_generators(args)  # nothing left to train: every run has its record
    for row in tool.ROWS:
        with open(tool.generators_file(args, row, 0)) as f:
            assert [(r['size'], r['data'], r['seed']) for r in json.load(f)] == grid
