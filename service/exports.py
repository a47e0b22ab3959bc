"""Lists as files that open cleanly in Excel and LibreOffice in every EU locale.

CSV with a UTF-8 byte-order mark (Excel otherwise reads UTF-8 as a legacy code page: "GdaÅ„sk"), a
comma or, for locales whose decimal separator is the comma, a semicolon; or an .xlsx workbook.
Labels, not codes; the relevance column only where a theme ranked the list; cells that a
spreadsheet would run as a formula neutralised; a file name that says what was filtered.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from flask import Response, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from matcher.app import Listed, OrganisationPage
from matcher.eligibility import Eligibility
from service.i18n import country_name, sector_label, translate

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def spreadsheet_safe(value: Any) -> Any:
    """A cell Excel or LibreOffice will not run as a formula (OWASP CSV injection): text that starts with
    ``= + - @``, a tab or a carriage return gets a leading apostrophe; line breaks become spaces."""
    if not isinstance(value, str):
        return value
    text = value.replace("\r\n", " ").replace("\n", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_name(theme: str, countries: Sequence[str], sectors: Sequence[str]) -> str:
    """``newcomers-EE-LV-youth-digital-skills``: what the file holds, in its name (ASCII, short)."""
    words = re.sub(r"[^a-z0-9]+", "-", theme.casefold()).strip("-")[:40].strip("-")
    parts = ["newcomers", *countries, *sectors, *([words] if words else [])]
    return "-".join(parts)[:120]


Table = tuple[list[str], list[list[Any]]]
# headers in the page's (or the API request's) language; the cells' data are the same in every language
ORGANISATION_COLUMNS = [_l("Name"), _l("Country"), _l("City"), _l("Sector"), _l("Organisation type"), _l("Website")]


def organisation_cells(o: Listed) -> list[Any]:
    """What every file says of an organisation, in labels (ORGANISATION_COLUMNS)."""
    return [
        o.name,
        country_name(o.country) if o.country else "",
        o.city or "",
        sector_label(o.sector),
        o.org_type or "",
        o.website or "",
    ]


def page_url(o: Listed) -> str:
    return url_for("pages.organisation", org_id=o.id, _external=True)


def csv_file(table: Table, name: str, sep: str = ",") -> Response:
    """A CSV with a byte-order mark and CRLF lines, every cell neutralised, as a download called ``name``."""
    header, rows = table
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(c) for c in row] for row in rows)
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def xlsx_file(table: Table, name: str, sheet_title: str) -> Response:
    """The same table as an .xlsx workbook (cells neutralised alike: LibreOffice reads text as typed)."""
    from openpyxl import Workbook

    header, rows = table
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_title)
    sheet.append(header)
    for row in rows:
        sheet.append([spreadsheet_safe(c) for c in row])
    out = io.BytesIO()
    book.save(out)
    response = Response(out.getvalue(), mimetype=XLSX)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    return response


def newcomer_table(found: OrganisationPage) -> Table:
    """Newcomers with a line of description and their page; relevance only where a theme ranked them."""
    ranked = any(o.score is not None for o in found.items)
    header = [
        *map(str, ORGANISATION_COLUMNS),
        _("Description"),
        _("Page"),
        *([_("Relevance to the theme")] if ranked else []),
    ]
    rows = [
        [
            *organisation_cells(o),
            (o.description or "")[:1000],
            page_url(o),
            *([round(float(o.score or 0.0), 3)] if ranked else []),
        ]
        for o in found.items
    ]
    return header, rows


def consortium_table(members: list[Listed], verdict: Eligibility, roles: dict[Any, str]) -> Table:
    """A draft consortium, each member with its role, then the Programme Guide's verdict on it."""
    header = [_("Role"), *map(str, ORGANISATION_COLUMNS), _("Page")]
    draft = _("Partner (draft)")
    rows: list[list[Any]] = [[roles.get(m.id, draft), *organisation_cells(m), page_url(m)] for m in members]
    status = _("eligible") if verdict.eligible else _("not yet eligible")
    rows.append([])
    rows.append([_("Programme Guide, %(year)s call: %(status)s", year=verdict.call_year, status=status)])
    rows.extend([[_("Missing"), translate(m)] for m in verdict.missing])
    rows.extend([[_("Note"), translate(n)] for n in verdict.notes])
    return header, rows


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 organisation``, ``2 organisations``: every count a page or a file shows."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"
