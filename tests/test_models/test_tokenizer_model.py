"""TokenizerModel: the three recipes, the GAN step, evaluation output and what goes into checkpoints."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from mmspectral.engine import MultiOptimWrapperConstructor
from mmspectral.models import TokenizerModel
from mmspectral.spectral import lowpass

TOKENIZER = dict(type='NestedSpectralTokenizer', image_size=32, patch_size=8, num_tokens=8, width=64, depth=1,
                 num_heads=2, token_size=4, codebook_size=32, init_std='fan_in',
                 freq_schedule=dict(type='UniformFreqSchedule'))
TEACHER = dict(type='MaskGITVQGAN', hidden_channels=32, channel_mult=(1, 1, 1, 1), z_channels=16,
               codebook_size=24, allow_random_init=True)


def batch(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8)
                        for _ in range(n)],
                data_samples=None)


def set_iter(i):
    MessageHub.get_current_instance().update_info('iter', i)


def adam(module, lr=3e-3):
    return OptimWrapper(torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr))


def test_pixel_recipe_learns_a_fixed_batch():
    torch.manual_seed(0)
    model = TokenizerModel(tokenizer=TOKENIZER)
    wrapper = adam(model)
    data = batch()
    first = model.train_step(data, wrapper)
    for _ in range(25):
        last = model.train_step(data, wrapper)
    assert {'loss_rec', 'loss_commit', 'loss_codebook', 'codebook_usage', 'prefix_length'} <= set(first)
    assert last['loss_rec'] < 0.5 * first['loss_rec']


def test_proxy_codes_recipe_targets_the_teachers_codes_of_the_low_pass_image():
    torch.manual_seed(0)
    model = TokenizerModel(tokenizer=dict(TOKENIZER, decoder_head='proxy_codes', proxy_codebook_size=24),
                           recipe='proxy_codes', proxy_teacher=dict(TEACHER, frozen=True))
    seen = []
    original = model.proxy_teacher.encode
    model.proxy_teacher.encode = lambda x: (seen.append(x), original(x))[1]
    k = torch.tensor([1, 3, 8, 2])
    model.tokenizer.sample_prefix_lengths = lambda b, device=None, generator=None: k
    data = model.data_preprocessor(batch(), True)
    losses = model.autoencoder_losses(data['inputs'])
    assert set(losses) >= {'loss_proxy_ce', 'loss_commit', 'loss_codebook'}
    expected = lowpass(data['inputs'], model.tokenizer.freq_schedule.omega(k)).clamp(0, 1)
    assert torch.allclose(seen[0], expected, atol=1e-5)
    # The teacher is frozen and kept out of checkpoints.
    assert not any(k.startswith('proxy_teacher.') for k in model.state_dict())
    with pytest.raises(ValueError, match="needs tokenizer decoder_head='proxy_codes'"):
        TokenizerModel(tokenizer=TOKENIZER, recipe='proxy_codes', proxy_teacher=dict(TEACHER))


def test_decoder_finetune_leaves_encoder_and_codebook_alone():
    torch.manual_seed(0)
    pixel_decoder = dict(TEACHER, with_encoder=False)
    model = TokenizerModel(tokenizer=dict(TOKENIZER, decoder_head='proxy_codes', proxy_codebook_size=24,
                                          pixel_decoder=pixel_decoder), recipe='decoder_finetune')
    frozen = {k: v.clone() for k, v in model.tokenizer.state_dict().items()
              if k.startswith(('encoder.', 'quantizer.', 'latent_tokens'))}
    trained = {k: v.clone() for k, v in model.tokenizer.state_dict().items()
               if k.startswith(('decoder.', 'pixel_decoder.'))}
    wrapper = adam(model)
    log = model.train_step(batch(), wrapper)
    assert 'loss_commit' not in log and 'loss_rec' in log
    state = model.tokenizer.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert any(not torch.equal(state[k], v) for k, v in trained.items())


def test_gan_step_trains_the_discriminator_only_after_start():
    torch.manual_seed(0)
    model = TokenizerModel(
        tokenizer=TOKENIZER,
        gan_loss=dict(type='GANLoss', start_iter=2,
                      discriminator=dict(type='PatchGANDiscriminator', base_channels=32, pool_size=4)),
    )
    wrappers = MultiOptimWrapperConstructor(dict(
        generator=dict(module='tokenizer', optimizer=dict(type='Adam', lr=1e-3)),
        discriminator=dict(module='gan_loss.discriminator', optimizer=dict(type='Adam', lr=1e-3))))(model)
    disc = copy.deepcopy(model.gan_loss.discriminator.state_dict())
    set_iter(0)
    log = model.train_step(batch(), wrappers)
    assert 'loss_gan' not in log and 'loss_disc' not in log
    assert all(torch.equal(v, disc[k]) for k, v in model.gan_loss.discriminator.state_dict().items())
    set_iter(2)
    log = model.train_step(batch(), wrappers)
    assert {'loss_gan', 'loss_disc', 'loss_lecam'} <= set(log)
    assert any(not torch.equal(v, disc[k]) for k, v in model.gan_loss.discriminator.state_dict().items())
    set_iter(0)
    with pytest.raises(ValueError, match='discriminator'):
        model.train_step(batch(), adam(model))


def test_discriminator_conditioned_on_the_cutoff_sees_each_prefixs_w_k():
    torch.manual_seed(0)
    model = TokenizerModel(
        tokenizer={**TOKENIZER, 'prefix_sampling': dict(distribution='uniform')},
        gan_loss=dict(type='GANLoss', start_iter=0, condition_on_cutoff=True, discriminator=dict(
            type='PatchGANDiscriminator', in_channels=4, base_channels=32, pool_size=4)))
    wrappers = MultiOptimWrapperConstructor(dict(
        generator=dict(module='tokenizer', optimizer=dict(type='Adam', lr=1e-3)),
        discriminator=dict(module='gan_loss.discriminator', optimizer=dict(type='Adam', lr=1e-3))))(model)
    seen, lengths = [], []
    model.gan_loss.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    sampler = model.tok.sample_prefix_lengths
    model.tok.sample_prefix_lengths = lambda *a, **kw: lengths.append(sampler(*a, **kw)) or lengths[-1]
    set_iter(0)
    log = model.train_step(batch(), wrappers)
    assert {'loss_gan', 'loss_disc'} <= set(log)
    k = lengths[0]
    cutoff = model.tok.freq_schedule.omega(k).float() / 32
    assert len(seen) == 2 and seen[0].shape[1] == 4  # the generator's pass, then real and fake together
    torch.testing.assert_close(seen[0][:, 3], cutoff.view(-1, 1, 1).expand(-1, 32, 32))
    torch.testing.assert_close(seen[1][:, 3], torch.cat([cutoff, cutoff]).view(-1, 1, 1).expand(-1, 32, 32))
    with pytest.raises(ValueError, match='cutoff'):
        model.gan_loss(mode='generator', fake=torch.rand(2, 3, 32, 32), iter=0)


def test_predict_gives_every_prefix_and_its_target():
    torch.manual_seed(0)
    model = TokenizerModel(tokenizer=TOKENIZER, eval_prefix_lengths=[1, 4, 8]).eval()
    data = model.data_preprocessor(batch(2), False)
    samples = model(**data, mode='predict')
    assert len(samples) == 2
    sample = samples[0]
    assert sorted(sample.recons) == [1, 4, 8] and sample.tokens.shape == (8,)
    assert torch.allclose(sample.targets[8], sample.image, atol=1e-5)
    w4 = model.tokenizer.freq_schedule.omega(4)
    assert torch.allclose(sample.targets[4], lowpass(data['inputs'][:1], w4)[0].clamp(0, 1), atol=1e-5)
    assert torch.equal(model(**data, mode='tensor'), torch.stack([s.tokens for s in samples]))
    assert TokenizerModel(tokenizer=TOKENIZER).eval_prefix_lengths == [1, 2, 4, 8]


def test_perceptual_network_stays_out_of_checkpoints():
    model = TokenizerModel(tokenizer=TOKENIZER,
                           perceptual_loss=dict(type='LPIPSLoss', allow_random_init=True))
    state = model.state_dict()
    assert state and not any(k.startswith('perceptual_loss.') for k in state)
    fresh = TokenizerModel(tokenizer=TOKENIZER,
                           perceptual_loss=dict(type='LPIPSLoss', allow_random_init=True))
    # nothing missing: the frozen net keeps its own weights
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys
    losses = model.autoencoder_losses(model.data_preprocessor(batch(2), True)['inputs'])
    assert losses['loss_perceptual'] > 0
