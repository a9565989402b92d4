"""The class-balanced sampling protocol: every rank's batches together are the single-process batches, with
the same seeds, so the samples do not depend on the number of processes; and the tools that draw by it get
the images ``model.sample`` gives for those seeds."""
import numpy as np
import pytest
import torch

from mmspectral.evaluation.protocol import balanced_batches, balanced_labels, balanced_samples


@pytest.mark.parametrize('num_classes,per_class,batch_size', [(3, 4, 5), (10, 2, 7), (1, 1, 1), (4, 5, 20)])
@pytest.mark.parametrize('world_size', [1, 2, 3])
def test_the_ranks_batches_partition_the_single_process_ones(num_classes, per_class, batch_size, world_size):
    labels = balanced_labels(num_classes, per_class)
    assert np.array_equal(np.bincount(labels, minlength=num_classes), [per_class] * num_classes)
    assert np.all(np.diff(labels) >= 0)  # label order
    single = balanced_batches(num_classes, per_class, batch_size, seed=11)
    assert [b.seed for b in single] == [11 + b.index for b in single] == list(range(11, 11 + len(single)))
    assert np.array_equal(np.concatenate([b.indices for b in single]), np.arange(len(labels)))
    ranks = [balanced_batches(num_classes, per_class, batch_size, 11, r, world_size)
             for r in range(world_size)]
    merged = sorted((b for batches in ranks for b in batches), key=lambda b: b.index)
    assert [(b.index, b.seed) for b in merged] == [(b.index, b.seed) for b in single]
    for a, b in zip(merged, single):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.labels, labels[a.indices])
    for r, batches in enumerate(ranks):
        assert all(b.index % world_size == r for b in batches)


class Seeded:
    """A stand-in for GeneratorModel.sample: images from the seed and the labels."""

    def __init__(self):
        self.calls = []

    def sample(self, labels, decode=True, seed=None, **options):
        self.calls.append((labels.tolist(), seed, options))
        noise = torch.rand(len(labels), 3, 2, 2, generator=torch.Generator().manual_seed(seed))
        return dict(images=noise + labels.view(-1, 1, 1, 1))


def test_samples_are_the_same_on_any_number_of_processes():
    one = {b.index: out['images'] for b, out in balanced_samples(Seeded(), 3, 5, 4, seed=2, temperature=0.5)}
    two = {}
    for rank in range(2):
        model = Seeded()
        two.update({b.index: out['images'] for b, out in balanced_samples(model, 3, 5, 4, 2, rank, 2,
                                                                          temperature=0.5)})
        assert all(options == dict(temperature=0.5) for _, _, options in model.calls)
    assert sorted(one) == sorted(two) == [0, 1, 2, 3]
    assert all(torch.equal(one[i], two[i]) for i in one)
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        balanced_batches(3, 5, 0)
