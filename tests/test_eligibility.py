"""The Programme Guide's rules through the API: coordinators, associated countries, call years, legacy actions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from matcher import eligibility, vocab
from matcher.eligibility import Member, check
from tests.conftest import bearer


def register(client: FlaskClient, name: str, country: str, sector: str = "civil_society") -> int:
    auth = getattr(client, "auth", None) or bearer(client.application, f"{abs(hash(name))}@example.org")
    client.auth = auth  # type: ignore[attr-defined]
    body = {
        "name": name,
        "country": country,
        "sector": sector,
        "description": f"{name} runs education and training projects with partners across Europe.",
    }
    r = client.post("/api/v1/organisations", json=body, headers=auth)
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def one_in(client: FlaskClient, country: str, sector: str | None = None) -> int:
    query = {"country": country, **({"sector": sector} if sector else {})}
    items = client.get("/api/v1/organisations", query_string=query).get_json()["items"]
    assert items, f"no demo organisation in {country}"
    return int(items[0]["id"])


def recommend(client: FlaskClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/v1/recommendations", json={"idea": "digital skills for teachers", **body})
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def test_a_coordinator_from_a_country_not_associated_is_not_eligible(client: FlaskClient) -> None:
    us = register(client, "Springfield Community College", "US", "higher_education")
    partners = [one_in(client, c) for c in ("FR", "DE", "IT")]
    verdict = recommend(client, applicant=us, partners=partners, call_year=2026)["eligibility"]
    assert not verdict["eligible"]
    assert any("cannot apply as coordinator" in m and "United States" in m for m in verdict["missing"])
    # the same four with a French applicant: the American college joins as a partner, not counted
    fr, de, it = partners
    verdict = recommend(client, applicant=fr, partners=[de, it, us], call_year=2026)["eligibility"]
    assert verdict["eligible"] and sorted(verdict["programme_countries"]) == ["DE", "FR", "IT"]
    assert any(
        "United States is not associated" in n
        and "may join as a partner" in n
        and "does not count toward the minimum" in n
        for n in verdict["notes"]
    )


def test_small_scale_admits_only_eu_and_associated_countries(client: FlaskClient) -> None:
    ua = register(client, "Kyiv Youth Initiative", "UA", "youth")
    fr, de = one_in(client, "FR"), one_in(client, "DE")
    verdict = recommend(client, action="small-scale", applicant=fr, partners=[de, ua], call_year=2026)["eligibility"]
    assert not verdict["eligible"]
    assert any("Ukraine is not associated" in m and "small-scale partnership" in m for m in verdict["missing"])
    found = recommend(
        client,
        action="small-scale",
        applicant=fr,
        k=100,
        newcomer_share=0.0,
        idea="Kyiv youth initiative education and training projects",
    )
    assert found["results"] and all(r["organisation"]["country"] not in ("UA", "US", "BY") for r in found["results"])
    assert all(r["organisation"]["sector"] != "higher_education" for r in found["results"])
    # and in a cooperation partnership the same organisation may be recommended
    coop = recommend(
        client,
        applicant=fr,
        k=100,
        newcomer_share=0.0,
        countries=["UA"],
        idea="Kyiv youth initiative education and training projects",
    )
    assert ua in [r["organisation"]["id"] for r in coop["results"]]


def test_belarus_is_excluded_and_never_recommended(client: FlaskClient) -> None:
    by = register(client, "Minsk Learning Centre", "BY")
    fr, de, it = (one_in(client, c) for c in ("FR", "DE", "IT"))
    verdict = recommend(client, applicant=fr, partners=[de, it, by], call_year=2026)["eligibility"]
    assert not verdict["eligible"] and any("Belarus cannot take part" in m for m in verdict["missing"])
    found = recommend(client, applicant=fr, k=100, countries=["BY"])
    assert found["results"] == []


def test_the_legacy_school_exchange_holds_two_to_six_schools_in_its_own_calls() -> None:
    rule = eligibility.action("school")
    assert (rule.code, rule.first_call, rule.last_call, rule.max_organisations) == ("KA229", 2018, 2020, 6)
    schools = [Member(i, c, "school") for i, c in enumerate(["DE", "FR", "IT", "ES", "PL", "PT", "AT"], 1)]
    assert check(schools[:2], "school", 2019).eligible
    assert check(schools[:6], "school", 2019).eligible
    seven = check(schools, "school", 2019)
    assert not seven.eligible and any("at most 6 schools" in m for m in seven.missing)
    late = check(schools[:2], "school", 2026)
    assert not late.eligible and any("2018-2020 calls only" in m for m in late.missing)
    assert check([Member(1, "GB", "school"), Member(2, "FR", "school")], "school", 2019).eligible  # GB was in


@pytest.mark.parametrize(("year", "counts"), [(2026, False), (2027, True)])
def test_the_united_kingdom_and_switzerland_by_call_year(client: FlaskClient, year: int, counts: bool) -> None:
    gb = register(client, "Leeds Adult Learning", "GB", "adult_education")
    fr, de = one_in(client, "FR"), one_in(client, "DE")
    verdict = recommend(client, applicant=fr, partners=[de, gb], call_year=year)["eligibility"]
    assert verdict["eligible"] is counts and verdict["call_year"] == year
    assert ("GB" in verdict["programme_countries"]) is counts
    if counts:
        assert any("from the 2027 calls as announced" in n for n in verdict["notes"])
    assert eligibility.counts_toward("CH", year) is counts
    source = eligibility.country_status("GB", 2027).source
    assert source == "uk-2027" and "17 December 2025" in eligibility._rules()["sources"][source]


def test_country_names_as_the_commission_writes_them() -> None:
    for raw, code in [
        ("Kosovo*", "XK"),
        ("Turkey", "TR"),
        ("Türkiye", "TR"),
        ("Czech Republic", "CZ"),
        ("Czechia", "CZ"),
        ("North Macedonia", "MK"),
        ("former Yugoslav Republic of Macedonia", "MK"),
        ("EL", "GR"),
        ("GR", "GR"),
        ("UK", "GB"),
        ("GB", "GB"),
        ("XK", "XK"),
    ]:
        assert vocab.normalise_country(raw) == code, raw


def test_fairness_mode_through_the_api(client: FlaskClient) -> None:
    fr = one_in(client, "FR")
    quota = recommend(client, applicant=fr, k=10, newcomer_share=0.3)
    test = recommend(client, applicant=fr, k=10, newcomer_share=0.3, fairness="significance")
    assert sum(r["organisation"]["newcomer"] for r in quota["results"]) >= 3
    assert sum(r["organisation"]["newcomer"] for r in test["results"]) >= 1
    bad = client.post("/api/v1/recommendations", json={"fairness": "lottery"})
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "fairness"


def test_impossible_constraints_are_explained(client: FlaskClient) -> None:
    fr, de = one_in(client, "FR"), one_in(client, "DE")
    only_partners = recommend(client, applicant=fr, partners=[de], countries=["FR", "DE"], call_year=2026)
    assert not only_partners["eligibility"]["eligible"]
    assert (
        only_partners["warnings"] and "no suggestion can make the consortium eligible" in only_partners["warnings"][0]
    )
    fine = recommend(client, applicant=fr, partners=[de], call_year=2026)
    assert fine["warnings"] == []


BAD_GRAMMAR = re.compile(
    r"\b1 (more )?(organisations|countries|newcomers|partners|members|projects|schools|States)\b"
    r"|\b([02-9]|\d\d+) (more )?(organisation|country|newcomer|partner|member|project|school)\b(?! (type|page))"
    r"|\ba first\b|\b(\d+)(st|nd|rd)th\b"
)


@pytest.mark.parametrize("action", ["cooperation", "small-scale", "school"])
def test_every_eligibility_message_has_its_plurals_and_ordinals_right(action: str) -> None:
    countries = ["NO", "PL", "DE", "FR", "IT", "ES", "SE"]
    for n in range(0, 8):
        for sector in ("school", "vet", "higher_education"):
            members = [Member(i + 1, countries[i], sector, f"Org {i}") for i in range(n)]
            for year in (2020, 2027):
                verdict = check(members, action, year, 1 if n else None)
                for message in [*verdict.missing, *verdict.notes]:
                    assert not BAD_GRAMMAR.search(message), message


def test_counts_and_ordinals_in_pages_and_reasons(client: FlaskClient) -> None:
    from service.exports import plural

    assert (plural(1, "organisation"), plural(2, "organisation"), plural(1, "country", "countries")) == (
        "1 organisation",
        "2 organisations",
        "1 country",
    )
    assert plural(1200, "newcomer") == "1,200 newcomers"
    items = client.get("/api/v1/organisations?newcomer=false").get_json()["items"]
    for applicant in items[:5]:
        r = client.post(
            "/api/v1/recommendations", json={"idea": "digital skills", "applicant": applicant["id"], "k": 20}
        )
        for result in r.get_json()["results"]:
            for reason in result["reasons"]:
                assert not BAD_GRAMMAR.search(reason["text"]), reason["text"]
        for message in r.get_json()["eligibility"]["missing"]:
            assert not BAD_GRAMMAR.search(message), message
