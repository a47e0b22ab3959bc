"""What every importer shares: records, problems, summaries, value parsers and file readers.

A file is parsed whole before anything is written, so a file that cannot be read changes
nothing; rows with a bad value become ``Problem``s with their line and are skipped.

Long because every format shares these parsers and readers; each is short.
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

from python_calamine import CalamineWorkbook
from tqdm import tqdm

from matcher import vocab

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
    "descriptions",
)
LIST_FIELDS = ("topics", "descriptions")


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
    # one row lists a whole consortium: an organisation named twice in it is worth reporting
    # (CORDIS repeats a participant as its own third party on purpose)
    report_repeats: bool = False


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
            f"  organisations without ids matched by name and country to ones already stored: "
            f"{c.get('organisations_matched_by_name', 0)}",
            f"  likely duplicates flagged for review: {self.duplicates_flagged}",
            f"  problems: {len(self.problems)}",
        ]
        out += [f"    {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            out.append(f"    ... and {len(self.problems) - 50} more (stored with the import run)")
        return out


# ---------------------------------------------------------------- value helpers


INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")


def clean(value: Any) -> str | None:
    """Text with its spaces collapsed and invisible characters (zero-width, soft hyphen) removed; None if empty."""
    if value is None:
        return None
    text = " ".join(INVISIBLE.sub("", str(value)).replace("\xa0", " ").split())
    return text or None


def normalise_name(name: str) -> str:
    """Case-, accent- and punctuation-blind form of a name, for matching and duplicates."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w]+", " ", ascii_only).split())


def country_suffix(name: str) -> tuple[str, str | None]:
    """``Kunstencentrum Vooruit, Belgium`` -> (``Kunstencentrum Vooruit``, ``BE``); else (name, None)."""
    head, comma, tail = name.rpartition(",")
    if comma and head.strip() and len(tail.strip()) > 3:
        try:
            code = vocab.normalise_country(tail)
        except vocab.UnknownCode:
            code = None
        if code:
            return head.strip(), code
    return name, None


def _without_country_suffix(name: str) -> str:
    return country_suffix(name)[0]


def name_key(name: str | None, country: str | None) -> str | None:
    """The key of an organisation without ids: its name without a country suffix or a trailing legal
    form, case, accents and punctuation folded, and its country."""
    if not name:
        return None
    core = normalise_name(_without_country_suffix(name))
    forms = vocab.legal_forms()
    changed = True
    while changed:
        changed = False
        for form in forms:
            if core.endswith(" " + form) and len(core) > len(form) + 1:
                core, changed = core[: -len(form) - 1], True
    return f"{core}|{country or ''}"


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
    for fmt in ("%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d"):
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
    """An amount as exports write it: ``200000.0 EUR``, ``892,228.58``, ``1.234,56``, ``1234,5``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = clean(value)
    if text is None:
        return None
    number = re.sub(r"(?i)\s*(eur|euros?|€)\s*", "", text).replace(" ", "").replace("\u202f", "")
    if "," in number and "." in number:  # the separator that comes first groups thousands
        number = number.replace(",", "") if number.index(",") < number.index(".") else number.replace(".", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", number):
        number = number.replace(",", "")
    try:
        return float(number.replace(",", "."))
    except ValueError as exc:
        raise ValueError(f"bad amount {text!r}") from exc


def parse_pic(value: Any) -> str | None:
    text = clean(value)
    if text is None:
        return None
    if text.endswith(".0"):
        text = text[:-2]
    if not re.fullmatch(r"[0-9]{6,12}", text):  # ASCII digits: \d would take Arabic-Indic ones
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
    """(start line, row as dict or None, problem) for each record of a CSV with a header.

    The header decides the delimiter when it does not hold the expected one (a ``;`` export of a
    ``,`` format is read, not imported as nothing). A quote left open that swallows the lines after
    it into one record is reported with the lines it joined, not imported as one long value."""
    lines = list(text)
    first = lines[0] if lines else ""
    if delimiter not in first:
        delimiter = next((d for d in (";", ",", "\t") if d in first), delimiter)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
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
            reason = (
                (
                    f"a quote opened here is not closed: lines {previous + 1}-{reader.line_num} were not imported; "
                    "close the quote and import again"
                )
                if "unexpected end of data" in str(exc)
                else f"unreadable CSV record: {exc}"
            )
            yield previous + 1, None, reason
            previous = reader.line_num
            continue
        start, previous = previous + 1, reader.line_num
        bar.update()
        if not any(cell.strip() for cell in row):
            continue
        if _swallowed(row, delimiter, len(header)):
            yield (
                start,
                None,
                (
                    f"a quote opened here is not closed: lines {start}-{previous} were read as one "
                    "record; close the quote and import again"
                ),
            )
            continue
        if len(row) != len(header):
            yield start, None, f"expected {len(header)} columns, found {len(row)}"
            continue
        yield start, dict(zip(header, row, strict=True)), None
    bar.close()


def _swallowed(row: list[str], delimiter: str, columns: int) -> bool:
    """A cell holding whole lines that look like records of their own: an unterminated quote."""
    return any(
        line.count(delimiter) >= max(columns - 2, 1) for cell in row if "\n" in cell for line in cell.split("\n")[1:]
    )


def open_text(raw: bytes, name: str) -> io.StringIO:
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{name} is not UTF-8 text: {exc}") from exc


SPREADSHEETS = (".xlsx", ".xls", ".xlsm", ".ods")


def open_workbook(path: Path) -> CalamineWorkbook:
    """A spreadsheet (XLSX, legacy XLS, ODS) through python-calamine; ImportFailed in one line if unreadable."""
    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own kinds for a broken or foreign file
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ImportFailed(f"{path.name} cannot be read as a spreadsheet: {first}") from exc


def sheet_cells(path: Path, sheet: str | None = None) -> list[list[Any]]:
    """All cells of one sheet (the first when ``sheet`` is None), as Python values."""
    workbook = open_workbook(path)
    try:
        found = workbook.get_sheet_by_name(sheet) if sheet else workbook.get_sheet_by_index(0)
        return [list(row) for row in found.to_python(skip_empty_area=False)]
    except Exception as exc:
        what = f"sheet {sheet!r}" if sheet else "its first sheet"
        raise ImportFailed(f"{path.name}: cannot read {what}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc


def xlsx_rows(
    path: Path, header_marker: str, progress: bool, sheet: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a sheet whose header row holds ``header_marker`` (within the first 10 rows)."""
    cells = sheet_cells(path, sheet)
    start = next((i for i, row in enumerate(cells[:10]) if header_marker in [clean(c) or "" for c in row]), None)
    if start is None:
        raise ImportFailed(f"{path.name}: no header row with {header_marker!r} in the first 10 rows")
    header = [clean(c) or "" for c in cells[start]]
    for line, row in tqdm(
        enumerate(cells[start + 1 :], start=start + 2),
        total=len(cells) - start - 1,
        desc=f"reading {path.name}",
        unit=" rows",
        disable=not progress,
        leave=False,
    ):
        if not any(c not in (None, "") for c in row):
            continue
        yield line, dict(zip(header, row, strict=False))


def need_columns(row: dict[str, str], columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in row]
    if missing:
        raise ImportFailed(f"{name}: missing column(s) {', '.join(missing)}")


def checked_rows(
    raw: bytes, name: str, delimiter: str, required: Iterable[str], out: Parsed, progress: bool, count: bool = True
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV with a header; unreadable rows become problems, the header is checked once."""
    yield from checked(csv_records(open_text(raw, name), delimiter, name, progress), name, required, out, count)


def checked(
    records: Iterable[tuple[int, dict[str, Any] | None, str | None]],
    name: str,
    required: Iterable[str],
    out: Parsed,
    count: bool = True,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of any reader's records: unreadable ones become problems, the header is checked once."""
    header_ok = False
    for line, row, problem in records:
        if count:
            out.rows_read += 1
        if row is None:
            out.problems.append(Problem(line, problem or "bad row", name))
            continue
        nul = next((k for k, v in row.items() if isinstance(v, str) and "\x00" in v), None)
        if nul is not None:  # PostgreSQL cannot store it; one such row must not stop the file
            out.problems.append(Problem(line, f"column {nul!r} holds a NUL byte; the row was not imported", name))
            continue
        if not header_ok:
            need_columns(row, required, name)
            header_ok = True
        yield line, row
