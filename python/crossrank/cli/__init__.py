"""The ``crossrank`` command line.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed args; returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from ..errors import CrossrankError

# Subcommand modules, in the order `crossrank --help` lists them.
_COMMANDS = [
    "info",
    "index",
    "search",
    "eval",
    "export",
    "serve",
    "rerank_run",
    "calibrate",
    "train",
]


def build_parser() -> argparse.ArgumentParser:
    from .._core import __version__

    parser = argparse.ArgumentParser(
        prog="crossrank", description="Fast, exact two-stage retrieval and reranking."
    )
    parser.add_argument("--version", action="version", version=f"crossrank {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for cmd in sub.choices.values():  # `crossrank eval ... --debug` works too
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


_DEBUG_HELP = "on failure, print the Python traceback (default: one line on stderr)"

# Failures caused by the input (arguments, files, environment): exit code 2. Anything else is a
# bug or an unexpected state: exit code 1. Both are one line on stderr unless --debug.
_USER_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError, CrossrankError)


def error_line(command: str, exc: BaseException) -> str:
    """The one stderr line of a failed subcommand: ``crossrank CMD: error: MESSAGE``.

    Parameters
    ----------
    command : str
        The subcommand that failed.
    exc : BaseException
        What it raised; a multi-line message is joined into one line.
    """
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, _USER_ERRORS):
        msg = f"{msg} ({type(exc).__name__}; run with --debug for the traceback)"
    return f"crossrank {command}: error: {msg}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every failure: one line, no traceback (unless --debug)
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(error_line(args.command, exc), file=sys.stderr)
        return 2 if isinstance(exc, _USER_ERRORS) else 1


if __name__ == "__main__":
    sys.exit(main())
