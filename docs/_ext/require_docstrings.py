"""Griffe extension: a rendered public object without a docstring is a warning (an error under --strict).

mkdocstrings silently renders an undocumented object as a bare signature. This extension reads every
``::: identifier`` directive under ``docs/`` and, once the package is loaded, walks each identifier's
public members (modules, classes, functions and methods; ``__init__`` is covered by its class) and logs a
warning through griffe's logger for each one that has no docstring, or that takes arguments but has no
``Parameters`` section (the project's NumPy docstring rule). ``mkdocs build --strict`` turns them into a
failed build, so a new public API cannot ship undocumented. It also renders the docstrings' Sphinx roles
(``:meth:`build```) as inline code, since Markdown would show them literally.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)", re.MULTILINE)
# Sphinx cross-reference roles (:meth:`build`, :class:`~crossrank.types.Scores`), which Markdown would
# show literally: rendered as inline code of the name (the ``~`` form keeps the last component).
_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|mod|attr|exc|data|obj|const|ref|term):`(~?)([^`]+)`")
_DOCS = Path(__file__).resolve().parent.parent
logger = griffe.get_logger("crossrank.docs")


def rendered_identifiers(docs: Path = _DOCS) -> list[str]:
    """Return every identifier named by a ``::: identifier`` directive in the Markdown under ``docs``."""
    found: set[str] = set()
    for page in docs.rglob("*.md"):
        found.update(_DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return sorted(found)


def _takes_arguments(func: griffe.Function) -> bool:
    names = [p.name for p in func.parameters if p.name not in ("self", "cls")]
    return bool(names)


def _has_parameters_section(obj: griffe.Object) -> bool:
    if obj.docstring is None:
        return False
    sections = obj.docstring.parse("numpy")
    return any(s.kind is griffe.DocstringSectionKind.parameters for s in sections)


def problems(obj: griffe.Object) -> list[str]:
    """Return the missing-documentation findings for ``obj`` and its public members, recursively."""
    found: list[str] = []
    if obj.docstring is None or not obj.docstring.value.strip():
        found.append(f"{obj.path}: public {obj.kind.value} has no docstring")
    elif isinstance(obj, griffe.Function) and _takes_arguments(obj) and not _has_parameters_section(obj):
        found.append(
            f"{obj.path}: public function takes arguments but its docstring has no Parameters section"
        )
    if isinstance(obj, (griffe.Module, griffe.Class)):
        for name, member in obj.members.items():
            if member.is_alias or name.startswith("_") or not member.is_public:
                continue
            if isinstance(member, (griffe.Module, griffe.Class, griffe.Function)):
                found.extend(problems(member))
    return found


def _role_as_code(match: re.Match[str]) -> str:
    target = match.group(2).strip()
    if "<" in target and target.endswith(">"):  # :ref:`text <target>`
        target = target.split("<", 1)[0].strip()
    elif match.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def rewrite_roles(obj: griffe.Object) -> None:
    """Rewrite the Sphinx roles of ``obj``'s docstring and its members' as inline code, recursively."""
    if obj.docstring is not None:
        obj.docstring.value = _ROLE.sub(_role_as_code, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            rewrite_roles(member)  # type: ignore[arg-type]


class RequireDocstrings(griffe.Extension):
    """Warn about each rendered public object without a docstring (see the module docstring).

    Parameters
    ----------
    package
        The top-level package the directives must belong to (others are left to their own docs).
    """

    def __init__(self, package: str = "crossrank") -> None:
        super().__init__()
        self.package = package

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Check every rendered identifier of ``pkg`` once the whole package is loaded.

        Parameters
        ----------
        pkg
            The package griffe has just loaded.
        loader
            The loader (unused; part of the hook's signature).
        **kwargs
            Further hook arguments (unused).
        """
        if pkg.name != self.package:
            return
        rewrite_roles(pkg)
        for ident in rendered_identifiers():
            if ident != self.package and not ident.startswith(self.package + "."):
                continue
            try:
                found = pkg[ident.split(".", 1)[1]] if "." in ident else pkg
                obj = found.final_target if isinstance(found, griffe.Alias) else found
            except (KeyError, griffe.AliasResolutionError):
                logger.warning("%s: named by a ::: directive but not found in the package", ident)
                continue
            for line in problems(obj):
                logger.warning(line)
