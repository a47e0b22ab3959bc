"""partner-match's own registry CSV, and the record an organisation registering itself makes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from matcher import vocab
from matcher.importers.common import (
    ImportFailed,
    OrgRecord,
    Parsed,
    Problem,
    checked_rows,
    clean,
    parse_pic,
)

REGISTRY_COLUMNS = (
    "name",
    "short_name",
    "organisation_type",
    "sector",
    "country",
    "city",
    "region",
    "website",
    "pic",
    "oid",
    "description",
)


def registry_record(values: dict[str, Any], line: int = 0, seen_at: dt.date | None = None) -> OrgRecord:
    """An organisation registering itself (form, API or registry CSV); ValueError names the bad field."""
    name = clean(values.get("name"))
    if not name:
        raise ValueError("name: an organisation needs a name")
    description = clean(values.get("description"))
    label = clean(values.get("organisation_type"))
    sector = clean(values.get("sector"))
    if sector:
        try:
            vocab.check_sector(sector)
        except vocab.UnknownCode as exc:
            raise ValueError(f"sector: {exc}") from exc
    elif label:
        sector = vocab.erasmus_type_sector(label)
    try:
        country = vocab.normalise_country(values.get("country"))
    except vocab.UnknownCode as exc:
        raise ValueError(f"country: {exc}") from exc
    return OrgRecord(
        line,
        "registry",
        pic=parse_pic(values.get("pic")),
        oid=clean(values.get("oid")),
        name=name,
        short_name=clean(values.get("short_name")),
        country=country,
        city=clean(values.get("city")),
        region=clean(values.get("region")),
        website=clean(values.get("website")),
        org_type=label,
        sector=sector,
        description=description,
        seen_at=seen_at or dt.date.today(),
    )


def parse_registry(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("registry")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    for line, row in checked_rows(raw, path.name, ",", ("name", "country", "description"), out, progress):
        try:
            out.orgs.append(registry_record(row, line, seen_at=dt.date(2000, 1, 1)))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
    return out
