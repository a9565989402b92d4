import pytest
import torch

from mmspectral.evaluation.embedded_classifier import (ShapesClassifier, accuracy,
                                                       load_or_train_shapes_classifier,
                                                       load_shapes_classifier, render_batch)


def test_render_batch_labels_follow_indices():
    images, labels = render_batch([0, 1, 12], image_size=32, seed=3)
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert labels.tolist() == [0, 1, 2]


def test_accuracy_counts_matches():
    model = ShapesClassifier(num_classes=3).eval()
    images = torch.rand(5, 3, 32, 32)
    predicted = model(images).argmax(1)
    assert accuracy(model, images, predicted) == 1.0
    assert accuracy(model, images, (predicted + 1) % 3) == 0.0


def test_saved_classifier_round_trip_and_size_check(tmp_path):
    path = str(tmp_path / 'judge.pth')
    with torch.no_grad():  # training switches gradients back on for itself
        model, acc = load_or_train_shapes_classifier(path, image_size=32, steps=3, num_val=20)
    again, acc_again = load_or_train_shapes_classifier(path, image_size=32)
    images, _ = render_batch(range(4), 32, seed=5)
    assert acc == acc_again and torch.equal(model(images), again(images))
    with pytest.raises(ValueError, match='32 px'):
        load_or_train_shapes_classifier(path, image_size=64)
    with pytest.raises(ValueError, match="'fine' EmbeddedShapes classes, not the 'coarse'"):
        load_or_train_shapes_classifier(path, image_size=32, class_set='coarse')


def test_classifier_of_the_coarse_classes_is_saved_with_its_class_set(tmp_path):
    path = str(tmp_path / 'judge.pth')
    model, _ = load_or_train_shapes_classifier(path, image_size=32, class_set='coarse', steps=3, num_val=20)
    again, _, _ = load_shapes_classifier(path)
    assert model.class_set == again.class_set == 'coarse'


@pytest.mark.slow
def test_classifier_recognises_real_shapes():
    _, acc = load_or_train_shapes_classifier(None, image_size=64, steps=150, num_val=200)
    assert acc > 0.9


def test_probe_keeps_the_size_it_sees_and_judges_detail_only_at_that_size(tmp_path):
    path = str(tmp_path / 'judge_64in.pth')
    model, _ = load_or_train_shapes_classifier(path, image_size=64, class_set='coarse', steps=2, num_val=10,
                                               input_size=64)
    again, _, _ = load_shapes_classifier(path)
    assert model.input_size == again.input_size == 64
    with pytest.raises(ValueError, match='sees 64 px, not 32 px'):
        load_or_train_shapes_classifier(path, image_size=64, class_set='coarse', input_size=32)
    # Detail that 2 x 2 averaging removes (a +-0.1 checkerboard) is invisible to a probe that sees 32 px
    # and changes what the one that sees 64 px finds.
    x = 0.2 + 0.6 * torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    checker = 0.1 * (1 - 2 * ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2)).float()
    small = ShapesClassifier(input_size=32, class_set='coarse').eval()
    small.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(small.features(x + checker), small.features(x), atol=1e-5, rtol=0)
        assert (model.features(x + checker) - model.features(x)).abs().max() > 1e-3
    # Files saved before the size was recorded see 32 px; a probe needs 16 px at least.
    state = torch.load(path, weights_only=True)
    del state['input_size']
    torch.save(state, path)
    assert load_shapes_classifier(path)[0].input_size == 32
    with pytest.raises(ValueError, match='at least 16 px'):
        load_or_train_shapes_classifier(None, image_size=32, steps=1, num_val=2, input_size=8)
