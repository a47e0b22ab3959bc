"""Newcomer lists and their files, as a national agency uses them: totals, pages, several countries,
and downloads that Excel opens with the right columns and characters in any locale."""

from __future__ import annotations

import csv
import io

from flask.testing import FlaskClient


def read_as_excel(data: bytes, sep: str) -> list[list[str]]:
    """What Excel does with a CSV: a byte-order mark means UTF-8, then the list separator splits cells."""
    assert data.startswith(b"\xef\xbb\xbf"), "no byte-order mark: Excel would read a legacy code page"
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8")), delimiter=sep))


def test_pages_totals_and_several_countries(client: FlaskClient) -> None:
    everyone = client.get("/api/v1/newcomers?limit=500").get_json()["total"]
    page = client.get("/newcomers").get_data(as_text=True)
    assert f"{everyone:,} newcomers match" in page and "page 1 of" in page and 'rel="next"' in page
    second = client.get("/newcomers?page=2").get_data(as_text=True)
    assert 'start="51"' in second and 'rel="prev"' in second
    both = client.get("/newcomers?country=EE&country=LV").get_data(as_text=True)
    assert "Estonia" in both and "Latvia" in both and "Lithuania ·" not in both
    sector = next(
        s
        for s in ("research", "public_body", "enterprise", "school", "other")
        if client.get(f"/api/v1/newcomers?country=LI&sector={s}").get_json()["total"] == 0
    )
    empty = client.get(f"/newcomers?theme=robots&country=LI&sector={sector}").get_data(as_text=True)
    assert "No newcomer matches these filters." in empty and "<ol" not in empty  # no "1." before it


def test_downloads_open_cleanly_in_excel(client: FlaskClient, auth: dict[str, str]) -> None:
    from openpyxl import load_workbook

    body = {
        "name": '=HYPERLINK("http://evil.example","Gdańsk")',
        "country": "PL",
        "sector": "youth",
        "description": "Youth exchanges in Gdańsk and Łódź on climate and democracy.",
        "city": "Gdańsk",
    }
    assert client.post("/api/v1/organisations", json=body, headers=auth).status_code == 201
    r = client.get("/newcomers.csv?country=PL&country=EE&sector=youth&sep=semicolon")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert 'filename="newcomers-PL-EE-youth.csv"' in r.headers["Content-Disposition"]
    rows = read_as_excel(r.data, ";")
    header, data = rows[0], rows[1:]
    assert header[:4] == ["Name", "Country", "City", "Sector"] and "Relevance to the theme" not in header
    assert {row[1] for row in data} <= {"Poland", "Estonia"} and {row[3] for row in data} == {"Youth"}
    evil = next(row for row in data if "HYPERLINK" in row[0])
    assert evil[0].startswith("'=") and evil[2] == "Gdańsk"  # text, never a formula; Polish letters intact
    total = client.get("/api/v1/newcomers?country=PL&sector=youth&limit=1").get_json()["total"]
    total += client.get("/api/v1/newcomers?country=EE&sector=youth&limit=1").get_json()["total"]
    assert len(data) == total  # the whole list, not one page
    comma = read_as_excel(client.get("/newcomers.csv?theme=climate").data, ",")
    assert comma[0][-1] == "Relevance to the theme" and len(comma) > 51  # every newcomer, ranked
    x = client.get("/newcomers.xlsx?country=PL&sector=youth")
    assert x.status_code == 200 and 'filename="newcomers-PL-youth.xlsx"' in x.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(x.data), read_only=True).active
    cells = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
    assert cells[0][0] == "Name" and any(str(row[0]).startswith("'=HYPERLINK") for row in cells[1:])


def test_the_download_buttons_submit_the_filters_on_screen(client: FlaskClient) -> None:
    page = client.get("/newcomers?country=EE").get_data(as_text=True)
    assert 'formaction="/newcomers.csv"' in page and 'formaction="/newcomers.xlsx"' in page
    assert 'href="/newcomers.csv' not in page  # no link carrying stale filters
