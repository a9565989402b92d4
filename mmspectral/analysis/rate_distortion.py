"""Rate-distortion of the progressive codec against the classic image codecs (docs/codec.md).

Curves are lists of points, one per prefix length (the spectral codec) or quality setting (a classic codec),
each the mean over the images of: bits per pixel counted several ways, PSNR (dB, on 8-bit RGB), SSIM and,
where labels and a probe are given, the probe's class accuracy. Rates:

- ``bpp_file``: the whole file's bytes (header included);
- ``bpp_payload``: the bytes beyond a fixed header. For the spectral codec, the range coder's words; for a
  classic codec, the file's size minus that of a flat grey image of the same size coded at the same
  setting (its headers, tables and the least data the format writes);
- ``bpp_raw`` (spectral only): k log2 V, the tokens without entropy coding;
- ``bpp_ideal`` (spectral only): the generator's -log2 p of the tokens, the size an ideal coder reaches.

The classic codecs run through ``imagecodecs`` (libjpeg-turbo, libwebp, libavif, libjxl, OpenJPEG builds);
BD-rate through the ``bjontegaard`` package.
"""
import math
import time
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from mmspectral.codec import decode_file, encode_images, prefix_bits, prefix_files
from mmspectral.codec.container import unpack
from mmspectral.evaluation.embedded_classifier import accuracy
from mmspectral.evaluation.functional import psnr, ssim
from mmspectral.utils.optional import require

__all__ = ['CLASSIC_CODECS', 'classic_curve', 'spectral_curve', 'bd_rates', 'report_table', 'plot_curves',
           'to_uint8', 'codec_speed', 'table4_ideal_curves', 'TABLE4_ROWS']

#: name -> (imagecodecs function prefix, settings swept, fixed keyword arguments). JPEG 2000's ``level`` is
#: OpenJPEG's target PSNR in dB; the others' is a 0-100 quality.
CLASSIC_CODECS = {
    'JPEG': ('jpeg8', (1, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), {}),
    'WebP': ('webp', (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), dict(lossless=False)),
    'AVIF': ('avif', (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), {}),
    'JPEG XL': ('jpegxl', (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), {}),
    'JPEG 2000': ('jpeg2k', (16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 40), {}),
}


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3), rounded."""
    uint8 = (images.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return uint8.permute(0, 2, 3, 1).contiguous().numpy()


def _from_uint8(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def _quality(decoded: torch.Tensor, reference: torch.Tensor, labels=None, probe=None) -> Dict[str, float]:
    """PSNR / SSIM on the 8-bit images (every codec's output rounded to 8 bits first), probe accuracy."""
    decoded = _from_uint8(to_uint8(decoded))
    out = dict(psnr=float(psnr(decoded, reference).mean()), ssim=float(ssim(decoded, reference).mean()))
    if probe is not None and labels is not None:
        out['probe_accuracy'] = accuracy(probe, decoded, labels)
    return out


def classic_curve(name: str, images: torch.Tensor, labels=None, probe=None,
                  settings: Optional[Sequence[int]] = None) -> List[dict]:
    """One classic codec over its settings on ``images`` (B, 3, H, W) in [0, 1]: real bytes of real files."""
    codecs = require('imagecodecs', 'The classic codecs')
    prefix, default_settings, kwargs = CLASSIC_CODECS[name]
    encode, decode = getattr(codecs, prefix + '_encode'), getattr(codecs, prefix + '_decode')
    arrays = to_uint8(images)
    reference = _from_uint8(arrays)
    pixels = arrays.shape[1] * arrays.shape[2]
    flat = np.full_like(arrays[0], 128)
    points = []
    for level in settings or default_settings:
        files = [encode(a, level=level, **kwargs) for a in arrays]
        fixed = len(encode(flat, level=level, **kwargs))
        decoded = _from_uint8([decode(f)[..., :3] for f in files])
        sizes = np.array([len(f) for f in files], dtype=np.float64)
        points.append(dict(codec=name, setting=level, bpp_file=float(sizes.mean() * 8 / pixels),
                           bpp_payload=float(np.maximum(sizes - fixed, 0).mean() * 8 / pixels),
                           fixed_header_bytes=fixed, **_quality(decoded, reference, labels, probe)))
    return points


@torch.no_grad()
def spectral_curve(model, images: torch.Tensor, labels: Optional[torch.Tensor] = None, probe=None,
                   conditional: bool = True, name: str = 'spectral tokens') -> List[dict]:
    """The progressive codec's points, one per prefix k = 1..N, from one coding pass per image: the size of
    the file of the first k scans (one scan per token), and the image of the first k tokens of the decoded
    complete file (each file is decoded, and its checksums checked, as a user would; a cut file decodes to
    exactly that prefix image, which tests/test_codec checks for every cut)."""
    gen = model.gen
    pixels = images.shape[-1] * images.shape[-2]
    coded = labels if conditional and labels is not None else torch.full((len(images),), gen.num_classes)
    ends, files = prefix_files(model, images, coded.tolist())
    ideal = prefix_bits(model, images, coded).cpu().numpy()  # (B, N)
    reference = _from_uint8(to_uint8(images))
    tokens = torch.cat([decode_file(model, per_image[-1]).tokens for per_image in files])  # (B, N)
    points = []
    for j, k in enumerate(ends):
        per_image = [files[i][j] for i in range(len(images))]
        decoded = torch.cat([model.decode(tokens[i:i + 250, :k]) for i in range(0, len(tokens), 250)]).cpu()
        sizes = np.array([len(d) for d in per_image], dtype=np.float64)
        payload = np.array([4 * unpack(d)[0].scans[-1].words for d in per_image], dtype=np.float64)
        points.append(dict(codec=name, setting=k, bpp_file=float(sizes.mean() * 8 / pixels),
                           bpp_payload=float(payload.mean() * 8 / pixels),
                           bpp_raw=k * math.log2(gen.vocab_size) / pixels,
                           bpp_ideal=float(ideal[:, k - 1].mean() / pixels),
                           **_quality(decoded, reference, labels, probe)))
    return points


def bd_rates(curves: Dict[str, List[dict]], anchor: str = 'JPEG', rate: str = 'bpp_file',
             quality: str = 'psnr') -> Dict[str, dict]:
    """BD-rate (%) of every curve against ``anchor`` over their common quality range (``bjontegaard``,
    pchip interpolation); ``None`` with the reason where the curves do not overlap in quality."""
    bjontegaard = require('bjontegaard', 'BD-rate')
    base = _monotone(curves[anchor], rate, quality)
    out = {}
    for name, points in curves.items():
        if name == anchor or rate not in points[0]:
            continue
        test = _monotone(points, rate, quality)
        low, high = max(min(base[1]), min(test[1])), min(max(base[1]), max(test[1]))
        if len(test[0]) < 2 or high <= low:
            out[name] = dict(bd_rate=None, reason=f'no common {quality} range with {anchor} '
                             f'({min(test[1]):.2f}-{max(test[1]):.2f} against {min(base[1]):.2f}-'
                             f'{max(base[1]):.2f})')
            continue
        value = bjontegaard.bd_rate(base[0], base[1], test[0], test[1], method='pchip',
                                    require_matching_points=False, min_overlap=0)
        out[name] = dict(bd_rate=float(value), overlap=[low, high])
    return out


def _monotone(points: List[dict], rate: str, quality: str):
    """The points sorted by rate, keeping only those that improve the quality (BD-rate needs a monotone
    curve; a codec's flat tail adds rate for nothing)."""
    rates, values = [], []
    for p in sorted(points, key=lambda p: p[rate]):
        if p[rate] > 0 and (not values or p[quality] > values[-1]) and (not rates or p[rate] > rates[-1]):
            rates.append(p[rate])
            values.append(p[quality])
    return np.array(rates), np.array(values)


def report_table(curves: Dict[str, List[dict]], bd: Dict[str, dict], title: str, anchor: str = 'JPEG',
                 rate: str = 'bpp_file') -> str:
    """A markdown table: every point of every curve, then the BD-rates (of ``rate`` against ``anchor``)."""
    keys = ['bpp_file', 'bpp_payload', 'bpp_ideal', 'bpp_raw', 'psnr', 'ssim', 'probe_accuracy']
    shown = [k for k in keys if any(k in p for points in curves.values() for p in points)]
    lines = [f'### {title}', '', '| codec | setting | ' + ' | '.join(shown) + ' |',
             '|---|---|' + '---|' * len(shown)]
    for points in curves.values():
        for p in points:
            cells = [f'{p[k]:.3f}' if k in p else '' for k in shown]
            lines.append(f'| {p["codec"]} | {p["setting"]} | ' + ' | '.join(cells) + ' |')
    lines += ['', f'| codec | BD-rate against {anchor} (%, {rate}) |', '|---|---|']
    for name, value in bd.items():
        text = f'{value["bd_rate"]:+.1f}' if value['bd_rate'] is not None else value['reason']
        lines.append(f'| {name} | {text} |')
    return '\n'.join(lines) + '\n'


def plot_curves(curves: Dict[str, List[dict]], path: str, title: str, rate: str = 'bpp_file') -> None:
    """PSNR against bits per pixel, one line per codec (the spectral codec's ideal rate dashed)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, points in curves.items():
        # the classic codecs have real files only: against ideal rates, their bytes beyond a fixed header
        fallback = 'bpp_payload' if rate == 'bpp_ideal' else 'bpp_file'
        key = next(k for k in (rate, fallback, 'bpp_ideal') if k in points[0])
        kind = {'bpp_ideal': ' (ideal -log2 p)', 'bpp_payload': ' (payload)'}.get(key, '')
        line, = ax.plot([p[key] for p in points], [p['psnr'] for p in points], marker='o', ms=3,
                        label=name + kind)
        if 'bpp_ideal' in points[0] and key != 'bpp_ideal':
            ax.plot([p['bpp_ideal'] for p in points], [p['psnr'] for p in points], ls='--', lw=1, marker='.',
                    color=line.get_color(), label=f'{name} (ideal -log2 p)')
    ax.set_xscale('log')
    ax.set_xlabel('bits per pixel (classic codecs: whole files)' if rate == 'bpp_file' else
                  f'bits per pixel ({rate}; classic codecs: payload beyond a fixed header)')
    ax.set_ylabel('PSNR (dB)')
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def codec_speed(model, images: torch.Tensor, labels: torch.Tensor, repeats: int = 1) -> Dict[str, float]:
    """Seconds per image, one image at a time: coding all N tokens (``compress``), decoding them to pixels
    (``decompress``), and, for scale, sampling N tokens at cfg 0 and decoding them (``model.sample``), which
    runs the same generator steps. The best of ``repeats`` passes over the images."""
    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(len(images)):
                fn(i)
            times.append((time.perf_counter() - start) / len(images))
        return min(times)

    files = {}

    def encode(i):
        files[i] = encode_images(model, images[i:i + 1], [int(labels[i])])[0]

    encode_s = best(encode)
    decode_s = best(lambda i: decode_file(model, files[i]))
    sample_s = best(lambda i: model.sample(labels[i:i + 1], seed=i, cfg_scale=0.0))
    return dict(encode_s=encode_s, decode_s=decode_s, sample_s=sample_s, images=len(images))


#: the Table 4 experiment's rows (tools/analysis/table4_gap.py) and their labels
TABLE4_ROWS = {'titok': 'TiTok tokens', 'titok_matched': 'TiTok, matched PSNR', 'spectralar': 'SpectralAR',
               'fullfrac': 'SpectralAR, full_fraction 0.5'}


def _table4_tokenizer(work_dir: str, row: str, seed: int):
    """The row's tokenizer as the experiment used it: its run's config, and the checkpoint of step 5,000
    (the matched TiTok: the checkpoint ``match.json`` names)."""
    import glob
    import json
    import os.path as osp

    from mmengine.config import Config

    from mmspectral.models.tokenizers.loading import load_tokenizer, settle_value_range
    run = osp.join(work_dir, row.replace('_matched', ''), f'seed{seed}', 'tokenizer')
    configs = sorted(glob.glob(osp.join(run, '*.py')))
    if not configs:
        raise FileNotFoundError(f'No tokenizer run at {run}: run tools/analysis/table4_gap.py first.')
    if row.endswith('_matched'):
        with open(osp.join(work_dir, row, f'seed{seed}', 'match.json')) as f:
            checkpoint = json.load(f)['checkpoint']
    else:
        checkpoint = max(glob.glob(osp.join(run, 'iter_*.pth')), key=lambda p: int(osp.basename(p)[5:-4]))
    # the whole model config: runs made before the tokenizer owned its value range set it on the data
    # preprocessor, and the tokenizer config alone would decode them in [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        tokenizer = settle_value_range(Config.fromfile(configs[0]).model)['tokenizer']
    return load_tokenizer(tokenizer, checkpoint)


@torch.no_grad()
def table4_ideal_curves(work_dir: str, seeds: Sequence[int] = (0, 1),
                        limit: int = 500) -> Dict[str, List[dict]]:
    """The ideal code length of every prefix for the Table 4 rows, from a finished ``table4_gap.py`` work
    dir: the reference generator's held-out cross-entropy per position (``reference.json``, nats) summed
    over the prefix, against the PSNR of the tokenizer's prefix reconstructions of the same held-out images
    (``tokens.npz``'s ``held_ids``, ``images.npz``'s ``held_out``, the first ``limit``). Means over the
    tokenizer ``seeds``, with the seeds' range of the bits."""
    import json
    import os.path as osp
    with np.load(osp.join(work_dir, 'images.npz')) as data:
        images = torch.from_numpy(data['held_out'][:limit]).float() / 255
    curves = {}
    for row, label in TABLE4_ROWS.items():
        per_seed = []
        for seed in seeds:
            folder = osp.join(work_dir, row, f'seed{seed}')
            with open(osp.join(folder, 'reference.json')) as f:
                ce = np.asarray(json.load(f)['ce'], dtype=np.float64)
            with np.load(osp.join(folder, 'tokens.npz')) as data:
                ids = torch.from_numpy(data['held_ids'][:limit]).long()
            tokenizer = _table4_tokenizer(work_dir, row, seed)
            pixels = images.shape[-1] * images.shape[-2]
            bits = np.cumsum(ce) / math.log(2)
            quality = [_quality(torch.cat([tokenizer.decode_images(ids[i:i + 250, :k])
                                           for i in range(0, len(ids), 250)]), images)
                       for k in range(1, len(ce) + 1)]
            per_seed.append([dict(bpp_ideal=b / pixels, **q) for b, q in zip(bits, quality)])
        curves[label] = [dict(codec=label, setting=k + 1,
                              bpp_ideal=float(np.mean([s[k]['bpp_ideal'] for s in per_seed])),
                              bpp_ideal_range=[float(min(s[k]['bpp_ideal'] for s in per_seed)),
                                               float(max(s[k]['bpp_ideal'] for s in per_seed))],
                              psnr=float(np.mean([s[k]['psnr'] for s in per_seed])),
                              ssim=float(np.mean([s[k]['ssim'] for s in per_seed])))
                         for k in range(len(per_seed[0]))]
    return curves
