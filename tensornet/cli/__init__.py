"""The ``tensornet`` command.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``
and ``run(args) -> int``. User mistakes (unreadable file, missing column,
bad option) raise :class:`CLIError` and end as one line on stderr with exit
code 2; the library itself never prints.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._io import echo

__all__ = ["main", "CLIError"]

#: subcommand name -> module (relative to this package), in the order shown by --help
SUBCOMMANDS = {
    "demo": "._demo",
    "topics": "._topics",
    "forecast": "._forecast",
    "compress": "._compress",
    "bench": "._bench",
    "info": "._info",
}

EXIT_USAGE = 2


class CLIError(Exception):
    """A user mistake: reported as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensornet",
        description="Tensor methods for machine learning: tensorized layers, spectral topic "
                    "models, TT-LSTM forecasting, Bregman rank pruning.",
        epilog="Run 'tensornet COMMAND --help' for the options and examples of a command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(module, __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                continue  # subcommand not available in this build
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        echo(f"tensornet {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # pragma: no cover - e.g. `tensornet bench --list | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        echo("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
