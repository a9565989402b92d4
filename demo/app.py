"""mmspectral's web demo: watch a sample form coarse to fine as its tokens arrive, truncate it, and look at a
tokenizer's reconstructions and spectral variations of an image.

    python demo/app.py [--models work_dirs/quickstart/models] [--host 127.0.0.1] [--port 7860]

``--models`` is a folder with the model folders ``generator`` (and optionally ``tokenizer``; the generator's
own tokenizer is used otherwise), as ``bash tools/quickstart.sh`` writes them, or written by
``tools/model_converters/publish_model.py``. Runs on a CPU. Needs Gradio (``pip install -r
requirements/demo.txt``; the test command's set-up installs it).

Its start-up (:func:`main`) sets the passive OpenMP policy before torch loads (mmspectral/launch.py), so torch
and the package are imported where they are used.
"""
import argparse
import os
import os.path as osp
import queue
import sys
import threading
from typing import Iterator, List, Optional

import numpy as np  # loads no OpenMP runtime: the policy can still be chosen

from mmspectral.launch import prepare

MISSING = ('No model folders in {path}: run `bash tools/quickstart.sh` first (10-30 minutes on 2 CPU '
           'cores; it writes work_dirs/quickstart/models/{{tokenizer,generator}}), or pass --models FOLDER '
           'with the folders that tools/model_converters/publish_model.py writes.')
# The most pixels an upload may have (a 7700 x 5200 photo), checked from the file's header before decoding:
# decoding and resizing an upload take about 25 bytes a pixel (40 megapixels: about 1 GB more), and a
# 12000 x 12000 PNG of 445 KB had grown the demo to 5.6 GB.
MAX_UPLOAD_PIXELS = 40_000_000


def load_models(path: str):
    """(generator, tokenizer or None) of a models folder; a clear error when they are missing."""
    from mmspectral.apis import init_generator, init_tokenizer, is_model_folder
    gen_dir, tok_dir = osp.join(path, 'generator'), osp.join(path, 'tokenizer')
    if not is_model_folder(gen_dir):
        raise FileNotFoundError(MISSING.format(path=path))
    generator = init_generator(gen_dir)
    tokenizer = init_tokenizer(tok_dir) if is_model_folder(tok_dir) else None
    return generator, tokenizer


def load_upload(path: str, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
    """An uploaded image file -> RGB uint8 ``(H, W, 3)``. Its size is read from its header first: an image
    of more than ``max_pixels`` raises :class:`ImageTooLargeError` before it is decoded."""
    from mmspectral.datasets.transforms import decode_image
    with open(path, 'rb') as f:
        data = f.read()
    return decode_image(data, osp.basename(path), max_pixels=max_pixels)


def enlarge(image: np.ndarray, side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement, so that a 64 px sample is visible in the page."""
    factor = max(1, side // image.shape[0])
    return image.repeat(factor, 0).repeat(factor, 1)


def stream_sample(model, label: int, num_tokens: int, seed: int, **options) -> Iterator[tuple]:
    """Sample tokens for ``label`` and yield ``(k, image)`` after every step, as the tokens arrive
    (``options``: the sampling settings, over the model's defaults)."""
    import torch

    from mmspectral.apis import from_batch
    steps: 'queue.Queue' = queue.Queue()
    done = object()

    def run():
        try:
            model.sample(torch.tensor([label]), decode=False, num_tokens=num_tokens, seed=int(seed),
                         on_step=lambda k, images: steps.put((k, images)), **options)
        except Exception as err:  # shown in the page instead of a silent stop
            steps.put(err)
        steps.put(done)

    with torch.no_grad():
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while True:
            item = steps.get()
            if item is done:
                break
            if isinstance(item, Exception):
                raise item
            k, images = item
            yield k, from_batch(images, 'numpy')[0]
        worker.join()


def whole_number(value, field: str, low: int, high: Optional[int] = None) -> int:
    """A form field that must hold a whole number in [low, high]; a ``ValueError`` naming the field."""
    span = f'from {low} to {high}' if high is not None else f'of at least {low}'
    if value is None or value == '':
        raise ValueError(f'{field}: enter a whole number {span}.')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{field}: {value!r} is not a number; enter a whole number {span}.') from None
    if not number.is_integer() or number < low or (high is not None and number > high):
        raise ValueError(f'{field}: {value!r} is not a whole number {span}.')
    return int(number)


def class_label(name, names: List[str]) -> int:
    """The label of a class name (or index) picked in the page."""
    if name in names:
        return names.index(name)
    raise ValueError(f'class: pick one of the list ({", ".join(names[:5])}, ...), got {name!r}.')


SAMPLING_KEYS = ('cfg_scale', 'cfg_schedule', 'temperature', 'top_k', 'top_p')


def sampling_defaults(model) -> dict:
    """What the page's sampling controls start at: the model's ``sampling`` settings over ``generate``'s
    defaults."""
    import inspect
    params = inspect.signature(model.gen.generate).parameters
    out = {key: params[key].default for key in SAMPLING_KEYS}
    out.update({k: v for k, v in model.sampling_options({}).items() if k in out})
    return out


def sampling_settings(model, cfg, schedule, temperature, top_k, top_p) -> dict:
    """The page's sampling controls as ``sample`` options, checked by the model as every tool checks them."""
    options = dict(cfg_scale=cfg, cfg_schedule=schedule, temperature=temperature, top_k=top_k, top_p=top_p)
    for key, value in options.items():
        if value is None or value == '':
            raise ValueError(f'{key}: the field is empty; enter a value (the model\'s default: '
                             f'{sampling_defaults(model)[key]}).')
    options['top_k'] = whole_number(top_k, 'top-k', 0)
    model.sampling_options(options, 'the sampling controls')  # ValueError / TypeError saying which and why
    return options


def build_demo(generator, tokenizer=None):
    """The Gradio Blocks app around a generator (and a tokenizer for the reconstruction tab)."""
    import gradio as gr

    from mmspectral.apis import from_batch, reconstruct, variations
    from mmspectral.datasets import EMBEDDED_CLASS_SETS, class_set_of
    from mmspectral.datasets.transforms import CorruptImageError, ImageTooLargeError
    from mmspectral.evaluation.embedded_classifier import render_batch
    codec = tokenizer if tokenizer is not None else generator
    names = list(generator.class_names) or [str(c) for c in range(generator.gen.num_classes)]
    n = generator.gen.num_tokens

    def on_generate(name: str, num_tokens: float, seed: float, cfg, schedule, temperature, top_k, top_p):
        try:
            label = class_label(name, names)
            count = whole_number(num_tokens, 'tokens to generate', 1, n)
            seed = whole_number(seed, 'seed', 0, 2 ** 31 - 1)
            options = sampling_settings(generator, cfg, schedule, temperature, top_k, top_p)
        except (TypeError, ValueError) as err:
            raise gr.Error(str(err)) from err
        frames: List[np.ndarray] = []
        for k, image in stream_sample(generator, label, count, seed, **options):
            frames.append(image)
            # the thumbnails once, at the end: a gallery replaced at every token left some of its images
            # unloaded (the browser was still fetching the files of the one before)
            yield enlarge(image), gr.skip(), f'{k} of {count} tokens'
        yield gr.skip(), [(enlarge(f, 64), f'k={i + 1}') for i, f in enumerate(frames)], gr.skip()

    def on_reconstruct(path: Optional[str], ks: List[str], name: str, keep: float, num: float, seed: float):
        if path is None:
            raise gr.Error('Upload an image or pick an example first.')
        try:
            image = load_upload(path)
        except (ImageTooLargeError, CorruptImageError) as err:
            raise gr.Error(str(err)) from err
        try:
            label = class_label(name, names)
            keep = whole_number(keep, 'variations keep k tokens', 1, n - 1)
            num = whole_number(num, 'variations', 1, 8)
            seed = whole_number(seed, 'seed', 0, 2 ** 31 - 1)
        except (TypeError, ValueError) as err:
            raise gr.Error(str(err)) from err
        lengths = sorted(int(k) for k in ks) or [n]
        recons = reconstruct(codec, image, k=lengths, output='numpy')
        gallery = [(enlarge(recons[k], 64), f'k={k}') for k in lengths]
        varied = variations(generator, image, label, keep=keep, num=num, seed=seed, output='numpy')
        return gallery, [(enlarge(v, 64), f'variation {i + 1}') for i, v in enumerate(varied)]

    example_images = []
    class_set = class_set_of(names)
    if tuple(EMBEDDED_CLASS_SETS[class_set][:len(names)]) == tuple(names):  # real images of these classes
        images, _ = render_batch(range(len(names)), generator.tokenizer.image_size, seed=1,
                                 num_classes=len(names), class_set=class_set)
        # each example sets the class its image shows, for the variations
        example_images = [[image, name] for image, name in zip(from_batch(images, 'numpy'), names)]

    defaults = sampling_defaults(generator)
    with gr.Blocks(title='mmspectral: spectral autoregressive generation') as demo:
        gr.Markdown('# mmspectral demo\nEvery token adds higher frequencies: the sample forms coarse to '
                    'fine. '
                    f'{n} tokens per image; fewer tokens = truncated generation (a low-pass version).')
        with gr.Tab('Generate'):
            with gr.Row():
                name = gr.Dropdown(names, value=names[0], label='class', elem_id='class')
                tokens = gr.Slider(1, n, value=n, step=1, label='tokens to generate', elem_id='num-tokens')
                seed = gr.Number(0, precision=0, label='seed', elem_id='seed')
            with gr.Accordion('sampling', open=False):
                with gr.Row():
                    cfg = gr.Number(defaults['cfg_scale'], label='guidance scale (0: none)', minimum=0,
                                    elem_id='cfg')
                    schedule = gr.Dropdown(['linear', 'constant'], value=defaults['cfg_schedule'],
                                           label='guidance schedule', elem_id='cfg-schedule')
                    temperature = gr.Number(defaults['temperature'], label='temperature', minimum=0,
                                            elem_id='temperature')
                    top_k = gr.Number(defaults['top_k'], precision=0, label='top-k (0: off)', minimum=0,
                                      elem_id='top-k')
                    top_p = gr.Number(defaults['top_p'], label='top-p (0: off)', minimum=0, maximum=1,
                                      elem_id='top-p')
            button = gr.Button('Generate', variant='primary', elem_id='generate')
            status = gr.Textbox(label='progress', interactive=False, elem_id='status')
            with gr.Row():
                final = gr.Image(label='sample', type='numpy', interactive=False, elem_id='sample',
                                 height=272, scale=1)
                # 6 columns of 64 px thumbnails fit beside the sample in a 1280 px window (8 were cut off)
                steps = gr.Gallery(label='after each token', columns=6, height='auto', object_fit='contain',
                                   elem_id='steps', scale=2)
            button.click(on_generate, [name, tokens, seed, cfg, schedule, temperature, top_k, top_p],
                         [final, steps, status])
        with gr.Tab('Reconstruct and vary'):
            with gr.Row():
                # a path, not pixels: Gradio would decode the upload whatever its size (load_upload checks it)
                image = gr.Image(label='image', type='filepath', image_mode=None, elem_id='input-image')
                with gr.Column():
                    shown = sorted({str(min(k, n)) for k in (1, 2, 4, 8, n)}, key=int)
                    ks = gr.CheckboxGroup([str(k) for k in range(1, n + 1)], value=shown,
                                          label='prefix lengths k')
                    vname = gr.Dropdown(names, value=names[0], label='class of the variations',
                                        elem_id='variation-class')
                    keep = gr.Slider(1, n - 1, value=max(1, n // 4), step=1, label='variations keep k tokens')
                    num = gr.Slider(1, 8, value=4, step=1, label='variations')
                    vseed = gr.Number(0, precision=0, label='seed')
            go = gr.Button('Reconstruct', variant='primary', elem_id='reconstruct')
            recon_gallery = gr.Gallery(label='reconstruction from the first k tokens', columns=8,
                                       height='auto', object_fit='contain', elem_id='reconstructions')
            var_gallery = gr.Gallery(label='spectral variations', columns=8, height='auto',
                                     object_fit='contain', elem_id='variations')
            if example_images:
                gr.Examples(example_images, inputs=[image, vname], label='EmbeddedShapes images')
            go.click(on_reconstruct, [image, ks, vname, keep, num, vseed], [recon_gallery, var_gallery])
    return demo


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmspectral web demo (Gradio).')
    parser.add_argument('--models', default='work_dirs/quickstart/models',
                        help='folder holding the model folders generator/ and tokenizer/')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7860)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    # Before torch loads: the passive OpenMP policy (the sampling thread runs beside the server's threads)
    prepare(passive=True)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import torch
    try:
        import gradio  # noqa: F401
    except ImportError:
        sys.exit('The demo needs Gradio: pip install -r requirements/demo.txt')
    try:
        generator, tokenizer = load_models(args.models)
    except FileNotFoundError as err:
        sys.exit(str(err))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    demo = build_demo(generator, tokenizer)
    print(f'[demo] serving on http://{args.host}:{args.port}', flush=True)
    demo.queue().launch(server_name=args.host, server_port=args.port, show_error=True, quiet=True)


if __name__ == '__main__':
    from mmspectral.launch import run
    run(main)  # freed memory kept first (mmspectral/launch.py)
