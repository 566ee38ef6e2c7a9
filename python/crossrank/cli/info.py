"""`crossrank info`: print build_info() as JSON."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show version, SIMD paths and threads of this build")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._build_info import build_info

    print(json.dumps(build_info(), indent=2))
    return 0
