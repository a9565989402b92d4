"""rFID and gFID / IS / precision / recall as MMEngine metrics: against direct computations on the same
features, class balance and seeding of the generated samples, a 2-process gloo run equal to 1 process, and
GenerationValLoop / GenerationTestLoop in a real Runner with a tiny GeneratorModel."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from mmspectral.evaluation.generative import (FeatureSet, MissingFeatureWeightsError, build_feature_extractor,
                                              frechet_distance_from_features, inception_score,
                                              precision_recall, save_feature_set)
from mmspectral.evaluation.metrics import GenerationMetric, ReconstructionFIDMetric
from mmspectral.models.generators import make_rng
from mmspectral.registry import MODELS


@MODELS.register_module(force=True)
class GenMetricTestNet(nn.Module):
    """A fixed random conv net: 16-d pool features and 5 logits, cheap enough for every test here."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv2(torch.tanh(self.conv1(4.0 * x - 2.0))))
        return 10.0 * F.adaptive_avg_pool2d(h, 1).flatten(1)  # (B, 16)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))


EXTRACTOR = dict(type='TorchModuleExtractor', model=dict(type='GenMetricTestNet'),
                 outputs=dict(pool='forward', logits='logits'))


def u8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def write_reference(path, num=10, size=16, seed=5) -> str:
    images = np.random.default_rng(seed).integers(0, 256, (num, size, size, 3), dtype=np.uint8)
    np.savez(str(path), arr_0=images)
    return str(path)


# --- ReconstructionFIDMetric ------------------------------------------------------------------------------

def recon_samples(images, full):
    # k = 1 is garbage on purpose: only the largest prefix may be scored.
    return [dict(image=images[i], recons={1: torch.zeros_like(images[i]), 4: full[i]})
            for i in range(len(images))]


def run_rfid(metric, images, full, split=7):
    samples = recon_samples(images, full)
    metric.process(None, samples[:split])
    metric.process(None, samples[split:])
    return metric.evaluate(len(samples))


def test_rfid_is_zero_for_perfect_reconstructions_and_matches_direct_computation(tmp_path):
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(12, 3, 1, 1, generator=g)
    images = u8(0.7 * colours + 0.3 * torch.rand(12, 3, 16, 16, generator=g)) / 255.0  # on the 8-bit grid
    noisy = (images + 0.2 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    perfect = run_rfid(ReconstructionFIDMetric(extractor=EXTRACTOR, batch_size=5), images, images)
    assert set(perfect) == {'recon/rfid'} and abs(perfect['recon/rfid']) < 1e-6

    metric = ReconstructionFIDMetric(extractor=EXTRACTOR, inception_score=True, batch_size=5)
    got = run_rfid(metric, images, noisy)
    ext = build_feature_extractor(EXTRACTOR)
    real, fake = ext.extract(u8(images)), ext.extract(u8(noisy))
    assert got['recon/rfid'] > 1e-3 and got['recon/rfid'] > 1e4 * abs(perfect['recon/rfid'])
    assert got['recon/rfid'] == pytest.approx(frechet_distance_from_features(fake['pool'], real['pool']),
                                              rel=1e-5)
    is_mean, is_std = inception_score(fake['logits'], 5000)
    assert got['recon/is'] == pytest.approx(is_mean, rel=1e-5) and got['recon/is_std'] == 0.0

    # A statistics file of the real images replaces them: the same number without extracting them again.
    stats = str(tmp_path / 'real_stats.npz')
    save_feature_set(stats, FeatureSet.from_features(real, ext.describe()))
    against_file = run_rfid(ReconstructionFIDMetric(extractor=EXTRACTOR, reference=stats), images, noisy)
    assert against_file['recon/rfid'] == pytest.approx(got['recon/rfid'], rel=1e-5)


def test_rfid_builds_the_extractor_lazily_and_explains_missing_weights(tmp_path):
    images = torch.rand(4, 3, 16, 16)
    metric = ReconstructionFIDMetric(inception_weights=str(tmp_path / 'missing.pth'))  # builds: not used yet
    with pytest.raises(MissingFeatureWeightsError, match='pt_inception-2015-12-05'):
        metric.process(None, recon_samples(images, images))
    with pytest.raises(ValueError, match='not both'):
        ReconstructionFIDMetric(extractor=EXTRACTOR, inception_weights='x.pth')
    with pytest.raises(KeyError, match='eval_prefix_lengths'):
        ReconstructionFIDMetric(extractor=EXTRACTOR, prefix_length=2).process(None,
                                                                              recon_samples(images, images))


# --- GenerationMetric ---------------------------------------------------------------------------------------

class FakeGeneratorModel:
    """``gen.num_classes`` and ``sample``: images whose colour follows the label and whose noise the generator
    draws, so that they depend on both."""

    def __init__(self, num_classes: int = 3, size: int = 16) -> None:
        self.gen = SimpleNamespace(num_classes=num_classes)
        self.size = size
        self.calls = []

    def sample(self, labels, decode=True, seed=None, rng=None, temperature=1.0, **kwargs):
        self.calls.append(dict(labels=labels.tolist(), temperature=temperature))
        noise = torch.rand(len(labels), 3, self.size, self.size, generator=rng or make_rng(seed))
        base = (labels.float() / self.gen.num_classes).view(-1, 1, 1, 1)
        return dict(images=(0.5 * base + temperature * 0.5 * noise).clamp(0, 1))


class SpyGenerationMetric(GenerationMetric):
    """Keeps what compute_metrics was given."""

    def compute_metrics(self, results):
        self.seen = results
        return super().compute_metrics(results)


def generation_metric(reference, **kwargs):
    args = dict(per_class=4, batch_size=5, seed=3, sampling=dict(temperature=0.5), extractor=EXTRACTOR,
                reference=reference)
    args.update(kwargs)
    return SpyGenerationMetric(**args)


def test_generation_metric_is_class_balanced_ordered_seeded_and_exact(tmp_path):
    ref = write_reference(tmp_path / 'ref.npz')
    metric, model = generation_metric(ref), FakeGeneratorModel()
    metric.generate(model)
    got = metric.evaluate(999)  # the validation set's size plays no part
    labels = [0] * 4 + [1] * 4 + [2] * 4
    assert [len(c['labels']) for c in model.calls] == [5, 5, 2]
    assert sum((c['labels'] for c in model.calls), []) == labels
    assert all(c['temperature'] == 0.5 for c in model.calls)  # the sampling overrides reach the model
    assert [r['index'] for r in metric.seen] == list(range(12))
    assert [r['label'] for r in metric.seen] == labels
    assert set(got) == {f'gen/{k}' for k in ('num_samples', 'fid', 'is', 'is_std', 'precision', 'recall')}
    assert got['gen/num_samples'] == 12

    # Batch b is seeded seed + b: the same images drawn by hand give the same numbers.
    ext = build_feature_extractor(EXTRACTOR)
    by_hand = FakeGeneratorModel()
    images = torch.cat([by_hand.sample(torch.tensor(labels[s:s + 5]), temperature=0.5,
                                       seed=3 + b)['images']
                        for b, s in enumerate(range(0, 12, 5))])
    fake = ext.extract(u8(images))
    real = ext.extract(np.load(ref)['arr_0'])
    direct = frechet_distance_from_features(fake['pool'], real['pool'])
    assert got['gen/fid'] == pytest.approx(direct, rel=1e-5)
    assert got['gen/is'] == pytest.approx(inception_score(fake['logits'])[0], rel=1e-5)
    assert (got['gen/precision'], got['gen/recall']) == precision_recall(real['pool'], fake['pool'], k=3)

    again = generation_metric(ref)
    again.generate(FakeGeneratorModel())
    assert again.evaluate(1) == got
    other_seed = generation_metric(ref, seed=4)
    other_seed.generate(FakeGeneratorModel())
    assert other_seed.evaluate(1)['gen/fid'] != got['gen/fid']

    with pytest.raises(RuntimeError, match='GenerationValLoop'):
        metric.evaluate(12)  # its samples were used: generate again first
    fewer = generation_metric(None, num_classes=2, per_class=3)
    fewer.generate(FakeGeneratorModel())
    assert set(fewer.evaluate(1)) == {'gen/num_samples', 'gen/is', 'gen/is_std'}
    assert [r['label'] for r in fewer.seen] == [0, 0, 0, 1, 1, 1]


def _gloo_worker(rank, world, port, folder):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        from mmspectral.apis import register_all_modules
        register_all_modules(init_default_scope=True)
        metric = generation_metric(os.path.join(folder, 'ref.npz'),
                                   collect_dir=os.path.join(folder, 'collect'))
        model = FakeGeneratorModel()
        metric.generate(model)
        got = metric.evaluate(1)
        out = dict(metrics=got, labels=[c['labels'] for c in model.calls])
        if rank == 0:
            out['seen'] = [r['index'] for r in metric.seen]
            out['pool'] = np.stack([r['pool'] for r in metric.seen]).tolist()
        with open(os.path.join(folder, f'rank{rank}.json'), 'w') as f:
            json.dump(out, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_generation_metric_on_two_gloo_processes_equals_one(tmp_path, free_port):
    ref = write_reference(tmp_path / 'ref.npz')
    single = generation_metric(ref)
    single.generate(FakeGeneratorModel())
    expected = single.evaluate(1)
    torch.multiprocessing.start_processes(_gloo_worker, args=(2, free_port, str(tmp_path)), nprocs=2,
                                          start_method='spawn')
    ranks = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    assert ranks[0]['labels'] == [[0, 0, 0, 0, 1], [2, 2]]  # batches 0 and 2
    assert ranks[1]['labels'] == [[1, 1, 1, 2, 2]]  # batch 1
    assert ranks[0]['seen'] == list(range(12))
    np.testing.assert_allclose(ranks[0]['pool'], np.stack([r['pool'] for r in single.seen]), rtol=1e-6)
    for r in ranks:  # every rank gets the metrics
        assert r['metrics'].keys() == expected.keys()
        for key, value in expected.items():
            assert r['metrics'][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# --- the loops in a real Runner ---------------------------------------------------------------------------

def write_token_dataset(folder, num=6, num_tokens=4, vocab=16, num_classes=3):
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    np.save(os.path.join(folder, 'shard000-of-001_tokens.npy'),
            rng.integers(0, vocab, (num, 1, num_tokens)).astype(np.int64))
    np.save(os.path.join(folder, 'shard000-of-001_labels.npy'), np.arange(num) % num_classes)
    with open(os.path.join(folder, 'meta.json'), 'w') as f:
        json.dump(dict(complete=True, world_size=1, num_images=num, num_variants=1, num_tokens=num_tokens,
                       vocab_size=vocab, classes=[str(c) for c in range(num_classes)]), f)
    return str(folder)


def tiny_generator_runner(tmp_path, generation):
    from mmspectral.apis import build_runner
    tokens = write_token_dataset(tmp_path / 'tokens')
    loader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                  sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'),
                  dataset=dict(type='TokenDataset', data_root=tokens, variant='first', test_mode=True))
    evaluator = [dict(type='TokenPredictionMetric', num_bins=2), generation]
    cfg = Config(dict(
        default_scope='mmspectral',
        runner_type='SpectralRunner',
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'gen-metrics-{tmp_path.name}',
        model=dict(
            type='GeneratorModel',
            generator=dict(type='SpectralARGenerator', depth=1, width=32, num_heads=2, vocab_size=16,
                           num_tokens=4, num_classes=3, attn_mask=dict(type='SpectralCausalMask')),
            tokenizer=dict(type='NestedSpectralTokenizer', image_size=32, patch_size=8, num_tokens=4,
                           width=32, depth=1, num_heads=2, token_size=4, codebook_size=16,
                           freq_schedule=dict(type='UniformFreqSchedule')),
            tokenizer_checkpoint=None,
            sampling=dict(cfg_scale=1.5, top_k=0, top_p=0.0)),
        val_dataloader=loader, val_cfg=dict(type='GenerationValLoop'), val_evaluator=evaluator,
        test_dataloader=loader, test_cfg=dict(type='GenerationTestLoop'), test_evaluator=evaluator,
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        visualizer=dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
        log_level='WARNING',
        randomness=dict(seed=0)))
    return build_runner(cfg)


def test_generation_loops_in_a_runner(tmp_path):
    ref = write_reference(tmp_path / 'ref.npz', num=8, size=32)
    generation = dict(type='GenerationMetric', per_class=2, batch_size=4, extractor=EXTRACTOR, reference=ref)
    runner = tiny_generator_runner(tmp_path, generation)
    torch.manual_seed(0)
    metrics = runner.val()
    for key in ('tokens/ce', 'tokens/acc', 'gen/fid', 'gen/is', 'gen/precision', 'gen/recall'):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics['gen/num_samples'] == 6 and metrics['gen/fid'] > 0  # 2 per class, 3 classes from the model
    assert not runner.model.training  # the ValLoop's eval mode is left as MMEngine leaves it

    # The loop ran the metric's own protocol: calling it by hand gives the same numbers.
    by_hand = GenerationMetric(per_class=2, batch_size=4, extractor=EXTRACTOR, reference=ref)
    by_hand.generate(runner.model)
    assert by_hand.evaluate(1)['gen/fid'] == pytest.approx(metrics['gen/fid'], rel=1e-6)
    tested = runner.test()
    assert tested['gen/fid'] == pytest.approx(metrics['gen/fid'], rel=1e-6) and 'tokens/ce' in tested
