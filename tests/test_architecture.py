"""The layers point one way and the adapters stay thin: checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def reaches(names: set[str], prefix: str) -> bool:
    return any(n == prefix or n.startswith(prefix + ".") for n in names)


@pytest.mark.parametrize("path", modules("service"), ids=lambda p: p.name)
def test_service_runs_no_query_and_reaches_embeddings_only_in_the_wiring(path: Path) -> None:
    names = imports(path)
    assert not reaches(names, "sqlalchemy"), f"{path.name} talks to the database itself"
    assert not reaches(names, "matcher.registry"), f"{path.name} queries the registry instead of the front door"
    db_names = {n for n in names if n.startswith("matcher.db.")}
    allowed = {"matcher.db.redacted"} | ({"matcher.db.Database"} if path.name == "state.py" else set())
    assert db_names <= allowed, f"{path.name} imports storage models: {sorted(db_names - allowed)}"
    if path.name != "state.py":
        assert not reaches(names, "embeddings"), f"{path.name} reaches embeddings outside the wiring"
    source = path.read_text(encoding="utf-8")
    assert ".session()" not in source and "select(" not in source, f"{path.name} runs a query"


@pytest.mark.parametrize("path", modules("matcher"), ids=lambda p: str(p.relative_to(ROOT)))
def test_matcher_never_imports_the_service_or_flask(path: Path) -> None:
    names = imports(path)
    assert not reaches(names, "flask") and not reaches(names, "service"), path


@pytest.mark.parametrize("path", modules("embeddings"), ids=lambda p: p.name)
def test_embeddings_know_nothing_of_the_matcher(path: Path) -> None:
    names = imports(path)
    assert not reaches(names, "matcher") and not reaches(names, "service") and not reaches(names, "flask"), path


def test_the_checks_see_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from sqlalchemy import select\nfrom matcher.db import Organisation\n")
    names = imports(bad)
    assert reaches(names, "sqlalchemy") and "matcher.db.Organisation" in names
