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

from matcher import vocab
from matcher.app import Listed, OrganisationPage
from matcher.eligibility import Eligibility

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


def newcomer_rows(found: OrganisationPage, ranked: bool) -> tuple[list[str], list[list[Any]]]:
    header = ["Name", "Country", "City", "Sector", "Organisation type", "Website", "Description", "Page"]
    if ranked:
        header.append("Relevance to the theme")

    def row(o: Listed) -> list[Any]:
        cells: list[Any] = [
            o.name,
            vocab.country_name(o.country) if o.country else "",
            o.city or "",
            vocab.sectors().get(o.sector, o.sector),
            o.org_type or "",
            o.website or "",
            (o.description or "")[:1000],
            url_for("pages.organisation", org_id=o.id, _external=True),
        ]
        if ranked:
            cells.append(round(float(o.score or 0.0), 3))
        return [spreadsheet_safe(c) for c in cells]

    return header, [row(o) for o in found.items]


def newcomers_csv(found: OrganisationPage, name: str, sep: str = ",") -> Response:
    ranked = any(o.score is not None for o in found.items)
    header, rows = newcomer_rows(found, ranked)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def newcomers_xlsx(found: OrganisationPage, name: str) -> Response:
    from openpyxl import Workbook

    ranked = any(o.score is not None for o in found.items)
    header, rows = newcomer_rows(found, ranked)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Newcomers")
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    response = Response(out.getvalue(), mimetype=XLSX)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    return response


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 organisation``, ``2 organisations``: every count a page or a file shows."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def consortium_rows(
    members: list[Listed], verdict: Eligibility, roles: dict[Any, str]
) -> tuple[list[str], list[list[Any]]]:
    header = ["Role", "Name", "Country", "City", "Sector", "Organisation type", "Website", "Page"]
    rows = [
        [
            spreadsheet_safe(c)
            for c in (
                roles.get(m.id, "Partner (draft)"),
                m.name,
                vocab.country_name(m.country) if m.country else "",
                m.city or "",
                vocab.sectors().get(m.sector, m.sector),
                m.org_type or "",
                m.website or "",
                url_for("pages.organisation", org_id=m.id, _external=True),
            )
        ]
        for m in members
    ]
    status = "eligible" if verdict.eligible else "not yet eligible"
    rows.append([])
    rows.append([f"Programme Guide, {verdict.call_year} call: {status}"])
    rows.extend([["Missing", m] for m in verdict.missing])
    rows.extend([["Note", n] for n in verdict.notes])
    return header, rows


def consortium_csv(members: list[Listed], verdict: Eligibility, roles: dict[Any, str]) -> Response:
    header, rows = consortium_rows(members, verdict, roles)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="draft-consortium.csv"'
    return response


def consortium_xlsx(members: list[Listed], verdict: Eligibility, roles: dict[Any, str]) -> Response:
    from openpyxl import Workbook

    header, rows = consortium_rows(members, verdict, roles)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Draft consortium")
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    out = io.BytesIO()
    book.save(out)
    response = Response(out.getvalue(), mimetype=XLSX)
    response.headers["Content-Disposition"] = 'attachment; filename="draft-consortium.xlsx"'
    return response
