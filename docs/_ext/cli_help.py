"""MkDocs hook: render ``crossrank --help`` and every subcommand's ``--help`` into docs/cli.md.

The page holds the marker ``<!-- crossrank-cli-help -->``; this hook replaces it with the argparse help of
the installed command line, built by ``crossrank.cli.build_parser()``, so the page cannot drift from the
options (a new subcommand appears on its own). A missing marker is a warning (an error under --strict).
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

MARKER = "<!-- crossrank-cli-help -->"
log = logging.getLogger("mkdocs.hooks.cli_help")


def _help_sections() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it for a stable page
    from crossrank.cli import build_parser

    parser = build_parser()
    parts = ["## `crossrank`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"## `crossrank {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker on the CLI page with the generated help.

    Parameters
    ----------
    markdown
        The page's Markdown source.
    page
        The page being built.
    **kwargs
        Further hook arguments (config, files; unused).
    """
    if page.file.src_uri != "cli.md":
        return markdown
    if MARKER not in markdown:
        log.warning("cli.md has no %s marker: the command-line help was not rendered", MARKER)
        return markdown
    return markdown.replace(MARKER, _help_sections())
