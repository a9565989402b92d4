import logging
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmspectral.datasets import (CorruptImageError, ImageFolderDataset, LoadImage, PackImageInputs,
                                 ResizeShorter, export_embedded_shapes, render_shape)
from mmspectral.models import ImageDataPreprocessor
from mmspectral.registry import TRANSFORMS

PIPELINE = [dict(type='LoadImage'), dict(type='PackImageInputs')]


@pytest.fixture
def image_folder(tmp_path):
    export_embedded_shapes(str(tmp_path / 'train'), num_per_class=2, image_size=32, seed=4, num_classes=3)
    return tmp_path


def test_class_folders_are_read_from_real_files(image_folder):
    ds = ImageFolderDataset(data_root=str(image_folder), data_prefix=dict(img_path='train'),
                            pipeline=PIPELINE, test_mode=True)
    assert len(ds) == 6
    assert ds.metainfo['classes'] == ('disk', 'square', 'triangle')
    for i in range(len(ds)):
        sample = ds[i]
        info = ds.get_data_info(i)
        index = int(os.path.basename(info['img_path']).split('.')[0])
        expected = render_shape(4, index, info['gt_label'], 32)  # PNG is lossless
        assert np.array_equal(sample['inputs'].permute(1, 2, 0).numpy(), expected)
        assert int(sample['data_samples'].gt_label) == info['gt_label'] == index % 3


def test_list_file(image_folder):
    lines = ['# path label', 'square/000001.png 1', 'disk/000000.png 0', '']
    (image_folder / 'list.txt').write_text('\n'.join(lines))
    ds = ImageFolderDataset(data_root=str(image_folder), ann_file='list.txt',
                            data_prefix=dict(img_path='train'), pipeline=PIPELINE)
    assert len(ds) == 2 and [ds.get_data_info(i)['gt_label'] for i in range(2)] == [1, 0]
    (image_folder / 'bad.txt').write_text('square/000001.png\n')
    with pytest.raises(ValueError, match='bad.txt:1: expected "relative/path label"'):
        ImageFolderDataset(data_root=str(image_folder), ann_file='bad.txt',
                           data_prefix=dict(img_path='train'))


def test_missing_or_empty_roots_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        ImageFolderDataset(data_root=str(tmp_path / 'nope'))
    (tmp_path / 'empty' / 'cls').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='no images'):
        ImageFolderDataset(data_root=str(tmp_path / 'empty'))
    (tmp_path / 'flat').mkdir()
    with pytest.raises(FileNotFoundError, match='no class sub-folders'):
        ImageFolderDataset(data_root=str(tmp_path / 'flat'))


def write_corrupt_files(folder):
    good = cv2.imencode('.jpg', render_shape(0, 0, 0, 32))[1].tobytes()
    (folder / 'truncated.jpg').write_bytes(good[:len(good) // 2])
    (folder / 'garbage.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'not really a png' * 10)
    (folder / 'empty.jpg').write_bytes(b'')


def test_corrupt_images_are_skipped_counted_and_named(image_folder):
    write_corrupt_files(image_folder / 'train' / 'disk')
    ds = ImageFolderDataset(data_root=str(image_folder), data_prefix=dict(img_path='train'),
                            pipeline=PIPELINE)
    assert len(ds) == 9
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    bad = [i for i, p in enumerate(paths)
           if os.path.basename(p) in ('truncated.jpg', 'garbage.png', 'empty.jpg')]
    assert len(bad) == 3

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        for i in bad:
            sample = ds[i]  # another, readable image comes back
            assert sample['inputs'].shape == (3, 32, 32)
    finally:
        logger.removeHandler(handler)
    assert ds.num_corrupt >= 3  # a redraw may land on another bad file
    messages = ' '.join(r.getMessage() for r in records)
    for name in ('truncated.jpg', 'garbage.png', 'empty.jpg'):
        assert name in messages

    strict = ImageFolderDataset(data_root=str(image_folder), data_prefix=dict(img_path='train'),
                                pipeline=PIPELINE, skip_corrupt=False)
    with pytest.raises(CorruptImageError, match='truncated.jpg: the JPEG data is truncated'):
        strict[bad[[os.path.basename(paths[i]) for i in bad].index('truncated.jpg')]]
    evaluation = ImageFolderDataset(data_root=str(image_folder), data_prefix=dict(img_path='train'),
                                    pipeline=PIPELINE, test_mode=True)
    with pytest.raises(CorruptImageError, match='fatal in test mode'):
        evaluation[bad[0]]


def test_a_folder_of_unreadable_images_is_named_before_and_during_a_run(tmp_path):
    for cls in ('a', 'b'):
        (tmp_path / 'bad' / cls).mkdir(parents=True)
        write_corrupt_files(tmp_path / 'bad' / cls)
    problems = ImageFolderDataset.check_config(dict(data_root=str(tmp_path / 'bad')), 'train.dataset')
    assert len(problems) == 1 and 'none of the 6 images read' in problems[0]
    assert 'can be decoded' in problems[0]
    ds = ImageFolderDataset(data_root=str(tmp_path / 'bad'), pipeline=PIPELINE, max_refetch=30)
    with pytest.raises(CorruptImageError, match=r'30 draws in a row met only unreadable images \(6 distinct '
                                                r'files of 6'):
        ds[0]
    assert ds.num_corrupt == 6  # distinct files, not draws
    # one good image among them: the check passes (the run skips the bad ones)
    good = cv2.imencode('.jpg', render_shape(0, 0, 0, 32))[1].tobytes()
    (tmp_path / 'bad' / 'a' / 'good.jpg').write_bytes(good)
    assert ImageFolderDataset.check_config(dict(data_root=str(tmp_path / 'bad'))) == []


def test_a_run_summarises_the_images_it_skipped(image_folder, tmp_path):
    """Skipped files are listed by the data-loader worker that met them and summarised once training ends."""
    from mmspectral.apis import build_runner, load_config
    write_corrupt_files(image_folder / 'train' / 'disk')
    tests = os.path.dirname(os.path.dirname(__file__))
    cfg = load_config(os.path.join(tests, 'data', 'tiny_autoencoder_config.py'))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.experiment_name = 'skipped-summary'
    cfg.train_dataloader.update(num_workers=1, persistent_workers=False, batch_size=4)
    cfg.train_dataloader.dataset = dict(type='ImageFolderDataset', data_root=str(image_folder),
                                        data_prefix=dict(img_path='train'), pipeline=PIPELINE)
    cfg.train_cfg.max_iters = 6
    runner = build_runner(cfg)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    runner.logger.addHandler(handler)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(handler)
    listed = (tmp_path / 'work' / 'skipped_images.txt').read_text().splitlines()
    names = {os.path.basename(line.split('\t')[0]) for line in listed}
    assert names == {'truncated.jpg', 'garbage.png', 'empty.jpg'}  # 24 draws of 9 files meet all three
    summary = [r.getMessage() for r in records if 'distinct unreadable images were skipped' in r.getMessage()]
    assert len(summary) == 1 and summary[0].startswith('3 distinct unreadable images')


def test_tokenizer_pipeline_transforms(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    path = str(tmp_path / 'x.png')
    cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    results = LoadImage()(dict(img_path=path))
    assert np.array_equal(results['img'], img) and results['ori_shape'] == (60, 90)
    results = ResizeShorter(32)(results)
    assert results['img'].shape == (32, 48, 3)
    pipeline = [TRANSFORMS.build(dict(type='RandomCrop', crop_size=32)),
                TRANSFORMS.build(dict(type='RandomFlip', prob=1.0, direction='horizontal'))]
    for t in pipeline:
        results = t(results)
    assert results['img'].shape == (32, 32, 3)
    centre = TRANSFORMS.build(dict(type='CenterCrop', crop_size=24))(
        dict(img=np.zeros((32, 48, 3), np.uint8)))
    assert centre['img'].shape == (24, 24, 3)
    with pytest.raises(ValueError, match='put ResizeShorter'):
        TRANSFORMS.build(dict(type='RandomCrop', crop_size=64))(dict(img=np.zeros((32, 48, 3), np.uint8)))
    packed = PackImageInputs()(dict(img=img, gt_label=2, img_path=path))
    assert packed['inputs'].shape == (3, 60, 90) and packed['data_samples'].img_path == path


@pytest.mark.parametrize('value_range', [(0.0, 1.0), (-1.0, 1.0)])
def test_data_preprocessor_value_range(value_range):
    pre = ImageDataPreprocessor(value_range=value_range)
    batch = dict(inputs=[torch.tensor([0, 255, 51], dtype=torch.uint8).view(3, 1, 1).expand(3, 2, 2)],
                 data_samples=None)
    out = pre(batch)['inputs']
    lo, hi = value_range
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([lo, hi, lo + 0.2 * (hi - lo)]))
    with pytest.raises(ValueError, match='hi > lo'):
        ImageDataPreprocessor(value_range=(1, 0))
