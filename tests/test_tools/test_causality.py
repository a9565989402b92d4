"""The causality study (paper section 4.2): regressions, sequences, and tools/analysis/causality.py end to
end."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmspectral.analysis import (best_single_r2, encode_learned_tokens, frame_maps, heldout_r2, load_images,
                                 luminance_elements, raster_tokens, scale_tokens, sequence_r2,
                                 spectral_tokens, split_indices)
from mmspectral.spectral import dct2

SPECTRAL_CONFIG = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
TITOK_CONFIG = 'configs/spectralar/ablation/spectralar-tiny_16tok_1xb32-5k_shapes-64_nospectral.py'


def numpy_heldout_r2(x, y, tr, te, pca_dim=None):
    """The same estimator written independently: SVD-based PCA, numpy lstsq, per-column R^2 averaged."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xtr, xte = x[tr], x[te]
    mean = xtr.mean(0)
    xtr, xte = xtr - mean, xte - mean
    if pca_dim is not None and x.shape[1] > pca_dim:
        _, _, vt = np.linalg.svd(xtr, full_matrices=False)
        xtr, xte = xtr @ vt[:pca_dim].T, xte @ vt[:pca_dim].T
    atr = np.hstack([np.ones((len(tr), 1)), xtr])
    ate = np.hstack([np.ones((len(te), 1)), xte])
    coef = np.linalg.lstsq(atr, y[tr], rcond=None)[0]
    resid = y[te] - ate @ coef
    sst = ((y[te] - y[te].mean(0)) ** 2).sum(0)
    return float(np.mean(1 - (resid ** 2).sum(0) / sst))


def test_heldout_r2_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 6))
    y = x @ rng.standard_normal((6, 4)) + 0.7 * rng.standard_normal((80, 4)) + 3.0
    tr, te = split_indices(80, 0.75, seed=1)
    got = heldout_r2(torch.tensor(x), torch.tensor(y), tr, te, pca_dim=0)
    assert got['num_predictors'] == 6
    assert got['r2_avg'] == pytest.approx(numpy_heldout_r2(x, y, tr.numpy(), te.numpy()), abs=1e-9)
    # More columns than pca_dim: the Gram-matrix PCA gives the SVD's principal axes.
    x_wide = rng.standard_normal((80, 40)) @ rng.standard_normal((40, 40))
    y_wide = x_wide[:, :3] + rng.standard_normal((80, 3))
    got = heldout_r2(torch.tensor(x_wide), torch.tensor(y_wide), tr, te, pca_dim=5)
    assert got['num_predictors'] == 5
    assert got['r2_avg'] == pytest.approx(numpy_heldout_r2(x_wide, y_wide, tr.numpy(), te.numpy(), 5),
                                          abs=1e-4)


def test_r2_is_one_for_a_linear_target_and_near_zero_for_noise():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal((400, 3, 4, 4)))  # elements are the trailing dims
    linear = 2.0 - 3.0 * x[:, 0, 0, 0] + 0.5 * x[:, 2, 1, 3]
    noise = torch.tensor(rng.standard_normal((400, 5)))
    tr, te = split_indices(400)
    assert heldout_r2(x, linear, tr, te, pca_dim=0)['r2_avg'] == pytest.approx(1.0, abs=1e-9)
    r2_noise = heldout_r2(x, noise, tr, te, pca_dim=0)['r2_avg']
    assert -0.25 < r2_noise < 0.05  # held out: 48 useless regressors cannot fit noise there
    rows = sequence_r2([x, linear], tr, te, pca_dim=0)
    assert rows[0]['j'] == 2 and rows[0]['r2_avg'] == pytest.approx(1.0, abs=1e-9)


def test_best_single_predictor_finds_the_source_element():
    rng = np.random.default_rng(2)
    n = 300
    t1 = torch.tensor(rng.standard_normal((n, 12)))
    t2 = torch.tensor(rng.standard_normal((n, 5)))
    perm = torch.tensor([7, 0, 11, 3])  # t3's element e copies t1[perm[e]] (scaled, shifted, a little noise)
    t3 = torch.cat([1.5 - 2.0 * t1[:, perm] + 0.1 * torch.randn(n, 4, dtype=torch.float64),
                    t2[:, 4:5] * 3.0], 1)
    tr, te = split_indices(n)
    rows = best_single_r2([t1, t2, t3], tr, te)
    assert [r['j'] for r in rows] == [2, 3]
    last = rows[1]
    assert last['source_token'].tolist() == [0, 0, 0, 0, 1]
    assert last['source_index'].tolist() == perm.tolist() + [4]
    assert (last['per_element'] > 0.99).all()
    # Held-out R^2 of the chosen line equals a plain numpy fit of that one predictor.
    x, y = t1[:, 7].numpy(), t3[:, 0].numpy()
    slope, icpt = np.polyfit(x[tr], y[tr], 1)
    ref = 1 - ((y[te] - slope * x[te] - icpt) ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum()
    assert float(last['per_element'][0]) == pytest.approx(ref, abs=1e-9)
    # t2 is independent of t1: its best single predictor explains next to nothing on held-out images.
    assert rows[0]['r2_avg'] < 0.05
    # Every target element is counted once in the Figure-4 maps, at its source's place in the frame.
    maps = frame_maps(rows, [(3, 4), (1, 5), (1, 5)], [(0, 0), (3, 0), (3, 0)], (4, 5))
    assert (maps[1]['counts'].sum() == 5 and maps[1]['counts'][0, 1, 3] == 1
            and maps[1]['counts'][1, 3, 4] == 1)
    assert (maps[1]['best_token'][3] == [1, 1, 1, 1, 2]).all() and (maps[1]['best_token'][:3] == 0).all()


@pytest.fixture(scope='module')
def images():
    return load_images(6, 32, seed=2)


def test_sequences_reconstruct_the_image(images):
    assert images.shape == (6, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    q = raster_tokens(images)
    assert all(t.shape == (6, 3, 16, 16) for t in q)
    assert torch.equal(torch.cat([torch.cat(q[:2], -1), torch.cat(q[2:], -1)], -2), images)

    for make, cuts in ((scale_tokens, [4, 8, 16, 32]), (spectral_tokens, [4, 8, 16, 32]),
                       (spectral_tokens, [1, 3, 9, 32])):
        inc, cum = make(images, cuts), make(images, cuts, cumulative=True)
        # Linear per channel: the tool builds sequences from the luminance image and gets the tokens'
        # luminance.
        grey = make(images.mean(1, keepdim=True), cuts)
        assert all(torch.allclose(a, b[:, 0]) for a, b in zip(luminance_elements(inc), grey))
        assert len(inc) == 4 and all(t.shape == images.shape for t in inc)
        assert torch.allclose(sum(inc), images, atol=1e-10)
        assert torch.allclose(cum[-1], images, atol=1e-10)
        for k in range(4):
            assert torch.allclose(sum(inc[:k + 1]), cum[k], atol=1e-10)
    # Each spectral token holds exactly its DCT band max(u, v) in [w_{j-1}, w_j).
    bands = spectral_tokens(images, [4, 8, 16, 32])
    level = torch.maximum(torch.arange(32)[:, None], torch.arange(32)[None, :])
    for lo, hi, band in zip([0, 4, 8, 16], [4, 8, 16, 32], bands):
        coeffs = dct2(band)
        outside = (level < lo) | (level >= hi)
        assert coeffs[..., outside].abs().max() < 1e-10 and coeffs[..., ~outside].abs().max() > 1e-3
    # A scale token before the last is the upsampled area-average residual: smooth, not the image itself.
    first = scale_tokens(images, [4, 8, 16, 32])[0]
    assert torch.allclose(torch.nn.functional.avg_pool2d(images, 8).mean((-1, -2)), first.mean((-1, -2)),
                          atol=0.02)
    with pytest.raises(ValueError, match='end at the image size'):
        spectral_tokens(images, [4, 8, 16])


def _tokenizer_checkpoint(config, path):
    from mmspectral.apis import load_config
    from mmspectral.models import TokenizerModel
    cfg = load_config(config)
    torch.manual_seed(0)
    model = TokenizerModel(**{k: v for k, v in cfg.model.items() if k != 'type'})
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=1)), path)
    return cfg, model


def test_learned_tokens_of_a_random_tokenizer(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    _, model = _tokenizer_checkpoint(TITOK_CONFIG, tmp_path / 'titok.pth')
    from mmspectral.apis import load_config
    from mmspectral.models.tokenizers.loading import load_tokenizer
    tok = load_tokenizer(load_config(TITOK_CONFIG).model.tokenizer, str(tmp_path / 'titok.pth'))
    imgs = load_images(5, 64, seed=2)
    latent = encode_learned_tokens(tok, imgs, (-1, 1), 'latent', batch_size=2)
    quant = encode_learned_tokens(tok, imgs, (-1, 1), 'quantized', batch_size=3)
    assert len(latent) == tok.num_tokens == 16 and latent[0].shape == (5, 8)
    with torch.no_grad():
        ref = model.tokenizer.encode_continuous((imgs * 2 - 1).float())
    assert torch.allclose(torch.stack(latent, 1), ref.double(), atol=1e-5)
    # Quantised tokens are codebook vectors (unit length under the l2-normalised quantiser).
    q = torch.stack(quant, 1)
    assert torch.allclose(q.norm(dim=-1), torch.ones(5, 16, dtype=q.dtype), atol=1e-5)


@pytest.mark.filterwarnings('ignore')
def test_tool_end_to_end(tmp_path, repo_root, subprocess_env):
    _tokenizer_checkpoint(f'{repo_root}/{SPECTRAL_CONFIG}', tmp_path / 'spectral.pth')
    _tokenizer_checkpoint(f'{repo_root}/{TITOK_CONFIG}', tmp_path / 'titok.pth')
    out = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, 'tools/analysis/causality.py', '--num-images', '40', '--image-size', '32',
         '--out-dir', str(out), '--tokenizer', SPECTRAL_CONFIG, str(tmp_path / 'spectral.pth'), 'spectral',
         '--tokenizer', TITOK_CONFIG, str(tmp_path / 'titok.pth'), '--token-space', 'quantized'],
        cwd=repo_root, env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '| R^2(t4; t1..t3) |' in proc.stdout
    md = (out / 'causality.md').read_text()
    assert '| R^2(t16; t1..t15) |' in md and 'learned: spectral' in md
    res = json.load(open(out / 'causality.json'))
    assert res['settings']['num_train'] == 30 and res['settings']['omegas'] == [4, 8, 16, 32]
    seqs = res['results']
    assert set(seqs) == {'raster', 'scale', 'scale-cumulative', 'spectral', 'spectral-cumulative',
                         'learned: spectral', 'learned: spectralar-tiny_16tok_1xb32-5k_shapes-64_nospectral'}
    for name, entry in seqs.items():
        n = 16 if name.startswith('learned') else 4
        for est in ('best1', 'pca'):
            assert [r['j'] for r in entry[est]['rows']] == list(range(2, n + 1))
            assert all(np.isfinite(r['r2_avg']) and r['r2_avg'] <= 1 for r in entry[est]['rows'])
    # Nested sub-images contain their predecessors: far more predictable than the bands they are sums of.
    assert seqs['spectral-cumulative']['best1']['average'] > 0.5 > seqs['spectral']['best1']['average']
    for name in ('raster', 'scale', 'scale-cumulative', 'spectral', 'spectral-cumulative', 'learned_spectral',
                 'learned_spectralar-tiny_16tok_1xb32-5k_shapes-64_nospectral'):
        assert (out / f'causality_{name}.png').stat().st_size > 10000
