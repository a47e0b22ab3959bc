"""Vocabularies, Programme Guide rules and fictitious demo data written by the project.

A package so that a built wheel carries them: code finds them with ``importlib.resources``,
never by a path relative to a source checkout.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path


def resource(name: str) -> Traversable:
    """A file shipped in ``seed_data/`` (e.g. ``vocabularies.json``)."""
    return files(__name__).joinpath(name)


def demo_files() -> list[Path]:
    """The demo data in import order: projects first, then the self-registered organisations."""
    folder = Path(str(files(__name__).joinpath("demo")))
    return [folder / "projects.csv", folder / "organisations.csv"]
