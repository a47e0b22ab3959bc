"""The interface in English and Norwegian Bokmål: from the browser, switchable, complete and compiled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flask.testing import FlaskClient

from tests.conftest import ROOT


def test_the_browser_language_chooses_and_the_switch_keeps_the_page(client: FlaskClient) -> None:
    english = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in english and "Find partners for your Erasmus+ partnership" in english
    norsk = client.get("/", headers={"Accept-Language": "nb-NO,nb;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="nb">' in norsk and "Finn partnere til Erasmus+-partnerskapet ditt" in norsk
    assert "Prosjektideen din" in norsk and "Skriv ideen på engelsk" in norsk  # labels, and what the model reads
    assert client.get("/", headers={"Accept-Language": "no"}).get_data(as_text=True).count('lang="nb"') >= 1
    # the switch: a link on every page, kept for the session, the page's own query kept
    page = client.get("/newcomers?country=EE&country=LV").get_data(as_text=True)
    assert 'href="?country=EE&amp;country=LV&amp;lang=nb"' in page
    switched = client.get("/newcomers?country=EE&country=LV&lang=nb").get_data(as_text=True)
    assert "Organisasjoner som er nye i programmet" in switched and "Estland" in switched
    assert "Nykommere" in client.get("/").get_data(as_text=True)  # remembered
    # machine-readable codes never change
    assert client.get("/api/v1/newcomers?country=EE").get_json()["items"][0]["country"] == "EE"


def test_every_message_is_translated_and_the_compiled_catalogue_is_current(tmp_path: Path) -> None:
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    pot = tmp_path / "messages.pot"
    subprocess.run(
        [Path(sys.executable).parent / "pybabel", "-q", "extract", "-F", "babel.cfg", "-k", "_l", "-o", pot, "."],
        cwd=ROOT,
        check=True,
    )

    def key(msgid: str | tuple[str, ...]) -> str:
        return msgid if isinstance(msgid, str) else msgid[0]

    wanted = {key(m.id) for m in read_po(pot.open("rb")) if m.id}
    folder = ROOT / "service" / "translations" / "nb" / "LC_MESSAGES"
    po = read_po((folder / "messages.po").open("rb"))
    missing = sorted(m for m in wanted if po.get(m) is None or not po[m].string)
    assert missing == [], "untranslated: run pybabel extract/update and translate"
    mo = read_mo((folder / "messages.mo").open("rb"))

    def text(string: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
        return (string,) if isinstance(string, str) else tuple(string)

    compiled = {key(m.id): text(m.string) for m in mo if m.id}
    assert compiled == {key(m.id): text(m.string) for m in po if m.id}, "run pybabel compile -d service/translations"
