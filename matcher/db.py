"""Storage: SQLAlchemy 2.0 typed models, engine and unit-of-work sessions, schema migrations."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from anyascii import anyascii
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    text,
    true,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker, validates

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a larger one names nothing (and must not reach the database)


def valid_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


# What no text column can hold: control characters (tab, newline and carriage return are text). A character
# class body in the regex syntax JSON Schema patterns share, so the API's OpenAPI document states the
# same rule. Lone surrogates (no UTF-8 form either) are refused as well, by the service's input guard;
# no JSON Schema regex engine can name them.
NOT_TEXT = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
# White space spelled out, for patterns both Python and ECMA engines read alike (their \\s differ on
# U+0085 and U+FEFF).
SPACE = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"


ROLES = ("coordinator", "partner", "other")
ROLE_STRENGTH = {"coordinator": 3, "partner": 2, "other": 1}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def fold_name(name: str) -> str:
    """A name as people may type it: any script transliterated to Latin, accents, case and punctuation
    dropped (``Łódź`` = ``lodz``, ``Θεσσαλονίκη`` = ``thessaloniki``). What name searches compare."""
    latin = anyascii(name).casefold()
    return " ".join(re.sub(r"[^0-9a-z]+", " ", latin).split())


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, list[dict[str, Any]]: JSON}


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    pic: Mapped[str | None] = mapped_column(String(20), unique=True)
    oid: Mapped[str | None] = mapped_column(String(20), unique=True)
    erasmus_code: Mapped[str | None] = mapped_column(String(40), unique=True)
    name: Mapped[str | None] = mapped_column(String(500))
    short_name: Mapped[str | None] = mapped_column(String(200))
    other_names: Mapped[list[str]] = mapped_column(default=list)
    name_folded: Mapped[str | None] = mapped_column(String(600), index=True)  # fold_name(name), kept by validates
    # normalised name + country: the only key an organisation without PIC/OID has
    name_key: Mapped[str | None] = mapped_column(String(600), index=True)
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    city: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    website: Mapped[str | None] = mapped_column(String(500))
    org_type: Mapped[str | None] = mapped_column(String(300))
    sector: Mapped[str] = mapped_column(String(32), default="other", index=True)
    description: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[str]] = mapped_column(default=list)
    # date of the most recent record that set the name: an older record never renames
    seen_at: Mapped[dt.date | None] = mapped_column(Date)
    # who may edit it (a verified account), what it publishes for contact, and moderation
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"), index=True)
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    participations: Mapped[list[Participation]] = relationship(back_populates="organisation")

    # an organisation without PIC, OID or Erasmus code is one per normalised name and country; one
    # registered as a distinct organisation of the same name has no name key (migration 0006)
    __table_args__ = (
        Index(
            "uq_organisation_name_key_idless",
            "name_key",
            unique=True,
            sqlite_where=text("pic IS NULL AND oid IS NULL AND erasmus_code IS NULL"),
            postgresql_where=text("pic IS NULL AND oid IS NULL AND erasmus_code IS NULL"),
        ),
    )

    @validates("name")
    def _fold(self, _key: str, value: str | None) -> str | None:
        self.name_folded = fold_name(value)[:600] if value else None
        return value

    @property
    def display_name(self) -> str:
        return self.name or self.short_name or (f"PIC {self.pic}" if self.pic else f"organisation {self.id}")


class Account(Base):
    """A person acting for organisations: signs in with e-mail and password, owns what it registered."""

    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    consent_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Claim(Base):
    """An account asking to own an organisation it did not register."""

    __tablename__ = "claim"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, approved, rejected
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class ApiToken(Base):
    """A bearer token for another tool; only its hash is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class AbuseReport(Base):
    __tablename__ = "abuse_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEntry(Base):
    """Who did what to whom, when: every moderation and ownership action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SavedSearch(Base):
    """A search's parameters, kept on the server: its URL carries only the key (any idea fits)."""

    __tablename__ = "saved_search"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    programme: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(300))
    call_year: Mapped[int | None] = mapped_column(Integer, index=True)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    acronym: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(default=list)
    # descriptions in several languages (keep.eu): [{"language": "de", "text": ...}], English first
    descriptions: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    source: Mapped[str | None] = mapped_column(String(50))
    # programme family (erasmus, horizon, culture, interreg, other): what the newcomer rule counts
    family: Mapped[str] = mapped_column(String(30), default="other", server_default="other", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    participations: Mapped[list[Participation]] = relationship(back_populates="project")

    @hybrid_property
    def year(self) -> int | None:
        """A project's year: its start, else its call year (the one definition, in Python and SQL)."""
        return self.start_date.year if self.start_date else self.call_year

    @year.inplace.expression
    @classmethod
    def _year_expression(cls) -> ColumnElement[int | None]:
        return func.coalesce(func.extract("year", cls.start_date), cls.call_year)


class Participation(Base):
    __tablename__ = "participation"
    __table_args__ = (UniqueConstraint("project_id", "organisation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    # received support (a beneficiary), as opposed to an associated partner or a third party
    funded: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    ec_contribution: Mapped[float | None] = mapped_column(Float)

    project: Mapped[Project] = relationship(back_populates="participations")
    organisation: Mapped[Organisation] = relationship(back_populates="participations")


class ImportRun(Base):
    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(30))
    checksum: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(default=list)


class DuplicateCandidate(Base):
    """Two organisations whose names look alike in one country: for a person to review."""

    __tablename__ = "duplicate_candidate"
    __table_args__ = (UniqueConstraint("organisation_a_id", "organisation_b_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_a_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    organisation_b_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class StoredEmbedding(Base):
    """One organisation's profile vector, with what it was made from so stale ones are found."""

    __tablename__ = "embedding"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_version: Mapped[str] = mapped_column(String(20))
    text_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ProjectEmbedding(Base):
    """One project's text vector (title, topics, summary): which past project an idea resembles,
    and the text feature a ranker learns from; stale ones are found by the text's hash."""

    __tablename__ = "project_embedding"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


def redacted(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it
        return "(unparseable database URL)"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created and foreign keys enforced."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


REGISTRY_LOCK = 727_000_001  # the advisory-lock key of "someone is writing the registry"


def lock_registry(session: Session) -> None:
    """Serialise writers of the registry (imports, registrations) for the rest of this unit of work.

    An import reads the registry, then writes what is new: two at once would both write it. The
    second waits here for the first to commit: a PostgreSQL advisory lock, SQLite's write lock
    (taken by a no-op UPDATE; it waits up to the busy timeout, then raises OperationalError).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK})
    else:
        session.execute(text("UPDATE import_run SET id = id WHERE 1 = 0"))


class SchemaBehind(RuntimeError):
    """The database's schema is older than this version of partner-match expects."""


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is there)."""
    from alembic import command

    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database partner-match never set up."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls everything back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class Database:
    """An engine plus a session factory, made once per process for one URL.

    The schema is migrated only by an explicit ``upgrade()`` (``partner-match db upgrade``),
    never as a side effect of opening: an operator decides when a production schema changes.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AbstractContextManager[Session]:
        return unit_of_work(self.sessions)

    def upgrade(self) -> Database:
        upgrade_schema(self.engine)
        return self

    def schema_problem(self) -> str | None:
        """Why this database cannot be used by this version, or None when its schema is current."""
        current, head = schema_revision(self.engine), head_revision()
        if current == head:
            return None
        if current is None:
            return "the database has no partner-match schema yet: run `partner-match db upgrade`"
        return (
            f"the database schema is at revision {current}, this version needs {head}: run `partner-match db upgrade`"
        )

    def check_schema(self) -> Database:
        problem = self.schema_problem()
        if problem:
            raise SchemaBehind(problem)
        return self

    @property
    def safe_url(self) -> str:
        return redacted(self.url)

    def dispose(self, close: bool = True) -> None:
        """Drop the pooled connections; ``close=False`` in a forked child leaves the parent's open."""
        self.engine.dispose(close=close)
