"""Importers for the official data formats: Erasmus+ export, CORDIS, ECHE holders, registry CSV.

One module per format parses a file whole into records (``common``); ``merge`` writes them as
idempotent upserts. This module picks the format and runs one import in the caller's unit of
work, so a file that cannot be read changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from matcher.db import ImportRun, Organisation, lock_registry, utcnow
from matcher.importers.common import (
    SPREADSHEETS,
    ImportFailed,
    ImportSummary,
    Parsed,
    Problem,
    checksum_of,
    clean,
    name_key,
    open_workbook,
    sheet_cells,
)
from matcher.importers.cordis import parse_cordis
from matcher.importers.eche import parse_eche
from matcher.importers.erasmus_plus import parse_creative_europe, parse_erasmus_plus
from matcher.importers.keep import KEEP_PARTNERS, KEEP_PROJECTS, parse_keep
from matcher.importers.merge import DUPLICATE_THRESHOLD, flag_duplicates, write_parsed
from matcher.importers.registry_csv import parse_registry, registry_record

__all__ = [
    "DUPLICATE_THRESHOLD",
    "FORMATS",
    "ImportFailed",
    "ImportSummary",
    "Problem",
    "detect_format",
    "import_path",
    "register_organisation",
]

FORMATS = ("erasmus-plus", "creative-europe", "keep", "cordis", "eche", "registry")
PARSERS: dict[str, Callable[[Path, bool], Parsed]] = {
    "erasmus-plus": parse_erasmus_plus,
    "creative-europe": parse_creative_europe,
    "keep": parse_keep,
    "cordis": parse_cordis,
    "eche": parse_eche,
    "registry": parse_registry,
}


def detect_format(path: Path) -> str:
    """The format of ``path`` from its layout and header; ImportFailed names why none fits."""
    if not path.exists():
        raise ImportFailed(f"{path} does not exist")
    if path.is_dir():
        if (path / "project.csv").is_file() and (path / "organization.csv").is_file():
            return "cordis"
        raise ImportFailed(f"{path} is a directory without project.csv and organization.csv")
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return "cordis"
    if suffix in SPREADSHEETS:
        sheets = open_workbook(path).sheet_names
        if KEEP_PROJECTS in sheets or KEEP_PARTNERS in sheets:
            return "keep"
        cells = {clean(c) for row in sheet_cells(path)[:10] for c in row}
    else:
        try:
            with path.open("rb") as fh:
                head = fh.read(8192).decode("utf-8-sig", errors="replace")
        except OSError as exc:
            raise ImportFailed(f"{path} cannot be read: {exc}") from exc
        cells = {clean(c) for c in (head.splitlines() or [""])[0].replace(";", ",").split(",")}
    return _format_of_header(path, cells)


def _format_of_header(path: Path, cells: set[str | None]) -> str:
    """Which layout a header row (its cell values) belongs to."""
    if "Erasmus Code" in cells:
        return "eche"
    if "Project Identifier" in cells:
        return "creative-europe" if "Programme Funding" in cells else "erasmus-plus"
    if {"Project Partner", "Acronym", "Programme"} <= cells:
        return "keep"
    if {"name", "description"} <= cells:
        return "registry"
    raise ImportFailed(f"{path.name}: cannot tell the format from its header; pass --format ({', '.join(FORMATS)})")


def source_files(path: Path) -> list[Path]:
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file()]
    return [path]


def import_path(session: Session, path: Path, fmt: str | None = None, progress: bool = True) -> ImportSummary:
    """Parse ``path`` whole, then upsert it in the caller's unit of work and record the run."""
    if fmt is not None and fmt not in PARSERS:
        raise ImportFailed(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise ImportFailed(f"{path} does not exist")
    fmt = fmt or detect_format(path)
    try:
        checksum = checksum_of(source_files(path))
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    parsed = PARSERS[fmt](path, progress)
    summary = ImportSummary(source=str(path), format=fmt, rows_read=parsed.rows_read)
    try:
        lock_registry(session)  # a second import waits here for the first, then sees what it wrote
    except OperationalError as exc:
        raise ImportFailed(
            "another import or registration is writing the registry and did not finish in time; "
            "run this import again when it has"
        ) from exc
    counts, touched = write_parsed(session, parsed, progress)
    summary.counts = counts
    summary.duplicates_flagged = flag_duplicates(session, touched)
    summary.problems = parsed.problems
    session.add(
        ImportRun(
            source=str(path),
            format=fmt,
            checksum=checksum,
            finished_at=utcnow(),
            rows_read=parsed.rows_read,
            counts={**counts, "duplicates_flagged": summary.duplicates_flagged},
            problems=[p.as_dict() for p in parsed.problems[:1000]],
        )
    )
    return summary


def register_organisation(
    session: Session, values: dict[str, Any], owner_id: int | None = None, distinct: bool = False
) -> int:
    """Store one new self-registered organisation; ValueError names the bad field.

    It is always a new organisation: the caller has checked the name is free in its country, or the
    registrant said it is a ``distinct`` one (then it is stored apart and flagged as a likely duplicate).
    """
    if not clean(values.get("description")):
        raise ValueError("description: a self-description is required")
    record = registry_record(values)
    org = Organisation(
        name=record.name,
        short_name=record.short_name,
        country=record.country,
        city=record.city,
        region=record.region,
        website=record.website,
        org_type=record.org_type,
        sector=record.sector or "other",
        description=record.description,
        pic=record.pic,
        oid=record.oid,
        sources=["registry"],
        other_names=[],
        seen_at=record.seen_at,
        name_key=None if distinct else name_key(record.name, record.country),
        owner_id=owner_id,
        contact_name=clean(values.get("contact_name")),
        contact_email=clean(values.get("contact_email")),
    )
    session.add(org)
    session.flush()
    flag_duplicates(session, [org.id])
    return int(org.id)
