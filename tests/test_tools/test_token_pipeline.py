"""Token extraction -> TokenDataset -> generator training -> class-balanced sampling, through the real
tools."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli import load_cli, run_cli
from conftest import run_launch

from mmspectral.datasets import TokenDataset
from mmspectral.models import GeneratorModel, TokenizerModel

TOKENIZER_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR_CONFIG = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
SMALL_TOKENIZER = dict(width=32, depth=1, num_heads=2)


def run(args, env, cwd, timeout=600):
    return run_launch(args, env, cwd, timeout=timeout)


def small_tokenizer_options():
    return [f'model.tokenizer.{k}={v}' for k, v in SMALL_TOKENIZER.items()]


@pytest.fixture(scope='module')
def tokenizer_checkpoint(tmp_path_factory):
    """A tiny TokenizerModel saved the way the Runner saves it."""
    from mmspectral.apis import load_config
    cfg = load_config(TOKENIZER_CONFIG)
    cfg.model.tokenizer.update(SMALL_TOKENIZER)
    torch.manual_seed(0)
    model = TokenizerModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    path = tmp_path_factory.mktemp('tok') / 'tokenizer.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=1)), path)
    return str(path)


def extract(out, ckpt, env, repo_root, n=24, extra=(), launcher=None):
    args = [sys.executable, 'tools/extract_tokens.py', TOKENIZER_CONFIG, ckpt, '--out', str(out), '--augment',
            'flip', '--batch-size', '5', '--num-workers', '0', '--cfg-options',
            f'train_dataloader.dataset.num_samples={n}', *small_tokenizer_options(), *extra]
    if launcher:
        args = ['bash', '-c', f'{sys.executable} -m torch.distributed.run --nproc_per_node 2 --master_port '
                f'{launcher} ' + ' '.join(args[1:]) + ' --launcher pytorch']
    return run(args, env, repo_root)


@pytest.mark.slow
def test_extraction_is_sharded_resumable_and_read_back(tmp_path, repo_root, subprocess_env,
                                                       tokenizer_checkpoint, free_port):
    single = tmp_path / 'single'
    extract(single, tokenizer_checkpoint, subprocess_env, repo_root)
    meta = json.load(open(single / 'meta.json'))
    assert meta['complete'] and meta['num_images'] == 24 and meta['num_variants'] == 2
    ds = TokenDataset(str(single), variant='first', test_mode=True)
    assert len(ds) == 24 and ds[0]['inputs'].shape == (16,) and ds[0]['inputs'].dtype == torch.long
    labels = sorted(int(ds[i]['data_samples'].gt_label) for i in range(24))
    assert labels == sorted(i % 10 for i in range(24))
    # The flip variant is the tokens of the flipped image, not a copy.
    both = np.load(single / 'shard000-of-001_tokens.npy')
    assert both.shape == (24, 2, 16) and (both[:, 0] != both[:, 1]).any()

    # Two processes give exactly the same token for every image.
    sharded = tmp_path / 'sharded'
    extract(sharded, tokenizer_checkpoint, subprocess_env, repo_root, launcher=free_port)
    a = TokenDataset(str(single), variant='first', test_mode=True)
    b = TokenDataset(str(sharded), variant='first', test_mode=True)
    rows_b = {(info['shard'], info['row']): info['tokens'] for info in map(b.get_data_info, range(len(b)))}
    for i in range(24):  # image i sits in shard i % 2, row i // 2 of the sharded run
        assert np.array_equal(a.get_data_info(i)['tokens'], rows_b[(i % 2, i // 2)])

    # An interrupted run: marks removed for half of the images are redone, the rest skipped.
    done = np.load(single / 'shard000-of-001_done.npy', mmap_mode='r+')
    done[12:] = False
    done.flush()
    meta['complete'] = False
    json.dump(meta, open(single / 'meta.json', 'w'))
    with pytest.raises(RuntimeError, match='unfinished'):
        TokenDataset(str(single))
    log = extract(single, tokenizer_checkpoint, subprocess_env, repo_root)
    assert '12 already done' in log and json.load(open(single / 'meta.json'))['complete']
    with pytest.raises(ValueError, match='num_tokens=16 but the model expects 64'):
        TokenDataset(str(single), expected_num_tokens=64)

    # A half-done folder is never resumed with another tokenizer checkpoint or other data; nothing is
    # written.
    done[12:] = False
    done.flush()
    other = tmp_path / 'other_tokenizer.pth'
    ckpt = torch.load(tokenizer_checkpoint, weights_only=True)
    ckpt['state_dict'] = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt['state_dict'].items()}
    torch.save(ckpt, other)
    before = np.load(single / 'shard000-of-001_tokens.npy').copy()
    for ckpt_path, extra, named in ((str(other), (), 'checkpoint.sha256'),
                                    (tokenizer_checkpoint, ('train_dataloader.dataset.class_set=fine', ),
                                     'dataset.class_set')):
        args = [sys.executable, 'tools/extract_tokens.py', TOKENIZER_CONFIG, ckpt_path, '--out', str(single),
                '--augment', 'flip', '--num-workers', '0', '--cfg-options',
                'train_dataloader.dataset.num_samples=24', *small_tokenizer_options(), *extra]
        out = subprocess.run(args, cwd=repo_root, env=subprocess_env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 1 and 'made differently from this run' in out.stderr, out.stderr[-2000:]
        assert named in out.stderr
    assert np.array_equal(np.load(single / 'shard000-of-001_tokens.npy'), before)


@pytest.mark.slow
def test_generator_trains_on_tokens_and_samples_balanced_classes(tmp_path, repo_root, subprocess_env,
                                                                 tokenizer_checkpoint, free_port):
    tokens = tmp_path / 'tokens'
    extract(tokens, tokenizer_checkpoint, subprocess_env, repo_root, n=40)
    common = [f'model.tokenizer_checkpoint={tokenizer_checkpoint}', *small_tokenizer_options(),
              'model.generator.depth=1', 'model.generator.width=32', 'model.generator.num_heads=2',
              f'train_dataloader.dataset.data_root={tokens}', f'val_dataloader.dataset.data_root={tokens}',
              f'test_dataloader.dataset.data_root={tokens}', 'train_dataloader.batch_size=8',
              'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
    work = tmp_path / 'gen'
    log = run([sys.executable, 'tools/train.py', GENERATOR_CONFIG, '--work-dir', str(work), '--cfg-options',
               *common, 'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
               'default_hooks.logger.interval=2'],
              subprocess_env, repo_root)
    assert 'loss_ce' in log and 'acc_pos1-2' in log and 'tokens/ce_pos13-16' in log
    ckpt = str(work / 'iter_6.pth')
    sample = [sys.executable, 'tools/sample.py', GENERATOR_CONFIG, ckpt, '--per-class', '2', '--num-classes',
              '3', '--batch-size', '4', '--cfg-options', *common]
    run(sample + ['--out', str(tmp_path / 's1')], subprocess_env, repo_root)
    npz = np.load(tmp_path / 's1' / 'samples_6x64x64x3.npz')
    assert npz['arr_0'].shape == (6, 64, 64, 3) and npz['arr_0'].dtype == np.uint8
    assert npz['labels'].tolist() == [0, 0, 1, 1, 2, 2]
    # Two processes write the same images; a finished batch is not sampled again.
    run(['bash', '-c',
         f'{sys.executable} -m torch.distributed.run --nproc_per_node 2 --master_port {free_port} '
         + ' '.join(sample[1:]) + f' --out {tmp_path / "s2"} --launcher pytorch'], subprocess_env, repo_root)
    assert np.array_equal(np.load(tmp_path / 's2' / 'samples_6x64x64x3.npz')['arr_0'], npz['arr_0'])
    log = run(sample + ['--out', str(tmp_path / 's1')], subprocess_env, repo_root)
    assert '2 batches of this rank already done' in log
    # ... but never with other settings (or another checkpoint), and impossible counts are refused early
    for extra, named in ((['--seed', '1'], 'seed: 0 in the folder, 1 now'),
                         (['--bf16'], 'precision: "fp32" in the folder, "bf16" now'),
                         (['--num-classes', '11'], 'label 10 is the guidance null class')):
        out = subprocess.run(sample + ['--out', str(tmp_path / 's1'), *extra], cwd=repo_root,
                             env=subprocess_env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 1 and named in out.stderr, out.stderr[-2000:]
    # bf16 sampling (a bf16 copy of the generator, decoding under autocast) writes the same kind of samples.
    run(sample + ['--out', str(tmp_path / 's_bf16'), '--bf16'], subprocess_env, repo_root)
    bf16 = np.load(tmp_path / 's_bf16' / 'samples_6x64x64x3.npz')
    assert bf16['arr_0'].shape == (6, 64, 64, 3) and bf16['labels'].tolist() == [0, 0, 1, 1, 2, 2]
    # Table 3's super-resolution rows: the same samples at twice the size, as an ADM npz (the bicubic
    # baseline: the PNG samples above up-sampled; the spectral rows share its first draws and are checked
    # in-process).
    from mmspectral.spectral import upsample
    run(sample + ['--out', str(tmp_path / 'sr_bicubic'), '--super-resolve', 'bicubic'], subprocess_env,
        repo_root)
    big = np.load(tmp_path / 'sr_bicubic' / 'samples_6x128x128x3.npz')
    expected = upsample(torch.from_numpy(npz['arr_0']).permute(0, 3, 1, 2).float() / 255, 128)
    expected = (expected * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(big['arr_0'].astype(int) - expected).max() <= 1
    assert big['labels'].tolist() == [0, 0, 1, 1, 2, 2]


def test_generator_model_checks_the_tokenizer(tokenizer_checkpoint):
    from mmspectral.apis import load_config
    cfg = load_config(GENERATOR_CONFIG)
    cfg.model.tokenizer.update(SMALL_TOKENIZER)
    cfg.model.tokenizer_checkpoint = tokenizer_checkpoint
    cfg.model.generator.update(depth=1, width=32, num_heads=2, num_tokens=8)
    with pytest.raises(ValueError, match='num_tokens=8 but the tokenizer has num_tokens=16'):
        GeneratorModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    cfg.model.generator.num_tokens = 16
    model = GeneratorModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    assert not any(k.startswith('tokenizer.') for k in model.state_dict())  # frozen, not checkpointed
    out = model.sample(torch.tensor([0, 9]), seed=0)
    assert out['tokens'].shape == (2, 16) and out['images'].shape == (2, 3, 64, 64)
    assert out['images'].min() >= 0 and out['images'].max() <= 1


def test_applications(tokenizer_checkpoint):
    from mmspectral.apis import load_config
    cfg = load_config(GENERATOR_CONFIG)
    cfg.model.tokenizer.update(SMALL_TOKENIZER)
    cfg.model.tokenizer_checkpoint = tokenizer_checkpoint
    cfg.model.generator.update(depth=1, width=32, num_heads=2)
    torch.manual_seed(0)
    model = GeneratorModel(**{k: v for k, v in cfg.model.items() if k != 'type'}).eval()
    labels = torch.tensor([1, 4])
    # Coarse-to-fine: one decoded image per step, the last equal to decoding the sample.
    prog = model.progression(labels, seed=1)
    assert [k for k, _ in prog['steps']] == list(range(1, 17))
    assert torch.allclose(prog['steps'][-1][1], model.decode(prog['tokens']), atol=1e-6)
    # Truncation keeps a prefix of the full sample.
    assert torch.equal(model.sample(labels, seed=1, num_tokens=11)['tokens'], prog['tokens'][:, :11])
    images = torch.rand(2, 3, 64, 64)
    var = model.variations(images, labels, keep=5, num=3, seed=2)
    assert var.shape == (2, 3, 3, 64, 64)
    # Super-resolution as the paper builds it: the sub-images of the 64 px image, up-sampled to 64 px, keep
    # the tokens of the band they hold (w_k <= 32), the generator completes them, and the results are
    # reassembled.
    from mmspectral.spectral import split_subimages, upsample
    keep = model.super_resolution_prefix()
    assert keep == sum(w <= 32 for w in model.tokenizer.freq_schedule.omegas) and 1 <= keep < 16
    seen, generate = [], model.gen.generate
    model.gen.generate = lambda *a, **kw: seen.append((kw['prefix'], generate(*a, **kw))) or seen[-1][1]
    for mode in ('stride', 'patch'):
        big = model.super_resolve(images, labels, mode=mode, seed=3)
        assert big.shape == (2, 3, 128, 128) and 0 <= big.min() and big.max() <= 1
        prefix, tokens = seen[-1]
        subs = split_subimages(images, mode)  # (2, 4, 3, 64, 64)
        assert torch.equal(prefix, model.encode(subs.flatten(0, 1), keep))
        assert torch.equal(tokens[:, :keep], prefix) and tokens.shape == (8, 16)
        torch.testing.assert_close(split_subimages(big, mode, size=64),
                                   model.decode(tokens).view(2, 4, 3, 64, 64))
    model.gen.generate = generate
    torch.testing.assert_close(model.super_resolve(images, labels, mode='bicubic'), upsample(images, 128))
    with pytest.raises(ValueError, match='stride'):
        model.super_resolve(images, labels, mode='tiles')


def test_tencrop_views_are_corner_and_centre_crops_and_their_flips():
    from mmspectral.apis.tokens import NUM_VARIANTS, augmented_views
    images = torch.rand(2, 3, 20, 20)
    assert [v.shape for v in augmented_views(images, 'none')] == [images.shape]
    flip = augmented_views(images, 'flip')
    assert torch.equal(flip[1], images.flip(-1))
    views = augmented_views(images, 'tencrop', crop_range=1.2)  # enlarged to 24 px
    assert len(views) == 10 and all(v.shape == images.shape for v in views)
    up = torch.nn.functional.interpolate(images, size=(24, 24), mode='bicubic', antialias=True,
                                         align_corners=False)
    assert torch.equal(views[0], up[..., :20, :20]) and torch.equal(views[3], up[..., 4:, 4:])
    assert torch.equal(views[4], up[..., 2:22, 2:22])
    for crop, flipped in zip(views[:5], views[5:]):
        assert torch.equal(flipped, crop.flip(-1))
    assert len({tuple(v.flatten()[:8].tolist()) for v in views}) == 10  # ten different views
    centre = augmented_views(images, 'tencrop', crop_range=1.0)[4]
    assert torch.allclose(centre, images, atol=1e-5)  # no enlargement: the crops are the image itself
    # the command line offers exactly these (it lists them before torch loads)
    assert list(load_cli('tools/extract_tokens.py').AUGMENTS) == sorted(NUM_VARIANTS)
    assert [len(augmented_views(images, a)) for a in sorted(NUM_VARIANTS)] == \
        [NUM_VARIANTS[a] for a in sorted(NUM_VARIANTS)]


def test_sample_tool_refuses_impossible_counts_before_loading(tmp_path, capsys, repo_root):
    ckpt = tmp_path / 'generator.pth'
    ckpt.write_bytes(b'')  # never read: the arguments are refused first
    config = f'{repo_root}/configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
    good = dict(per_class=2, batch_size=4, num_classes=None, checkpoint=str(ckpt), super_resolve=None,
                num_tokens=None)
    for change, named in ((dict(per_class=0), '--per-class: must be an integer >= 1'),
                          (dict(batch_size=-2), '--batch-size: must be an integer >= 1'),
                          (dict(num_classes=0), '--num-classes: must be an integer >= 1'),
                          (dict(checkpoint=str(tmp_path / 'absent.pth')), 'absent.pth'),
                          (dict(super_resolve='stride', num_tokens=4), 'drop --num-tokens')):
        args = dict(good, **change)
        argv = [config, args.pop('checkpoint'), '--out', tmp_path / 'out']
        argv += [x for k, v in args.items() if v is not None for x in (f'--{k.replace("_", "-")}', v)]
        with pytest.raises(SystemExit) as info:
            run_cli('tools/sample.py', argv)
        assert info.value.code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_sample_tool_takes_a_model_folder(codec_models, tmp_path, capsys, repo_root):
    """A model folder draws the same images as the config and checkpoint it was published from, from any
    working directory; a wrong model argument is one line before anything loads."""
    import cv2
    from tiny_models import GENERATOR_CONFIG

    from mmspectral.apis import save_pretrained
    folder = str(tmp_path / 'folder')
    save_pretrained(codec_models['model'], folder)
    config = osp.join(repo_root, GENERATOR_CONFIG)
    options = ['--cfg-options', f'model.tokenizer_checkpoint={codec_models["tok_ckpt"]}']
    common = ['--per-class', 1, '--num-classes', 2, '--batch-size', 2, '--no-npz']
    run_cli('tools/sample.py', [config, codec_models['gen_ckpt'], '--out', tmp_path / 'a'] + common + options)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)  # not the repository root
        run_cli('tools/sample.py', [folder, '--out', tmp_path / 'b'] + common)
    finally:
        os.chdir(cwd)
    for name in sorted(os.listdir(tmp_path / 'a' / 'images')):
        assert (cv2.imread(str(tmp_path / 'a' / 'images' / name)) ==
                cv2.imread(str(tmp_path / 'b' / 'images' / name))).all()
    for argv, named in (([folder, codec_models['gen_ckpt']], 'holds its weights: drop'),
                        ([config], 'pass the checkpoint training wrote'),
                        ([str(tmp_path)], 'no model folder'),
                        ([str(tmp_path / 'absent')], 'does not exist'),
                        (['org/name', codec_models['gen_ckpt']], 'read as a hub id'),
                        ([config, str(tmp_path / 'absent.pth')], 'absent.pth does not exist')):
        for tool, out in (('tools/sample.py', '--out'),
                          ('tools/analysis/visualize_generation.py', '--out-dir'),
                          ('tools/analysis/shapes_class_accuracy.py', '--out'),
                          ('tools/analysis/ablation_row_metrics.py', '--out')):
            extra = ['--probe', codec_models['gen_ckpt']] if 'ablation' in tool else []
            with pytest.raises(SystemExit) as info:
                run_cli(tool, argv + [out, tmp_path / 'c' / 'x.json'] + extra)
            assert info.value.code == 2 and named in capsys.readouterr().err, tool
