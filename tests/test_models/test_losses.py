"""Loss modules: perceptual (ConvNeXt-S logits, LPIPS) and adversarial (discriminator, hinge, LeCam, GANLoss).

Never with pretrained weights: networks are randomly initialised (allow_random_init=True), or a random state
dict is saved to tmp_path and loaded back by path.
"""
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmspectral.datasets import render_shape
from mmspectral.engine import CheckpointLoadError
from mmspectral.models.losses import (ConvNeXtPerceptualLoss, GANLoss, LeCamRegularizer, LPIPSLoss,
                                      MissingWeightsError, PatchGANDiscriminator, adaptive_gan_weight,
                                      hinge_d_loss, hinge_g_loss)
from mmspectral.models.losses import perceptual as perceptual_module
from mmspectral.registry import MODELS


def rand_images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def shape_image(size=64):
    img = render_shape(0, 0, 0, size)  # (H, W, 3) uint8
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)


def frozen_and_eval(loss):
    return (not loss.training and not any(m.training for m in loss.modules())
            and not any(p.requires_grad for p in loss.parameters()))


# ---------------------------------------------------------------------------------------------- ConvNeXt-S


@pytest.fixture(scope='module')
def convnext():
    torch.manual_seed(0)
    return ConvNeXtPerceptualLoss(allow_random_init=True)


def test_convnext_zero_for_identical_positive_otherwise_and_grads_reach_pred_only(convnext):
    target = rand_images(2, 3, 32, 32)
    pred = torch.cat([target[:1], rand_images(1, 3, 32, 32, seed=1)]).requires_grad_(True)
    convnext.reduction = 'none'
    try:
        per_sample = convnext(pred, target)
    finally:
        convnext.reduction = 'mean'
    assert per_sample.shape == (2, )
    assert per_sample[0].item() == 0.0 and per_sample[1].item() > 0
    per_sample.sum().backward()
    assert pred.grad is not None and pred.grad[1].abs().sum() > 0 and torch.isfinite(pred.grad).all()
    assert all(p.grad is None for p in convnext.parameters())
    assert frozen_and_eval(convnext)


def test_convnext_weights_load_by_path_and_reproduce_outputs(convnext, tmp_path):
    path = tmp_path / 'convnext_small-0c510722.pth'
    torch.save(convnext.net.state_dict(), path)
    loaded = ConvNeXtPerceptualLoss(weights_path=str(path))
    for key, value in convnext.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[key], value), key
    pred, target = rand_images(1, 3, 32, 32, seed=2), rand_images(1, 3, 32, 32, seed=3)
    # value_range: [-1, 1] images give the loss of the same images in [0, 1].
    loaded_pm1 = ConvNeXtPerceptualLoss(weights_path=str(path), value_range=(-1, 1))
    expected = convnext(pred, target)
    torch.testing.assert_close(loaded(pred, target), expected)
    torch.testing.assert_close(loaded_pm1(2 * pred - 1, 2 * target - 1), expected, rtol=1e-4, atol=1e-6)


def test_convnext_refuses_to_build_without_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match='convnext_small-0c510722.pth') as info:
        ConvNeXtPerceptualLoss()
    assert 'weights_path' in str(info.value) and 'never' in str(info.value)
    missing = tmp_path / 'nowhere' / 'convnext_small-0c510722.pth'
    with pytest.raises(MissingWeightsError, match='does not exist') as info:
        ConvNeXtPerceptualLoss(weights_path=str(missing), allow_random_init=True)
    assert str(missing) in str(info.value) and 'convnext_small-0c510722.pth' in str(info.value)


def test_convnext_mismatched_file_lists_the_keys(tmp_path):
    path = tmp_path / 'wrong.pth'
    torch.save({'features.0.0.weight': torch.zeros(1), 'not_a_convnext_key': torch.zeros(1)}, path)
    with pytest.raises(CheckpointLoadError) as info:
        ConvNeXtPerceptualLoss(weights_path=str(path))
    msg = str(info.value)
    assert 'not_a_convnext_key' in msg and 'features.0.0.weight: file [1] vs model [96, 3, 4, 4]' in msg
    assert 'missing from the file: classifier.0.bias' in msg and 'more)' in msg


def test_convnext_stays_in_eval_when_parent_trains(convnext):
    parent = nn.ModuleDict(dict(perceptual=convnext, head=nn.Linear(2, 2)))
    parent.train()
    assert parent.head.training and frozen_and_eval(convnext)
    parent.train(False)
    parent.train(True)
    assert frozen_and_eval(convnext)


# ---------------------------------------------------------------------------------------------- LPIPS


@pytest.fixture(scope='module')
def lpips():
    torch.manual_seed(0)
    return LPIPSLoss(allow_random_init=True)


def test_lpips_zero_for_identical_positive_otherwise_and_grads_reach_pred_only(lpips):
    target = rand_images(2, 3, 32, 32)
    assert lpips(target, target).abs().item() < 1e-7
    pred = rand_images(2, 3, 32, 32, seed=1).requires_grad_(True)
    loss = lpips(pred, target)
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0 and torch.isfinite(pred.grad).all()
    assert all(p.grad is None for p in lpips.parameters())
    assert frozen_and_eval(lpips)


def test_lpips_gradient_is_finite_at_all_zero_features(lpips):
    # A constant black image drives many early ReLU features to exactly zero; sqrt(sum x^2) would give
    # NaN grads.
    pred = torch.zeros(1, 3, 32, 32, requires_grad=True)
    lpips(pred, rand_images(1, 3, 32, 32)).backward()
    assert torch.isfinite(pred.grad).all()


def test_lpips_is_symmetric_and_grows_with_the_perturbation(lpips):
    image = shape_image(64)
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(image.shape, generator=gen)
    mild = (image + 0.02 * noise).clamp(0, 1)
    strong = (image + 0.2 * noise).clamp(0, 1)
    d_mild, d_strong = lpips(mild, image), lpips(strong, image)
    torch.testing.assert_close(lpips(image, strong), d_strong, rtol=1e-5, atol=1e-7)
    assert 0 < d_mild < d_strong


def test_lpips_reduction_and_value_range(lpips):
    pred, target = rand_images(3, 3, 32, 32, seed=5), rand_images(3, 3, 32, 32, seed=6)
    lpips.reduction = 'none'
    try:
        per_sample = lpips(pred, target)
    finally:
        lpips.reduction = 'mean'
    assert per_sample.shape == (3, )
    torch.testing.assert_close(per_sample.mean(), lpips(pred, target))
    pm1 = LPIPSLoss(allow_random_init=True, value_range=(-1.0, 1.0))
    # Frozen pretrained nets stay out of state dicts (keep_out_of_checkpoints), so copy the tensors directly.
    assert lpips.state_dict() == {} and not pm1.load_state_dict({}, strict=True).missing_keys
    with torch.no_grad():
        for dst, src in zip(pm1.parameters(), lpips.parameters()):
            dst.copy_(src)
    torch.testing.assert_close(pm1(2 * pred - 1, 2 * target - 1), lpips(pred, target), rtol=1e-4, atol=1e-6)


def save_lpips_files(lpips, tmp_path):
    vgg_path, lin_path = tmp_path / 'vgg16-397923af.pth', tmp_path / 'vgg.pth'
    vgg_state = {f'features.{k}': v for k, v in lpips.vgg.state_dict().items()}
    vgg_state['classifier.0.bias'] = torch.zeros(4)  # torchvision's file has a classifier; it is ignored
    torch.save(vgg_state, vgg_path)
    torch.save({f'lin{k}.model.1.weight': lin.weight.detach().clone() for k, lin in enumerate(lpips.lins)},
               lin_path)
    return vgg_path, lin_path


def test_lpips_weights_load_by_path_in_the_published_layouts(lpips, tmp_path):
    vgg_path, lin_path = save_lpips_files(lpips, tmp_path)
    loaded = LPIPSLoss(vgg_weights_path=str(vgg_path), lpips_weights_path=str(lin_path))
    pred, target = rand_images(2, 3, 32, 32, seed=7), rand_images(2, 3, 32, 32, seed=8)
    torch.testing.assert_close(loaded(pred, target), lpips(pred, target), rtol=0, atol=0)
    assert [tuple(lin.weight.shape) for lin in loaded.lins] == [(1, c, 1, 1)
                                                                for c in (64, 128, 256, 512, 512)]
    assert frozen_and_eval(loaded)


def test_lpips_mismatched_files_list_the_keys(lpips, tmp_path):
    vgg_path, lin_path = save_lpips_files(lpips, tmp_path)
    heads = torch.load(lin_path)
    del heads['lin4.model.1.weight']
    heads['lin5.model.1.weight'] = torch.zeros(1, 8, 1, 1)
    heads['lin0.model.1.weight'] = torch.zeros(1, 3, 1, 1)
    torch.save(heads, lin_path)
    with pytest.raises(CheckpointLoadError) as info:
        LPIPSLoss(vgg_weights_path=str(vgg_path), lpips_weights_path=str(lin_path))
    msg = str(info.value)
    assert 'missing from the file: lin4.model.1.weight' in msg
    assert 'not in the model: lin5.model.1.weight' in msg
    assert 'lin0.model.1.weight: file [1, 3, 1, 1] vs model [1, 64, 1, 1]' in msg
    # Anything in the VGG file other than features.* and classifier.* is reported too.
    vgg_state = torch.load(vgg_path)
    vgg_state['extra.weight'] = torch.zeros(1)
    torch.save(vgg_state, vgg_path)
    with pytest.raises(CheckpointLoadError, match='not in the model: extra.weight'):
        LPIPSLoss(vgg_weights_path=str(vgg_path), allow_random_init=True)


def test_lpips_refuses_to_build_without_weights(tmp_path, monkeypatch):
    with pytest.raises(MissingWeightsError, match='vgg16-397923af.pth') as info:
        LPIPSLoss()
    assert 'vgg_weights_path' in str(info.value)
    vgg_path, _ = save_lpips_files(LPIPSLoss(allow_random_init=True), tmp_path)
    with pytest.raises(MissingWeightsError, match=r"'vgg.pth'") as info:
        LPIPSLoss(vgg_weights_path=str(vgg_path))
    assert 'lpips_weights_path' in str(info.value) and 'lpips' in str(info.value)
    with pytest.raises(MissingWeightsError, match='missing_heads.pth'):
        LPIPSLoss(vgg_weights_path=str(vgg_path), lpips_weights_path=str(tmp_path / 'missing_heads.pth'))
    # Random initialisation is announced, once per construction.
    logged = []
    monkeypatch.setattr(perceptual_module, 'print_log', lambda msg, **kwargs: logged.append((msg, kwargs)))
    LPIPSLoss(vgg_weights_path=str(vgg_path), allow_random_init=True)
    assert len(logged) == 1 and 'the LPIPS heads is randomly initialised' in logged[0][0]


def test_lpips_stays_in_eval_when_parent_trains(lpips):
    parent = nn.ModuleDict(dict(perceptual=lpips, head=nn.Dropout()))
    parent.train()
    assert parent.head.training and frozen_and_eval(lpips)


# ---------------------------------------------------------------------------------------------- discriminator


def tiny_discriminator(**kwargs):
    torch.manual_seed(0)
    cfg = dict(base_channels=32, pool_size=4, norm_groups=8)
    cfg.update(kwargs)
    return PatchGANDiscriminator(**cfg)


def test_discriminator_shapes():
    disc = tiny_discriminator()
    assert disc(torch.randn(2, 3, 32, 32)).shape == (2, 1, 4, 4)
    assert disc(torch.randn(1, 3, 33, 27)).shape == (1, 1, 4, 4)  # odd sides: 'same' padding, ceil(side / 2)
    assert tiny_discriminator(blur=False)(torch.randn(2, 3, 32, 32)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match='num_stages'):
        PatchGANDiscriminator(num_stages=2)


def test_blur_is_the_normalised_binomial_and_halves_the_side():
    disc = tiny_discriminator()
    blur = disc.blocks[0][1]
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(blur.kernel[0, 0], torch.outer(taps, taps) / 64)
    out = blur(torch.ones(1, 2, 8, 8))
    assert out.shape == (1, 2, 4, 4)
    # interior of a constant: unchanged
    torch.testing.assert_close(out[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))


def test_default_discriminator_has_titoks_parameter_layout():
    shapes = {k: tuple(v.shape) for k, v in PatchGANDiscriminator().state_dict().items()}
    assert shapes['block_in.0.weight'] == (128, 3, 5, 5)
    assert [shapes[f'blocks.{i}.0.weight'] for i in range(3)] == [(128, 128, 3, 3), (256, 128, 3, 3),
                                                                  (512, 256, 3, 3)]
    assert shapes['blocks.0.1.kernel'] == (1, 1, 4, 4) and shapes['blocks.2.2.weight'] == (512, )
    assert shapes['to_logits.0.weight'] == (512, 512, 1, 1) and shapes['to_logits.2.weight'] == (1, 512, 5, 5)


# --------------------------------------------------------------------------------------------- loss functions


def test_hinge_losses_match_hand_values():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = (0, .5, 2) -> 5/6; relu(1 + fake) = (0, 1, 1.5) -> 5/6; half their sum.
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(5 / 6))
    torch.testing.assert_close(hinge_g_loss(torch.tensor([1.0, 2.0, 3.0])), torch.tensor(-2.0))


def test_lecam_matches_hand_values_and_updates_its_buffers():
    lecam = LeCamRegularizer(decay=0.9)
    assert set(lecam.state_dict()) == {'ema_real_logits_mean', 'ema_fake_logits_mean'}
    real = torch.tensor([1.0, 3.0], requires_grad=True)
    # First call: anchors at 0. relu(2 - 0)^2 + relu(0 - (-2))^2 = 8.
    loss = lecam(real, torch.tensor([-1.0, -3.0]))
    torch.testing.assert_close(loss, torch.tensor(8.0))
    loss.backward()
    # d/dreal_i mean(real)^2 = 2 mean(real) / n
    torch.testing.assert_close(real.grad, torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(lecam.ema_real_logits_mean, torch.tensor([0.2]))
    torch.testing.assert_close(lecam.ema_fake_logits_mean, torch.tensor([-0.2]))
    # Second call uses the anchors from before it: relu(0 + 0.2)^2 + relu(0.2 - 1)^2 = 0.04.
    torch.testing.assert_close(lecam(torch.zeros(2), torch.ones(2)), torch.tensor(0.04))
    torch.testing.assert_close(lecam.ema_real_logits_mean, torch.tensor([0.18]))
    torch.testing.assert_close(lecam.ema_fake_logits_mean, torch.tensor([-0.08]))
    # Eval mode leaves the anchors alone; a state dict round trip restores them.
    lecam.eval()
    lecam(torch.full((2, ), 5.0), torch.full((2, ), 5.0))
    torch.testing.assert_close(lecam.ema_real_logits_mean, torch.tensor([0.18]))
    fresh = LeCamRegularizer(decay=0.9)
    fresh.load_state_dict(lecam.state_dict())
    torch.testing.assert_close(fresh.ema_fake_logits_mean, torch.tensor([-0.08]))


def test_adaptive_weight_is_the_ratio_of_gradient_norms():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, generator=gen)  # (B, in)
    target = torch.randn(4, 2, generator=gen)  # (B, out)
    v = torch.randn(2, generator=gen)  # a linear 'discriminator'
    weight = torch.randn(2, 3, generator=gen).requires_grad_(True)  # the decoder's last layer
    out = z @ weight.T
    rec_loss = (out - target).pow(2).mean()
    gan_loss = -(out @ v).mean()
    # By hand: d rec / dW = 2 / (B * out) * (out - t)^T z;  d gan / dW = -(1 / B) v (sum_b z_b)^T.
    rec_grad = 2.0 / out.numel() * (out - target).detach().T @ z
    gan_grad = -torch.outer(v, z.sum(0)) / z.shape[0]
    expected = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    got = adaptive_gan_weight(rec_loss, gan_loss, weight)
    torch.testing.assert_close(got, expected)
    assert not got.requires_grad
    # The graph survives (retain_graph), and the clamp applies.
    (rec_loss + got * gan_loss).backward()
    assert weight.grad is not None
    out = z @ weight.T
    clamped = adaptive_gan_weight((out - target).pow(2).mean(), -(out @ v).mean() * 1e6, weight,
                                  max_weight=1e4)
    assert clamped.item() <= 1e4
    out = z @ weight.T
    assert adaptive_gan_weight((out - target).pow(2).mean() * 1e9, -(out @ v).mean(), weight).item() == 1e4


# ---------------------------------------------------------------------------------------------- GANLoss


class CountCalls:

    def __init__(self, module):
        self.calls = 0
        module.register_forward_hook(self)

    def __call__(self, module, args, output):
        self.calls += 1


def tiny_gan_loss(**kwargs):
    cfg = dict(discriminator=dict(type='PatchGANDiscriminator', base_channels=32, pool_size=4, norm_groups=8),
               start_iter=10)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return GANLoss(**cfg)


def generator_output(seed=1):
    """A 'generator': one parameter, so that we can see whether gradients reach it."""
    param = nn.Parameter(torch.ones(1))
    return param, param * rand_images(2, 3, 32, 32, seed=seed)


def test_gan_loss_is_off_before_start_iter():
    gan = tiny_gan_loss()
    counter = CountCalls(gan.discriminator)
    real = rand_images(2, 3, 32, 32)
    _, fake = generator_output()
    assert gan.generator_loss(fake, 9) == {}
    assert gan.discriminator_loss(real, fake, 9) == {}
    assert counter.calls == 0 and not gan.active(9) and gan.active(10)


def test_generator_loss_after_start_iter():
    gan = tiny_gan_loss(weight=0.5, disc_factor=2.0)
    param, fake = generator_output()
    out = gan.generator_loss(fake, 10)
    assert set(out) == {'loss_gan', 'gen_fake_logits'}
    expected = 0.5 * 2.0 * -gan.discriminator(fake.detach()).mean()
    torch.testing.assert_close(out['loss_gan'], expected)
    out['loss_gan'].backward()
    assert param.grad is not None and param.grad.abs().sum() > 0
    # The discriminator gets nothing from the generator's objective and is trainable again afterwards.
    assert all(p.grad is None for p in gan.discriminator.parameters())
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_discriminator_loss_after_start_iter_trains_only_the_discriminator():
    gan = tiny_gan_loss()
    param, fake = generator_output()
    real = rand_images(2, 3, 32, 32, seed=3)
    out = gan.discriminator_loss(real, fake, 10)
    assert set(out) == {'loss_disc', 'loss_lecam', 'disc_real_logits', 'disc_fake_logits'}
    assert all(torch.isfinite(v) for v in out.values())
    # One batched pass equals separate passes (GroupNorm is per sample).
    real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake.detach())
    torch.testing.assert_close(out['loss_disc'], hinge_d_loss(real_logits, fake_logits), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out['disc_real_logits'], real_logits.mean(), rtol=1e-5, atol=1e-6)
    assert not out['disc_real_logits'].requires_grad
    sum(v for k, v in out.items() if k.startswith('loss_')).backward()
    grads = [p.grad for p in gan.discriminator.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert param.grad is None  # fake was detached
    assert gan.lecam.ema_real_logits_mean.abs().item() > 0
    assert 'lecam.ema_real_logits_mean' in gan.state_dict()


def test_gan_loss_options():
    assert 'loss_lecam' not in tiny_gan_loss(lecam_weight=0).discriminator_loss(
        rand_images(1, 3, 32, 32), rand_images(1, 3, 32, 32, seed=1), 10)
    # A built discriminator is used as is.
    disc = tiny_discriminator()
    assert GANLoss(discriminator=disc).discriminator is disc
    # Adaptive weighting: needs the reconstruction loss and the decoder's last layer.
    gan = tiny_gan_loss(adaptive_weight=True)
    last = nn.Conv2d(3, 3, 1)
    fake = last(rand_images(2, 3, 32, 32))
    rec_loss = (fake - rand_images(2, 3, 32, 32, seed=2)).pow(2).mean()
    with pytest.raises(ValueError, match='rec_loss and last_layer'):
        gan.generator_loss(fake, 10)
    out = gan.generator_loss(fake, 10, rec_loss=rec_loss, last_layer=last.weight)
    g_loss = -gan.discriminator(fake).mean()
    expected_w = adaptive_gan_weight(rec_loss, g_loss, last.weight)
    torch.testing.assert_close(out['gan_adaptive_weight'], expected_w)
    torch.testing.assert_close(out['loss_gan'], 0.01 * expected_w * g_loss)


def test_every_loss_builds_from_the_registry():
    tiny = dict(base_channels=32, pool_size=4, norm_groups=8)
    built = [MODELS.build(dict(type='PatchGANDiscriminator', **tiny)),
             MODELS.build(dict(type='LeCamRegularizer')),
             MODELS.build(dict(type='GANLoss', discriminator=dict(type='PatchGANDiscriminator', **tiny))),
             MODELS.build(dict(type='LPIPSLoss', allow_random_init=True))]
    assert [type(m).__name__ for m in built] == ['PatchGANDiscriminator', 'LeCamRegularizer', 'GANLoss',
                                                 'LPIPSLoss']
    assert MODELS.get('ConvNeXtPerceptualLoss') is ConvNeXtPerceptualLoss  # built by the fixture above
