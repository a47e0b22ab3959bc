"""The interface in English and Norwegian Bokmål: from the browser, switchable, complete and compiled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ROOT

# the domain's sentences (matcher.vocab.Text) are translated too: the calls that carry them
KEYWORDS = ["-k", "_l", "-k", "N_", "-k", "Text", "-k", "plural_text:1,2", "-k", "_in_project:1"]


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
        [Path(sys.executable).parent / "pybabel", "-q", "extract", "-F", "babel.cfg", *KEYWORDS, "-o", pot, "."],
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


def test_reasons_and_verdicts_follow_accept_language_and_codes_do_not(client: FlaskClient) -> None:
    from tests.test_api import first_pair

    applicant, partner = first_pair(client)
    body = {"idea": "digital skills for adult learners", "applicant": applicant, "partners": [partner], "k": 15}
    english = client.post("/api/v1/recommendations", json=body)
    norsk = client.post("/api/v1/recommendations", json=body, headers={"Accept-Language": "nb-NO,nb;q=0.9"})
    assert english.headers["Content-Language"] == "en" and norsk.headers["Content-Language"] == "nb"
    assert "Accept-Language" in norsk.headers["Vary"]
    en, nb = english.get_json(), norsk.get_json()
    pairs = [
        (a, b)
        for x, y in zip(en["results"], nb["results"], strict=True)
        for a, b in zip(x["reasons"], y["reasons"], strict=True)
    ]
    # the same reasons, codes and data unchanged, the words in Norwegian
    assert pairs and all({**a, "text": ""} == {**b, "text": ""} for a, b in pairs)
    texts = {b["code"]: b["text"] for _a, b in pairs}
    assert texts["experience"].endswith(tuple("0123456789")) and "tidligere prosjekt" in texts["experience"]
    if "worked_with" in texts:
        assert texts["worked_with"].startswith("har samarbeidet med ")
    for a, b in pairs:
        if a["code"] == "adds_country":
            assert "programland" in b["text"]
    # an ineligible consortium's verdict in Norwegian, with the country named in Norwegian
    alone = client.post(
        "/api/v1/recommendations",
        json={"idea": "x", "applicant": applicant, "k": 1},
        headers={"Accept-Language": "nb"},
    ).get_json()["eligibility"]
    assert alone["eligible"] is False and alone["missing"]
    assert all("EU-land" in m for m in alone["missing"]), alone["missing"]
    assert alone["programme_countries"] and set(alone["programme_countries"]) <= set(
        en["eligibility"]["programme_countries"]
    )


def test_a_domain_sentence_names_its_countries_and_sectors_in_the_language(app: Flask) -> None:
    from matcher.vocab import Text, plural_text
    from service.i18n import translate

    text = Text("{who}: organisations from {country} cannot take part in Erasmus+", who="Skola", country="BY")
    assert text == "Skola: organisations from Belarus cannot take part in Erasmus+"  # still the English str
    with app.test_request_context("/", headers={"Accept-Language": "nb"}):
        assert translate(text) == "Skola: organisasjoner fra Hviterussland kan ikke delta i Erasmus+"
        one = plural_text(
            "{n} past project, coordinated {coordinated}",
            "{n} past projects, coordinated {coordinated}",
            n=1,
            coordinated=0,
        )
        two = plural_text(
            "{n} past project, coordinated {coordinated}",
            "{n} past projects, coordinated {coordinated}",
            n=2,
            coordinated=1,
        )
        assert (translate(one), translate(two)) == (
            "1 tidligere prosjekt, koordinerte 0",
            "2 tidligere prosjekter, koordinerte 1",
        )
        assert translate("plain words") == "plain words"
    with app.test_request_context("/"):
        assert translate(text) == str(text)


def test_labels_from_the_data_files_are_in_the_catalogue() -> None:
    """Sector and action labels come from seed_data, not from code, so extraction cannot find them:
    a catalogue update that drops them would leave them in English without this test."""
    from babel.messages.pofile import read_po

    from matcher import eligibility, vocab

    po = read_po((ROOT / "service/translations/nb/LC_MESSAGES/messages.po").open("rb"))
    labels = [*vocab.sectors().values(), *(rule.label.lower() for rule in eligibility.actions().values())]
    assert [x for x in labels if po.get(x) is None or not po[x].string] == []


def test_forms_errors_and_downloads_speak_the_language_too(client: FlaskClient) -> None:
    """Not only the search: sign-up and registration forms, error pages and the files a user downloads."""
    import csv
    import io

    nb = {"Accept-Language": "nb"}
    signup = client.get("/signup", headers=nb).get_data(as_text=True)
    assert "Opprett en konto" in signup and "E-post" in signup and "Passord" in signup
    assert "Har du allerede en konto?" in signup  # the links under the form too
    login = client.get("/login", headers=nb).get_data(as_text=True)
    assert "E-post" in login and "Passord" in login
    from service.pages import RegisterForm

    with client.application.test_request_context("/register", headers=nb):  # the form behind a sign-in
        form = RegisterForm()
        assert str(form.name.label.text) == "Organisasjonens navn" and str(form.city.label.text) == "By"
    missing = client.get("/organisations/999999999", headers=nb)
    assert missing.status_code == 404 and "Ikke funnet" in missing.get_data(as_text=True)
    assert "Tilbake til søket" in missing.get_data(as_text=True)
    # a newcomer list as a file: headers and country names in Norwegian, codes of the API unchanged
    body = client.get("/newcomers.csv?country=EE", headers=nb).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:4] == ["Navn", "Land", "By", "Sektor"] and rows[1][1] == "Estland"
    english = list(
        csv.reader(io.StringIO(client.get("/newcomers.csv?country=EE").get_data(as_text=True).lstrip("\ufeff")))
    )
    assert english[0][:4] == ["Name", "Country", "City", "Sector"] and english[1][1] == "Estonia"


def test_account_rules_answer_in_the_language_and_keep_the_field(client: FlaskClient) -> None:
    """Who may change what is said in the user's language, on the API and on the pages; the field stays a code."""
    nb = {"Accept-Language": "nb"}
    english = client.patch("/api/v1/organisations/1", json={"city": "Oslo"})
    norsk = client.patch("/api/v1/organisations/1", json={"city": "Oslo"}, headers=nb)
    assert english.status_code == norsk.status_code == 401
    assert english.get_json()["detail"][0]["message"].startswith("sign in (or send an API token)")
    assert norsk.get_json()["detail"][0] == {
        "field": "account",
        "message": "logg inn (eller send en API-nøkkel) for å endre en organisasjon",
    }
    from tests.test_accounts import csrf, sign_up

    sign_up(client, "ny@example.org")
    client.post("/logout", data={"csrf_token": csrf(client, "/account")})
    form = {"email": "ny@example.org", "password": "et langt passord", "consent": "y"}
    again = client.post("/signup", data={**form, "csrf_token": csrf(client, "/signup")}, headers=nb)
    assert again.status_code == 400 and "det finnes allerede en konto" in again.get_data(as_text=True)


def test_the_search_form_says_which_languages_the_model_in_hand_reads(client: FlaskClient, cli_env) -> None:  # type: ignore[no-untyped-def]
    """The note follows the model that answers, not the default's name: English-only here (hashing)."""
    from embeddings.encoders import E5_ID, HashingEncoder
    from service import create_app
    from service.config import Settings

    assert "Write your idea in English" in client.get("/").get_data(as_text=True)
    multilingual = HashingEncoder()
    multilingual.model_id = E5_ID
    app = create_app(Settings.from_env(cli_env), multilingual, {"TESTING": True, "SECRET_KEY": "test"})
    page = app.test_client().get("/", headers={"Accept-Language": "nb"}).get_data(as_text=True)
    assert "Write your idea in English" not in page and "Skriv ideen på ditt eget språk" in page
