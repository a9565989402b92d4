"""Print a config after _base_ inheritance and --cfg-options: python tools/misc/print_config.py CONFIG."""
import argparse

from mmengine.config import DictAction

from mmspectral.apis import load_config, register_all_modules


def main():
    parser = argparse.ArgumentParser(description='Print the full config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options)
    print(cfg.pretty_text)


if __name__ == '__main__':
    main()
