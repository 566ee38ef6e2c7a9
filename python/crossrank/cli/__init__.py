"""The ``crossrank`` command line.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed args; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `crossrank --help` lists them.
_COMMANDS = [
    "info",
    "index",
    "search",
    "eval",
    "export",
    "serve",
    "calibrate",
    "train",
]


def build_parser() -> argparse.ArgumentParser:
    from .._core import __version__

    parser = argparse.ArgumentParser(
        prog="crossrank", description="Fast, exact two-stage retrieval and reranking."
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        # Expected user errors: one clear line, no traceback.
        print(f"crossrank {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
