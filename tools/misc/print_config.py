"""Print a config after _base_ inheritance and --cfg-options: python tools/misc/print_config.py CONFIG."""
import argparse

from mmengine.config import DictAction  # no torch: --help answers before the model code loads

from mmspectral.cli import existing_file


def main(argv=None):
    parser = argparse.ArgumentParser(description='Print the full config.')
    parser.add_argument('config', type=existing_file, help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    from mmspectral.apis import load_config, register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options)
    print(cfg.pretty_text)


if __name__ == '__main__':
    main()
