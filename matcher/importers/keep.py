"""keep.eu (Interact) exports of Interreg projects: the workbook, or its partners sheet alone as CSV.

A project is its programme plus its acronym. The ``Projects (lead partners)`` sheet gives titles,
dates, themes and descriptions (English and up to two national languages, each kept with the
language ``py3langid`` reads in it); the ``Partners`` sheet gives the consortium, the lead partner
as coordinator. Organisations have no ids: the merge recognises them by name and country.
keep.eu gives only a legal status (public/private): the sector is read from the name where a
keyword says it, else a public organisation is a public body and a private one "other".
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from matcher import vocab
from matcher.importers.common import (
    SPREADSHEETS,
    ImportFailed,
    OrgRecord,
    Parsed,
    PartRecord,
    Problem,
    ProjectRecord,
    checked,
    clean,
    csv_records,
    open_text,
    open_workbook,
    parse_date,
    xlsx_rows,
)

KEEP_PROJECTS = "Projects (lead partners)"
KEEP_PARTNERS = "Partners"
PARTNER_COLUMNS = ("Programme", "Acronym", "Project Partner", "Lead Partner", "Country")
DESCRIPTIONS = ("Description EN", "Description 1", "Description 2")


def identifier(programme: str, acronym: str) -> str:
    """A stable project identifier from programme + acronym (both can be long; the column holds 100)."""
    digest = hashlib.sha1(f"{programme}|{acronym}".encode()).hexdigest()[:10]
    return f"keep:{acronym[:60]}:{digest}"


def _language(text: str) -> str | None:
    import py3langid

    language, _ = py3langid.classify(text)
    return str(language) if language else None


def _descriptions(row: dict[str, Any]) -> list[dict[str, str | None]]:
    out: list[dict[str, str | None]] = []
    for column in DESCRIPTIONS:
        text = clean(row.get(column))
        if text and all(d["text"] != text for d in out):
            out.append({"language": "en" if column.endswith("EN") else _language(text), "text": text})
    return out


def _project(line: int, row: dict[str, Any]) -> ProjectRecord:
    programme, acronym = clean(row.get("Programme")), clean(row.get("Acronym"))
    if not programme or not acronym:
        raise ValueError("a project needs its Programme and Acronym")
    start, end = parse_date(row.get("Project start")), parse_date(row.get("Project end"))
    descriptions = _descriptions(row)
    english = next((d["text"] for d in descriptions if d["language"] == "en"), None)
    title = clean(row.get("Project Name")) or clean(row.get("Project Name language 2"))
    return ProjectRecord(
        line,
        identifier(programme, acronym),
        {
            "programme": programme,
            "action": clean(row.get("Specific Obj")),
            "acronym": acronym,
            "title": title or clean(row.get("Project Name language 3")),
            "call_year": start.year if start else None,
            "start_date": start,
            "end_date": end,
            "summary": english or (descriptions[0]["text"] if descriptions else None),
            "descriptions": descriptions,
            "source": "keep",
            "topics": [t for t in (clean(row.get(f"Thematic{i}")) for i in (1, 2, 3)) if t],
        },
    )


def _country(row: dict[str, Any]) -> str | None:
    try:
        return vocab.normalise_country(row.get("Country"))
    except vocab.UnknownCode:
        code = (clean(row.get("Country code")) or "")[:2]  # "EL Greece / ΕΛΛΑΔΑ"
        if not code:
            raise
        return vocab.normalise_country(code)


def _partner(line: int, row: dict[str, Any], starts: dict[str, dt.date | None], leads: set[str]) -> PartRecord:
    programme, acronym = clean(row.get("Programme")), clean(row.get("Acronym"))
    name = clean(row.get("Project Partner"))
    if not programme or not acronym:
        raise ValueError("a partner row needs its project's Programme and Acronym")
    if not name:
        raise ValueError("Project Partner is empty: an organisation needs a name")
    ident = identifier(programme, acronym)
    status = (clean(row.get("Legal Status")) or "").lower()
    street, postcode = clean(row.get("Street")), clean(row.get("Postal code"))
    if isinstance(row.get("Postal code"), float):
        postcode = str(int(row["Postal code"]))
    org = OrgRecord(
        line,
        "keep",
        name=name,
        country=_country(row),
        city=clean(row.get("Town")),
        address=", ".join(p for p in (street, postcode) if p) or None,
        website=clean(row.get("Website")),
        org_type=f"{status.capitalize()} organisation (keep.eu legal status)"
        if status in ("public", "private")
        else None,
        sector=vocab.sector_from_name(name, "public_body" if status == "public" else "other"),
        seen_at=starts.get(ident),
    )
    lead = (clean(row.get("Lead Partner")) or "").lower() == "yes" and ident not in leads
    if lead:  # a few projects name two lead partners: the first coordinates, the others are partners
        leads.add(ident)
    return PartRecord(line, ident, org, "coordinator" if lead else "partner")


def _sheet(
    path: Path, sheet: str, marker: str, progress: bool
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    for line, row in xlsx_rows(path, marker, progress, sheet=sheet):
        yield line, row, None


def parse_keep(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("keep", report_repeats=True)
    starts: dict[str, dt.date | None] = {}
    if path.suffix.lower() in SPREADSHEETS:
        sheets = open_workbook(path).sheet_names
        if KEEP_PARTNERS not in sheets:
            raise ImportFailed(f"{path.name}: a keep.eu workbook needs a {KEEP_PARTNERS!r} sheet")
        if KEEP_PROJECTS in sheets:
            for line, row, _ in _sheet(path, KEEP_PROJECTS, "Acronym", progress):
                out.rows_read += 1
                try:
                    project = _project(line, row or {})
                except ValueError as exc:
                    out.problems.append(Problem(line, str(exc), f"{path.name}:{KEEP_PROJECTS}"))
                    continue
                out.projects.append(project)
                starts.setdefault(project.identifier, project.values["start_date"])
        partners = _sheet(path, KEEP_PARTNERS, "Project Partner", progress)
        where = f"{path.name}:{KEEP_PARTNERS}"
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ImportFailed(f"{path} cannot be read: {exc}") from exc
        partners, where = csv_records(open_text(raw, path.name), ",", path.name, progress), path.name
    _read_partners(out, partners, where, starts)
    return out


def _read_partners(
    out: Parsed,
    rows: Iterator[tuple[int, dict[str, Any] | None, str | None]],
    where: str,
    starts: dict[str, dt.date | None],
) -> None:
    """Partner rows into organisations and participations; projects met only here get a minimal record."""
    known = {p.identifier for p in out.projects}
    leads: set[str] = set()
    for line, row in checked(rows, where, PARTNER_COLUMNS, out):
        try:
            part = _partner(line, row, starts, leads)
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), where))
            continue
        if part.project not in known:
            known.add(part.project)
            out.projects.append(
                ProjectRecord(
                    line,
                    part.project,
                    {"programme": clean(row.get("Programme")), "acronym": clean(row.get("Acronym")), "source": "keep"},
                )
            )
        out.orgs.append(part.org)
        out.parts.append(part)
