"""ImageNet-style folder datasets: class sub-folders, or a list file of ``relative/path label`` lines."""
import logging
import os
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmspectral.registry import DATASETS
from .transforms.loading import CorruptImageError, decode_image

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


class SkipCorruptMixin:
    """Skips (and counts) samples whose image cannot be read, or fails on them when asked to.

    Training datasets return None for such a sample, and MMEngine's BaseDataset then draws another index.
    In test mode a skipped image would silently change the evaluation set, so it always fails.
    """

    skip_corrupt: bool = True
    #: A file each skipped image is appended to (``path<TAB>reason``), from every data-loader worker; the
    #: runners set it to ``<work_dir>/skipped_images.txt`` and summarise it when training ends.
    skip_record: Optional[str] = None
    _corrupt: Optional[dict] = None  # path -> reason, of the files this process skipped

    @property
    def num_corrupt(self) -> int:
        """How many distinct files this process (a data-loader worker) skipped."""
        return len(self._corrupt or {})

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except CorruptImageError as exc:
            if self.test_mode:
                raise CorruptImageError(exc.path, exc.reason + ' (evaluation uses the whole set, so an '
                                        'unreadable image is fatal in test mode)') from exc
            if not self.skip_corrupt:
                raise
            if self._corrupt is None:
                self._corrupt = {}
            if exc.path not in self._corrupt:  # once per file, however often it is drawn
                self._corrupt[exc.path] = exc.reason
                print_log(f'Skipped unreadable image ({self.num_corrupt} distinct files so far in this '
                          f'worker): {exc}', logger='current', level=logging.WARNING)
                if self.skip_record:
                    with open(self.skip_record, 'a') as f:  # one short append: whole lines from each worker
                        f.write(f'{exc.path}\t{exc.reason}\n')
            return None

    def __getitem__(self, idx):
        try:
            return super().__getitem__(idx)
        except Exception as exc:
            if 'Cannot find valid' not in str(exc) or not self._corrupt:
                raise
            shown = '; '.join(f'{p}: {r}' for p, r in list(self._corrupt.items())[:3])
            raise CorruptImageError(
                next(iter(self._corrupt)), f'{self.max_refetch} draws in a row met only unreadable images '
                f'({self.num_corrupt} distinct files of {len(self)}, e.g. {shown}). The folder is damaged or '
                'is not what the config should point at; fix it, or remove the bad files') from exc


def skipped_images_summary(record: str) -> Optional[str]:
    """One line on the distinct images listed in a ``skip_record`` file, or None if there are none."""
    if not osp.isfile(record):
        return None
    with open(record) as f:
        paths = dict(line.rstrip('\n').split('\t', 1) for line in f if '\t' in line)
    if not paths:
        return None
    shown = ', '.join(list(paths)[:3]) + (' ...' if len(paths) > 3 else '')
    return (f'{len(paths)} distinct unreadable images were skipped during training ({shown}); all are listed '
            f'with the reason in {record}. Replace or remove them.')


@DATASETS.register_module()
class ImageFolderDataset(SkipCorruptMixin, BaseDataset):
    """Images with class labels, laid out as ImageNet.

    Either ``data_root/<class name>/<image>`` (classes sorted by name give labels 0..C-1), or a list file
    ``ann_file`` whose lines are ``relative/path.JPEG label`` (paths relative to ``data_prefix['img_path']``,
    itself relative to ``data_root``).

    Args:
        data_root: dataset root.
        ann_file: optional list file, relative to ``data_root``.
        data_prefix: ``dict(img_path='train')`` selects a sub-folder of ``data_root``.
        classes: optional class names; default: the sub-folder names, or the label numbers of the list file.
        extensions: image file endings to collect from folders (case-insensitive).
        skip_corrupt: skip unreadable images during training (warned with the path and counted in
            ``num_corrupt``); False makes them fatal.
        pipeline, test_mode, lazy_init, max_refetch, indices, serialize_data: as MMEngine's BaseDataset.
    """

    def __init__(self, data_root: str = '', ann_file: str = '', data_prefix: Optional[dict] = None,
                 classes: Optional[Sequence[str]] = None, extensions: Sequence[str] = IMG_EXTENSIONS,
                 skip_corrupt: bool = True, pipeline: Sequence = (), test_mode: bool = False,
                 lazy_init: bool = False, max_refetch: int = 1000, indices=None, serialize_data: bool = True):
        self.extensions = tuple(e.lower() for e in extensions)
        self.skip_corrupt = skip_corrupt
        self._corrupt = {}
        self._classes = list(classes) if classes is not None else None
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix if data_prefix is not None else dict(img_path=''),
                         pipeline=list(pipeline), test_mode=test_mode, lazy_init=lazy_init,
                         max_refetch=max_refetch, indices=indices, serialize_data=serialize_data)

    @classmethod
    def check_config(cls, ds: Mapping, where: str = 'dataset', cfg: Optional[Mapping] = None) -> List[str]:
        """The problems of a config of this dataset (its arguments over the defaults), found before any image
        is read; the config checks of ``mmspectral.engine.preflight`` call this."""
        problems = []
        data_root = osp.expanduser(ds.get('data_root') or '')
        root = _join_root(data_root, (ds.get('data_prefix') or {}).get('img_path') or '') or data_root
        if not root or not osp.isdir(root):
            problems.append(f"{where}: image folder {root!r} (data_root + data_prefix['img_path']) does not "
                            'exist. Set data_root (and data_prefix) to where the images are.')
            return problems
        if ds.get('ann_file'):
            ann = _join_root(data_root, ds['ann_file'])
            first = _first_listed(ann) if osp.isfile(ann) else None
            if not osp.isfile(ann):
                problems.append(f'{where}.ann_file: list file {ann!r} does not exist. Set ann_file (relative '
                                'to data_root) to the "path label" list, '
                                'or drop it to read class sub-folders.')
            elif first is None:
                problems.append(f'{where}.ann_file: {ann!r} lists no images. '
                                'Expected "relative/path label" lines.')
            elif not osp.isfile(osp.join(root, first)):
                problems.append(f'{where}: the first image of {ann!r}, {first!r}, is not under {root!r}. Is '
                                "data_prefix['img_path'] right?")
            return problems
        extensions = tuple(e.lower() for e in ds.get('extensions') or IMG_EXTENSIONS)
        classes = ds.get('classes')
        folders = sorted(e.name for e in os.scandir(root) if e.is_dir())
        missing = sorted(set(classes or ()) - set(folders))
        if missing:
            problems.append(f'{where}: classes {missing[:5]} have no folder under {root!r}. Fix classes or '
                            'the folder names.')
        elif not any(_has_image(osp.join(root, c), extensions) for c in (classes or folders)):
            problems.append(f'{where}: {root!r} holds no images with endings {extensions} in class '
                            'sub-folders. Expected <root>/<class>/<image>, '
                            'or pass ann_file with "path label" lines.')
        else:
            sample = [p for c in (classes or folders) for p in _some_images(osp.join(root, c), extensions, 8)]
            failures = _unreadable(sample[:_PROBED])
            if failures and len(failures) == len(sample[:_PROBED]):  # one readable image: the run can go on
                problems.append(f'{where}: none of the {len(failures)} images read from {root!r} as a probe '
                                f'can be decoded (e.g. {failures[0]}). The files are damaged or not images; '
                                'check the folder (a training run would skip every image and stop).')
        return problems

    @property
    def image_root(self) -> str:
        return self.data_prefix.get('img_path') or self.data_root

    def load_data_list(self) -> List[dict]:
        root = self.image_root
        if not root or not osp.isdir(root):
            raise FileNotFoundError(f'ImageFolderDataset: image folder {root!r} does not exist. Set '
                                    "data_root (and data_prefix=dict(img_path='train')) to where the "
                                    'images are.')
        if self.ann_file:
            data_list = self._load_list_file(root)
        else:
            data_list = self._scan_folders(root)
        if not data_list:
            raise FileNotFoundError(f'ImageFolderDataset: no images with endings {self.extensions} found '
                                    f'under {root!r}' +
                                    (f' (list file {self.ann_file})' if self.ann_file else '') +
                                    '. Expected <root>/<class>/<image> or a list file of "path label" lines.')
        return data_list

    def _scan_folders(self, root: str) -> List[dict]:
        class_dirs = sorted(e.name for e in os.scandir(root) if e.is_dir())
        if not class_dirs:
            raise FileNotFoundError(f'ImageFolderDataset: {root!r} has no class sub-folders. Put images in '
                                    '<root>/<class>/ or pass ann_file with "path label" lines.')
        if self._classes is None:
            self._classes = class_dirs
        missing = sorted(set(self._classes) - set(class_dirs))
        if missing:
            raise FileNotFoundError(f'ImageFolderDataset: classes {missing[:5]} have no folder '
                                    f'under {root!r}.')
        data_list = []
        for label, name in enumerate(self._classes):
            for dirpath, _, files in sorted(os.walk(osp.join(root, name), followlinks=True)):
                for fname in sorted(files):
                    if fname.lower().endswith(self.extensions):
                        data_list.append(dict(img_path=osp.join(dirpath, fname), gt_label=label))
        return data_list

    def _load_list_file(self, root: str) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ImageFolderDataset: list file {self.ann_file!r} does not exist.')
        data_list = []
        with open(self.ann_file) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith('#'):
                    continue
                path, _, label = line.rpartition(' ')
                if not path or not label.lstrip('-').isdigit():
                    raise ValueError(f'{self.ann_file}:{lineno}: expected "relative/path label", '
                                     f'got {line!r}.')
                data_list.append(dict(img_path=osp.join(root, path), gt_label=int(label)))
        if self._classes is None and data_list:
            self._classes = [str(i) for i in range(max(d['gt_label'] for d in data_list) + 1)]
        return data_list

    def full_init(self) -> None:
        super().full_init()
        self._metainfo['classes'] = tuple(self._classes or ())

    @property
    def classes(self) -> tuple:
        return tuple(self._classes or ())


def _first_listed(ann_file: str) -> Optional[str]:
    with open(ann_file) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith('#'):
                return line.rpartition(' ')[0] or line
    return None


def _has_image(folder: str, extensions: Tuple[str, ...]) -> bool:
    """Whether ``folder`` holds at least one image file; stops at the first one."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(extensions) for f in files):
            return True
    return False


_PROBED = 64  # images the config check decodes, at most (up to 8 per class)


def _some_images(folder: str, extensions: Tuple[str, ...], n: int) -> List[str]:
    """Up to ``n`` image paths of ``folder``, in sorted order, without listing the whole tree."""
    found: List[str] = []
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        images = [osp.join(dirpath, f) for f in sorted(files) if f.lower().endswith(extensions)]
        found += images[:n - len(found)]
        if len(found) >= n:
            break
    return found


def _unreadable(paths: Sequence[str]) -> List[str]:
    """``'path: reason'`` for each of ``paths`` that does not decode."""
    failures = []
    for path in paths:
        try:
            with open(path, 'rb') as f:
                decode_image(f.read(), path)
        except (CorruptImageError, OSError) as exc:
            failures.append(f'{path}: {getattr(exc, "reason", exc)}')
    return failures


def _join_root(root: str, path: str) -> str:
    """A path relative to ``root`` as MMEngine's BaseDataset resolves it."""
    return path if osp.isabs(path) or not root else osp.join(root, path)
