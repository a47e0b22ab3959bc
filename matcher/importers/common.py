"""What every importer shares: records, problems, summaries, value parsers and file readers.

A file is parsed whole before anything is written, so a file that cannot be read changes
nothing; rows with a bad value become ``Problem``s with their line and are skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
from tqdm import tqdm

ORG_FIELDS = (
    "short_name",
    "country",
    "city",
    "region",
    "address",
    "website",
    "org_type",
    "sector",
    "description",
)
PROJECT_FIELDS = (
    "programme",
    "action",
    "call_year",
    "start_date",
    "end_date",
    "acronym",
    "title",
    "summary",
    "topics",
    "source",
    "family",
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
    funded: bool = True  # a beneficiary; False for associated partners and third parties


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


def csv_records(
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


def open_text(raw: bytes, name: str) -> io.StringIO:
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{name} is not UTF-8 text: {exc}") from exc


def xlsx_rows(path: Path, header_marker: str, progress: bool) -> Iterator[tuple[int, dict[str, Any]]]:
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


def need_columns(row: dict[str, str], columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise ImportFailed(f"{name}: missing column(s) {', '.join(missing)}")


def checked_rows(
    raw: bytes, name: str, delimiter: str, required: Iterable[str], out: Parsed, progress: bool, count: bool = True
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV with a header; unreadable rows become problems, the header is checked once."""
    checked = False
    for line, row, problem in csv_records(open_text(raw, name), delimiter, name, progress):
        if count:
            out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", name))
            continue
        if not checked:
            need_columns(row, required, name)
            checked = True
        yield line, row
