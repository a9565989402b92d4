"""The README's main job, end to end with shortened stages: every stage runs, writes its outputs, and a second
run continues instead of starting over."""
import json
import os
import subprocess
import sys

import pytest

SHORT = dict(TOKENIZER_ITERS='12', GENERATOR_ITERS='12', NUM_TRAIN_IMAGES='60', NUM_VAL_IMAGES='20',
             SAMPLES_PER_CLASS='1', ACCURACY_PER_CLASS='2')


def quickstart(work_dir, env, repo_root):
    env = dict(env, WORK_DIR=str(work_dir), MMSPECTRAL_USE_PYTHON=sys.executable, OMP_NUM_THREADS='2',
               **SHORT)
    proc = subprocess.run(['bash', 'tools/quickstart.sh'], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def test_quickstart_refuses_the_work_dir_of_another_pipeline(tmp_path, subprocess_env, repo_root):
    """Finished stages are skipped, so the work dir of an earlier quick start (other classes) is refused."""
    env = dict(subprocess_env, MMSPECTRAL_USE_PYTHON=sys.executable, **SHORT)
    (tmp_path / 'old' / 'tokenizer').mkdir(parents=True)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'quickstart_pipeline.txt').write_text('EmbeddedShapes class_set=fine\n')
    for name in ('old', 'other'):
        proc = subprocess.run(['bash', 'tools/quickstart.sh'], cwd=repo_root, capture_output=True, text=True,
                              env=dict(env, WORK_DIR=str(tmp_path / name)), timeout=300)
        assert proc.returncode == 2 and 'another WORK_DIR' in proc.stderr, proc.stderr
        assert '1/5' not in proc.stdout


@pytest.mark.slow
def test_quickstart_runs_every_stage_and_continues(tmp_path, subprocess_env, repo_root):
    out = quickstart(tmp_path, subprocess_env, repo_root)
    for stage in range(1, 6):
        assert f'[quickstart] {stage}/5' in out
    for name in ('class_grid.png', 'progression.png', 'tokenizer_reconstructions.png',
                 'tokenizer_psnr_vs_k.png', 'spectral_embedded_class1.png', 'tokenizer/iter_12.pth',
                 'generator/iter_12.pth'):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert 'recon/psnr_lowpass/k1' in metrics['tokenizer'] and 'tokens/acc' in metrics['generator']
    acc = metrics['class_accuracy']
    assert acc['num_classes'] == 10 and acc['class_set'] == 'coarse'
    assert 0.0 <= acc['generated_samples'] <= 1.0
    assert acc['real_images'] > 0.9  # the judge itself recognises real images
    fidelity = metrics['tokenizer_fidelity']
    assert fidelity['blockiness'] > 0 and 0.8 < fidelity['blockiness_real_images'] < 1.2
    assert 0 <= fidelity['object_colour_error'] < 1.8 and fidelity['num_images'] == 10 * acc['per_class']
    progression = metrics['progression']
    for name in ('samples', 'lowpass_targets'):
        assert len(progression[name]['step_change']) == 15  # k = 1 -> 2 up to 15 -> 16
        assert 0 <= progression[name]['visible_steps'] <= 15
    # The real images' targets keep changing up to the full image under the eq. 9 schedule at 16 tokens.
    assert progression['lowpass_targets']['visible_steps'] == 15 and progression['omegas'][-1] == 64
    assert set(metrics['stage_seconds']) == {'spectral_figures', 'tokenizer', 'token_extraction', 'generator',
                                             'sampling'}
    # the two models as folders that load without the checkpoints
    from mmspectral.apis import generate, init_generator, init_tokenizer, reconstruct
    tok = init_tokenizer(str(tmp_path / 'models' / 'tokenizer'))
    gen = init_generator(str(tmp_path / 'models' / 'generator'))
    assert gen.class_names[:2] == ('disk', 'ring')
    assert reconstruct(tok, generate(gen, [0, 1], seed=0)).shape == (2, 3, 64, 64)
    card = (tmp_path / 'models' / 'generator' / 'README.md').read_text()
    assert 'class_accuracy/generated_samples' in card and 'bash tools/quickstart.sh' in card
    meta = json.loads((tmp_path / 'tokens' / 'train' / 'meta.json').read_text())
    assert meta['complete'] and meta['num_images'] == 60 and meta['classes'][:3] == ['disk', 'ring', 'hbar']

    # Again: the trained stages are skipped, the figures and metrics rewritten from the same checkpoints.
    stamp = os.path.getmtime(tmp_path / 'generator' / 'iter_12.pth')
    out = quickstart(tmp_path, subprocess_env, repo_root)
    assert out.count('exists; skipping') == 2
    assert 'class_set=coarse' in (tmp_path / 'quickstart_pipeline.txt').read_text()
    assert os.path.getmtime(tmp_path / 'generator' / 'iter_12.pth') == stamp
