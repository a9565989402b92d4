"""Every config parses, names registered types only, and builds its model (on the meta device, weights
replaced by random initialisation)."""
import glob
import os

import pytest
import torch

from mmspectral.apis import load_config
from mmspectral.registry import MODELS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
WEIGHT_KEYS = {'pretrained': None, 'weights_path': None, 'vgg_weights_path': None, 'lpips_weights_path': None}


def without_weights(node):
    """Drop weight paths and allow random initialisation, wherever a component takes them."""
    if isinstance(node, dict):
        node = {k: (None if k == 'tokenizer_checkpoint' else without_weights(v)) for k, v in node.items()}
        if any(k in node for k in WEIGHT_KEYS):
            node.update({k: None for k in WEIGHT_KEYS if k in node})
            node['allow_random_init'] = True
        return node
    if isinstance(node, list):
        return [without_weights(v) for v in node]
    return node


def test_there_are_configs():
    names = [os.path.basename(p) for p in CONFIGS]
    assert 'spectralar-tiny_16tok_1xb32-5k_shapes-64.py' in names
    assert 'spectralar-d16_64tok_8xb96-333k_in1k-256.py' in names
    assert sum('ablation' in p for p in CONFIGS) >= 6


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_builds(path):
    cfg = load_config(path)
    assert cfg.default_scope == 'mmspectral' and 'work_dir' not in cfg
    for key in ('train_dataloader', 'optim_wrapper', 'train_cfg', 'val_evaluator'):
        assert key in cfg, f'{path} has no {key}'
    model_cfg = without_weights(cfg.model.to_dict())
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert model.tokenizer.num_tokens in (16, 64)


def test_table4_rows_are_the_switches():
    from mmspectral.models.masks import BidirectionalMask, SpectralCausalMask
    from mmspectral.spectral import NonUniformFreqSchedule, UniformFreqSchedule
    rows = {}
    for suffix in ('', '_uniform', '_nomask', '_nospectral', '_nested', '_fullfrac'):
        folder = 'configs/spectralar/' + ('ablation/' if suffix else '')
        cfg = load_config(os.path.join(ROOT, folder, f'spectralar-tiny_16tok_1xb32-5k_shapes-64{suffix}.py'))
        rows[suffix] = MODELS.build(cfg.model).tokenizer
    full, row3, row2, row1 = rows[''], rows['_uniform'], rows['_nomask'], rows['_nospectral']
    assert (isinstance(full.freq_schedule, NonUniformFreqSchedule)
            and isinstance(full.attn_mask, SpectralCausalMask))
    assert full.spectral_supervision and full.prefix_sampler.distribution == 'uniform'
    assert (isinstance(row3.freq_schedule, UniformFreqSchedule)
            and isinstance(row3.attn_mask, SpectralCausalMask))
    assert isinstance(row2.attn_mask, BidirectionalMask) and row2.spectral_supervision
    assert not row1.spectral_supervision and row1.prefix_sampler.distribution == 'full'
    assert isinstance(row1.attn_mask, BidirectionalMask)
    nested, fullfrac = rows['_nested'], rows['_fullfrac']  # beyond the paper's rows: one switch each
    assert not nested.spectral_supervision and nested.is_causal and nested.prefix_sampler.full_fraction == 0
    assert fullfrac.spectral_supervision and fullfrac.prefix_sampler.full_fraction == 0.5


def test_titok_parameter_groups_skip_decay_on_norms_biases_embeddings_and_tokens():
    from mmengine.optim import build_optim_wrapper
    cfg = load_config(os.path.join(ROOT, 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'))
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    assert decay['tokenizer.encoder.transformer.0.attn.qkv.weight'] == pytest.approx(1e-4)
    assert decay['tokenizer.decoder.transformer.0.mlp.fc1.weight'] == pytest.approx(1e-4)
    for name in ('tokenizer.latent_tokens', 'tokenizer.decoder.mask_token',
                 'tokenizer.encoder.positional_embedding', 'tokenizer.encoder.patch_embed.weight',
                 'tokenizer.quantizer.embedding.weight', 'tokenizer.encoder.ln_pre.weight',
                 'tokenizer.encoder.transformer.0.attn.qkv.bias'):
        assert decay[name] == 0, name


def test_generator_parameter_groups_decay_only_linear_weights():
    """The recipe docs/design.md states (VAR's, except that VAR decays its class and word embeddings): weight
    decay on the weights of linear layers, none on norms, biases, 1-D parameters, embedding tables (word,
    class, level), learned positions and attention logit scales."""
    from mmengine.optim import build_optim_wrapper
    cfg = load_config(os.path.join(ROOT, 'configs/spectralar/spectralar-d16_64tok_8xb96-333k_in1k-256.py'))
    model = MODELS.build(dict(type='GeneratorModel', generator=dict(
        type='SpectralARGenerator', depth=2, vocab_size=64, num_tokens=8, num_classes=4)))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)]: group['weight_decay']
             for group in wrapper.optimizer.param_groups for p in group['params']}
    assert set(decay) == set(names.values())
    linear_weights = {f'{name}.weight' for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert 'generator.class_emb.weight' in decay and 'generator.blocks.0.attn.scale_mul' in decay
    for name, wd in decay.items():
        expected = cfg.optim_wrapper.optimizer.weight_decay if name in linear_weights else 0.0
        assert wd == pytest.approx(expected), f'{name}: weight decay {wd}, expected {expected}'


@pytest.mark.parametrize('name', ['b_64tok_8xb32-1000k_in1k-256', 'b_64tok_8xb32-1000k_in1k-256_stage1',
                                  'b_64tok_8xb32-500k_in1k-256_stage2'])
def test_titok_configs_are_the_spectralar_ones_with_the_titok_tokenizer(name):
    """The baseline differs from SpectralAR only by Table 4's switches (and where stage 2 starts from)."""
    titok = load_config(os.path.join(ROOT, f'configs/titok/titok-{name}.py')).to_dict()
    spectral = load_config(os.path.join(ROOT, f'configs/spectralar/spectralar-{name}.py')).to_dict()
    switches = {'type', 'attn_mask', 'freq_schedule', 'spectral_supervision', 'prefix_sampling'}
    tok_a, tok_b = titok['model'].pop('tokenizer'), spectral['model'].pop('tokenizer')
    assert {k for k in set(tok_a) | set(tok_b) if tok_a.get(k) != tok_b.get(k)} == switches
    assert tok_a['type'] == 'TiTokTokenizer' and tok_a['attn_mask'] == dict(type='BidirectionalMask')
    assert not tok_a['spectral_supervision'] and tok_a['prefix_sampling'] is None
    assert titok['model'] == spectral['model']
    differing = {k for k in set(titok) | set(spectral) if titok.get(k) != spectral.get(k)}
    assert differing <= {'load_from'} and ('load_from' in differing) == name.endswith('stage2')


def test_metafiles_list_every_config_with_its_parameters():
    """The model-zoo files (mmpretrain's metafile format) name existing configs, cover every non-ablation
    config, give each the parameter count of the network it trains, and claim results only where this project
    measured them (the tiny configs)."""
    import yaml
    listed = {}
    for method in ('spectralar', 'titok'):
        with open(os.path.join(ROOT, 'configs', method, 'metafile.yml')) as f:
            meta = yaml.safe_load(f)
        assert meta['Collections'][0]['README'] == f'configs/{method}/README.md'
        assert os.path.isfile(os.path.join(ROOT, 'configs', method, 'README.md'))
        for model in meta['Models']:
            path = os.path.join(ROOT, model['Config'])
            assert os.path.isfile(path), model['Config']
            assert model['Name'] == os.path.splitext(os.path.basename(path))[0]
            listed[path] = model
    assert set(listed) == {p for p in CONFIGS if f'{os.sep}ablation{os.sep}' not in p}
    for path, model in listed.items():
        cfg = without_weights(load_config(path).model.to_dict())
        with torch.device('meta'):
            built = MODELS.build(cfg)
        net = built.generator if cfg['type'] == 'GeneratorModel' else built.tokenizer
        assert model['Metadata']['Parameters'] == sum(p.numel() for p in net.parameters()), model['Name']
        trained_here = 'shapes' in model['Name']
        assert (model['Results'] is not None) == trained_here, model['Name']
        assert model['Metadata']['Status'].startswith('trained here' if trained_here else 'not trained here')
