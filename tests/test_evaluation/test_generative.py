"""Generative metrics: FID / IS / precision-recall against independent computations and known answers, the
FID Inception network's structure and weight loading, npz I/O, and tools/eval_fid.py end to end (random
weights)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from cli import run_cli
from torchvision.models import inception_v3
from torchvision.models.inception import InceptionA

from mmspectral.engine import CheckpointLoadError
from mmspectral.evaluation.generative import (BaseFeatureExtractor, FeatureSet, FIDInceptionV3,
                                              InceptionV3FID, MissingFeatureWeightsError, NpzFormatError,
                                              TorchModuleExtractor, feature_statistics, features_from_npz,
                                              frechet_distance, frechet_distance_from_features,
                                              inception_score, iter_npz_images, load_feature_set,
                                              manifold_radii, precision_recall, save_feature_set)
from mmspectral.evaluation.generative.inception import FIDInceptionA, FIDInceptionE, resize_bilinear_tf1
from mmspectral.registry import FEATURE_EXTRACTORS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEIGHTS_FILE = 'pt_inception-2015-12-05-6726825d.pth'

# Tiny constructor arguments for every class in FEATURE_EXTRACTORS (a new class without an entry fails).
TINY_DEFAULTS = {
    'InceptionV3FID': dict(weights=None, allow_random_init=True),
    'TorchModuleExtractor': dict(model=nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1),
                                                     nn.Flatten())),
}


def eval_fid(argv):
    """tools/eval_fid.py's command line, in this process."""
    return run_cli('tools/eval_fid.py', argv)


@pytest.fixture(scope='module')
def random_inception():
    return FIDInceptionV3(allow_random_init=True, seed=0)


# --- Frechet distance ---------------------------------------------------------------------------------------

def trace_sqrt_product_eigh(sigma1, sigma2):
    """tr((S1 S2)^(1/2)) as the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2) (symmetric)."""
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()


def test_frechet_distance_matches_eigendecomposition_formula():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 24)) @ rng.standard_normal((24, 24))
    b = rng.standard_normal((250, 24)) @ rng.standard_normal((24, 24)) + 0.5
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product_eigh(s1, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8 * np.trace(s1))


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    rng = np.random.default_rng(1)
    var1, var2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def test_small_set_fid_path_equals_sqrtm_and_rejects_bad_inputs():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((10, 40)), 1.5 * rng.standard_normal((12, 40)) + 0.3  # N < D: singular
    via_sqrtm = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance_from_features(a, b) == pytest.approx(via_sqrtm, rel=1e-6)
    assert abs(frechet_distance_from_features(a, a)) < 1e-9
    big_a, big_b = rng.standard_normal((60, 8)), rng.standard_normal((50, 8)) + 1  # N > D: the sqrtm path
    assert frechet_distance_from_features(big_a, big_b) == pytest.approx(
        frechet_distance(*feature_statistics(big_a), *feature_statistics(big_b)), rel=1e-12)
    with pytest.raises(ValueError, match='same feature space'):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match='imaginary component'):  # a negative 'covariance': sqrt(-1) = i
        frechet_distance(np.zeros(3), -np.eye(3), np.zeros(3), np.eye(3))


# --- Inception Score ----------------------------------------------------------------------------------------

def test_inception_score_known_answers_and_adm_splits():
    assert inception_score(np.zeros((50, 1008)))[0] == pytest.approx(1.0)  # uniform predictions
    one_hot = 50.0 * np.eye(7)[np.arange(70) % 7]  # confident, evenly spread over 7 classes
    mean, std = inception_score(one_hot)
    assert mean == pytest.approx(7.0, rel=1e-6) and std == pytest.approx(0.0, abs=1e-9)
    # Splits are consecutive blocks (ADM): two single-class halves score 1 each, but 2 as one split.
    halves = 50.0 * np.eye(2)[np.repeat([0, 1], 10)]
    assert inception_score(halves, split_size=10)[0] == pytest.approx(1.0, rel=1e-6)
    assert inception_score(halves, split_size=20)[0] == pytest.approx(2.0, rel=1e-6)
    # Same as ADM's formula on softmax probabilities.
    logits = np.random.default_rng(3).standard_normal((30, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    adm = np.mean([np.exp(np.mean(np.sum(part * (np.log(part) - np.log(part.mean(0, keepdims=True))), 1)))
                   for part in (p[:12], p[12:24], p[24:])])
    assert inception_score(logits, split_size=12)[0] == pytest.approx(adm, rel=1e-10)


# --- precision / recall -------------------------------------------------------------------------------------

def clusters(centres, per_cluster, seed, spread=0.05):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + spread * rng.standard_normal((per_cluster, len(c))) for c in centres])


def test_manifold_radii_are_kth_neighbour_distances_in_chunks():
    feats = np.random.default_rng(4).standard_normal((37, 6)).astype(np.float32)
    d2 = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    expected = np.sort(d2, axis=1)[:, 3]  # index 0 is the vector itself
    np.testing.assert_allclose(manifold_radii(feats, k=3, chunk_size=5), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(manifold_radii(feats, k=3), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='at least 4'):
        manifold_radii(feats[:3], k=3)


def test_precision_recall_known_answers():
    centres = 10.0 * np.eye(8)[:4]  # four well-separated modes in 8-d
    real = clusters(centres, 25, seed=5)
    assert precision_recall(real, real.copy(), chunk_size=7) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)  # disjoint, far apart
    half = real[:50]  # samples cover two of the four modes, with nothing off the real manifold
    precision, recall = precision_recall(real, half, chunk_size=7)
    assert precision == 1.0 and recall == pytest.approx(0.5)
    # The direction matters: the reference covering half the samples' modes is the mirror image.
    assert precision_recall(half, real) == (0.5, 1.0)
    with pytest.raises(ValueError, match='same dimension'):
        precision_recall(real, real[:, :4])


# --- the FID Inception network ------------------------------------------------------------------------------

def test_state_dict_keys_are_torchvision_inception3_with_1008_classes(random_inception):
    reference = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    reference = reference.state_dict()
    ours = random_inception.net.state_dict()
    assert list(ours) == list(reference)
    assert all(ours[k].shape == reference[k].shape for k in ours)
    assert ours['fc.weight'].shape == (1008, 2048) and not any(k.startswith('AuxLogits') for k in ours)


def test_tf_pooling_blocks():
    torch.manual_seed(0)
    x = torch.rand(1, 192, 6, 6)
    ours, theirs = FIDInceptionA(192, pool_features=32).eval(), InceptionA(192, pool_features=32).eval()
    theirs.load_state_dict(ours.state_dict())
    a, b = ours(x), theirs(x)
    torch.testing.assert_close(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1])  # interior: no padding involved
    assert not torch.allclose(a[:, -32:, 0, 0], b[:, -32:, 0, 0])  # corner: TF leaves the padding out
    torch.testing.assert_close(a[:, :-32], b[:, :-32])  # the other branches are untouched
    # The padding-free mean, written out for the corner pixel.
    corner = x[:, :, :2, :2].mean((2, 3), keepdim=True)
    torch.testing.assert_close(a[:, -32:, :1, :1], ours.branch_pool(corner))
    last = FIDInceptionE(64, max_pool=True).eval()
    y = torch.rand(1, 64, 5, 5)
    torch.testing.assert_close(last(y)[:, -192:], last.branch_pool(F.max_pool2d(y, 3, 1, 1)))


def test_forward_matches_torchvision_forward_and_taps(random_inception):
    images = torch.rand(1, 3, 40, 48)
    out = random_inception(images)
    assert out['pool'].shape == (1, 2048) and out['logits'].shape == (1, 1008)
    assert out['spatial'].shape == (1, 2023)
    net = random_inception.net
    taps = {}
    hook = net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: taps.setdefault('mixed_6_conv', o))
    x = (resize_bilinear_tf1(images * 255, 299) - 128) / 128  # the ADM graph's resize and scaling
    with torch.no_grad():
        logits_with_bias = net(x)  # torchvision's own forward through the same modules
    hook.remove()
    torch.testing.assert_close(out['logits'] + net.fc.bias, logits_with_bias, rtol=1e-4, atol=1e-4)
    expected_spatial = taps['mixed_6_conv'][:, :7].permute(0, 2, 3, 1).reshape(1, -1)  # TF's (H, W, C) order
    torch.testing.assert_close(out['spatial'], expected_spatial)
    assert out['pool'].std() > 1e-2  # the random test network gives O(1) features, not vanishing ones


def test_missing_weights_say_which_file_and_flag(tmp_path):
    for path in (None, str(tmp_path / 'nope.pth')):
        with pytest.raises(MissingFeatureWeightsError) as info:
            InceptionV3FID(weights=path)
        msg = str(info.value)
        assert isinstance(info.value, FileNotFoundError)
        assert WEIGHTS_FILE in msg and '--inception-weights' in msg and 'weights=' in msg
    assert 'nope.pth' in msg


def test_weights_load_strictly_and_name_the_wrong_keys(tmp_path, random_inception):
    state = random_inception.net.state_dict()
    good = str(tmp_path / WEIGHTS_FILE)
    torch.save(state, good)
    loaded = FIDInceptionV3(weights=good)
    for key in ('Mixed_7c.branch_pool.conv.weight', 'fc.weight', 'Conv2d_1a_3x3.bn.running_var'):
        assert torch.equal(loaded.net.state_dict()[key], state[key])
    bad = dict(state)
    del bad['Mixed_6b.branch7x7_2.conv.weight']
    bad['AuxLogits.fc.weight'] = torch.zeros(1008, 768)
    torch.save(bad, str(tmp_path / 'bad.pth'))
    with pytest.raises(CheckpointLoadError) as info:
        FIDInceptionV3(weights=str(tmp_path / 'bad.pth'))
    assert 'AuxLogits.fc.weight' in str(info.value) and WEIGHTS_FILE in str(info.value)
    del bad['AuxLogits.fc.weight']
    torch.save(bad, str(tmp_path / 'bad.pth'))
    with pytest.raises(CheckpointLoadError, match='missing from the file: Mixed_6b.branch7x7_2.conv.weight'):
        FIDInceptionV3(weights=str(tmp_path / 'bad.pth'))


# --- extractors and the registry ----------------------------------------------------------------------------

def test_every_registered_extractor_builds(tmp_path):
    from mmspectral.evaluation.embedded_classifier import ShapesClassifier

    # an untrained EmbeddedShapes probe file, as tools/train_probe.py saves
    probe = str(tmp_path / 'probe.pth')
    torch.save(dict(state_dict=ShapesClassifier().state_dict(), num_classes=10, image_size=32,
                    real_accuracy=0.1), probe)
    defaults = dict(TINY_DEFAULTS, ShapesProbe=dict(checkpoint=probe))
    for name in FEATURE_EXTRACTORS.module_dict:
        assert name in defaults, f'add tiny constructor arguments for {name} to TINY_DEFAULTS'
        obj = FEATURE_EXTRACTORS.build(dict(type=name, **defaults[name]))
        assert isinstance(obj, BaseFeatureExtractor)


def test_image_layouts_and_dtypes_give_the_same_features():
    extractor = TorchModuleExtractor(
        model=nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        outputs=dict(pool='forward'), input_size=16)
    images = np.random.default_rng(7).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    nhwc = extractor.extract(images, batch_size=2)['pool']
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert nhwc.shape == (5, 5)
    np.testing.assert_allclose(extractor.extract(nchw, batch_size=5)['pool'], nhwc, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(extractor.extract(nchw.float() / 255)['pool'], nhwc, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        extractor.extract(nchw.float())
    with pytest.raises(ValueError, match=r'uint8 \(N, H, W, 3\)'):
        extractor.extract(images.astype(np.float32))


# --- npz files ----------------------------------------------------------------------------------------------

def test_npz_images_stream_in_batches_and_bad_files_say_why(tmp_path):
    images = np.random.default_rng(8).integers(0, 256, (7, 4, 5, 3), dtype=np.uint8)
    for save in (np.savez, np.savez_compressed):
        path = str(tmp_path / f'{save.__name__}.npz')
        save(path, arr_0=images, labels=np.arange(7))
        num, batches = iter_npz_images(path, batch_size=3)
        parts = list(batches)
        assert num == 7 and [len(p) for p in parts] == [3, 3, 1]
        np.testing.assert_array_equal(np.concatenate(parts), images)
    cases = [(dict(arr_0=images.astype(np.float32)), 'float32'), (dict(arr_0=images[..., 0]), r'\(7, 4, 5\)'),
             (dict(images=images), "no 'arr_0' array")]
    for arrays, found in cases:
        np.savez(str(tmp_path / 'bad.npz'), **arrays)
        with pytest.raises(NpzFormatError, match=found) as info:
            iter_npz_images(str(tmp_path / 'bad.npz'), 2)
        assert 'uint8' in str(info.value)  # what was expected
    (tmp_path / 'text.npz').write_text('not a zip')
    with pytest.raises(NpzFormatError, match='not an npz'):
        iter_npz_images(str(tmp_path / 'text.npz'), 2)


def test_statistics_file_round_trip_and_adm_reference(tmp_path):
    rng = np.random.default_rng(9)
    feats = dict(pool=rng.standard_normal((6, 10)).astype(np.float32),
                 logits=rng.standard_normal((6, 4)).astype(np.float32),
                 spatial=rng.standard_normal((6, 3)).astype(np.float32))
    fs = FeatureSet.from_features(feats, meta=dict(extractor='X'))
    path = str(tmp_path / 'stats.npz')
    save_feature_set(path, fs)
    back = load_feature_set(path)
    assert back.num_images == 6 and back.meta == dict(extractor='X') and back.stats_from_features
    np.testing.assert_array_equal(back.pool, feats['pool'])
    np.testing.assert_array_equal(back.sigma, fs.sigma)
    assert back.spatial is None and back.mu_s.shape == (3,)  # spatial kept only for sets within its dimension
    # A file of another extractor is refused rather than mixed.
    other = TorchModuleExtractor(model=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    with pytest.raises(ValueError, match='different networks'):
        features_from_npz(path, other)
    # ADM reference batch: images plus the TF graph's statistics; stored stats used only on request.
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    ref = str(tmp_path / 'VIRTUAL_ref.npz')
    np.savez(ref, arr_0=images, mu=np.ones(3), sigma=np.eye(3), mu_s=np.zeros(2), sigma_s=np.eye(2))
    computed = features_from_npz(ref, other)
    assert computed.stats_from_features and computed.mu.shape == (3,) and computed.pool.shape == (5, 3)
    stored = features_from_npz(ref, other, use_stored_stats=True)
    np.testing.assert_array_equal(stored.mu, np.ones(3))
    assert not stored.stats_from_features and stored.pool.shape == (5, 3)
    np.savez(ref, arr_0=images, mu=np.ones(3), sigma=np.eye(4))
    with pytest.raises(NpzFormatError, match=r"'sigma' is \(4, 4\)"):
        features_from_npz(ref, other, use_stored_stats=True)


# --- tools/eval_fid.py --------------------------------------------------------------------------------------

def test_eval_fid_end_to_end_with_random_inception(tmp_path, subprocess_env):
    rng = np.random.default_rng(10)
    a = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) // 2 + rng.integers(0, 60, a.shape), 0, 255).astype(np.uint8)
    for name, arr in (('a', a), ('b', b)):
        np.savez(str(tmp_path / f'{name}.npz'), arr_0=arr, labels=np.zeros(len(arr)))
    common = ['--random-weights-for-tests', '--batch-size', '4', '--device', 'cpu']
    same = eval_fid([str(tmp_path / 'a.npz'), '--ref', str(tmp_path / 'a.npz'), '--out',
                     str(tmp_path / 'aa.json'), '--save-stats', str(tmp_path / 'ref_a.npz')] + common)
    written = json.loads((tmp_path / 'aa.json').read_text())
    assert written['fid'] == pytest.approx(same['fid'])
    assert written['extractor'] == 'InceptionV3FID' and 'random' in written['weights']
    assert abs(same['fid']) < 1e-6 and abs(same['sfid']) < 1e-6
    assert same['precision'] == 1.0 and same['recall'] == 1.0 and same['inception_score'] >= 1.0
    diff = eval_fid([str(tmp_path / 'b.npz'), '--ref', str(tmp_path / 'ref_a.npz'), '--out',
                     str(tmp_path / 'ba.json'), '--save-sample-stats', str(tmp_path / 'stats_b.npz')]
                    + common)
    assert diff['fid'] > 1e4 * max(abs(same['fid']), 1e-9) and diff['fid'] > 1e-3 and diff['sfid'] > 1e-3
    ref, smp = load_feature_set(str(tmp_path / 'ref_a.npz')), load_feature_set(str(tmp_path / 'stats_b.npz'))
    assert diff['fid'] == pytest.approx(frechet_distance_from_features(smp.pool, ref.pool), rel=1e-9)
    # From the repository root, as users run it: statistics files on both sides, same numbers.
    proc = subprocess.run([sys.executable, 'tools/eval_fid.py', str(tmp_path / 'stats_b.npz'), '--ref',
                           str(tmp_path / 'ref_a.npz'), '--out', str(tmp_path / 'again.json')] + common,
                          cwd=REPO, env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'FID:' in proc.stdout and 'Precision:' in proc.stdout
    again = json.loads((tmp_path / 'again.json').read_text())
    for key in ('fid', 'sfid', 'inception_score', 'precision', 'recall'):
        assert again[key] == pytest.approx(diff[key], rel=1e-9), key


def test_eval_fid_missing_weights_and_a_user_extractor(tmp_path):
    images = np.random.default_rng(11).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(str(tmp_path / 's.npz'), arr_0=images)
    np.savez(str(tmp_path / 'r.npz'), arr_0=images[::-1].copy())
    with pytest.raises(MissingFeatureWeightsError, match=WEIGHTS_FILE):
        eval_fid([str(tmp_path / 's.npz'), '--ref', str(tmp_path / 'r.npz'), '--inception-weights',
                  str(tmp_path / 'missing.pth'), '--device', 'cpu'])

    @FEATURE_EXTRACTORS.register_module(name='_MeanColourExtractor')
    class _MeanColourExtractor(BaseFeatureExtractor):
        def forward_features(self, images):
            return dict(pool=torch.cat([images.mean((2, 3)), images.std((2, 3))], 1))

    try:
        metrics = eval_fid([str(tmp_path / 's.npz'), '--ref', str(tmp_path / 'r.npz'), '--extractor',
                            '_MeanColourExtractor', '--device', 'cpu', '--out', str(tmp_path / 'm.json')])
    finally:
        FEATURE_EXTRACTORS.module_dict.pop('_MeanColourExtractor')
    assert abs(metrics['fid']) < 1e-8  # same images in another order
    assert metrics['inception_score'] is None and metrics['sfid'] is None
    notes = metrics['notes']
    assert len(notes) == 4 and sum('meaningless' in n for n in notes) == 2  # 6 images for 6-d features
    assert any(n.startswith('IS:') for n in notes) and any(n.startswith('sFID:') for n in notes)
    # a bad samples file is refused before any feature (of the reference either) is computed
    np.savez(str(tmp_path / 'float.npz'), arr_0=images.astype(np.float32) / 255)
    with pytest.raises(NpzFormatError, match='float32'):
        eval_fid([str(tmp_path / 'float.npz'), '--ref', str(tmp_path / 'r.npz'), '--inception-weights',
                  str(tmp_path / 'missing.pth'), '--device', 'cpu'])


# --- FID's uncertainty ------------------------------------------------------------------------------------

def test_fid_bootstrap_spreads_as_the_sample_size_says():
    """Resampling one set's images estimates how FID spreads over independent sets of the same size: its
    standard deviation is within a factor 1.6 of the spread over 200 fresh sets; it narrows with four times
    the images; ``bias`` recentres the replicates on the set's own FID; the same seed
    gives the same interval."""
    from mmspectral.evaluation.generative.statistics import fid_bootstrap
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((6, 6))
    ref = rng.standard_normal((4000, 6)) @ mix
    mu, sigma = feature_statistics(ref)
    stds = []
    for n in (100, 400):
        fresh = [frechet_distance(*feature_statistics(rng.standard_normal((n, 6)) @ mix + 0.3), mu, sigma)
                 for _ in range(200)]
        samples = rng.standard_normal((n, 6)) @ mix + 0.3
        interval = fid_bootstrap(samples, mu, sigma, replicates=300, seed=1)
        assert interval == fid_bootstrap(samples, mu, sigma, replicates=300, seed=1)
        assert 1 / 1.6 < interval['std'] / np.std(fresh, ddof=1) < 1.6
        fid = frechet_distance(*feature_statistics(samples), mu, sigma)
        assert interval['low'] - interval['bias'] < fid < interval['high'] - interval['bias']
        stds.append(interval['std'])
    # four times the images: between 1 / sqrt(N) (the linear terms) and 1 / N (the quadratic ones)
    assert 1.8 < stds[0] / stds[1] < 4.5
    few = rng.standard_normal((5, 6)) @ mix + 0.3  # N <= D: the exact small-set formula
    small = fid_bootstrap(few, mu, sigma, ref_features=ref[:6], replicates=50)
    assert small['low'] <= small['high'] and small['std'] > 0
    with pytest.raises(ValueError, match='replicates >= 2'):
        fid_bootstrap(few, mu, sigma, replicates=1)


def test_eval_fid_reports_the_spread_over_sample_sets_and_what_made_them(tmp_path):
    rng = np.random.default_rng(12)
    ref = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.savez(str(tmp_path / 'ref.npz'), arr_0=ref)
    paths = []
    for seed in range(3):
        folder = tmp_path / f'seed{seed}'
        folder.mkdir()
        images = np.clip(ref.astype(int) // 2 + rng.integers(0, 90, ref.shape), 0, 255).astype(np.uint8)
        np.savez(str(folder / 'samples.npz'), arr_0=images)
        record = dict(seed=seed, generator_checkpoint=dict(sha256='ab'))  # as tools/sample.py writes it
        (folder / 'provenance.json').write_text(json.dumps(record))
        paths.append(str(folder / 'samples.npz'))
    common = ['--random-weights-for-tests', '--batch-size', '5', '--device', 'cpu', '--bootstrap', '20',
              '--no-sfid']
    out = eval_fid(paths + ['--ref', str(tmp_path / 'ref.npz'), '--out', str(tmp_path / 'fid.json')] + common)
    assert json.loads((tmp_path / 'fid.json').read_text())['spread'] == out['spread']
    alone = [eval_fid([p, '--ref', str(tmp_path / 'ref.npz'), '--out', str(tmp_path / f'{i}.json')] + common)
             for i, p in enumerate(paths)]
    fids = [a['fid'] for a in alone]
    assert [r['fid'] for r in out['runs']] == pytest.approx(fids)
    assert out['fid'] == pytest.approx(np.mean(fids))
    assert out['spread']['fid']['std'] == pytest.approx(np.std(fids, ddof=1))
    assert out['spread']['fid']['min'] == pytest.approx(min(fids))
    for run, seed in zip(out['runs'], range(3)):
        assert run['sampling']['seed'] == seed and len(run['samples']['sha256']) == 64
        assert run['fid_bootstrap']['replicates'] == 20
        assert run['fid_bootstrap']['low'] <= run['fid_bootstrap']['high']
    assert out['reference']['sha256'] and out['settings']['bootstrap'] == 20 and 'weights' in out
    with pytest.raises(SystemExit):
        eval_fid([paths[0], paths[0], '--ref', str(tmp_path / 'ref.npz')] + common)  # one set counted twice
