"""Turn a training checkpoint into a model folder others can load without pickles.

    python tools/model_converters/publish_model.py CONFIG CHECKPOINT OUT_FOLDER [--overwrite]
        [--metrics metrics.json [--metrics-keys tokenizer tokenizer_fidelity]] [--title TEXT] [--data TEXT]
        [--reproduce "bash tools/quickstart.sh"] [--notes TEXT] [--cfg-options KEY=VALUE ...]
        [--push-to-hub ORG/NAME [--private] [--revision BRANCH]]

CONFIG is the TokenizerModel or GeneratorModel config the checkpoint was trained with (a generator also needs
its tokenizer: ``model.tokenizer_checkpoint`` of the config, or ``--cfg-options``). The folder gets the
inference config as JSON, the weights as safetensors (the checkpoint's ``state_dict``, which holds the EMA
weights when training kept them; no optimizer state, no discriminator, no loss networks; a generator's folder
holds its tokenizer too), ``mmspectral_model.json`` and a model card ``README.md`` with the sha256 of the
weights, the training steps and, with ``--metrics``, the measured figures (numbers of the JSON file, or of
the sections ``--metrics-keys`` names, flattened as ``section/name``). Load it with
``mmspectral.apis.init_tokenizer(OUT_FOLDER)`` / ``init_generator(OUT_FOLDER)``.

``--push-to-hub ORG/NAME`` then uploads the folder to that Hugging Face Hub model repository (created if
missing; ``huggingface-cli login`` first) with ``huggingface_hub``; anyone then loads it with
``init_generator('ORG/NAME')``.
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import DictAction

from mmspectral.apis import init_generator, init_tokenizer, load_config, register_all_modules, save_pretrained
from mmspectral.cli import add_trust_arg
from mmspectral.fileio import load_torch_file, sha256_of_file, trust_files


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Training checkpoint -> model folder (safetensors + card).')
    parser.add_argument('config', help='the TokenizerModel or GeneratorModel config it was trained with')
    parser.add_argument('checkpoint', help='the checkpoint training wrote (iter_N.pth)')
    parser.add_argument('out', help='the model folder to write')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing folder')
    parser.add_argument('--metrics', default=None, help='JSON file of measured figures for the card')
    parser.add_argument('--metrics-keys', nargs='+', default=None,
                        help='sections of the metrics file to report (default: all of it)')
    parser.add_argument('--title', default=None)
    parser.add_argument('--data', default=None, help='what it was trained on (default: from the config)')
    parser.add_argument('--reproduce', default=None, help='the command that trains it')
    parser.add_argument('--notes', default=None)
    parser.add_argument('--push-to-hub', metavar='ORG/NAME', default=None,
                        help='upload the folder to this Hugging Face Hub model repository')
    parser.add_argument('--private', action='store_true', help='create the hub repository private')
    parser.add_argument('--revision', default=None, help='the hub branch to upload to (default: main)')
    add_trust_arg(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE')
    return parser.parse_args(argv)


def flat_numbers(obj, prefix=''):
    """Numbers of a nested dict as ``{'a/b': value}``; lists and strings are left out."""
    out = {}
    for key, value in obj.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            out.update(flat_numbers(value, name + '/'))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def describe_data(cfg) -> str:
    """The training data, from the config's train dataset."""
    data = cfg.get('train_dataloader', {}).get('dataset', {})
    parts = [str(data.get('type', 'unknown dataset'))]
    for key in ('class_set', 'image_size', 'num_samples'):  # not data_root: a path of this machine
        if data.get(key) is not None:
            parts.append(f'{key}={data[key]}')
    return ', '.join(parts)


def main(argv=None) -> None:
    args = parse_args(argv)
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    kind = cfg.model.get('type')
    if kind not in ('TokenizerModel', 'GeneratorModel'):
        sys.exit(f'{args.config} configures a {kind!r}; publish_model.py takes a TokenizerModel or a '
                 'GeneratorModel config.')
    if not osp.isfile(args.checkpoint):
        sys.exit(f'No checkpoint at {args.checkpoint}: pass the iter_N.pth file training wrote.')
    init = init_tokenizer if kind == 'TokenizerModel' else init_generator
    model = init(args.config, args.checkpoint, cfg_options=args.cfg_options,
                 trust_checkpoints=args.trust_checkpoint)
    with trust_files(args.trust_checkpoint):
        meta = load_torch_file(args.checkpoint, mmap=True).get('meta', {}) or {}
    metrics = {}
    if args.metrics:
        with open(args.metrics) as f:
            found = json.load(f)
        if args.metrics_keys:
            missing = [k for k in args.metrics_keys if k not in found]
            if missing:
                sys.exit(f'{args.metrics} has no section {missing}; it has {sorted(found)}.')
            found = {k: found[k] for k in args.metrics_keys}
        metrics = flat_numbers(found)
    card = dict(title=args.title, data=args.data or describe_data(cfg), metrics=metrics,
                steps=meta.get('iter', 'not recorded'), reproduce=args.reproduce, notes=args.notes,
                source=f'{osp.basename(args.checkpoint)} (sha256 {sha256_of_file(args.checkpoint)})')
    try:
        sha = save_pretrained(model, args.out, overwrite=args.overwrite,
                              card={k: v for k, v in card.items() if v is not None})
    except (FileExistsError, ValueError) as err:
        sys.exit(str(err))
    loader = 'init_tokenizer' if kind == 'TokenizerModel' else 'init_generator'
    print(f'{args.checkpoint} -> {args.out} ({kind}, {meta.get("iter", "?")} steps, model.safetensors sha256 '
          f'{sha[:16]}...); load it with mmspectral.apis.{loader}({args.out!r})')
    if args.push_to_hub:
        url = push_to_hub(args.out, args.push_to_hub, private=args.private, revision=args.revision)
        print(f'uploaded to {url}; load it with mmspectral.apis.{loader}({args.push_to_hub!r})')


def push_to_hub(folder: str, repo_id: str, private: bool = False, revision=None) -> str:
    """Upload a model folder to a Hugging Face Hub model repository (created if missing)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    api = HfApi(library_name='mmspectral')
    try:
        url = api.create_repo(repo_id, repo_type='model', private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type='model', revision=revision,
                          commit_message=f'mmspectral model folder {osp.basename(osp.abspath(folder))}')
    except (HfHubHTTPError, OSError) as exc:
        sys.exit(f'--push-to-hub {repo_id}: the upload failed ({type(exc).__name__}: {exc}). The folder is '
                 f'written at {folder}; log in (huggingface-cli login) or check the network, then upload it '
                 'again with --push-to-hub or huggingface-cli upload.')
    return str(url)


if __name__ == '__main__':
    main()
