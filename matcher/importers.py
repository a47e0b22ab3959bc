"""Importers for the official data formats: Erasmus+ export, CORDIS, ECHE holders, registry.

A file is parsed whole before anything is written, so a file that cannot be read changes
nothing; rows with a bad value are reported by line and skipped. Writing is an idempotent
upsert keyed on PIC, OID, Erasmus code and project identifier (organisations without any
of these are keyed on normalised name and country) inside one transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
from rapidfuzz import fuzz, process
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from matcher import vocab
from matcher.db import (
    ROLE_STRENGTH,
    DuplicateCandidate,
    ImportRun,
    Organisation,
    Participation,
    Project,
    utcnow,
)

FORMATS = ("erasmus-plus", "cordis", "eche", "registry")
DUPLICATE_THRESHOLD = 92.0
ORG_FIELDS = (
    "short_name", "country", "city", "region", "address", "website", "org_type", "sector", "description",
)
PROJECT_FIELDS = (
    "programme", "action", "call_year", "start_date", "end_date", "acronym", "title", "summary", "topics",
    "source",
)
EP_GRANT_PREFIX = "EU Grant award in euros"
REGISTRY_COLUMNS = (
    "name", "short_name", "organisation_type", "sector", "country", "city", "region", "website", "pic", "oid",
    "description",
)


class ImportFailed(Exception):
    """The file cannot be read at all; nothing was written."""


@dataclass
class Problem:
    line: int
    reason: str
    file: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}

    def __str__(self) -> str:
        where = f"{self.file}:" if self.file else "line "
        return f"{where}{self.line}: {self.reason}"


@dataclass
class OrgRecord:
    line: int
    source: str
    pic: str | None = None
    oid: str | None = None
    erasmus_code: str | None = None
    name: str | None = None
    short_name: str | None = None
    country: str | None = None
    city: str | None = None
    region: str | None = None
    address: str | None = None
    website: str | None = None
    org_type: str | None = None
    sector: str | None = None
    description: str | None = None
    seen_at: dt.date | None = None


@dataclass
class ProjectRecord:
    line: int
    identifier: str
    values: dict[str, Any]


@dataclass
class PartRecord:
    line: int
    project: str
    org: OrgRecord
    role: str
    ec_contribution: float | None = None


@dataclass
class Parsed:
    format: str
    rows_read: int = 0
    orgs: list[OrgRecord] = field(default_factory=list)
    projects: list[ProjectRecord] = field(default_factory=list)
    parts: list[PartRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ImportSummary:
    source: str
    format: str
    rows_read: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    duplicates_flagged: int = 0

    @property
    def changed(self) -> int:
        return sum(v for k, v in self.counts.items() if k.endswith(("created", "updated")))

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "rows_read": self.rows_read,
            **self.counts,
            "duplicates_flagged": self.duplicates_flagged,
            "problems": [p.as_dict() for p in self.problems],
        }

    def lines(self) -> list[str]:
        c = self.counts
        out = [
            f"{self.source} ({self.format}): {self.rows_read} rows read",
            f"  organisations:  {c.get('organisations_created', 0)} created, "
            f"{c.get('organisations_updated', 0)} updated",
            f"  projects:       {c.get('projects_created', 0)} created, {c.get('projects_updated', 0)} updated",
            f"  participations: {c.get('participations_created', 0)} created, "
            f"{c.get('participations_updated', 0)} updated",
            f"  likely duplicates flagged for review: {self.duplicates_flagged}",
            f"  problems: {len(self.problems)}",
        ]
        out += [f"    {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            out.append(f"    ... and {len(self.problems) - 50} more (stored with the import run)")
        return out


# ---------------------------------------------------------------- value helpers

def clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).replace("\xa0", " ").split())
    return text or None


def normalise_name(name: str) -> str:
    """Case-, accent- and punctuation-blind form of a name, for matching and duplicates."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w]+", " ", ascii_only).split())


def name_key(name: str | None, country: str | None) -> str | None:
    if not name:
        return None
    return f"{normalise_name(name)}|{country or ''}"


def parse_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        pass
    for fmt in ("%d/%m/%Y", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"bad date {text!r}")


def parse_year(value: Any) -> int | None:
    text = clean(value)
    if text is None:
        return None
    if not re.fullmatch(r"(19|20)\d\d", text):
        raise ValueError(f"bad year {text!r}")
    return int(text)


def parse_float(value: Any) -> float | None:
    text = clean(value)
    if text is None:
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError as exc:
        raise ValueError(f"bad amount {text!r}") from exc


def parse_pic(value: Any) -> str | None:
    text = clean(value)
    if text is None:
        return None
    if text.endswith(".0"):
        text = text[:-2]
    if not re.fullmatch(r"\d{6,12}", text):
        raise ValueError(f"bad PIC {text!r}")
    return text


def city_from_address(address: str | None) -> str | None:
    """The export's address is "street, postcode, city": the city is the last part."""
    if not address:
        return None
    parts = [p.strip() for p in address.split(",") if p.strip()]
    return parts[-1] if len(parts) >= 2 else None


def checksum_of(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- readers

def _csv_records(
    text: Iterable[str], delimiter: str, name: str, progress: bool
) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """(start line, row as dict or None, problem) for each record of a CSV with a header."""
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise ImportFailed(f"{name} is empty") from exc
    except csv.Error as exc:
        raise ImportFailed(f"{name} cannot be read as CSV: {exc}") from exc
    header = [h.lstrip("\ufeff").strip() for h in header]
    previous = reader.line_num
    bar = tqdm(desc=f"reading {name}", unit=" rows", disable=not progress, leave=False)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield previous + 1, None, f"unreadable CSV record: {exc}"
            previous = reader.line_num
            continue
        start, previous = previous + 1, reader.line_num
        bar.update()
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield start, None, f"expected {len(header)} columns, found {len(row)}"
            continue
        yield start, dict(zip(header, row, strict=True)), None
    bar.close()


def _open_text(raw: bytes, name: str) -> io.StringIO:
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{name} is not UTF-8 text: {exc}") from exc


def _xlsx_rows(path: Path, header_marker: str, progress: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken file
        raise ImportFailed(f"{path.name} cannot be read as XLSX: {exc}") from exc
    sheet = workbook.worksheets[0]
    header: list[str] | None = None
    bar = tqdm(desc=f"reading {path.name}", unit=" rows", disable=not progress, leave=False)
    for line, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        bar.update()
        if header is None:
            cells = [clean(c) or "" for c in row]
            if header_marker in cells:
                header = cells
            elif line > 10:
                raise ImportFailed(f"{path.name}: no header row with {header_marker!r} in the first 10 rows")
            continue
        if not any(c not in (None, "") for c in row):
            continue
        yield line, dict(zip(header, row, strict=False))
    bar.close()
    workbook.close()
    if header is None:
        raise ImportFailed(f"{path.name}: no header row with {header_marker!r}")


# ---------------------------------------------------------------- format: CORDIS

CORDIS_ROLES = {"coordinator": "coordinator", "participant": "partner", "partner": "partner",
                "beneficiary": "partner", "thirdparty": "other", "associatedpartner": "partner"}


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


def _need_columns(row: dict[str, str], columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise ImportFailed(f"{name}: missing column(s) {', '.join(missing)}")


def parse_cordis(path: Path, progress: bool = True) -> Parsed:
    files = _cordis_files(path)
    out = Parsed("cordis")
    topic_titles: dict[str, list[str]] = {}
    if "topics.csv" in files:
        name, raw = files["topics.csv"]
        for line, row, problem in _csv_records(_open_text(raw, name), ";", name, progress):
            if row is None:
                out.problems.append(Problem(line, problem or "bad row", name))
                continue
            _need_columns(row, ("projectID", "topic", "title"), name)
            title = clean(row.get("title")) or clean(row.get("topic"))
            if title:
                topic_titles.setdefault(row["projectID"].strip(), []).append(title)

    name, raw = files["project.csv"]
    start_dates: dict[str, dt.date | None] = {}
    checked = False
    for line, row, problem in _csv_records(_open_text(raw, name), ";", name, progress):
        out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", name))
            continue
        if not checked:
            _need_columns(row, ("id", "title", "startDate", "objective"), name)
            checked = True
        ident = clean(row.get("id")) or (f"rcn:{clean(row.get('rcn'))}" if clean(row.get("rcn")) else None)
        if ident is None:
            out.problems.append(Problem(line, "project without id or rcn", name))
            continue
        try:
            start, end = parse_date(row.get("startDate")), parse_date(row.get("endDate"))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), name))
            continue
        topics = topic_titles.get(ident) or [t for t in (clean(row.get("topics")) or "").split(";") if t]
        out.projects.append(ProjectRecord(line, ident, {
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
        }))
        start_dates[ident] = start

    name, raw = files["organization.csv"]
    checked = False
    for line, row, problem in _csv_records(_open_text(raw, name), ";", name, progress):
        out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", name))
            continue
        if not checked:
            _need_columns(row, ("projectID", "organisationID", "name", "activityType", "country", "role"), name)
            checked = True
        try:
            pic = parse_pic(row.get("organisationID"))
            country = vocab.normalise_country(row.get("country"))
            org_type, sector = vocab.cordis_activity(clean(row.get("activityType")))
            ec = parse_float(row.get("ecContribution"))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), name))
            continue
        org_name = clean(row.get("name"))
        if pic is None and org_name is None:
            out.problems.append(Problem(line, "organisation has neither a name nor an identifier (PIC)", name))
            continue
        role_raw = (clean(row.get("role")) or "").replace(" ", "").lower()
        if role_raw not in CORDIS_ROLES:
            out.problems.append(Problem(line, f"unknown role {row.get('role')!r}", name))
            continue
        project = clean(row.get("projectID")) or ""
        if not project:
            out.problems.append(Problem(line, "participation without projectID", name))
            continue
        org = OrgRecord(
            line, "cordis", pic=pic, name=org_name, short_name=clean(row.get("shortName")), country=country,
            city=clean(row.get("city")), address=clean(row.get("street")),
            website=clean(row.get("organizationURL")), org_type=org_type,
            sector=sector if org_type else None, seen_at=start_dates.get(project),
        )
        out.orgs.append(org)
        out.parts.append(PartRecord(line, project, org, CORDIS_ROLES[role_raw], ec))
    return out


# ---------------------------------------------------------------- format: Erasmus+ export

def _ep_org(prefix_cols: dict[str, str], row: dict[str, Any], line: int, year: int | None) -> OrgRecord | None:
    name = clean(row.get(prefix_cols["name"]))
    country_raw = clean(row.get(prefix_cols["country"]))
    if name is None and country_raw is None:
        return None
    label = clean(row.get(prefix_cols["type"]))
    address = clean(row.get(prefix_cols["address"]))
    return OrgRecord(
        line, "erasmus-plus", name=name, country=vocab.normalise_country(country_raw),
        region=clean(row.get(prefix_cols["region"])), address=address, city=city_from_address(address),
        website=clean(row.get(prefix_cols["website"])), org_type=label,
        sector=vocab.erasmus_type_sector(label) if label else None,
        seen_at=dt.date(year, 1, 1) if year else None,
    )


def _ep_rows(path: Path, progress: bool) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    if path.suffix.lower() == ".xlsx":
        for line, row in _xlsx_rows(path, "Project Identifier", progress):
            yield line, row, None
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    yield from _csv_records(_open_text(raw, path.name), ",", path.name, progress)


def parse_erasmus_plus(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("erasmus-plus")
    partner_numbers: list[int] | None = None
    coordinator = {"name": "Coordinating organisation name", "type": "Coordinating organisation type",
                   "address": "Coordinator's address", "region": "Coordinator's region",
                   "country": "Coordinator's country", "website": "Coordinator's website"}
    for line, row, problem in _ep_rows(path, progress):
        out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", path.name))
            continue
        if partner_numbers is None:
            _need_columns(row, ("Project Identifier", "Project Title", "Call year", coordinator["name"]), path.name)
            partner_numbers = sorted(
                int(m.group(1)) for k in row if (m := re.fullmatch(r"Partner (\d+) name", k or ""))
            )
        ident = clean(row.get("Project Identifier"))
        if ident is None:
            out.problems.append(Problem(line, "row without a Project Identifier", path.name))
            continue
        try:
            year = parse_year(row.get("Call year"))
            grant_col = next((k for k in row if k and k.startswith(EP_GRANT_PREFIX)), None)
            grant = parse_float(row.get(grant_col)) if grant_col else None
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
            continue
        members: list[tuple[OrgRecord, str]] = []
        bad = False
        slots = [(coordinator, "coordinator")] + [
            ({"name": f"Partner {n} name", "type": f"Partner {n} organisation type",
              "address": f"Partner {n} address", "region": f"Partner {n} region",
              "country": f"Partner {n} country", "website": f"Partner {n} website"}, "partner")
            for n in partner_numbers
        ]
        for cols, role in slots:
            try:
                org = _ep_org(cols, row, line, year)
            except ValueError as exc:
                out.problems.append(Problem(line, f"{cols['country']}: {exc}", path.name))
                bad = True
                break
            if org is None:
                continue
            if org.name is None:
                out.problems.append(Problem(line, f"{cols['name']} is empty: an organisation needs a name",
                                            path.name))
                bad = True
                break
            members.append((org, role))
        if bad:
            continue
        topics = [t.strip() for t in re.split(r"[;\n]", clean(row.get("Topics")) or "") if t.strip()]
        summary = clean(row.get("Project Summary"))
        if summary and summary.lower().startswith("short summary in english:"):
            summary = summary.split(":", 1)[1].strip()
        out.projects.append(ProjectRecord(line, ident, {
            "programme": clean(row.get("Programme")) or "Erasmus+",
            "action": clean(row.get("Action Type")) or clean(row.get("Key Action")),
            "call_year": year, "start_date": None, "end_date": None, "acronym": None,
            "title": clean(row.get("Project Title")), "summary": summary, "topics": topics,
            "source": "erasmus-plus",
        }))
        for org, role in members:
            out.orgs.append(org)
            out.parts.append(PartRecord(line, ident, org, role, grant if role == "coordinator" else None))
    return out


# ---------------------------------------------------------------- format: ECHE holders

def parse_eche(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("eche")
    for line, row in _xlsx_rows(path, "Erasmus Code", progress):
        out.rows_read += 1
        try:
            pic = parse_pic(row.get("Pic"))
            country = vocab.normalise_country(row.get("Country Cd"))
            start = parse_date(row.get("Erasmus Eche Start"))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
            continue
        code, oid, legal = clean(row.get("Erasmus Code")), clean(row.get("OID")), clean(row.get("Legal Name"))
        if not (pic or oid or code or legal):
            out.problems.append(Problem(line, "holder has neither a name nor an identifier", path.name))
            continue
        street, postcode = clean(row.get("Street")), clean(row.get("Post Cd"))
        out.orgs.append(OrgRecord(
            line, "eche", pic=pic, oid=oid, erasmus_code=code, name=legal, country=country,
            city=clean(row.get("City")), address=", ".join(p for p in (street, postcode) if p) or None,
            website=clean(row.get("Website Url")), org_type="Erasmus Charter for Higher Education holder",
            sector="higher_education", seen_at=start,
        ))
    return out


# ---------------------------------------------------------------- format: registry (the project's own)

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
        line, "registry", pic=parse_pic(values.get("pic")), oid=clean(values.get("oid")), name=name,
        short_name=clean(values.get("short_name")), country=country, city=clean(values.get("city")),
        region=clean(values.get("region")), website=clean(values.get("website")), org_type=label,
        sector=sector, description=description, seen_at=seen_at or dt.date.today(),
    )


def parse_registry(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("registry")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    checked = False
    for line, row, problem in _csv_records(_open_text(raw, path.name), ",", path.name, progress):
        out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", path.name))
            continue
        if not checked:
            _need_columns(row, ("name", "country", "description"), path.name)
            checked = True
        try:
            out.orgs.append(registry_record(row, line, seen_at=dt.date(2000, 1, 1)))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
    return out


PARSERS: dict[str, Callable[[Path, bool], Parsed]] = {
    "erasmus-plus": parse_erasmus_plus, "cordis": parse_cordis, "eche": parse_eche, "registry": parse_registry,
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
    if suffix == ".xlsx":
        try:
            workbook = openpyxl.load_workbook(path, read_only=True)
            cells = {clean(c) for row in workbook.worksheets[0].iter_rows(max_row=10, values_only=True)
                     for c in row}
            workbook.close()
        except Exception as exc:
            raise ImportFailed(f"{path.name} cannot be read as XLSX: {exc}") from exc
        if "Erasmus Code" in cells:
            return "eche"
        if "Project Identifier" in cells:
            return "erasmus-plus"
        raise ImportFailed(f"{path.name}: neither an ECHE holders list nor an Erasmus+ export")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise ImportFailed(f"{path} cannot be read: {exc}") from exc
    first = head.splitlines()[0] if head else ""
    if "Project Identifier" in first:
        return "erasmus-plus"
    if "description" in first and "name" in first:
        return "registry"
    raise ImportFailed(f"{path.name}: cannot tell the format; pass --format ({', '.join(FORMATS)})")


# ---------------------------------------------------------------- merging into the database

_ORG_COLUMNS = ("id", "pic", "oid", "erasmus_code", "name", "other_names", "name_key", "seen_at", "sources",
                *ORG_FIELDS)


class _Registry:
    """Every organisation as a plain dict, indexed by each natural key, for one import."""

    def __init__(self, session: Session) -> None:
        self.rows: list[dict[str, Any]] = []
        self.original: dict[int, dict[str, Any]] = {}
        self.by: dict[str, dict[str, dict[str, Any]]] = {"pic": {}, "oid": {}, "erasmus_code": {}, "name_key": {}}
        cols = [getattr(Organisation, c) for c in _ORG_COLUMNS]
        for values in session.execute(select(*cols).order_by(Organisation.id)):
            row = dict(zip(_ORG_COLUMNS, values, strict=True))
            row["other_names"] = list(row["other_names"] or [])
            row["sources"] = list(row["sources"] or [])
            self.original[row["id"]] = {**row, "other_names": list(row["other_names"]),
                                        "sources": list(row["sources"])}
            self._add(row)

    def _add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._index(row)

    def _index(self, row: dict[str, Any]) -> None:
        for key in ("pic", "oid", "erasmus_code", "name_key"):
            if row.get(key):
                self.by[key].setdefault(row[key], row)

    def find(self, rec: OrgRecord) -> tuple[dict[str, Any] | None, str | None]:
        """The organisation ``rec`` describes, and a conflict to report if ids disagree."""
        hits = [self.by[k].get(getattr(rec, k)) for k in ("pic", "oid", "erasmus_code") if getattr(rec, k)]
        found = next((h for h in hits if h is not None), None)
        conflict = None
        if found is not None and any(h is not None and h is not found for h in hits):
            conflict = "PIC, OID and Erasmus code point to different organisations; matched on the first"
        if found is None:
            key = name_key(rec.name, rec.country)
            candidate = self.by["name_key"].get(key) if key else None
            has_ids = rec.pic or rec.oid or rec.erasmus_code
            # an id-less record can only be matched by name; a record with ids adopts an id-less twin
            if candidate is not None and (not has_ids or not (
                candidate["pic"] or candidate["oid"] or candidate["erasmus_code"])):
                found = candidate
        return found, conflict

    def apply(self, rec: OrgRecord) -> tuple[dict[str, Any], str | None]:
        row, conflict = self.find(rec)
        if row is None:
            row = {c: None for c in _ORG_COLUMNS}
            row.update(other_names=[], sources=[], sector="other")
            self._add(row)
        newer = row["seen_at"] is None or (rec.seen_at is not None and rec.seen_at >= row["seen_at"])
        for key in ("pic", "oid", "erasmus_code"):
            value = getattr(rec, key)
            if value and not row[key] and value not in self.by[key]:
                row[key] = value
        for key in ORG_FIELDS:
            value = getattr(rec, key)
            if value is None or (key == "sector" and value == "other" and row[key] not in (None, "other")):
                continue
            if (row[key] in (None, "other") if key == "sector" else row[key] is None) or newer and row[key] != value:
                row[key] = value
        if rec.name:
            if row["name"] is None:
                row["name"] = rec.name
            elif rec.name != row["name"]:
                if newer:
                    row["other_names"].append(row["name"])
                    row["name"] = rec.name
                else:
                    row["other_names"].append(rec.name)
            row["other_names"] = sorted({n for n in row["other_names"] if n != row["name"]})
        if newer and rec.seen_at is not None:
            row["seen_at"] = rec.seen_at
        if rec.source not in row["sources"]:
            row["sources"] = sorted({*row["sources"], rec.source})
        row["name_key"] = name_key(row["name"], row["country"])
        self._index(row)
        return row, conflict


def _changed(before: dict[str, Any], after: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: after[k] for k in keys if before.get(k) != after.get(k)}


def write_parsed(session: Session, parsed: Parsed, progress: bool = True) -> tuple[dict[str, int], list[int]]:
    """Upsert what was parsed; returns the counts and the ids of organisations touched."""
    counts = dict.fromkeys(
        ("organisations_created", "organisations_updated", "projects_created", "projects_updated",
         "participations_created", "participations_updated"), 0)
    registry = _Registry(session)
    # the record with the latest date should be applied last so its name wins
    order = sorted(range(len(parsed.orgs)), key=lambda i: (parsed.orgs[i].seen_at or dt.date.min, i))
    resolved: dict[int, dict[str, Any]] = {}
    for i in tqdm(order, desc="matching organisations", unit=" rows", disable=not progress, leave=False):
        rec = parsed.orgs[i]
        row, conflict = registry.apply(rec)
        resolved[id(rec)] = row
        if conflict:
            parsed.problems.append(Problem(rec.line, conflict))

    keys = ("pic", "oid", "erasmus_code", "name", "other_names", "name_key", "seen_at", "sources", *ORG_FIELDS)
    new_rows = [r for r in registry.rows if r["id"] is None]
    if new_rows:
        payload = [{k: r[k] for k in keys} | {"created_at": utcnow(), "updated_at": utcnow()} for r in new_rows]
        for start in tqdm(range(0, len(payload), 2000), desc="writing organisations", disable=not progress,
                          leave=False):
            ids = session.scalars(
                insert(Organisation).returning(Organisation.id, sort_by_parameter_order=True),
                payload[start:start + 2000],
            ).all()
            for row, new_id in zip(new_rows[start:start + 2000], ids, strict=True):
                row["id"] = new_id
        counts["organisations_created"] = len(new_rows)
    changes = []
    for row in registry.rows:
        before = registry.original.get(row["id"])
        if before is not None and (diff := _changed(before, row, keys)):
            changes.append({"id": row["id"], **diff, "updated_at": utcnow()})
    for start in range(0, len(changes), 2000):
        session.execute(update(Organisation), changes[start:start + 2000])
    counts["organisations_updated"] = len(changes)

    # projects
    existing_projects: dict[str, dict[str, Any]] = {}
    pcols = ("id", "identifier", *PROJECT_FIELDS)
    for values in session.execute(select(*[getattr(Project, c) for c in pcols])):
        existing_projects[values[1]] = dict(zip(pcols, values, strict=True))
    project_state: dict[str, dict[str, Any]] = {}
    for rec in parsed.projects:
        state = project_state.get(rec.identifier)
        if state is None:
            base = existing_projects.get(rec.identifier)
            state = dict(base) if base else {"id": None, "identifier": rec.identifier}
            project_state[rec.identifier] = state
        for key, value in rec.values.items():
            if value in (None, [], ""):
                state.setdefault(key, None if key != "topics" else [])
                continue
            state[key] = value
    new_projects = [s for s in project_state.values() if s["id"] is None]
    if new_projects:
        payload = [{k: s.get(k) if k != "topics" else (s.get("topics") or []) for k in pcols if k != "id"}
                   | {"created_at": utcnow(), "updated_at": utcnow()} for s in new_projects]
        for start in range(0, len(payload), 2000):
            ids = session.scalars(
                insert(Project).returning(Project.id, sort_by_parameter_order=True), payload[start:start + 2000]
            ).all()
            for s, new_id in zip(new_projects[start:start + 2000], ids, strict=True):
                s["id"] = new_id
    counts["projects_created"] = len(new_projects)
    pchanges = []
    for ident, s in project_state.items():
        before = existing_projects.get(ident)
        if before is not None and (diff := _changed(before, s, PROJECT_FIELDS)):
            pchanges.append({"id": s["id"], **diff, "updated_at": utcnow()})
    if pchanges:
        session.execute(update(Project), pchanges)
    counts["projects_updated"] = len(pchanges)

    # participations
    project_ids = {ident: s["id"] for ident, s in existing_projects.items()}
    project_ids.update({ident: s["id"] for ident, s in project_state.items()})
    existing_parts: dict[tuple[int, int], dict[str, Any]] = {}
    for pid, project_id, org_id, role, ec in session.execute(
        select(Participation.id, Participation.project_id, Participation.organisation_id, Participation.role,
               Participation.ec_contribution)
    ):
        existing_parts[(project_id, org_id)] = {"id": pid, "role": role, "ec_contribution": ec}
    part_state: dict[tuple[int, int], dict[str, Any]] = {}
    for rec in parsed.parts:
        project_id = project_ids.get(rec.project)
        if project_id is None:
            parsed.problems.append(Problem(rec.line, f"project {rec.project!r} is not in this file or the database"))
            continue
        key = (project_id, resolved[id(rec.org)]["id"])
        state = part_state.get(key)
        if state is None:
            base = existing_parts.get(key)
            state = dict(base) if base else {"id": None, "role": rec.role, "ec_contribution": None}
            part_state[key] = state
        if ROLE_STRENGTH[rec.role] > ROLE_STRENGTH[state["role"]]:
            state["role"] = rec.role
        if state["ec_contribution"] is None and rec.ec_contribution is not None:
            state["ec_contribution"] = rec.ec_contribution
    new_parts = [{"project_id": k[0], "organisation_id": k[1], "role": s["role"],
                  "ec_contribution": s["ec_contribution"]} for k, s in part_state.items() if s["id"] is None]
    for start in tqdm(range(0, len(new_parts), 5000), desc="writing participations", disable=not progress,
                      leave=False):
        session.execute(insert(Participation), new_parts[start:start + 5000])
    counts["participations_created"] = len(new_parts)
    part_changes = [{"id": s["id"], "role": s["role"], "ec_contribution": s["ec_contribution"]}
                    for k, s in part_state.items()
                    if s["id"] is not None and _changed(existing_parts[k], s, ("role", "ec_contribution"))]
    if part_changes:
        session.execute(update(Participation), part_changes)
    counts["participations_updated"] = len(part_changes)

    touched = [r["id"] for r in registry.rows
               if r["name"] and (r["id"] not in registry.original or _changed(registry.original[r["id"]], r,
                                                                               ("name", "country")))]
    return counts, touched


def flag_duplicates(session: Session, organisation_ids: list[int], threshold: float = DUPLICATE_THRESHOLD) -> int:
    """Record likely duplicates (similar normalised name, same country) of the given organisations."""
    if not organisation_ids:
        return 0
    wanted = set(organisation_ids)
    by_country: dict[str | None, list[tuple[int, str]]] = {}
    for org_id, org_name, country in session.execute(
        select(Organisation.id, Organisation.name, Organisation.country).where(Organisation.name.is_not(None))
    ):
        by_country.setdefault(country, []).append((org_id, normalise_name(org_name)))
    known = {(a, b) for a, b in session.execute(
        select(DuplicateCandidate.organisation_a_id, DuplicateCandidate.organisation_b_id))}
    new_pairs: list[dict[str, Any]] = []
    for members in by_country.values():
        queries = [(i, n) for i, n in members if i in wanted]
        if not queries:
            continue
        names = [n for _, n in members]
        matrix = process.cdist([n for _, n in queries], names, scorer=fuzz.token_sort_ratio,
                               score_cutoff=threshold, workers=1)
        for qi, (org_id, _) in enumerate(queries):
            for ci in matrix[qi].nonzero()[0]:
                other = members[int(ci)][0]
                if other == org_id:
                    continue
                pair = (min(org_id, other), max(org_id, other))
                if pair not in known:
                    known.add(pair)
                    new_pairs.append({"organisation_a_id": pair[0], "organisation_b_id": pair[1],
                                      "score": float(matrix[qi][ci]), "status": "open", "created_at": utcnow()})
    if new_pairs:
        session.execute(insert(DuplicateCandidate), new_pairs)
    return len(new_pairs)


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
    counts, touched = write_parsed(session, parsed, progress)
    summary.counts = counts
    summary.duplicates_flagged = flag_duplicates(session, touched)
    summary.problems = parsed.problems
    session.add(ImportRun(
        source=str(path), format=fmt, checksum=checksum, finished_at=utcnow(), rows_read=parsed.rows_read,
        counts={**counts, "duplicates_flagged": summary.duplicates_flagged},
        problems=[p.as_dict() for p in parsed.problems[:1000]],
    ))
    return summary


def register_organisation(session: Session, values: dict[str, Any]) -> int:
    """Store one self-registered organisation; ValueError names the bad field."""
    if not clean(values.get("description")):
        raise ValueError("description: a self-description is required")
    record = registry_record(values)
    parsed = Parsed("registry", rows_read=1, orgs=[record])
    write_parsed(session, parsed, progress=False)
    row, _ = _Registry(session).find(record)
    assert row is not None and row["id"] is not None
    flag_duplicates(session, [row["id"]])
    return int(row["id"])
