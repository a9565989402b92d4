"""The OpenMMLab-style tools: get_flops (FLOPs grow with the tokens as the linear layers say), analyze_logs
(resumed runs read as one curve, validation records placed at their iteration, torn lines skipped) and
browse_dataset (the pipeline beside its low-pass targets)."""
import json
import os.path as osp

import pytest
from cli import run_cli

from mmspectral.analysis import logs

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOKENIZER = osp.join(REPO_ROOT, 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py')
GENERATOR = osp.join(REPO_ROOT, 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py')


def get_flops(argv):
    return run_cli('tools/analysis/get_flops.py', argv)


def analyze_logs(argv):
    return run_cli('tools/analysis/analyze_logs.py', argv)


def browse_dataset(argv):
    return run_cli('tools/visualization/browse_dataset.py', argv)


def test_get_flops_counts_grow_with_the_tokens(capsys):
    rows = {name: (flops, params) for name, flops, params, _ in get_flops([GENERATOR])}
    flops16, params = rows['generator forward (16 tokens)']
    assert params == 5138448  # the generator alone (configs/spectralar/metafile.yml)
    half = ['model.generator.num_tokens=8', 'model.tokenizer.num_tokens=8']
    rows8 = {name: flops for name, flops, _, _ in get_flops([GENERATOR, '--cfg-options', *half])}
    # token-wise linear layers dominate; the per-image AdaLN projections do not grow with the tokens
    assert 1.85 < flops16 / rows8['generator forward (8 tokens)'] < 2.0
    tok_rows = {name: (flops, params) for name, flops, params, _ in get_flops([TOKENIZER, '--table'])}
    enc = tok_rows['tokenizer encoder (image -> latents)']
    dec = tok_rows['tokenizer decoder (latents -> image)']
    assert enc[0] > 0 and dec[0] > enc[0]  # the convolutional head up-samples to 64 px
    out = capsys.readouterr().out
    assert '| network | parameters | GFLOPs |' in out and 'decoder.conv_head' in out


def write_run(folder, records):
    path = folder / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return path


def test_analyze_logs_reads_resumed_runs_as_one_curve(tmp_path, capsys):
    work = tmp_path / 'work'
    write_run(work / '20260101_000000', [dict(lr=1e-3, iter=100, step=100, loss=3.0, time=0.1),
                                         dict(lr=1e-3, iter=200, step=200, loss=2.0, time=0.1),
                                         dict(step=0, psnr=15.0)])
    first = write_run(work / '20260101_010000', [dict(lr=1e-3, iter=200, step=200, loss=1.9, time=0.3),
                                                 dict(lr=1e-3, iter=300, step=300, loss=1.5, time=0.3),
                                                 dict(step=0, psnr=17.0)])
    with open(first, 'a') as f:
        f.write('{"lr": 0.001, "iter": 4')  # a run killed while writing
    records = logs.read_records(str(work))
    assert logs.curve(records, 'loss') == ([100, 200, 300], [3.0, 1.9, 1.5])  # the resumed step wins
    assert logs.curve(records, 'psnr') == ([200, 300], [15.0, 17.0])  # at the iteration before it
    assert 'torn line' in capsys.readouterr().err
    other = write_run(tmp_path / 'other' / 'run', [dict(lr=1e-3, iter=100, step=100, loss=2.5, time=0.2)])
    out = tmp_path / 'curves.png'
    analyze_logs(['plot_curve', str(work), str(other), '--keys', 'loss', 'psnr', '--out', str(out)])
    assert out.stat().st_size > 0
    with pytest.raises(SystemExit, match="No run logged 'acc'; the logs have: .*loss"):
        analyze_logs(['plot_curve', str(work), '--keys', 'acc', '--out', str(out)])
    analyze_logs(['cal_train_time', str(work)])
    assert '0.2000 s/iter on average' in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='neither a scalars.json file nor a work dir'):
        logs.read_records(str(tmp_path / 'missing'))
    assert logs.short_names(['a/seed0/tok', 'a/seed1/tok']) == ['seed0/tok', 'seed1/tok']


def test_browse_dataset_draws_the_targets(tmp_path):
    import matplotlib.image as mpimg
    out = browse_dataset([TOKENIZER, '--num-images', '2', '--prefixes', '1', '8', '16',
                          '--out', str(tmp_path / 'browse.png')])
    image = mpimg.imread(out)
    assert image.shape[1] > image.shape[0] and image[..., :3].std() > 0.05  # 4 columns, not blank
    with pytest.raises(SystemExit, match='outside 1..16'):
        browse_dataset([TOKENIZER, '--prefixes', '17', '--out', str(tmp_path / 'x.png')])
