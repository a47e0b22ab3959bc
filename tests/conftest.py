"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), real data, CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData

from matcher.db import Database, make_engine

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
PG_URL = os.environ.get("PARTNER_MATCH_TEST_DATABASE_URL")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips with a reason where it is absent (fails under CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"real data not found at {path} (a clone without ../shared)"
        if os.environ.get("PARTNER_MATCH_REQUIRE_SHARED"):
            pytest.fail(message + "; PARTNER_MATCH_REQUIRE_SHARED is set")
        pytest.skip(message)
    return path


def _wipe(url: str) -> None:
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    if not PG_URL:
        pytest.skip("PostgreSQL tests need PARTNER_MATCH_TEST_DATABASE_URL (set by .ci/run)")
    _wipe(PG_URL)
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url).upgrade()
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url).upgrade()
    yield database
    database.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for CLI runs against a fresh SQLite file and index folder."""
    env = {
        "PARTNER_MATCH_INSTANCE_DIR": str(tmp_path / "instance"),
        "PARTNER_MATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'cli.sqlite'}",
        "PARTNER_MATCH_INDEX_DIR": str(tmp_path / "instance" / "index"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Database(env["PARTNER_MATCH_DATABASE_URL"]).upgrade().dispose()  # as `partner-match db upgrade` would
    return env


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


DEMO = ROOT / "seed_data" / "demo"


@pytest.fixture
def demo_env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The demo data imported and indexed (hashing encoder, fast) behind the CLI settings."""
    monkeypatch.setenv("PARTNER_MATCH_ENCODER", "hashing")
    import_demo(cli_env["PARTNER_MATCH_DATABASE_URL"], Path(cli_env["PARTNER_MATCH_INDEX_DIR"]))
    return cli_env


def import_demo(db_url: str, index_dir: Path) -> None:
    """The shipped demo data imported into an upgraded database and indexed with the hashing encoder."""
    import seed_data
    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher import importers
    from matcher.indexing import build_index

    db = Database(db_url).upgrade()
    for path in seed_data.demo_files():
        with db.session() as s:
            importers.import_path(s, path, progress=False)
    build_index(db, HashingEncoder(), IndexStore(index_dir), progress=False)
    db.dispose()


@pytest.fixture
def backend_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The demo data imported and indexed in the database ``db_url`` names: SQLite, and PostgreSQL when set."""
    env = {
        "PARTNER_MATCH_INSTANCE_DIR": str(tmp_path / "instance"),
        "PARTNER_MATCH_DATABASE_URL": db_url,
        "PARTNER_MATCH_INDEX_DIR": str(tmp_path / "instance" / "index"),
        "PARTNER_MATCH_ENCODER": "hashing",
    }
    import_demo(db_url, Path(env["PARTNER_MATCH_INDEX_DIR"]))
    return env


@pytest.fixture
def backend_app(backend_env: dict[str, str]) -> Flask:
    """The service over the demo data on each backend."""
    return make_app(backend_env, RATELIMIT_ENABLED=False)


def make_app(env: dict[str, str], **config: object) -> Flask:
    """The service over the settings ``env`` names, with the hashing encoder: configuration passed, not patched."""
    from embeddings.encoders import HashingEncoder
    from service import create_app
    from service.config import Settings

    return create_app(Settings.from_env(env), HashingEncoder(), {"TESTING": True, "SECRET_KEY": "test", **config})


@pytest.fixture
def app(demo_env: dict[str, str]) -> Flask:
    return make_app(demo_env, RATELIMIT_ENABLED=False)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(app: Flask, email: str = "owner@example.org", admin: bool = False) -> dict[str, str]:
    """Headers with an API token of a new confirmed account (what a tool that writes would send)."""
    pm = app.extensions["partner_match"]
    actor = pm.accounts.sign_up(email, "correct horse battery", True, admin=admin, verified=True)
    return {"Authorization": f"Bearer {pm.accounts.issue_token(actor, 'tests')}"}


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    return bearer(app)
