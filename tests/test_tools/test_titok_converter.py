"""The TiTok converter: official key layout in, mmspectral's TiTokTokenizer out, same numbers.

The reference below rebuilds the official TiTok module layout (nn.MultiheadAttention on LND tensors, 1x1 conv
heads, the legacy (B, N, C) -> (B, C, N, 1) reshape) from the published architecture description, so that its
state dict has the official key names and shapes.
"""
import os
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmspectral.models import TiTokTokenizer
from mmspectral.models.tokenizers.maskgit_vqgan import Decoder as MaskGITDecoder
from mmspectral.models.tokenizers.titok_convert import convert_titok_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RefBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=nn.GELU(),
                                             c_proj=nn.Linear(4 * width, width)))

    def forward(self, x):  # (L, B, C)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class RefEncoder(nn.Module):
    def __init__(self, image, patch, width, depth, heads, tokens, token_size):
        super().__init__()
        self.grid = image // patch
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        self.class_embedding = nn.Parameter(torch.randn(1, width) * 0.1)
        self.positional_embedding = nn.Parameter(torch.randn(self.grid ** 2 + 1, width) * 0.1)
        self.latent_token_positional_embedding = nn.Parameter(torch.randn(tokens, width) * 0.1)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(RefBlock(width, heads) for _ in range(depth))
        self.ln_post = nn.LayerNorm(width)
        self.conv_out = nn.Conv2d(width, token_size, 1)

    def forward(self, x, latent_tokens):
        b, w = x.shape[0], self.patch_embed.out_channels
        x = self.patch_embed(x).reshape(b, w, -1).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(b, 1, w), x], 1) + self.positional_embedding
        lt = latent_tokens.expand(b, -1, -1) + self.latent_token_positional_embedding
        x = self.ln_pre(torch.cat([x, lt], 1)).permute(1, 0, 2)
        for blk in self.transformer:
            x = blk(x)
        x = self.ln_post(x.permute(1, 0, 2)[:, 1 + self.grid ** 2:])
        n = x.shape[1]
        x = self.conv_out(x.reshape(b, w, n, 1))  # the legacy reshape: no permute
        return x.reshape(b, -1, 1, n)  # (B, D, 1, N)


class RefDecoder(nn.Module):
    def __init__(self, image, patch, width, depth, heads, tokens, token_size, codes):
        super().__init__()
        self.grid = image // patch
        self.decoder_embed = nn.Linear(token_size, width)
        self.class_embedding = nn.Parameter(torch.randn(1, width) * 0.1)
        self.positional_embedding = nn.Parameter(torch.randn(self.grid ** 2 + 1, width) * 0.1)
        self.mask_token = nn.Parameter(torch.randn(1, 1, width) * 0.1)
        self.latent_token_positional_embedding = nn.Parameter(torch.randn(tokens, width) * 0.1)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(RefBlock(width, heads) for _ in range(depth))
        self.ln_post = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.Tanh(), nn.Conv2d(2 * width, codes, 1))

    def forward(self, z):  # (B, D, 1, N)
        b, d, _, n = z.shape
        x = self.decoder_embed(z.reshape(b, d, n).permute(0, 2, 1))
        w = x.shape[-1]
        ctx = torch.cat([self.class_embedding.expand(b, 1, w),
                         self.mask_token.repeat(b, self.grid ** 2, 1)], 1)
        ctx = ctx + self.positional_embedding
        x = self.ln_pre(torch.cat([ctx, x + self.latent_token_positional_embedding[:n]], 1)).permute(1, 0, 2)
        for blk in self.transformer:
            x = blk(x)
        x = self.ln_post(x.permute(1, 0, 2)[:, 1:1 + self.grid ** 2])
        return self.ffn(x.permute(0, 2, 1).reshape(b, w, self.grid, self.grid))


class RefTiTok(nn.Module):
    """Official layout of TiTok with the MaskGIT pixel decoder (finetune_decoder=True)."""

    def __init__(self, image=256, patch=16, width=768, depth=12, heads=12, tokens=64, token_size=12,
                 codebook=4096, codes=1024, maskgit=dict(hidden_channels=128, channel_mult=(1, 1, 2, 2, 4))):
        super().__init__()
        self.encoder = RefEncoder(image, patch, width, depth, heads, tokens, token_size)
        self.decoder = RefDecoder(image, patch, width, depth, heads, tokens, token_size, codes)
        self.latent_tokens = nn.Parameter(torch.randn(tokens, width) * 0.1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(codebook, token_size)
        self.pixel_quantize = nn.Module()
        self.pixel_quantize.embedding = nn.Embedding(codes, 256)
        self.pixel_decoder = MaskGITDecoder(3, maskgit['hidden_channels'], maskgit['channel_mult'],
                                            2, 256, 32)

    def quantize_latents(self, z):  # (B, D, 1, N) -> ids (B, N), normalised codes (B, D, 1, N)
        b, d, _, n = z.shape
        flat = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), dim=-1)
        emb = F.normalize(self.quantize.embedding.weight, dim=-1)
        ids = torch.cdist(flat, emb).argmin(1).view(b, n)
        return ids, emb[ids].permute(0, 2, 1).reshape(b, d, 1, n)


def test_b64_official_layout_converts_without_missing_or_unexpected_keys():
    with torch.device('meta'):
        official = RefTiTok().state_dict()
        ours = TiTokTokenizer(arch='B', decoder_head='proxy_codes', legacy_token_projection=True,
                              pixel_decoder=dict(type='MaskGITVQGAN', with_encoder=False,
                                                 allow_random_init=True))
    assert len(official) == 404  # the official TiTok-B-64 inference checkpoint's key count
    converted, arch = convert_titok_state_dict(official)
    result = ours.load_state_dict(converted, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert arch == dict(width=768, depth=12, num_heads=12, image_size=256, patch_size=16, num_tokens=64,
                        token_size=12, codebook_size=4096, decoder_head='proxy_codes',
                        proxy_codebook_size=1024)


def test_converted_weights_compute_what_the_official_layout_computes(tmp_path):
    torch.manual_seed(0)
    # Head dim 64, as in every TiTok size (the converter infers heads = width / 64).
    ref = RefTiTok(image=32, patch=8, width=128, depth=2, heads=2, tokens=8, token_size=4, codebook=32,
                   codes=16, maskgit=dict(hidden_channels=32, channel_mult=(1, 1, 1))).eval()
    converted, arch = convert_titok_state_dict(ref.state_dict())
    tok = TiTokTokenizer(**arch, legacy_token_projection=True,
                         pixel_decoder=dict(type='MaskGITVQGAN', hidden_channels=32, channel_mult=(1, 1, 1),
                                            z_channels=256, codebook_size=16, with_encoder=False,
                                            allow_random_init=True)).eval()
    tok.load_state_dict(converted, strict=True)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ref_latents = ref.encoder(images, ref.latent_tokens)  # (B, D, 1, N)
        latents = tok.encode_continuous(images)  # (B, N, D)
        assert torch.allclose(latents, ref_latents[:, :, 0].transpose(1, 2), atol=1e-5)
        ref_ids, ref_codes = ref.quantize_latents(ref_latents)
        assert torch.allclose(tok.quantizer.lookup(ref_ids), ref_codes[:, :, 0].transpose(1, 2), atol=1e-6)
        ref_logits = ref.decoder(ref_codes)
        logits = tok.decode(tok.quantizer.lookup(ref_ids))
        assert torch.allclose(logits, ref_logits, atol=1e-5)
        ids = ref_ids
        # Pixels: softmax over the proxy codes, times the MaskGIT codebook, through the MaskGIT decoder.
        probs = ref_logits.softmax(1)
        feats = torch.einsum('bkhw,kd->bdhw', probs, ref.pixel_quantize.embedding.weight)
        assert torch.allclose(tok.decode_tokens(ids), ref.pixel_decoder(feats), atol=1e-4)


def test_converter_script_writes_a_loadable_checkpoint(tmp_path, repo_root, subprocess_env):
    import subprocess
    import sys
    ref = RefTiTok(image=32, patch=8, width=64, depth=1, heads=4, tokens=4, token_size=4, codebook=8,
                   codes=16, maskgit=dict(hidden_channels=32, channel_mult=(1, 1, 1)))
    src, dst = tmp_path / 'official.bin', tmp_path / 'converted.pth'
    torch.save(ref.state_dict(), src)
    proc = subprocess.run([sys.executable, 'tools/model_converters/titok_to_mmspectral.py', str(src),
                           str(dst)], cwd=repo_root, env=subprocess_env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['tokenizer_args']['legacy_token_projection'] is True
    assert all(k.startswith('tokenizer.') for k in ckpt['state_dict'])
    with pytest.raises(KeyError, match='does not look like a TiTok'):
        convert_titok_state_dict({'foo': torch.zeros(1)})
