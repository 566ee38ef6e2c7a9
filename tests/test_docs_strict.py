"""The documentation's strict-mode guard (docs/_ext/require_docstrings.py) really finds undocumented API.

``mkdocs build --strict`` in .ci/run fails on the warnings this griffe extension logs; these tests check
that it flags a public function or method without a docstring or without a ``Parameters`` section, skips
private and imported names, reads the ``:::`` directives of the pages, and rewrites Sphinx roles.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

griffe = pytest.importorskip("griffe")

EXT = Path(__file__).resolve().parent.parent / "docs" / "_ext" / "require_docstrings.py"


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("require_docstrings", EXT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _package(tmp_path: Path) -> object:
    pkg = tmp_path / "demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Demo package."""\n')
    (pkg / "api.py").write_text(
        textwrap.dedent(
            '''
            """Module docstring."""
            from os.path import join  # imported: not this module's API


            def documented(x: int) -> int:
                """Return x.

                Parameters
                ----------
                x
                    A number.
                """
                return x


            def bare(x: int) -> int:
                return x


            def no_params_section(x: int) -> int:
                """Return x (but say nothing about x)."""
                return x


            def no_args() -> None:
                """Needs no Parameters section."""


            def _private(x: int) -> int:
                return x


            class Thing:
                """A thing."""

                def __init__(self, y: int) -> None:
                    self.y = y

                def method(self, z: int) -> int:
                    return z
            '''
        )
    )
    return griffe.load("demo", search_paths=[str(tmp_path)], docstring_parser="numpy")


def test_flags_missing_docstrings_and_parameters_sections(tmp_path: Path) -> None:
    ext = _extension()
    found = ext.problems(_package(tmp_path)["api"])
    assert sorted(found) == [
        "demo.api.Thing.method: public function has no docstring",
        "demo.api.bare: public function has no docstring",
        "demo.api.no_params_section: public function takes arguments but its docstring has no Parameters section",
    ]


def test_documented_objects_pass(tmp_path: Path) -> None:
    ext = _extension()
    pkg = _package(tmp_path)
    assert ext.problems(pkg["api.documented"]) == []
    assert ext.problems(pkg["api.no_args"]) == []


def test_reads_directives_of_every_page(tmp_path: Path) -> None:
    ext = _extension()
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\n\n::: crossrank.pipeline\n\ntext ::: not.a.directive\n")
    (tmp_path / "sub" / "b.md").write_text("::: crossrank.types.Scores\n")
    assert ext.rendered_identifiers(tmp_path) == ["crossrank.pipeline", "crossrank.types.Scores"]


def test_sphinx_roles_become_inline_code() -> None:
    ext = _extension()
    text = "Use :meth:`build`, :class:`~crossrank.types.Scores` or :func:`crossrank.fuse`."
    assert ext._ROLE.sub(ext._role_as_code, text) == "Use `build`, `Scores` or `crossrank.fuse`."


def test_every_documented_page_names_existing_api() -> None:
    """Each ``:::`` identifier of docs/ resolves in the package (a typo would fail the strict build)."""
    ext = _extension()
    docs = EXT.parent.parent
    idents = ext.rendered_identifiers(docs)
    assert len(idents) > 20
    pkg = griffe.load("crossrank", search_paths=[str(docs.parent / "python")], docstring_parser="numpy")
    for ident in idents:
        obj = pkg[ident.split(".", 1)[1]] if "." in ident else pkg
        target = obj.final_target if isinstance(obj, griffe.Alias) else obj
        assert ext.problems(target) == [], ident
