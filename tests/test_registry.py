import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.registry import MODELS as MMENGINE_MODELS

from mmspectral import registry as reg
from mmspectral.apis import load_config
from mmspectral.registry import (ATTN_MASKS, FREQ_SCHEDULES, GENERATORS, QUANTIZERS, TOKENIZERS,
                                 RegistryKeyError, registry_hints)
from mmspectral.utils import build_component

# Tiny constructor arguments for every registered class of the domain registries. A class registered without
# an entry here fails test_every_registered_class_builds, so new components get built at least once.
TINY_DEFAULTS = {
    'UniformFreqSchedule': dict(num_tokens=8, image_size=32),
    'NonUniformFreqSchedule': dict(num_tokens=8, image_size=32),
    'PiecewiseLinearFreqSchedule': dict(num_tokens=4, image_size=16, knots=[(2, 4), (4, 16)]),
    'BidirectionalMask': dict(),
    'SpectralCausalMask': dict(),
    'BlockCausalMask': dict(block_size=2),
    'VectorQuantizer': dict(codebook_size=16, token_size=4),
    'TiTokTokenizer': dict(image_size=32, patch_size=8, num_tokens=4, width=32, depth=1, num_heads=2,
                           token_size=4, codebook_size=16),
    'SpectralARGenerator': dict(depth=1, vocab_size=16, num_tokens=4, num_classes=2),
    'NestedSpectralTokenizer': dict(image_size=32, patch_size=8, num_tokens=4, width=32, depth=1, num_heads=2,
                                    token_size=4, codebook_size=16,
                                    freq_schedule=dict(type='UniformFreqSchedule')),
}


@pytest.mark.parametrize('registry', [TOKENIZERS, QUANTIZERS, FREQ_SCHEDULES, ATTN_MASKS, GENERATORS],
                         ids=lambda r: r.name)
def test_every_registered_class_builds(registry):
    for name in registry.module_dict:
        assert name in TINY_DEFAULTS, f'add tiny constructor arguments for {name} to TINY_DEFAULTS'
        obj = registry.build(dict(type=name, **TINY_DEFAULTS[name]))
        assert type(obj).__name__ == name


def test_runner_side_registries_are_children_of_mmengine():
    for registry in (reg.MODELS, reg.DATASETS, reg.TRANSFORMS, reg.METRICS, reg.HOOKS, reg.RUNNERS):
        assert registry.scope == 'mmspectral' and registry.parent is not None
        assert registry.parent.scope == 'mmengine'
    # With the default scope, MMEngine's root registry (what the Runner uses) builds mmspectral's classes.
    built = MMENGINE_MODELS.build(dict(type='ImageDataPreprocessor'))
    assert isinstance(built, reg.MODELS.get('ImageDataPreprocessor'))


def test_typo_names_registry_and_close_matches():
    with pytest.raises(RegistryKeyError) as info:
        ATTN_MASKS.build(dict(type='SpectralCasualMask'))
    msg = str(info.value)
    assert 'mmspectral::attn_mask' in msg and "'SpectralCausalMask'" in msg
    assert '@ATTN_MASKS.register_module()' in msg
    # Errors raised by MMEngine's root registries get the same treatment.
    with pytest.raises(RegistryKeyError, match="Did you mean: 'ImageDataPreprocessor'"):
        with registry_hints():
            MMENGINE_MODELS.build(dict(type='ImageDataPreprocesor'))
    # Case-insensitive hits are offered too; unrelated names list what exists.
    with pytest.raises(RegistryKeyError, match="'BlockCausalMask'"):
        ATTN_MASKS.build(dict(type='blockcausalmask'))
    with pytest.raises(RegistryKeyError, match='Registered types: BidirectionalMask'):
        ATTN_MASKS.build(dict(type='Zzzzzz'))


def test_build_component_takes_configs_and_objects():
    mask = build_component(dict(type='SpectralCausalMask'), ATTN_MASKS)
    assert build_component(mask, ATTN_MASKS) is mask
    assert build_component(None, ATTN_MASKS) is None
    with pytest.raises(KeyError, match='needs a "type" key'):
        build_component(dict(block_size=2), ATTN_MASKS)
    with pytest.raises(TypeError, match='Expected a Tensor'):
        build_component(mask, ATTN_MASKS, expected_type=torch.Tensor)


USER_MODULE = textwrap.dedent('''
    import torch
    from mmspectral.registry import ATTN_MASKS, FREQ_SCHEDULES, GENERATORS, TOKENIZERS
    from mmspectral.models.masks import SpectralCausalMask
    from mmspectral.spectral import BaseFreqSchedule


    @FREQ_SCHEDULES.register_module()
    class SquareRootFreqSchedule(BaseFreqSchedule):
        def _compute_omegas(self):
            n, s = self.num_tokens, self.image_size
            return [max(k, round(s * (k / n) ** 2)) for k in range(1, n + 1)]


    @ATTN_MASKS.register_module()
    class EveryOtherMask(SpectralCausalMask):
        def latent_pattern(self, num_latents, device=None):
            idx = torch.arange(num_latents, device=device)
            return (idx[None, :] <= idx[:, None]) & ((idx[:, None] - idx[None, :]) % 2 == 0)


    @TOKENIZERS.register_module()
    class IdentityTokenizer(torch.nn.Module):
        def __init__(self, num_tokens=4):
            super().__init__()
            self.num_tokens = num_tokens


    @GENERATORS.register_module()
    class ConstantGenerator(torch.nn.Module):
        def __init__(self, token=0):
            super().__init__()
            self.token = token
''')

USER_CONFIG = textwrap.dedent('''
    custom_imports = dict(imports=['my_components'], allow_failed_imports=False)
    freq_schedule = dict(type='SquareRootFreqSchedule', num_tokens=8, image_size=64)
    attn_mask = dict(type='EveryOtherMask')
    tokenizer = dict(type='IdentityTokenizer', num_tokens=8)
    generator = dict(type='ConstantGenerator', token=3)
''')


def test_custom_imports_given_on_the_command_line(tmp_path, monkeypatch):
    """``--cfg-options custom_imports.imports=[...]`` registers the user's module before anything is built."""
    (tmp_path / 'cli_components.py').write_text(USER_MODULE.replace('SquareRoot', 'CliSquareRoot').replace(
        'EveryOther', 'CliEveryOther').replace('IdentityTokenizer', 'CliIdentityTokenizer').replace(
        'ConstantGenerator', 'CliConstantGenerator'))
    (tmp_path / 'plain_config.py').write_text("generator = dict(type='CliConstantGenerator', token=4)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', list(sys.path))
    cfg = load_config('plain_config.py')
    with pytest.raises(Exception, match='CliConstantGenerator'):
        build_component(cfg.generator, GENERATORS)
    cfg = load_config('plain_config.py', {'custom_imports.imports': ['cli_components'],
                                          'custom_imports.allow_failed_imports': False})
    assert build_component(cfg.generator, GENERATORS).token == 4
    with pytest.raises(ImportError):
        load_config('plain_config.py', {'custom_imports.imports': ['no_such_module_here']})


def test_user_components_from_their_own_directory(tmp_path, monkeypatch, repo_root, subprocess_env):
    (tmp_path / 'my_components.py').write_text(USER_MODULE)
    (tmp_path / 'my_config.py').write_text(USER_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', list(sys.path))
    cfg = load_config('my_config.py')
    schedule = build_component(cfg.freq_schedule, FREQ_SCHEDULES)
    assert type(schedule).__name__ == 'SquareRootFreqSchedule'
    assert schedule.omegas[-1] == 64 and len(schedule) == 8
    mask = build_component(cfg.attn_mask, ATTN_MASKS)(4, 0, layout='sequence')
    assert mask.tolist() == [[True, False, False, False], [False, True, False, False],
                             [True, False, True, False], [False, True, False, True]]
    assert build_component(cfg.tokenizer, TOKENIZERS).num_tokens == 8
    assert build_component(cfg.generator, GENERATORS).token == 3
    # The tools resolve the same file from the directory they are run in.
    out = subprocess.run([sys.executable, f'{repo_root}/tools/misc/print_config.py', 'my_config.py',
                          '--cfg-options', 'generator.token=5'], cwd=tmp_path, env=subprocess_env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "type='ConstantGenerator'" in out.stdout and 'token=5' in out.stdout
