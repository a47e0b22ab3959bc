"""The Commission's Project Results Platform exports: one row per project, coordinator then partners N.

Two layouts of the same platform: Erasmus+ (``Call year``, ``Programme``/``Key Action``/``Action
Type``, organisation types and regions) and Culture 2007-2013 / Creative Europe (``Programme
Funding``, ``Start date``, no types, coordinator countries as codes, up to 38 partners). Both come
as CSV (UTF-8 with a byte-order mark), XLSX or legacy XLS.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
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
    city_from_address,
    clean,
    country_suffix,
    csv_records,
    open_text,
    parse_date,
    parse_float,
    parse_year,
    xlsx_rows,
)

GRANT_PREFIX = "EU Grant award in euros"


@dataclass(frozen=True)
class Layout:
    """Where one layout keeps what the importer needs."""

    format: str
    coordinator: dict[str, str]
    typed: bool  # organisation types and regions given per organisation
    required: tuple[str, ...]


ERASMUS_PLUS = Layout(
    "erasmus-plus",
    {
        "name": "Coordinating organisation name",
        "type": "Coordinating organisation type",
        "address": "Coordinator's address",
        "region": "Coordinator's region",
        "country": "Coordinator's country",
        "website": "Coordinator's website",
    },
    True,
    ("Project Identifier", "Project Title", "Call year", "Coordinating organisation name"),
)
CREATIVE_EUROPE = Layout(
    "creative-europe",
    {
        "name": "Coordinator's name",
        "type": "",
        "address": "Coordinator's address",
        "region": "",
        "country": "Coordinator's country",
        "website": "Coordinator's website",
    },
    False,
    ("Project Identifier", "Project Title", "Programme Funding", "Start date", "Coordinator's name"),
)


def _org(
    cols: dict[str, str], row: dict[str, Any], line: int, layout: Layout, seen: dt.date | None
) -> OrgRecord | None:
    name = clean(row.get(cols["name"]))
    country_raw = clean(row.get(cols["country"]))
    if name is None and country_raw is None:
        return None
    label = clean(row.get(cols["type"])) if layout.typed else None
    address = clean(row.get(cols["address"]))
    sector = vocab.erasmus_type_sector(label) if label else (None if layout.typed else vocab.sector_from_name(name))
    # "Kunstencentrum Vooruit, Belgium" with an empty country column: the name says where
    country = vocab.normalise_country(country_raw) or (country_suffix(name)[1] if name else None)
    return OrgRecord(
        line,
        layout.format,
        name=name,
        country=country,
        region=clean(row.get(cols["region"])) if layout.typed else None,
        address=address,
        city=city_from_address(address),
        website=clean(row.get(cols["website"])),
        org_type=label,
        sector=sector,
        seen_at=seen,
    )


def _rows(path: Path, progress: bool) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    if path.suffix.lower() in SPREADSHEETS:
        for line, row in xlsx_rows(path, "Project Identifier", progress):
            yield line, row, None
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    yield from csv_records(open_text(raw, path.name), ",", path.name, progress)


def _slots(row: dict[str, Any], layout: Layout) -> list[tuple[dict[str, str], str]]:
    """The coordinator's columns, then each ``Partner N`` group the header has."""
    numbers = sorted(int(m.group(1)) for k in row if (m := re.fullmatch(r"Partner (\d+) name", k or "")))
    partner = [
        (
            {
                "name": f"Partner {n} name",
                "type": f"Partner {n} organisation type",
                "address": f"Partner {n} address",
                "region": f"Partner {n} region",
                "country": f"Partner {n} country",
                "website": f"Partner {n} website",
            },
            "partner",
        )
        for n in numbers
    ]
    return [(layout.coordinator, "coordinator"), *partner]


def _members(
    row: dict[str, Any],
    line: int,
    layout: Layout,
    seen: dt.date | None,
    slots: list[tuple[dict[str, str], str]],
    problems: list[str],
) -> list[tuple[OrgRecord, str]]:
    """The project's organisations. A coordinator that cannot be read drops the project (ValueError);
    a partner that cannot be read is left out, with a problem, and the project kept."""
    members = []
    for cols, role in slots:
        try:
            org = _org(cols, row, line, layout, seen)
            if org is not None and org.name is None:
                raise ValueError(f"{cols['name']} is empty: an organisation needs a name")
        except ValueError as exc:
            message = str(exc) if str(exc).startswith(cols["name"]) else f"{cols['country']}: {exc}"
            if role == "coordinator":
                raise ValueError(f"{message}; the project is skipped") from exc
            problems.append(f"{message}; this partner is left out, the project is kept")
            continue
        if org is not None:
            members.append((org, role))
    return members


def _summary(row: dict[str, Any]) -> str | None:
    summary = clean(row.get("Project Summary"))
    if summary and summary.lower().startswith("short summary in english:"):
        summary = summary.split(":", 1)[1].strip()
    return summary


def _project(line: int, ident: str, row: dict[str, Any], layout: Layout) -> ProjectRecord:
    """The project's values; ValueError for a bad year, date or amount."""
    grant_col = next((k for k in row if k and k.startswith(GRANT_PREFIX)), None)
    values: dict[str, Any] = {
        "acronym": None,
        "title": clean(row.get("Project Title")),
        "summary": _summary(row),
        "source": layout.format,
        "grant": parse_float(row.get(grant_col)) if grant_col else None,
    }
    if layout is ERASMUS_PLUS:
        topics = [t.strip() for t in re.split(r"[;\n]", clean(row.get("Topics")) or "") if t.strip()]
        values |= {
            "programme": clean(row.get("Programme")) or "Erasmus+",
            "action": clean(row.get("Action Type")) or clean(row.get("Key Action")),
            "call_year": parse_year(row.get("Call year")),
            "start_date": None,
            "end_date": None,
            "topics": topics,
        }
    else:  # "Culture\Culture (2007-2013)\Festivals": programme, then the action
        parts = [p.strip() for p in (clean(row.get("Programme Funding")) or "").split("\\") if p.strip()]
        programme = parts[1] if len(parts) > 1 else (parts[0] if parts else "Creative Europe")
        start, end = parse_date(row.get("Start date")), parse_date(row.get("End date"))
        values |= {
            "programme": re.sub(r"\s*\((\d{4}-\d{4})\)", r" \1", programme),
            "action": parts[-1] if len(parts) > 2 else None,
            "call_year": start.year if start else None,
            "start_date": start,
            "end_date": end,
            "topics": [],
        }
    return ProjectRecord(line, ident, values)


def parse_results_platform(path: Path, progress: bool = True, layout: Layout = ERASMUS_PLUS) -> Parsed:
    out = Parsed(layout.format, report_repeats=True)
    slots: list[tuple[dict[str, str], str]] | None = None
    for line, row in checked(_rows(path, progress), path.name, layout.required, out):
        if slots is None:
            slots = _slots(row, layout)
        ident = clean(row.get("Project Identifier"))
        try:
            if ident is None:
                raise ValueError("row without a Project Identifier")
            project = _project(line, ident, row, layout)
            start, year = project.values["start_date"], project.values["call_year"]
            seen = start or (dt.date(year, 1, 1) if year else None)
            partner_problems: list[str] = []
            members = _members(row, line, layout, seen, slots, partner_problems)
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
            continue
        out.problems += [Problem(line, p, path.name) for p in partner_problems]
        grant = project.values.pop("grant")
        out.projects.append(project)
        for org, role in members:
            out.orgs.append(org)
            out.parts.append(PartRecord(line, ident, org, role, grant if role == "coordinator" else None))
    return out


def parse_erasmus_plus(path: Path, progress: bool = True) -> Parsed:
    return parse_results_platform(path, progress, ERASMUS_PLUS)


def parse_creative_europe(path: Path, progress: bool = True) -> Parsed:
    return parse_results_platform(path, progress, CREATIVE_EUROPE)
