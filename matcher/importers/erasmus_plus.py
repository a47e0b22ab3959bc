"""The Erasmus+ Project Results Platform export: one row per project, coordinator then partners N."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from matcher import vocab
from matcher.importers.common import (
    ImportFailed,
    OrgRecord,
    Parsed,
    PartRecord,
    Problem,
    ProjectRecord,
    city_from_address,
    clean,
    csv_records,
    need_columns,
    open_text,
    parse_float,
    parse_year,
    xlsx_rows,
)

EP_GRANT_PREFIX = "EU Grant award in euros"


def _ep_org(prefix_cols: dict[str, str], row: dict[str, Any], line: int, year: int | None) -> OrgRecord | None:
    name = clean(row.get(prefix_cols["name"]))
    country_raw = clean(row.get(prefix_cols["country"]))
    if name is None and country_raw is None:
        return None
    label = clean(row.get(prefix_cols["type"]))
    address = clean(row.get(prefix_cols["address"]))
    return OrgRecord(
        line,
        "erasmus-plus",
        name=name,
        country=vocab.normalise_country(country_raw),
        region=clean(row.get(prefix_cols["region"])),
        address=address,
        city=city_from_address(address),
        website=clean(row.get(prefix_cols["website"])),
        org_type=label,
        sector=vocab.erasmus_type_sector(label) if label else None,
        seen_at=dt.date(year, 1, 1) if year else None,
    )


def _ep_rows(path: Path, progress: bool) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    if path.suffix.lower() == ".xlsx":
        for line, row in xlsx_rows(path, "Project Identifier", progress):
            yield line, row, None
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    yield from csv_records(open_text(raw, path.name), ",", path.name, progress)


COORDINATOR = {
    "name": "Coordinating organisation name",
    "type": "Coordinating organisation type",
    "address": "Coordinator's address",
    "region": "Coordinator's region",
    "country": "Coordinator's country",
    "website": "Coordinator's website",
}


def _slots(row: dict[str, Any]) -> list[tuple[dict[str, str], str]]:
    """The coordinator's columns, then each ``Partner N`` group the header has."""
    numbers = sorted(int(m.group(1)) for k in row if (m := re.fullmatch(r"Partner (\d+) name", k or "")))
    return [(COORDINATOR, "coordinator")] + [
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


def _members(
    row: dict[str, Any], line: int, year: int | None, slots: list[tuple[dict[str, str], str]], problems: list[str]
) -> list[tuple[OrgRecord, str]]:
    """The project's organisations. A coordinator that cannot be read drops the project (ValueError);
    a partner that cannot be read is left out, with a problem, and the project kept."""
    members = []
    for cols, role in slots:
        try:
            org = _ep_org(cols, row, line, year)
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


def _project(line: int, ident: str, row: dict[str, Any], year: int | None) -> ProjectRecord:
    topics = [t.strip() for t in re.split(r"[;\n]", clean(row.get("Topics")) or "") if t.strip()]
    summary = clean(row.get("Project Summary"))
    if summary and summary.lower().startswith("short summary in english:"):
        summary = summary.split(":", 1)[1].strip()
    return ProjectRecord(
        line,
        ident,
        {
            "programme": clean(row.get("Programme")) or "Erasmus+",
            "action": clean(row.get("Action Type")) or clean(row.get("Key Action")),
            "call_year": year,
            "start_date": None,
            "end_date": None,
            "acronym": None,
            "title": clean(row.get("Project Title")),
            "summary": summary,
            "topics": topics,
            "source": "erasmus-plus",
        },
    )


def parse_erasmus_plus(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("erasmus-plus")
    slots: list[tuple[dict[str, str], str]] | None = None
    for line, row, problem in _ep_rows(path, progress):
        out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", path.name))
            continue
        if slots is None:
            need_columns(row, ("Project Identifier", "Project Title", "Call year", COORDINATOR["name"]), path.name)
            slots = _slots(row)
        ident = clean(row.get("Project Identifier"))
        try:
            if ident is None:
                raise ValueError("row without a Project Identifier")
            year = parse_year(row.get("Call year"))
            grant_col = next((k for k in row if k and k.startswith(EP_GRANT_PREFIX)), None)
            grant = parse_float(row.get(grant_col)) if grant_col else None
            partner_problems: list[str] = []
            members = _members(row, line, year, slots, partner_problems)
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
            continue
        out.problems += [Problem(line, p, path.name) for p in partner_problems]
        out.projects.append(_project(line, ident, row, year))
        for org, role in members:
            out.orgs.append(org)
            out.parts.append(PartRecord(line, ident, org, role, grant if role == "coordinator" else None))
    return out
