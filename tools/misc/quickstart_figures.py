"""The quick start's published figures have one source: the tiny models' ``Results`` in
configs/spectralar/metafile.yml. The pages that quote them (README.md, configs/spectralar/README.md,
docs/get_started.md) mark each figure as ``<!-- qs:KEY -->98%<!-- /qs -->`` and take it from there.

    python tools/misc/quickstart_figures.py --check            # exit 1 when a page differs from the metafile
    python tools/misc/quickstart_figures.py --write            # rewrite the marked figures from the metafile
    python tools/misc/quickstart_figures.py --from-metrics work_dirs/quickstart/metrics.json --write
                                                               # publish a new run: metafile, then the pages

The model cards of ``work_dirs/quickstart/models`` are written from that run's own metrics.json (the figures
of the folder they describe); the pages quote the published run. tests/test_docs_figures.py runs ``--check``.
"""
import argparse
import os.path as osp
import re
import sys
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METAFILE = 'configs/spectralar/metafile.yml'
PAGES = ('README.md', 'configs/spectralar/README.md', 'docs/get_started.md')
TOKENIZER = 'spectralar-tiny_16tok_1xb32-5k_shapes-64'
GENERATOR = 'spectralar-tiny-d4_16tok_1xb64-3k_shapes-64'
#: key in the pages -> (model, metric name in the metafile, path in metrics.json, how it is written)
FIGURES = {
    'psnr': (TOKENIZER, 'PSNR', ('tokenizer', 'recon/psnr'), '{:.1f} dB'),
    'blockiness': (TOKENIZER, 'Blockiness', ('tokenizer_fidelity', 'blockiness'), '{:.2f}'),
    'judge_reconstructions': (TOKENIZER, 'Judge accuracy on reconstructions',
                              ('class_accuracy', 'tokenizer_reconstructions'), 'percent'),
    'judge_samples': (GENERATOR, 'Judge accuracy on samples', ('class_accuracy', 'generated_samples'),
                      'percent'),
    'next_token_accuracy': (GENERATOR, 'Next-token accuracy', ('generator', 'tokens/acc'), 'percent'),
    'visible_steps': (GENERATOR, 'Visible prefix steps', ('progression', 'samples', 'visible_steps'), '{:d}'),
}
MARK = re.compile(r'<!-- qs:(\w+) -->(.*?)<!-- /qs -->')


def metric_line(name: str) -> re.Pattern:
    return re.compile(r'^(\s+)' + re.escape(name) + r': (\S+)\s*$', re.M)


def model_block(text: str, model: str) -> tuple:
    """(start, end) of ``model``'s entry in the metafile."""
    start = text.index(f'- Name: {model}\n')
    nxt = text.find('\n  - Name: ', start + 1)
    return start, len(text) if nxt < 0 else nxt


def read_metafile(root: str = REPO_ROOT) -> Dict[str, float]:
    with open(osp.join(root, METAFILE)) as f:
        text = f.read()
    values = {}
    for key, (model, name, _, _) in FIGURES.items():
        start, end = model_block(text, model)
        found = metric_line(name).search(text, start, end)
        if found is None:
            raise SystemExit(f'{METAFILE}: {model} has no metric "{name}" under Results.')
        values[key] = float(found.group(2))
    return values


def write_metafile(values: Dict[str, float], root: str = REPO_ROOT) -> None:
    path = osp.join(root, METAFILE)
    with open(path) as f:
        text = f.read()
    for key, (model, name, _, style) in FIGURES.items():
        start, end = model_block(text, model)
        block = text[start:end]
        value = int(values[key]) if style == '{:d}' else round(float(values[key]), 4)
        block, count = metric_line(name).subn(lambda m: f'{m.group(1)}{name}: {value}', block)
        if count != 1:
            raise SystemExit(f'{METAFILE}: {model} needs one "{name}" line under Results, found {count}.')
        text = text[:start] + block + text[end:]
    with open(path, 'w') as f:
        f.write(text)


def from_metrics(path: str) -> Dict[str, float]:
    import json
    with open(path) as f:
        metrics = json.load(f)
    values = {}
    for key, (_, _, where, _) in FIGURES.items():
        value = metrics
        for part in where:
            if not isinstance(value, dict) or part not in value:
                raise SystemExit(f'{path} has no {"/".join(where)}: is it the metrics.json of a finished '
                                 'quick start?')
            value = value[part]
        values[key] = value
    return values


def render(key: str, value: float) -> str:
    style = FIGURES[key][3]
    if style == 'percent':
        return f'{100 * value:.1f}'.rstrip('0').rstrip('.') + '%'
    return style.format(int(value) if style == '{:d}' else value)


def sync_pages(values: Dict[str, float], write: bool, root: str = REPO_ROOT) -> List[str]:
    """The marked figures that differ from ``values`` ('page: key: written -> expected'); rewritten with
    ``write``. An unknown key is a problem too."""
    problems = []
    for page in PAGES:
        path = osp.join(root, page)
        with open(path) as f:
            text = f.read()

        def fix(match, page=page):
            key, shown = match.group(1), match.group(2)
            if key not in FIGURES:
                problems.append(f'{page}: unknown figure {key!r} (known: {", ".join(FIGURES)})')
                return match.group(0)
            wanted = render(key, values[key])
            if shown != wanted:
                problems.append(f'{page}: {key}: {shown} -> {wanted}')
            return f'<!-- qs:{key} -->{wanted}<!-- /qs -->'

        new = MARK.sub(fix, text)
        if write and new != text:
            with open(path, 'w') as f:
                f.write(new)
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Keep the quick start's figures in the pages equal to the "
                                                 'metafile.')
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument('--check', action='store_true')
    mode.add_argument('--write', action='store_true')
    parser.add_argument('--from-metrics', default=None,
                        help="a quick start's metrics.json to publish (with --write)")
    args = parser.parse_args(argv)
    if args.from_metrics:
        if not args.write:
            parser.error('--from-metrics publishes a run: use it with --write')
        write_metafile(from_metrics(args.from_metrics))
    problems = sync_pages(read_metafile(), args.write)
    for line in problems:
        print(('rewrote ' if args.write else '') + line)
    return 1 if problems and args.check else 0


if __name__ == '__main__':
    sys.exit(main())
