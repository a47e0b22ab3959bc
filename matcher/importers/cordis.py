"""The CORDIS open-data layout: ``project.csv``, ``organization.csv`` and ``topics.csv``, folder or zip."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

from matcher import vocab
from matcher.importers.common import (
    ImportFailed,
    OrgRecord,
    Parsed,
    PartRecord,
    Problem,
    ProjectRecord,
    checked_rows,
    clean,
    parse_date,
    parse_float,
    parse_pic,
)

# associated partners and third parties take part without a grant of their own
UNFUNDED_ROLES = frozenset({"partner", "associatedpartner", "thirdparty"})
CORDIS_ROLES = {
    "coordinator": "coordinator",
    "participant": "partner",
    "partner": "partner",
    "beneficiary": "partner",
    "thirdparty": "other",
    "associatedpartner": "partner",
}


def _cordis_files(path: Path) -> dict[str, tuple[str, bytes]]:
    """Basename -> (display name, bytes) for project.csv, organization.csv and topics.csv."""
    wanted = ("project.csv", "organization.csv", "topics.csv")
    found: dict[str, tuple[str, bytes]] = {}
    if path.is_dir():
        for name in wanted:
            if (path / name).is_file():
                found[name] = (str(path / name), (path / name).read_bytes())
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    base = info.filename.rsplit("/", 1)[-1].lower()
                    if base in wanted and base not in found:
                        found[base] = (f"{path.name}/{info.filename}", archive.read(info))
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportFailed(f"{path} cannot be read as a zip archive: {exc}") from exc
    for name in ("project.csv", "organization.csv"):
        if name not in found:
            raise ImportFailed(f"{path}: no {name} (the CORDIS layout needs project.csv and organization.csv)")
    return found


def _topic_titles(files: dict[str, tuple[str, bytes]], out: Parsed, progress: bool) -> dict[str, list[str]]:
    titles: dict[str, list[str]] = {}
    if "topics.csv" in files:
        name, raw = files["topics.csv"]
        for _, row in checked_rows(raw, name, ";", ("projectID", "topic", "title"), out, progress, count=False):
            title = clean(row.get("title")) or clean(row.get("topic"))
            if title:
                titles.setdefault(row["projectID"].strip(), []).append(title)
    return titles


def _project(line: int, row: dict[str, str], topic_titles: dict[str, list[str]]) -> ProjectRecord:
    ident = clean(row.get("id")) or (f"rcn:{clean(row.get('rcn'))}" if clean(row.get("rcn")) else None)
    if ident is None:
        raise ValueError("project without id or rcn")
    start, end = parse_date(row.get("startDate")), parse_date(row.get("endDate"))
    topics = topic_titles.get(ident) or [t for t in (clean(row.get("topics")) or "").split(";") if t]
    return ProjectRecord(
        line,
        ident,
        {
            "programme": clean(row.get("frameworkProgramme")),
            "action": clean(row.get("fundingScheme")),
            "call_year": start.year if start else None,
            "start_date": start,
            "end_date": end,
            "acronym": clean(row.get("acronym")),
            "title": clean(row.get("title")),
            "summary": clean(row.get("objective")),
            "topics": topics,
            "source": "cordis",
        },
    )


def _participation(line: int, row: dict[str, str], start_dates: dict[str, dt.date | None]) -> PartRecord:
    pic = parse_pic(row.get("organisationID"))
    country = vocab.normalise_country(row.get("country"))
    org_type, sector = vocab.cordis_activity(clean(row.get("activityType")), clean(row.get("name")))
    ec = parse_float(row.get("ecContribution"))
    org_name = clean(row.get("name"))
    if pic is None and org_name is None:
        raise ValueError("organisation has neither a name nor an identifier (PIC)")
    role_raw = (clean(row.get("role")) or "").replace(" ", "").lower()
    if role_raw not in CORDIS_ROLES:
        raise ValueError(f"unknown role {row.get('role')!r}")
    project = clean(row.get("projectID")) or ""
    if not project:
        raise ValueError("participation without projectID")
    org = OrgRecord(
        line,
        "cordis",
        pic=pic,
        name=org_name,
        short_name=clean(row.get("shortName")),
        country=country,
        city=clean(row.get("city")),
        address=clean(row.get("street")),
        website=clean(row.get("organizationURL")),
        org_type=org_type,
        sector=sector if org_type else None,
        seen_at=start_dates.get(project),
    )
    funded = role_raw not in UNFUNDED_ROLES
    return PartRecord(line, project, org, CORDIS_ROLES[role_raw], ec, funded)


def parse_cordis(path: Path, progress: bool = True) -> Parsed:
    files = _cordis_files(path)
    out = Parsed("cordis")
    topic_titles = _topic_titles(files, out, progress)
    name, raw = files["project.csv"]
    start_dates: dict[str, dt.date | None] = {}
    for line, row in checked_rows(raw, name, ";", ("id", "title", "startDate", "objective"), out, progress):
        try:
            project = _project(line, row, topic_titles)
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), name))
            continue
        out.projects.append(project)
        start_dates[project.identifier] = project.values["start_date"]
    name, raw = files["organization.csv"]
    required = ("projectID", "organisationID", "name", "activityType", "country", "role")
    for line, row in checked_rows(raw, name, ";", required, out, progress):
        try:
            part = _participation(line, row, start_dates)
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), name))
            continue
        out.orgs.append(part.org)
        out.parts.append(part)
    return out
