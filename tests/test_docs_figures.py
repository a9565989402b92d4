"""The quick start's figures in README.md, configs/spectralar/README.md and docs/get_started.md are the
metafile's (tools/misc/quickstart_figures.py): they cannot drift apart."""
import json
import os
import os.path as osp
import shutil

from cli import load_cli
from tiny_models import REPO_ROOT

TOOL = 'tools/misc/quickstart_figures.py'


def test_the_pages_quote_the_metafile():
    tool = load_cli(TOOL)
    assert tool.sync_pages(tool.read_metafile(), write=False) == []
    for page in tool.PAGES:  # each page quotes some figure through a mark
        assert tool.MARK.search(open(osp.join(REPO_ROOT, page)).read()), page
    assert tool.main(['--check']) == 0


def test_a_new_run_is_published_everywhere_and_a_hand_edit_is_caught(tmp_path):
    tool = load_cli(TOOL)
    for path in (tool.METAFILE,) + tool.PAGES:
        os.makedirs(tmp_path / osp.dirname(path), exist_ok=True)
        shutil.copy(osp.join(REPO_ROOT, path), tmp_path / path)
    metrics = dict(tokenizer={'recon/psnr': 19.234}, tokenizer_fidelity=dict(blockiness=1.071),
                   class_accuracy=dict(tokenizer_reconstructions=0.965, generated_samples=0.99),
                   generator={'tokens/acc': 0.2911}, progression=dict(samples=dict(visible_steps=11)))
    (tmp_path / 'metrics.json').write_text(json.dumps(metrics))
    tool.write_metafile(tool.from_metrics(str(tmp_path / 'metrics.json')), root=str(tmp_path))
    values = tool.read_metafile(root=str(tmp_path))
    assert values == dict(psnr=19.234, blockiness=1.071, judge_reconstructions=0.965, judge_samples=0.99,
                          next_token_accuracy=0.2911, visible_steps=11)
    changed = tool.sync_pages(values, write=True, root=str(tmp_path))
    assert any('judge_samples: 98% -> 99%' in line for line in changed)
    assert tool.sync_pages(values, write=False, root=str(tmp_path)) == []
    readme = (tmp_path / 'README.md').read_text()
    assert '<!-- qs:judge_samples -->99%<!-- /qs -->' in readme and '98%<!-- /qs -->' not in readme
    assert '<!-- qs:psnr -->19.2 dB<!-- /qs -->' in (tmp_path / 'configs/spectralar/README.md').read_text()
    (tmp_path / 'README.md').write_text(readme.replace('99%<!-- /qs -->', '97%<!-- /qs -->', 1))
    problems = tool.sync_pages(values, write=False, root=str(tmp_path))
    assert problems == ['README.md: judge_samples: 97% -> 99%']
