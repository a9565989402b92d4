"""The tiny spectral tokenizer config trains, validates, draws its pictures and tests, through the tools."""
import os
import re
import sys

import cv2
import pytest
from conftest import run_launch

CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
SMALL = ['model.tokenizer.width=32', 'model.tokenizer.depth=1', 'model.tokenizer.num_heads=2',
         'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         'val_dataloader.dataset.num_samples=8', 'val_dataloader.batch_size=4',
         'val_dataloader.num_workers=0',
         'test_dataloader.dataset.num_samples=8', 'test_dataloader.batch_size=4',
         'test_dataloader.num_workers=0',
         'train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.logger.interval=2']


def run(args, env, cwd):
    return run_launch(args, env, cwd, timeout=600)


@pytest.mark.slow
def test_tiny_tokenizer_trains_validates_and_tests(tmp_path, repo_root, subprocess_env):
    work = tmp_path / 'work'
    log = run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), '--cfg-options', *SMALL],
              subprocess_env, repo_root)
    for key in ('recon/psnr_lowpass/k1', 'recon/psnr_full/k16', 'recon/ssim', 'recon/codebook_usage'):
        assert key in log
    for name in ('val_reconstructions.png', 'val_psnr_vs_k.png'):
        img = cv2.imread(str(work / 'vis' / name))
        assert img is not None and img.shape[0] > 100
    # The same pictures went through MMEngine's visualizer backends (local files, TensorBoard events).
    vis_data = [os.path.join(d, f) for d, _, files in os.walk(work) for f in files]
    assert any('vis_image' in p and 'val_reconstructions' in p for p in vis_data)
    assert any('events.out.tfevents' in p for p in vis_data)
    log = run([sys.executable, 'tools/test.py', CONFIG, str(work / 'iter_4.pth'), '--work-dir',
               str(tmp_path / 't'), '--cfg-options', *SMALL], subprocess_env, repo_root)
    assert re.search(r'recon/psnr: \d', log)


@pytest.mark.slow
def test_gan_recipe_trains_on_two_processes(tmp_path, repo_root, subprocess_env, free_port):
    """Generator and discriminator steps under separate DDP wrappers (gloo, 2 CPU processes), then resume."""
    config = 'tests/data/tiny_gan_tokenizer_config.py'
    env = dict(subprocess_env, PYTHON=sys.executable, PORT=str(free_port))
    log = run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(tmp_path)], env, repo_root)
    assert 'rank 1 of 2' in log
    steps = re.findall(r'Iter\(train\) \[\d/4\].*', log)
    assert len(steps) == 4 and all('loss_disc' in s and 'loss_gan' in s for s in steps)
    assert 'recon/psnr' in log and os.path.isfile(tmp_path / 'iter_4.pth')
    log = run([sys.executable, 'tools/train.py', config, '--work-dir', str(tmp_path), '--resume',
               '--cfg-options', 'train_cfg.max_iters=5'], subprocess_env, repo_root)
    assert 'resumed epoch: 0, iter: 4' in log and 'Iter(train) [5/5]' in log
