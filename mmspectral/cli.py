"""Command-line options the tools share that must be parsed before torch loads (no torch import here)."""
import argparse

__all__ = ['add_trust_arg', 'TRUST_HELP']

TRUST_HELP = ('load this checkpoint with full unpickling (weights_only=False), which runs any code it '
              'carries: only for a file you or your team wrote that needs it (one written by another '
              'codebase or by mmspectral before 0.2); repeat for several files. Every other file loads with '
              'weights_only=True.')


def add_trust_arg(parser: argparse.ArgumentParser) -> None:
    """``--trust-checkpoint PATH`` (repeatable), the tools' one way to opt in to full unpickling."""
    parser.add_argument('--trust-checkpoint', action='append', default=[], metavar='PATH', help=TRUST_HELP)
