"""MaskGITVQGAN: the public weights' keys, the architecture's quirks, nearest codes and loading."""
import datetime

import pytest
import torch
import torch.nn.functional as F

from mmspectral.engine import CheckpointLoadError
from mmspectral.models.tokenizers.maskgit_vqgan import PUBLIC_WEIGHTS, Conv2dSame, MaskGITVQGAN
from mmspectral.registry import MODELS

# Transcribed from the notes (Appendix A): every key of maskgit-vqgan-imagenet-f16-256.bin with its shape, in
# the order the module code registers them.
PUBLIC_KEYS = '''
encoder.conv_in.weight [128, 3, 3, 3]
encoder.down.0.block.0.norm1.weight [128]
encoder.down.0.block.0.norm1.bias [128]
encoder.down.0.block.0.conv1.weight [128, 128, 3, 3]
encoder.down.0.block.0.norm2.weight [128]
encoder.down.0.block.0.norm2.bias [128]
encoder.down.0.block.0.conv2.weight [128, 128, 3, 3]
encoder.down.0.block.1.norm1.weight [128]
encoder.down.0.block.1.norm1.bias [128]
encoder.down.0.block.1.conv1.weight [128, 128, 3, 3]
encoder.down.0.block.1.norm2.weight [128]
encoder.down.0.block.1.norm2.bias [128]
encoder.down.0.block.1.conv2.weight [128, 128, 3, 3]
encoder.down.1.block.0.norm1.weight [128]
encoder.down.1.block.0.norm1.bias [128]
encoder.down.1.block.0.conv1.weight [128, 128, 3, 3]
encoder.down.1.block.0.norm2.weight [128]
encoder.down.1.block.0.norm2.bias [128]
encoder.down.1.block.0.conv2.weight [128, 128, 3, 3]
encoder.down.1.block.1.norm1.weight [128]
encoder.down.1.block.1.norm1.bias [128]
encoder.down.1.block.1.conv1.weight [128, 128, 3, 3]
encoder.down.1.block.1.norm2.weight [128]
encoder.down.1.block.1.norm2.bias [128]
encoder.down.1.block.1.conv2.weight [128, 128, 3, 3]
encoder.down.2.block.0.norm1.weight [128]
encoder.down.2.block.0.norm1.bias [128]
encoder.down.2.block.0.conv1.weight [256, 128, 3, 3]
encoder.down.2.block.0.norm2.weight [256]
encoder.down.2.block.0.norm2.bias [256]
encoder.down.2.block.0.conv2.weight [256, 256, 3, 3]
encoder.down.2.block.0.nin_shortcut.weight [256, 256, 1, 1]
encoder.down.2.block.1.norm1.weight [256]
encoder.down.2.block.1.norm1.bias [256]
encoder.down.2.block.1.conv1.weight [256, 256, 3, 3]
encoder.down.2.block.1.norm2.weight [256]
encoder.down.2.block.1.norm2.bias [256]
encoder.down.2.block.1.conv2.weight [256, 256, 3, 3]
encoder.down.3.block.0.norm1.weight [256]
encoder.down.3.block.0.norm1.bias [256]
encoder.down.3.block.0.conv1.weight [256, 256, 3, 3]
encoder.down.3.block.0.norm2.weight [256]
encoder.down.3.block.0.norm2.bias [256]
encoder.down.3.block.0.conv2.weight [256, 256, 3, 3]
encoder.down.3.block.1.norm1.weight [256]
encoder.down.3.block.1.norm1.bias [256]
encoder.down.3.block.1.conv1.weight [256, 256, 3, 3]
encoder.down.3.block.1.norm2.weight [256]
encoder.down.3.block.1.norm2.bias [256]
encoder.down.3.block.1.conv2.weight [256, 256, 3, 3]
encoder.down.4.block.0.norm1.weight [256]
encoder.down.4.block.0.norm1.bias [256]
encoder.down.4.block.0.conv1.weight [512, 256, 3, 3]
encoder.down.4.block.0.norm2.weight [512]
encoder.down.4.block.0.norm2.bias [512]
encoder.down.4.block.0.conv2.weight [512, 512, 3, 3]
encoder.down.4.block.0.nin_shortcut.weight [512, 512, 1, 1]
encoder.down.4.block.1.norm1.weight [512]
encoder.down.4.block.1.norm1.bias [512]
encoder.down.4.block.1.conv1.weight [512, 512, 3, 3]
encoder.down.4.block.1.norm2.weight [512]
encoder.down.4.block.1.norm2.bias [512]
encoder.down.4.block.1.conv2.weight [512, 512, 3, 3]
encoder.mid.0.norm1.weight [512]
encoder.mid.0.norm1.bias [512]
encoder.mid.0.conv1.weight [512, 512, 3, 3]
encoder.mid.0.norm2.weight [512]
encoder.mid.0.norm2.bias [512]
encoder.mid.0.conv2.weight [512, 512, 3, 3]
encoder.mid.1.norm1.weight [512]
encoder.mid.1.norm1.bias [512]
encoder.mid.1.conv1.weight [512, 512, 3, 3]
encoder.mid.1.norm2.weight [512]
encoder.mid.1.norm2.bias [512]
encoder.mid.1.conv2.weight [512, 512, 3, 3]
encoder.norm_out.weight [512]
encoder.norm_out.bias [512]
encoder.conv_out.weight [256, 512, 1, 1]
encoder.conv_out.bias [256]
decoder.conv_in.weight [512, 256, 3, 3]
decoder.conv_in.bias [512]
decoder.mid.0.norm1.weight [512]
decoder.mid.0.norm1.bias [512]
decoder.mid.0.conv1.weight [512, 512, 3, 3]
decoder.mid.0.norm2.weight [512]
decoder.mid.0.norm2.bias [512]
decoder.mid.0.conv2.weight [512, 512, 3, 3]
decoder.mid.1.norm1.weight [512]
decoder.mid.1.norm1.bias [512]
decoder.mid.1.conv1.weight [512, 512, 3, 3]
decoder.mid.1.norm2.weight [512]
decoder.mid.1.norm2.bias [512]
decoder.mid.1.conv2.weight [512, 512, 3, 3]
decoder.up.0.block.0.norm1.weight [128]
decoder.up.0.block.0.norm1.bias [128]
decoder.up.0.block.0.conv1.weight [128, 128, 3, 3]
decoder.up.0.block.0.norm2.weight [128]
decoder.up.0.block.0.norm2.bias [128]
decoder.up.0.block.0.conv2.weight [128, 128, 3, 3]
decoder.up.0.block.1.norm1.weight [128]
decoder.up.0.block.1.norm1.bias [128]
decoder.up.0.block.1.conv1.weight [128, 128, 3, 3]
decoder.up.0.block.1.norm2.weight [128]
decoder.up.0.block.1.norm2.bias [128]
decoder.up.0.block.1.conv2.weight [128, 128, 3, 3]
decoder.up.1.block.0.norm1.weight [256]
decoder.up.1.block.0.norm1.bias [256]
decoder.up.1.block.0.conv1.weight [128, 256, 3, 3]
decoder.up.1.block.0.norm2.weight [128]
decoder.up.1.block.0.norm2.bias [128]
decoder.up.1.block.0.conv2.weight [128, 128, 3, 3]
decoder.up.1.block.0.nin_shortcut.weight [128, 128, 1, 1]
decoder.up.1.block.1.norm1.weight [128]
decoder.up.1.block.1.norm1.bias [128]
decoder.up.1.block.1.conv1.weight [128, 128, 3, 3]
decoder.up.1.block.1.norm2.weight [128]
decoder.up.1.block.1.norm2.bias [128]
decoder.up.1.block.1.conv2.weight [128, 128, 3, 3]
decoder.up.1.upsample_conv.weight [128, 128, 3, 3]
decoder.up.1.upsample_conv.bias [128]
decoder.up.2.block.0.norm1.weight [256]
decoder.up.2.block.0.norm1.bias [256]
decoder.up.2.block.0.conv1.weight [256, 256, 3, 3]
decoder.up.2.block.0.norm2.weight [256]
decoder.up.2.block.0.norm2.bias [256]
decoder.up.2.block.0.conv2.weight [256, 256, 3, 3]
decoder.up.2.block.1.norm1.weight [256]
decoder.up.2.block.1.norm1.bias [256]
decoder.up.2.block.1.conv1.weight [256, 256, 3, 3]
decoder.up.2.block.1.norm2.weight [256]
decoder.up.2.block.1.norm2.bias [256]
decoder.up.2.block.1.conv2.weight [256, 256, 3, 3]
decoder.up.2.upsample_conv.weight [256, 256, 3, 3]
decoder.up.2.upsample_conv.bias [256]
decoder.up.3.block.0.norm1.weight [512]
decoder.up.3.block.0.norm1.bias [512]
decoder.up.3.block.0.conv1.weight [256, 512, 3, 3]
decoder.up.3.block.0.norm2.weight [256]
decoder.up.3.block.0.norm2.bias [256]
decoder.up.3.block.0.conv2.weight [256, 256, 3, 3]
decoder.up.3.block.0.nin_shortcut.weight [256, 256, 1, 1]
decoder.up.3.block.1.norm1.weight [256]
decoder.up.3.block.1.norm1.bias [256]
decoder.up.3.block.1.conv1.weight [256, 256, 3, 3]
decoder.up.3.block.1.norm2.weight [256]
decoder.up.3.block.1.norm2.bias [256]
decoder.up.3.block.1.conv2.weight [256, 256, 3, 3]
decoder.up.3.upsample_conv.weight [256, 256, 3, 3]
decoder.up.3.upsample_conv.bias [256]
decoder.up.4.block.0.norm1.weight [512]
decoder.up.4.block.0.norm1.bias [512]
decoder.up.4.block.0.conv1.weight [512, 512, 3, 3]
decoder.up.4.block.0.norm2.weight [512]
decoder.up.4.block.0.norm2.bias [512]
decoder.up.4.block.0.conv2.weight [512, 512, 3, 3]
decoder.up.4.block.1.norm1.weight [512]
decoder.up.4.block.1.norm1.bias [512]
decoder.up.4.block.1.conv1.weight [512, 512, 3, 3]
decoder.up.4.block.1.norm2.weight [512]
decoder.up.4.block.1.norm2.bias [512]
decoder.up.4.block.1.conv2.weight [512, 512, 3, 3]
decoder.up.4.upsample_conv.weight [512, 512, 3, 3]
decoder.up.4.upsample_conv.bias [512]
decoder.norm_out.weight [128]
decoder.norm_out.bias [128]
decoder.conv_out.weight [3, 128, 3, 3]
decoder.conv_out.bias [3]
quantize.embedding.weight [1024, 256]
'''

TINY = dict(hidden_channels=32, channel_mult=(1, 2), num_res_blocks=2, z_channels=16, codebook_size=64)


def parse_table(text):
    table = []
    for line in text.strip().splitlines():
        key, shape = line.split(' ', 1)
        table.append((key, [int(s) for s in shape.strip('[]').split(',')]))
    return table


def tiny_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MaskGITVQGAN(**TINY, allow_random_init=True, **kwargs).eval()


@pytest.fixture(scope='module')
def model():
    return tiny_model()


@pytest.fixture
def images():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_public_architecture_matches_the_released_keys():
    with torch.device('meta'):
        full = MaskGITVQGAN(allow_random_init=True)
    expected = parse_table(PUBLIC_KEYS)
    assert len(expected) == 168
    got = [(k, list(v.shape)) for k, v in full.state_dict().items()]
    assert got == expected
    assert sum(p.numel() for p in full.parameters()) == 54_515_587
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in full.modules())


def test_encode_decode_shapes_and_ranges(model, images):
    codes = model.encode(images)
    assert codes.shape == (2, 8 * 8) and codes.dtype == torch.long
    assert 0 <= codes.min() and codes.max() < TINY['codebook_size']
    recon = model.decode_codes(codes)
    assert recon.shape == images.shape
    assert model.encode(recon).shape == codes.shape
    assert torch.equal(model(images), codes)
    # (B, h, w) codes decode the same as the flattened row-major ones.
    assert torch.allclose(model.decode_codes(codes.view(2, 8, 8)), recon)
    with pytest.raises(ValueError, match='multiples of 2'):
        model.encode(torch.rand(1, 3, 15, 16))
    with pytest.raises(ValueError, match=r'\[0, 64\)'):
        model.decode_codes(torch.full((1, 64), 64))


def test_quantizer_picks_the_true_nearest_code_row_major(model, images):
    with torch.no_grad():
        z = model.encoder(images)  # (B, D, h, w)
    b, d, h, w = z.shape
    weight = model.quantize.embedding.weight.detach()
    flat = z.permute(0, 2, 3, 1).reshape(b, h * w, d)  # position r * w + c
    expected = torch.cdist(flat, weight.expand(b, -1, -1)).argmin(-1)
    codes = model.encode(images)
    assert torch.equal(codes, expected)
    feats = model.codes_to_features(codes)
    assert feats.shape == (b, d, h, w)
    for r, c in [(0, 1), (1, 0), (h - 1, w - 2)]:
        assert torch.equal(feats[:, :, r, c], weight[codes[:, r * w + c]])


def test_resnet_block_shortcut_acts_on_the_output(model):
    x = torch.randn(2, 32, 8, 8)
    block = model.encoder.down[1].block[0]  # 32 -> 64 channels
    assert block.nin_shortcut.weight.shape == (64, 64, 1, 1) and block.nin_shortcut.bias is None
    assert block.conv1.bias is None and block.conv2.bias is None
    assert block.norm1.eps == block.norm2.eps == 1e-6
    with torch.no_grad():
        h = block.conv2(F.silu(block.norm2(block.conv1(F.silu(block.norm1(x))))))
        assert torch.allclose(block(x), h + block.nin_shortcut(h), atol=1e-6)
        same = model.encoder.down[0].block[0]  # 32 -> 32: identity residual
        assert same.nin_shortcut is None
        h = same.conv2(F.silu(same.norm2(same.conv1(F.silu(same.norm1(x))))))
        assert torch.allclose(same(x), h + x, atol=1e-6)
    # The decoder's up.{i} is level i: up.0 is the finest (no upsampling), its first block narrows 64 -> 32.
    assert model.decoder.up[0].block[0].nin_shortcut.weight.shape == (32, 32, 1, 1)
    assert not hasattr(model.decoder.up[0], 'upsample_conv') and hasattr(model.decoder.up[1], 'upsample_conv')


def test_same_padding_follows_tensorflow():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 7, 8)
    conv = Conv2dSame(2, 3, 3)
    assert torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1), atol=1e-6)
    # Even kernel, stride 1: total pad k - 1 = 3, split (k - 1) // 2 = 1 before and 2 after.
    conv4 = Conv2dSame(2, 3, 4)
    ref = F.conv2d(F.pad(x, [1, 2, 1, 2]), conv4.weight, conv4.bias)
    assert conv4(x).shape[-2:] == x.shape[-2:] and torch.allclose(conv4(x), ref, atol=1e-6)
    # Stride 2 on an even size: output ceil(n / 2), the single pad pixel goes after (TF), not before.
    conv_s2 = Conv2dSame(2, 3, 3, stride=2)
    y = torch.randn(1, 2, 8, 8)
    ref = F.conv2d(F.pad(y, [0, 1, 0, 1]), conv_s2.weight, conv_s2.bias, stride=2)
    assert torch.allclose(conv_s2(y), ref, atol=1e-6)
    conv1 = Conv2dSame(2, 3, 1, bias=False)
    assert torch.allclose(conv1(x), F.conv2d(x, conv1.weight), atol=1e-6)


def test_cpu_pixel_decoder_runs_channels_last_and_gives_the_default_layouts_numbers(model):
    torch.manual_seed(1)
    z = torch.randn(3, TINY['z_channels'], 5, 6)
    layouts = []
    hook = model.decoder.conv_out.register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        with torch.no_grad():
            out = model.decode_features(z)
            ref = model.decoder(z)  # the default (NCHW) layout throughout
    finally:
        hook.remove()
    assert layouts == [True, False]  # the layout carried through to the last convolution
    assert out.is_contiguous() and out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-5)
    # The encoder runs channels-last too; its codes are those of the default layout.
    images = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.encode(images), model.quantize(model.encoder(images)).flatten(1))


def test_loading_weights(tmp_path, model, images):
    path = tmp_path / 'weights.bin'
    torch.save(model.state_dict(), path)
    loaded = MaskGITVQGAN(**TINY, pretrained=str(path)).eval()
    codes = model.encode(images)
    assert torch.equal(loaded.encode(images), codes)
    assert torch.equal(loaded.decode_codes(codes), model.decode_codes(codes))

    wrapped = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, wrapped)
    other = MaskGITVQGAN(**TINY, pretrained=str(wrapped)).eval()
    assert torch.equal(other.decode_codes(codes), model.decode_codes(codes))

    with pytest.raises(FileNotFoundError) as info:
        MaskGITVQGAN(**TINY, pretrained=str(tmp_path / 'absent.bin'))
    msg = str(info.value)
    assert 'absent.bin' in msg and PUBLIC_WEIGHTS in msg and 'never downloads' in msg and 'pretrained=' in msg

    state = model.state_dict()
    state['decoder.conv_out.weight'] = torch.zeros(3, 32, 1, 1)
    state['pixel_decoder.conv_in.weight'] = torch.zeros(1)
    del state['quantize.embedding.weight']
    bad = tmp_path / 'bad.bin'
    torch.save(state, bad)
    with pytest.raises(CheckpointLoadError) as info:
        MaskGITVQGAN(**TINY, pretrained=str(bad))
    msg = str(info.value)
    assert 'decoder.conv_out.weight: file [3, 32, 1, 1] vs model [3, 32, 3, 3]' in msg
    assert 'quantize.embedding.weight' in msg and 'pixel_decoder.conv_in.weight' in msg
    assert PUBLIC_WEIGHTS in msg  # the TiTok-checkpoint hint

    # The full file is a weights-only load: pickled objects are refused.
    pickled = tmp_path / 'pickled.bin'
    torch.save({'state_dict': model.state_dict(), 'date': datetime.date(2024, 1, 1)}, pickled)
    with pytest.raises(CheckpointLoadError):
        MaskGITVQGAN(**TINY, pretrained=str(pickled))


def test_random_init_needs_the_explicit_flag():
    with pytest.raises(ValueError) as info:
        MaskGITVQGAN(**TINY)
    msg = str(info.value)
    assert PUBLIC_WEIGHTS in msg and 'pretrained=' in msg and 'allow_random_init=True' in msg
    with pytest.raises(ValueError, match='norm_groups=32 must divide'):
        MaskGITVQGAN(hidden_channels=48, channel_mult=(1, 2), allow_random_init=True)


def test_soft_decode_of_peaked_logits_equals_hard_decode(model):
    codes = torch.randint(0, TINY['codebook_size'], (2, 64), generator=torch.Generator().manual_seed(2))
    logits = F.one_hot(codes, TINY['codebook_size']).float().mul(1e4)  # (B, h*w, K)
    logits = logits.transpose(1, 2).reshape(2, TINY['codebook_size'], 8, 8).requires_grad_(True)
    with torch.no_grad():
        hard = model.decode_codes(codes)
    soft = model.soft_decode(logits)
    assert torch.allclose(soft, hard, atol=1e-5)
    # The frozen teacher still passes gradients to the logits (TiTok's stage 2 trains through this path).
    frozen = tiny_model(frozen=True)
    mild = torch.randn(2, TINY['codebook_size'], 8, 8, requires_grad=True)
    frozen.soft_decode(mild).mean().backward()
    assert mild.grad is not None and mild.grad.abs().sum() > 0
    assert all(p.grad is None for p in frozen.parameters())


def test_freeze_keeps_eval_mode_and_registry_builds():
    teacher = MODELS.build(dict(type='MaskGITVQGAN', **TINY, allow_random_init=True, frozen=True))
    assert isinstance(teacher, MaskGITVQGAN)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    parent = torch.nn.Sequential(teacher).train()
    assert parent.training and not teacher.training and not teacher.encoder.training
    student = tiny_model().train()
    assert student.training and all(p.requires_grad for p in student.parameters())
