"""Every tool checks all its arguments before it writes anything: a bad argument stops it with a message that
names the argument, and its output folder (or file) is left as it was, so that the corrected command runs."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli import load_cli

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'


def snapshot(path: str):
    """What is at ``path``: None, a file's bytes, or a folder's relative paths and file contents."""
    if not osp.lexists(path):
        return None
    if osp.isfile(path):
        with open(path, 'rb') as f:
            return f.read()
    found = {}
    for root, dirs, files in os.walk(path):
        found.update({osp.relpath(osp.join(root, name), path): None for name in dirs})
        for name in files:
            with open(osp.join(root, name), 'rb') as f:
                found[osp.relpath(osp.join(root, name), path)] = f.read()
    return found


def run_tool(name: str, argv, monkeypatch, capsys):
    """Run ``tools/<name>`` in this process, as its command line would (its ``main`` reads ``sys.argv``);
    returns (the exception it stopped with, what it printed)."""
    tool = load_cli(f'tools/{name}')
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setattr(sys, 'argv', [name] + list(argv))
    with pytest.raises((SystemExit, ValueError, TypeError, FileNotFoundError)) as info:
        tool.main()
    return info.value, ''.join(capsys.readouterr())


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A tokenizer and a generator checkpoint (random weights), an existing file, a folder and npz files."""
    from mmspectral.apis import load_config
    from mmspectral.registry import MODELS
    work = tmp_path_factory.mktemp('validate')
    torch.manual_seed(0)
    tok = MODELS.build(load_config(osp.join(REPO_ROOT, TOKENIZER_CONFIG)).model)
    torch.save(dict(state_dict=tok.state_dict(), meta=dict(iter=1)), str(work / 'tok.pth'))
    options = {'model.tokenizer_checkpoint': str(work / 'tok.pth')}
    gen = MODELS.build(load_config(osp.join(REPO_ROOT, GENERATOR_CONFIG), options).model)
    torch.save(dict(state_dict=gen.state_dict(), meta=dict(iter=1)), str(work / 'gen.pth'))
    (work / 'a_file').write_text('not a folder')
    (work / 'a_folder').mkdir()
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    np.savez(str(work / 'samples.npz'), arr_0=images, labels=np.arange(8) % 2)
    np.savez(str(work / 'unlabelled.npz'), arr_0=images)
    return dict(work=str(work), tok=str(work / 'tok.pth'), gen=str(work / 'gen.pth'),
                file=str(work / 'a_file'), folder=str(work / 'a_folder'), samples=str(work / 'samples.npz'),
                unlabelled=str(work / 'unlabelled.npz'),
                tok_option=f'model.tokenizer_checkpoint={work}/tok.pth')


OUT = '{out}'  # a fresh path under the test's tmp_path, where the tool would write
SMALL = ['--per-class', '1', '--device', 'cpu', '--cfg-options', '{tok_option}']  # a run that would succeed
# (tool, arguments, what the message must name, what the tool must leave alone: 'out' or a key of files)
CASES = [
    # tools/sample.py: counts, the output folder, sampling settings of the command line and of the config
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--per-class', 'ten'], '--per-class', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--batch-size', '0'], '--batch-size', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', '{file}'], '--out', 'file'),
    ('sample.py', ['{GEN}', '{work}/missing.pth', '--out', OUT], 'checkpoint', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, *SMALL, '--top-k', '-5'], '--top-k', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, *SMALL, '--top-p', '1.5'], '--top-p', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, *SMALL, '--temperature', '0'], '--temperature', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, *SMALL, '--cfg', 'nan'], '--cfg', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--per-class', '1', '--device', 'cpu',
                   '--num-tokens', '99', '--cfg-options', '{tok_option}'], 'num_tokens', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--per-class', '1', '--device', 'cpu', '--cfg-options',
                   '{tok_option}', 'model.sampling.cfg_schedule=linaer'], 'cfg_schedule', 'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--per-class', '1', '--device', 'cpu', '--cfg-options',
                   '{tok_option}', 'model.sampling.cfg_schedul=linear'], "Did you mean 'cfg_schedule'",
     'out'),
    ('sample.py', ['{GEN}', '{gen}', '--out', OUT, '--per-class', '1', '--device', 'cpu', '--cfg-options',
                   '{tok_option}', 'model.genrator.depth=2'], 'did you mean model.generator', 'out'),
    # tools/extract_tokens.py
    ('extract_tokens.py', ['{TOK}', '{tok}', '--out', OUT, '--batch-size', '0'], '--batch-size', 'out'),
    ('extract_tokens.py', ['{TOK}', '{tok}', '--out', OUT, '--num-workers', '-1'], '--num-workers', 'out'),
    ('extract_tokens.py', ['{TOK}', '{tok}', '--out', OUT, '--augment', 'tencrop', '--crop-range', '0.5'],
     '--crop-range', 'out'),
    ('extract_tokens.py', ['{TOK}', '{tok}', '--out', '{file}'], '--out', 'file'),
    ('extract_tokens.py', ['{TOK}', '{tok}', '--out', OUT, '--device', 'cpu', '--cfg-options',
                           'trian_dataloader.dataset.num_samples=8'], 'did you mean train_dataloader', 'out'),
    # tools/test.py, tools/eval_fid.py, tools/benchmark.py, tools/train_probe.py
    ('test.py', ['{TOK}', '{tok}', '--work-dir', '{file}'], '--work-dir', 'file'),
    ('test.py', ['{TOK}', '{work}/missing.pth', '--work-dir', OUT], 'checkpoint', 'out'),
    ('eval_fid.py', ['{samples}', '--ref', '{samples}', '--batch-size', '0', '--out', OUT], '--batch-size',
     'out'),
    ('eval_fid.py', ['{samples}', '--ref', '{samples}', '--k', '0', '--out', OUT], '--k', 'out'),
    ('eval_fid.py', ['{samples}', '--ref', '{samples}', '--random-weights-for-tests', '--device', 'cpu',
                     '--save-ref-stats', OUT, '--out', '{folder}'], '--out', 'out'),
    ('benchmark.py', ['{GEN}', '--iters', '0', '--out-dir', OUT], '--iters', 'out'),
    ('benchmark.py', ['{GEN}', '--out-dir', '{file}'], '--out-dir', 'file'),
    ('train_probe.py', ['--out', '{file}', '--retrain', '--steps', '0'], '--steps', 'file'),
    ('train_probe.py', ['--out', '{file}', '--retrain', '--samples', '{unlabelled}', '--steps', '1',
                        '--image-size', '16'], 'needs labels', 'file'),
    ('train_probe.py', ['--out', '{file}', '--retrain', '--samples', '{samples}', '--json', '{folder}'],
     '--json', 'file'),
    # tools/analysis and tools/visualization
    ('analysis/causality.py', ['--num-images', '20', '--image-size', '60', '--out-dir', OUT], '--omegas',
     'out'),
    ('analysis/causality.py', ['--train-fraction', '1', '--out-dir', OUT], '--train-fraction', 'out'),
    ('analysis/causality.py', ['--num-images', '20', '--tokenizer', '{GEN}', '{gen}', '--out-dir', OUT],
     'not a tokenizer config', 'out'),
    ('analysis/visualize_generation.py', ['{GEN}', '{gen}', '--out-dir', OUT, '--device', 'cpu', '--top-p',
                                          '0.5', '--cfg-options', '{tok_option}', 'model.sampling.top_k=-1'],
     'top_k', 'out'),
    ('analysis/visualize_generation.py', ['{GEN}', '{gen}', '--out-dir', '{file}', '--device', 'cpu',
                                          '--cfg-options', '{tok_option}'], '--out-dir', 'file'),
    ('analysis/superres_tiny.py', ['--per-class', '0', '--work-dir', OUT], '--per-class', 'out'),
    ('analysis/cost_curves.py', ['--tokens', '0', '--out', OUT], '--tokens', 'out'),
    ('analysis/benchmark_pipeline.py', ['--repeats', '0', '--out', OUT], '--repeats', 'out'),
    ('analysis/tokenizer_heads_tiny.py', ['--steps', '0', '--work-dir', OUT], '--steps', 'out'),
    ('analysis/visualize_spectral.py', ['--out', '{folder}'], '--out', 'folder'),
    ('analysis/analyze_logs.py', ['plot_curve', '{work}', '--out', '{folder}'], '--out', 'folder'),
    ('analysis/ablation_row_metrics.py', ['{GEN}', '{gen}', '--probe', '{file}', '--out', '{folder}'],
     '--out', 'folder'),
    ('analysis/shapes_class_accuracy.py', ['{GEN}', '{gen}', '--per-class', '0', '--out', OUT], '--per-class',
     'out'),
    ('visualization/browse_dataset.py', ['{TOK}', '--num-images', '0', '--out', OUT], '--num-images', 'out'),
]


@pytest.mark.parametrize('tool,argv,named,kept', CASES,
                         ids=[f'{c[0]}:{c[2]}:{i}' for i, c in enumerate(CASES)])
def test_bad_argument_is_named_and_nothing_is_written(tool, argv, named, kept, files, tmp_path, monkeypatch,
                                                      capsys):
    out = str(tmp_path / 'out' / 'result')
    paths = dict(files, GEN=GENERATOR_CONFIG, TOK=TOKENIZER_CONFIG, out=out)
    argv = [a.format(**paths) for a in argv]
    watched = paths[kept]
    before = snapshot(watched)
    error, printed = run_tool(tool, argv, monkeypatch, capsys)
    code = error.code if isinstance(error, SystemExit) else 1
    assert code not in (0, None), f'{tool} {argv} exited with status 0'
    message = f'{error}\n{printed}'
    assert named in message, message[-2000:]
    assert snapshot(watched) == before, f'{tool} changed {watched} before refusing {argv}'
    assert not osp.exists(osp.dirname(out)) or not os.listdir(osp.dirname(out)), f'{tool} wrote {out}'


def test_a_record_left_by_a_run_that_failed_before_its_first_output_does_not_block_the_rerun(tmp_path):
    from mmspectral.fileio import PROVENANCE_FILE, ProvenanceError, claim_folder
    folder = str(tmp_path / 'samples')
    claim_folder(folder, dict(sampling=dict(temperature=0.0)), has_outputs=False, what='samples')
    # the corrected run: no outputs beside the old record, so it is replaced rather than compared
    claim_folder(folder, dict(sampling=dict(temperature=1.0)), has_outputs=False, what='samples')
    with open(osp.join(folder, PROVENANCE_FILE)) as f:
        assert '1.0' in f.read()
    # a rank that does not write leaves the record to rank 0
    claim_folder(folder, dict(sampling=dict(temperature=2.0)), has_outputs=False, what='samples', write=False)
    with open(osp.join(folder, PROVENANCE_FILE)) as f:
        assert '1.0' in f.read()
    # with outputs, a different run is still refused: they would be mixed
    with pytest.raises(ProvenanceError, match='made differently'):
        claim_folder(folder, dict(sampling=dict(temperature=2.0)), has_outputs=True, what='samples')


@pytest.mark.parametrize('text,kind,problem', [
    ('{file}', 'folder', 'is an existing file, not a folder'),
    ('{file}/sub', 'folder', 'is a file, not a folder'),
    ('{folder}', 'file', 'is an existing folder'),
    ('{file}/x.json', 'file', 'is a file, not a folder'),
    ('', 'file', 'empty path'),
    ('{folder}/new/deeper', 'folder', None),
    ('{folder}/new.json', 'file', None),
])
def test_output_paths_are_checked_without_creating_anything(text, kind, problem, files):
    from mmspectral.cli import output_problem
    path = text.format(**files)
    before = snapshot(files['folder'])
    found = output_problem(path, folder=kind == 'folder')
    assert (found is None) if problem is None else (problem in found), found
    assert snapshot(files['folder']) == before


#: tools whose --help (and argument errors) answer before torch or the model code loads
LIGHT_TOOLS = ('tools/train.py', 'tools/test.py', 'tools/sample.py', 'tools/extract_tokens.py',
               'tools/codec.py', 'tools/misc/print_config.py', 'tools/analysis/rate_distortion.py')


@pytest.mark.parametrize('tool', LIGHT_TOOLS)
def test_help_answers_before_torch_loads(tool, repo_root, subprocess_env):
    """`--help` of a light tool imports no torch (the import alone takes seconds on a laptop)."""
    probe = ('import contextlib, io, runpy, sys\n'
             f'sys.argv = [{tool!r}, "--help"]\n'
             'out = io.StringIO()\n'
             'try:\n'
             '    with contextlib.redirect_stdout(out):\n'
             f'        runpy.run_path({tool!r}, run_name="__main__")\n'
             'except SystemExit:\n'
             '    pass\n'
             'print("usage" in out.getvalue(), "torch" in sys.modules)\n')
    done = subprocess.run([sys.executable, '-c', probe], cwd=repo_root, env=subprocess_env,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ['True', 'False'], done.stdout + done.stderr
