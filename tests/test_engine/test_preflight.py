"""Bad input fails before the run starts, with what is wrong and what to do (mmspectral.engine.preflight)."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmspectral.apis import load_config
from mmspectral.engine import (CheckpointLoadError, ConfigCheckError, check_checkpoint_fits, check_config,
                               check_runner_checkpoint)
from mmspectral.registry import TOKENIZERS
from mmspectral.utils import build_component
from mmspectral.utils.build import UnknownArgumentError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER_CFG = os.path.join(REPO, 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py')
GENERATOR_CFG = os.path.join(REPO, 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py')
AUTOENCODER_CFG = os.path.join(REPO, 'tests/data/tiny_autoencoder_config.py')
LOADER = ("pipeline=[dict(type='LoadImage'), dict(type='RandomCrop', crop_size=64), "
          "dict(type='PackImageInputs')]")


def config(tmp_path, base, body='', name='cfg.py'):
    """A config over ``base`` with ``body`` appended, written to ``tmp_path`` and loaded."""
    path = tmp_path / name
    path.write_text(f'_base_ = [{base!r}]\n{body}\n')
    return load_config(str(path))


def problems(cfg, mode='train'):
    with pytest.raises(ConfigCheckError) as info:
        check_config(cfg, mode)
    return str(info.value)


@pytest.fixture
def tokens(tmp_path):
    """A folder of extracted tokens as tools/extract_tokens.py leaves it (only its meta.json is read)."""
    root = tmp_path / 'tokens'
    root.mkdir()
    meta = dict(num_tokens=16, vocab_size=512, complete=True, world_size=1)
    (root / 'meta.json').write_text(json.dumps(meta))
    return root


@pytest.fixture
def generator_cfg(tmp_path, tokens):
    """The tiny generator config with a tokenizer checkpoint file and token folders that exist."""
    ckpt = tmp_path / 'tokenizer.pth'
    ckpt.write_bytes(b'')
    return lambda body='': config(tmp_path, GENERATOR_CFG, f"""
model = dict(tokenizer_checkpoint={str(ckpt)!r})
train_dataloader = dict(dataset=dict(data_root={str(tokens)!r}))
val_dataloader = dict(dataset=dict(data_root={str(tokens)!r}))
{body}""")


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / 'images'
    for name in ('cat', 'dog'):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / '0.png'), np.zeros((64, 64, 3), np.uint8))
    return root


def test_good_configs_pass(tmp_path, generator_cfg):
    for path in (TOKENIZER_CFG, AUTOENCODER_CFG):
        check_config(load_config(path))  # base-file variables such as tiny_tokenizer are not flagged
    check_config(generator_cfg())


def test_unknown_top_level_keys_and_arguments(tmp_path):
    text = problems(config(tmp_path, TOKENIZER_CFG, """
train_dataloder = dict(batch_size=2)
lr_config = dict(policy='step')
model = dict(tokenizer=dict(widht=32))
train_cfg = dict(max_iter=10)
"""))
    assert "train_dataloder: unknown top-level key; did you mean 'train_dataloader'?" in text
    assert 'Rename it' in text
    assert 'lr_config: an MMCV 1.x key' in text and 'Use param_scheduler' in text
    assert ("model.tokenizer.widht: NestedSpectralTokenizer takes no argument 'widht'. Did you mean 'width'?"
            in text)
    assert ("train_cfg.max_iter: IterBasedTrainLoop takes no argument 'max_iter'. Did you mean 'max_iters'"
            in text)
    assert text.startswith('4 problems')  # every problem at once, not the first one only


def test_unknown_argument_at_build_time_names_close_arguments():
    with pytest.raises(UnknownArgumentError, match="takes no argument 'widht'. Did you mean 'width'"):
        build_component(dict(type='NestedSpectralTokenizer', widht=32), TOKENIZERS)


def test_schedule_that_does_not_fit_the_tokens(tmp_path):
    text = problems(config(tmp_path, TOKENIZER_CFG,
                           "model = dict(tokenizer=dict(freq_schedule=dict(type='UniformFreqSchedule', "
                           'num_tokens=8)))'))
    assert 'model.tokenizer.freq_schedule: The frequency schedule has num_tokens=8 but the model uses ' \
           'num_tokens=16; drop num_tokens from the schedule config or make them agree' in text
    text = problems(config(tmp_path, TOKENIZER_CFG, 'model = dict(tokenizer=dict(num_tokens=32))'))
    assert 'NonUniformFreqSchedule cannot place num_tokens=32 at image_size=64' in text
    assert 'Use fewer tokens' in text


def test_image_size_not_divisible_by_patch_size_and_dataset_size(tmp_path):
    text = problems(config(tmp_path, TOKENIZER_CFG, 'model = dict(tokenizer=dict(patch_size=12))'))
    assert 'image_size=64 is not divisible by patch_size=12' in text and 'Use image_size 60 or 72' in text
    text = problems(config(tmp_path, TOKENIZER_CFG, 'train_dataloader = dict(dataset=dict(image_size=32))'))
    assert 'train_dataloader.dataset gives 32x32 images but model.tokenizer.image_size=64' in text
    assert 'Make them agree' in text


def test_generator_and_tokenizer_disagree(generator_cfg):
    text = problems(generator_cfg('model = dict(generator=dict(vocab_size=1024, num_tokens=32))'))
    assert 'model.generator.vocab_size=1024 but the tokenizer (model.tokenizer) has vocab_size=512. Set ' \
           'model.generator.vocab_size=512' in text
    assert 'model.generator.num_tokens=32 but the tokenizer (model.tokenizer) has num_tokens=16' in text
    # the extracted tokens disagree as well: they came from another tokenizer
    assert ('have vocab_size=512 but model.generator.vocab_size=1024: they were extracted with another '
            'tokenizer' in text)


def test_missing_weight_files_and_urls(tmp_path, generator_cfg):
    missing = "model = dict(tokenizer_checkpoint='no/such/tokenizer.pth')"
    text = problems(config(tmp_path, GENERATOR_CFG, missing), 'model')
    assert "model.tokenizer_checkpoint='no/such/tokenizer.pth': no such file" in text
    assert 'train one first (tools/train.py TOKENIZER_CONFIG)' in text
    text = problems(config(tmp_path, TOKENIZER_CFG, """
load_from = 'https://example.com/iter_1.pth'
model = dict(perceptual_loss=dict(type='ConvNeXtPerceptualLoss', weights_path='no/convnext.pth'))
"""))
    assert 'would be downloaded, and mmspectral never downloads at run time. Download the file' in text
    assert "model.perceptual_loss.weights_path='no/convnext.pth': no such file" in text


def test_files_are_checked_where_a_component_declares_them(tmp_path):
    """Paths are found through the classes' ``path_arguments`` (and component_checks.py for MMEngine's), not a
    list of key names: a declared key anywhere is checked with its hint, an undeclared one is left alone."""
    from mmengine.model import BaseModule

    from mmspectral.registry import MODELS

    @MODELS.register_module(force=True)
    class DeclaresItsFile(BaseModule):
        path_arguments = {'table': 'It is the table made by my_tool.py.'}

        def __init__(self, table=None, notes=None, init_cfg=None):
            super().__init__(init_cfg)

    try:
        text = problems(config(tmp_path, TOKENIZER_CFG, """
model = dict(perceptual_loss=dict(type='LPIPSLoss', vgg_weights_path='no/vgg.pth', lpips_weights_path=None),
             extra_part=dict(type='DeclaresItsFile', table='no/table.npz', notes='no/notes.txt',
                             init_cfg=dict(type='Pretrained', checkpoint='no/init.pth')))
val_evaluator = dict(extractor=dict(type='ShapesProbe', checkpoint='http://x/probe.pth'))
""", name='paths.py'), 'model')
    finally:
        MODELS.module_dict.pop('DeclaresItsFile')
    assert "model.perceptual_loss.vgg_weights_path='no/vgg.pth': no such file" in text
    assert "It is torchvision's vgg16-397923af.pth" in text
    assert "model.extra_part.table='no/table.npz': no such file" in text and 'made by my_tool.py' in text
    assert "model.extra_part.init_cfg.checkpoint='no/init.pth': no such file" in text
    assert 'notes' not in text  # not declared: not a path
    assert 'lpips_weights_path' not in text  # None: the loss decides what that means
    assert "'http://x/probe.pth'" not in text  # the evaluator is not a section of a 'model' check
    text = problems(config(tmp_path, TOKENIZER_CFG, """
val_evaluator = dict(extractor=dict(type='ShapesProbe', checkpoint='http://x/probe.pth'))
val_cfg = dict(type='ValLoop')
""", name='probe.py'))
    assert "val_evaluator.extractor.checkpoint='http://x/probe.pth' would be downloaded" in text


def test_data_roots(tmp_path, image_root, generator_cfg):
    def folder(split, root):
        return (f"{split} = dict(dataset=dict(_delete_=True, type='ImageFolderDataset', "
                f'data_root={str(root)!r}, {LOADER}))\n')

    check_config(config(tmp_path, TOKENIZER_CFG, folder('train_dataloader', image_root) +
                        folder('val_dataloader', image_root)))
    text = problems(config(tmp_path, TOKENIZER_CFG, folder('train_dataloader', tmp_path / 'nope')))
    assert "nope/' (data_root + data_prefix['img_path']) does not exist" in text
    assert 'Set data_root (and data_prefix) to where the images are' in text
    (tmp_path / 'empty' / 'cat').mkdir(parents=True)
    text = problems(config(tmp_path, TOKENIZER_CFG, folder('train_dataloader', tmp_path / 'empty')))
    assert 'holds no images' in text and 'Expected <root>/<class>/<image>' in text
    text = problems(generator_cfg(f"train_dataloader = dict(dataset=dict(data_root={str(tmp_path)!r}))"))
    assert 'holds no extracted tokens (no meta.json). Extract the tokens first: tools/extract_tokens' in text


def test_only_splits_that_are_used_are_checked(tmp_path, generator_cfg):
    missing_val = "val_dataloader = dict(dataset=dict(data_root='no/such/tokens'))"
    text = problems(generator_cfg(missing_val))
    assert "val_dataloader.dataset.data_root='no/such/tokens' does not exist" in text
    check_config(generator_cfg(missing_val + '\nval_cfg = None'))  # no validation: its data is not needed
    missing_test = generator_cfg("test_dataloader = dict(dataset=dict(data_root='no/such/tokens'))")
    check_config(missing_test)  # training does not read the test split ...
    # testing does
    assert "test_dataloader.dataset.data_root='no/such/tokens'" in problems(missing_test, 'test')


def runner_checkpoint(path, state):
    torch.save(dict(meta=dict(iter=1), state_dict=state, message_hub=dict()), path)
    return str(path)


def test_checkpoint_of_another_architecture(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    other = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)).state_dict()
    other = runner_checkpoint(tmp_path / 'other.pth', other)
    with pytest.raises(CheckpointLoadError) as info:
        check_checkpoint_fits(model, other)
    text = str(info.value)
    assert 'does not fit Sequential: 3 shape mismatches: 0.weight: checkpoint [3, 4] vs model [8, 4]' in text
    assert 'Is it a checkpoint of the same architecture' in text
    # keys of one side only are fine (stage 2 loads stage 1); a checkpoint sharing no key is not
    check_checkpoint_fits(model, runner_checkpoint(tmp_path / 'part.pth', {'0.weight': torch.zeros(8, 4)}))
    with pytest.raises(CheckpointLoadError, match='none of its 1 keys is a parameter of the model'):
        check_checkpoint_fits(model, runner_checkpoint(tmp_path / 'x.pth', {'x.weight': torch.zeros(1)}))
    # what a built Runner is about to load: load_from, or the newest checkpoint of the work dir for resume
    (tmp_path / 'work').mkdir()
    runner_checkpoint(tmp_path / 'work' / 'iter_2.pth', nn.Sequential(nn.Linear(4, 3)).state_dict())
    runner = SimpleNamespace(model=model, _load_from=None, _resume=True, work_dir=str(tmp_path / 'work'))
    with pytest.raises(CheckpointLoadError, match='resume from .*iter_2.pth does not fit'):
        check_runner_checkpoint(runner)


def test_checkpoint_names_of_wrapped_parts_match(tmp_path):
    """Parts wrapped in DDP (the GAN recipe) save 'part.module.x' names; the Runner's loader strips them."""
    model = nn.ModuleDict(dict(tok=nn.Linear(4, 8)))
    wrapped = {'tok.module.weight': torch.zeros(8, 4), 'tok.module.bias': torch.zeros(8)}
    check_checkpoint_fits(model, runner_checkpoint(tmp_path / 'w.pth', wrapped))
    wrapped['tok.module.weight'] = torch.zeros(3, 4)
    with pytest.raises(CheckpointLoadError, match=r'tok.weight: checkpoint \[3, 4\] vs model \[8, 4\]'):
        check_checkpoint_fits(model, runner_checkpoint(tmp_path / 'w2.pth', wrapped))


def test_tokenizer_checkpoint_of_another_architecture(tmp_path):
    from mmspectral.models.tokenizers import load_tokenizer
    tiny = dict(type='TiTokTokenizer', width=16, depth=1, num_heads=2, image_size=32, patch_size=16,
                num_tokens=4, token_size=4, codebook_size=8)
    state = {f'tokenizer.{k}': v for k, v in build_component(tiny, TOKENIZERS).state_dict().items()}
    path = runner_checkpoint(tmp_path / 'tok.pth', state)
    with pytest.raises(CheckpointLoadError, match=r'shape mismatches: latent_tokens: checkpoint \[4, 16\] vs '
                                                  r'model \[4, 32\].*same architecture'):
        load_tokenizer(dict(tiny, width=32), path)


def test_train_tool_stops_before_building_anything(tmp_path, subprocess_env):
    cfg = tmp_path / 'typo.py'
    cfg.write_text(f"_base_ = [{AUTOENCODER_CFG!r}]\ntrain_dataloder = dict(batch_size=2)\n")
    work = tmp_path / 'work'
    env = dict(subprocess_env, PYTHONPATH=os.pathsep.join([os.path.join(REPO, 'tests', 'data'),
                                                           subprocess_env['PYTHONPATH']]))
    proc = subprocess.run([sys.executable, 'tools/train.py', str(cfg), '--work-dir', str(work)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "train_dataloder: unknown top-level key; did you mean 'train_dataloader'?" in proc.stderr
    assert '--skip-checks' in proc.stderr and 'Traceback' not in proc.stderr
    assert 'Iter(train)' not in proc.stdout + proc.stderr
    assert not work.exists()  # no Runner was built: no log, no checkpoint


def test_keys_a_hook_would_swallow_are_caught(tmp_path):
    """Classes that take **kwargs: where the config checks can tell where they go, the keys are checked."""
    text = problems(config(tmp_path, AUTOENCODER_CFG, "default_hooks = dict(checkpoint=dict(intervl=2))"))
    assert "default_hooks.checkpoint.intervl: CheckpointHook takes no argument 'intervl'" in text
    assert "Did you mean 'interval'?" in text
    text = problems(config(tmp_path, AUTOENCODER_CFG, "custom_hooks = [dict(type='EMAHook', momentun=0.1)]",
                           name='ema.py'))
    assert "EMAHook takes no argument 'momentun'. Did you mean 'momentum'?" in text
    text = problems(config(tmp_path, AUTOENCODER_CFG,
                           "model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel', "
                           "find_unused_paramters=True)", name='ddp.py'))
    assert "Did you mean 'find_unused_parameters'" in text
    # what they do accept passes
    check_config(config(tmp_path, AUTOENCODER_CFG, "default_hooks = dict(checkpoint=dict(interval=3))\n"
                        "custom_hooks = [dict(type='EMAHook', momentum=0.1, update_buffers=True)]",
                        name='good.py'))


def test_optimizer_and_size_values_are_checked_before_the_run(tmp_path):
    cases = (("optim_wrapper = dict(optimizer=dict(type='AdamWW', lr=1e-3))",
              "optim_wrapper.optimizer.type: type='AdamWW' is not registered", "Did you mean: 'AdamW'"),
             ("optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, betas=0.9))",
              'AdamW(lr=0.001, betas=0.9) is refused by torch', 'Fix the value'),
             ("optim_wrapper = dict(optimizer=dict(type='AdamW', lr=-1.0))",
              'Invalid learning rate', 'optim_wrapper.optimizer'))
    for i, (body, *expected) in enumerate(cases):
        text = problems(config(tmp_path, AUTOENCODER_CFG, body, name=f'opt{i}.py'))
        assert all(e in text for e in expected), text
    text = problems(config(tmp_path, TOKENIZER_CFG, 'model = dict(tokenizer=dict(codebook_size=0))',
                           name='codebook.py'))
    assert 'model.tokenizer: codebook_size=0: it must be an integer of at least 2' in text
    with pytest.raises(ValueError, match='codebook_size=1: it must be an integer of at least 2'):
        build_component(dict(type='TiTokTokenizer', width=16, depth=1, num_heads=2, image_size=32,
                             patch_size=16, num_tokens=4, token_size=4, codebook_size=1), TOKENIZERS)


@pytest.mark.parametrize('crop', ["dict(type='RandomCrop', crop_size=48)",
                                  "dict(type='CenterCrop', crop_size=48)",
                                  "dict(type='CenterCrop', crop_size=(48, 48))"])
def test_a_crop_of_another_size_is_found_through_the_transforms_declared_output_size(tmp_path, crop):
    """Crops declare the side they give (``output_size``; mmcv's centre crop through a rule kept by class),
    so the check names no transform; a later crop wins over the dataset's own size."""
    body = (f"train_dataloader = dict(dataset=dict(pipeline=[{crop}, dict(type='PackImageInputs')]))")
    text = problems(config(tmp_path, TOKENIZER_CFG, body))
    assert 'train_dataloader.dataset gives 48x48 images but model.tokenizer.image_size=64' in text


def test_a_generator_that_encodes_images_on_the_fly_has_its_image_size_checked(generator_cfg):
    text = problems(generator_cfg("model = dict(encode_on_the_fly=True)\n"
                                  "train_dataloader = dict(dataset=dict(type='EmbeddedShapesDataset', "
                                  "image_size=32, _delete_=True))"))
    assert 'train_dataloader.dataset gives 32x32 images but model.tokenizer.image_size=64' in text
