"""JSON API: every endpoint, bad input included (the schemathesis run is tests/test_api_fuzz.py)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import bearer, make_app


def first_pair(client):  # type: ignore[no-untyped-def]
    """Two organisations that worked together in the demo data (ids)."""
    items = client.get("/api/v1/organisations?newcomer=false").get_json()["items"]
    org = client.get(f"/api/v1/organisations/{items[0]['id']}").get_json()
    return org["id"], org["known_partners"][0]["id"]


def test_recommendations(client) -> None:  # type: ignore[no-untyped-def]
    applicant, partner = first_pair(client)
    r = client.post(
        "/api/v1/recommendations",
        json={
            "idea": "inclusive education and digital skills",
            "action": "cooperation",
            "applicant": applicant,
            "partners": [partner],
            "sectors": ["enterprise"],
            "exclude_countries": ["DE"],
            "k": 8,
            "newcomer_share": 0.3,
        },
    )
    assert r.status_code == 200, r.get_json()
    data = r.get_json()
    assert len(data["results"]) == 8 and data["meta"]["index_version"]
    ids = [x["organisation"]["id"] for x in data["results"]]
    assert applicant not in ids and partner not in ids
    first = data["results"][0]
    assert {"id", "name", "country", "sector", "newcomer"} <= set(first["organisation"])
    assert {"score", "reasons", "known_partner", "eligibility_with"} <= set(first)
    assert all({"code", "text"} <= set(reason) for x in data["results"] for reason in x["reasons"])
    assert all(x["organisation"]["country"] != "DE" for x in data["results"])
    assert sum(x["organisation"]["newcomer"] for x in data["results"]) >= 2
    assert data["eligibility"]["eligible"] in (True, False) and isinstance(data["eligibility"]["missing"], list)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"idea": "x", "countries": ["XX"]}, "countries.0"),
        ({"idea": "x", "countries": ["Norway"]}, "countries.0"),  # codes, as the document's enum says
        ({"idea": "x", "sectors": ["astrology"]}, "sectors.0"),
        ({"idea": "x", "k": 0}, "k"),
        ({"idea": "x", "k": 5000}, "k"),
        ({"idea": "x" * 6000}, "idea"),
        ({"idea": "x", "action": "mobility"}, "action"),
        ({"idea": "x", "newcomer_share": 1.5}, "newcomer_share"),
        ({"idea": "x", "surprise": 1}, "surprise"),
    ],
)
def test_recommendations_bad_input(client, body, field) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/recommendations", json=body)
    assert r.status_code == 400, r.get_json()
    data = r.get_json()
    assert data["error"] and any(d["field"] == field for d in data["detail"]), data


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"idea": "x", "applicant": 999999}, "applicant"),
        ({"idea": "x", "partners": ["123456789"]}, "partners.0"),
        ({"idea": "x", "applicant": 1, "partners": [2, 999999, "123456789"]}, "partners.1"),  # the first unknown
    ],
)
def test_an_unknown_organisation_is_404_naming_the_field(client, body, field) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/recommendations", json=body)
    assert r.status_code == 404 and r.get_json()["detail"][0]["field"] == field


def test_not_json_and_too_large(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/recommendations", data="not json", content_type="application/json")
    assert r.status_code == 400 and "error" in r.get_json()
    r = client.post("/api/v1/recommendations", data="x" * (600 * 1024), content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"] == "request too large"


def test_consortia(client) -> None:  # type: ignore[no-untyped-def]
    applicant, _ = first_pair(client)
    r = client.post(
        "/api/v1/consortia",
        json={"idea": "green skills in VET", "applicant": applicant, "sectors": ["vet", "enterprise"], "n": 3},
    )
    assert r.status_code == 200
    proposals = r.get_json()["consortia"]
    assert proposals and all(c["eligibility"]["eligible"] for c in proposals)
    for c in proposals:
        sectors = {m["organisation"]["sector"] for m in c["members"]}
        assert c["newcomers"] >= 1 and sectors


def test_organisations_listing_and_detail(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/organisations?q=university&page=1")
    data = r.get_json()
    assert r.status_code == 200 and data["total"] >= 1
    assert all("university" in o["name"].lower() for o in data["items"])
    r = client.get("/api/v1/organisations?country=PL&sector=vet&newcomer=true")
    assert all(o["country"] == "PL" and o["sector"] == "vet" and o["newcomer"] for o in r.get_json()["items"])
    assert client.get("/api/v1/organisations?country=Atlantis").status_code == 400
    assert client.get("/api/v1/organisations?page=0").status_code == 400
    org_id = data["items"][0]["id"]
    detail = client.get(f"/api/v1/organisations/{org_id}").get_json()
    assert {"experience", "projects", "known_partners", "similar"} <= set(detail)
    assert client.get("/api/v1/organisations/99999999").status_code == 404


def test_register_then_found_without_rebuild(client, auth) -> None:  # type: ignore[no-untyped-def]
    body = {
        "name": "Nordlys Marine Robotics Club",
        "country": "NO",
        "sector": "youth",
        "description": "Teenagers build underwater robots to monitor fjord ecosystems and plastic waste.",
    }
    r = client.post("/api/v1/organisations", json=body, headers=auth)
    assert r.status_code == 201, r.get_json()
    new_id = r.get_json()["id"]
    r = client.post(
        "/api/v1/recommendations",
        json={"idea": "underwater robots fjord plastic waste teenagers", "countries": ["NO"], "k": 5},
    )
    assert new_id in [x["organisation"]["id"] for x in r.get_json()["results"]]
    listed = client.get("/api/v1/newcomers?theme=underwater robots fjord&country=NO").get_json()["items"]
    assert listed[0]["id"] == new_id
    bad = client.post("/api/v1/organisations", json={**body, "description": ""}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "description"
    bad = client.post("/api/v1/organisations", json={**body, "country": "QQ"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "country"


def test_newcomers_json_and_csv(client) -> None:  # type: ignore[no-untyped-def]
    data = client.get("/api/v1/newcomers?theme=youth participation&sector=youth").get_json()
    assert data["items"] and all(o["sector"] == "youth" for o in data["items"])
    scores = [o["score"] for o in data["items"]]
    assert scores == sorted(scores, reverse=True)
    r = client.get("/api/v1/newcomers?theme=adult literacy&format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert rows and {"Name", "Country", "Sector", "Description", "Page", "Relevance to the theme"} <= set(rows[0])
    plain = client.get("/api/v1/newcomers?limit=5&page=2").get_json()
    assert plain["page"] == 2 and plain["total"] > 10 and all(o["score"] is None for o in plain["items"])
    assert client.get("/api/v1/newcomers?format=xml").status_code == 400


def test_health_and_missing_index(client, app, demo_env) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ok", "reasons": []}
    shutil.rmtree(Path(demo_env["PARTNER_MATCH_INDEX_DIR"]))
    fresh = make_app(demo_env, RATELIMIT_ENABLED=False).test_client()
    r = fresh.post("/api/v1/recommendations", json={"idea": "anything"})
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "no index has been built" in r.get_json()["detail"][0]["message"]
    ready = fresh.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["reasons"]
    assert fresh.get("/api/v1/newcomers?theme=x").status_code == 503


def test_security_headers_and_rate_limit(demo_env) -> None:  # type: ignore[no-untyped-def]
    app = make_app(demo_env, PARTNER_MATCH_RATE_LIMIT="3/minute")
    client = app.test_client()
    r = client.get("/livez")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"]
    statuses = [client.get("/api/v1/organisations").status_code for _ in range(5)]
    assert statuses[-1] == 429
    assert client.get("/api/v1/organisations").get_json()["error"] == "too many requests"
    assert not app.debug


def test_openapi_document(client) -> None:  # type: ignore[no-untyped-def]
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/api/v1/recommendations",
        "/api/v1/consortia",
        "/api/v1/organisations",
        "/api/v1/newcomers",
        "/api/v1/organisations/{org_id}",
        "/livez",
        "/readyz",
    } <= set(doc["paths"])
    assert all(p.startswith("/api/v1/") or p in ("/livez", "/readyz") for p in doc["paths"])  # no pages
    schemas = set(doc["components"]["schemas"])  # stable names, no build hash
    assert {"RecommendationIn", "RecommendationOut", "ResultOut", "NewcomersOut", "ErrorOut"} <= schemas
    csv_doc = doc["paths"]["/api/v1/newcomers"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in csv_doc
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/static/swagger-ui/swagger-ui-bundle.js" in docs.get_data(as_text=True)
    assert "cdn" not in docs.get_data(as_text=True).lower()
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 100_000  # served by the site itself
    assert client.get("/favicon.ico").status_code in (200, 301, 302, 308)


def test_ranker_fit_refuses_too_little_history_and_a_stale_ranker_is_reported(runner, client, demo_env) -> None:  # type: ignore[no-untyped-def]
    from embeddings.encoders import HashingEncoder
    from service.cli import main

    ranker_dir = Path(demo_env["PARTNER_MATCH_INSTANCE_DIR"]) / "ranker"
    result = runner.invoke(main, ["ranker", "fit", "--quiet", "--years", "1"])
    assert result.exit_code == 1 and "no ranker fitted" in result.output and "too few" in result.output
    assert not ranker_dir.exists()
    fitted = runner.invoke(main, ["ranker", "fit", "--quiet", "--json"])  # the demo's consortia of 3 years
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(fitted.output)["kind"] in ("lambdamart", "default") and (ranker_dir / "ranker.json").exists()
    applicant, partner = first_pair(client)
    body = {"idea": "digital skills", "applicant": applicant, "partners": [partner], "k": 5}
    served = client.post("/api/v1/recommendations", json=body).get_json()["results"]
    assert len(served) == 5 and client.get("/readyz").status_code == 200
    # the demo's projects carry text: the idea's text was learnt, with the model that serves
    meta = json.loads((ranker_dir / "ranker.json").read_text())
    assert meta["text_model"] == HashingEncoder().model_id
    (ranker_dir / "ranker.json").write_text(json.dumps({**meta, "text_model": "another/model"}))
    assert client.post("/api/v1/recommendations", json=body).status_code == 200
    refused = client.get("/readyz").get_json()
    assert refused["status"] == "degraded" and "another/model" in refused["reasons"][0]
    # a ranker fitted by another version (other feature columns) is refused visibly; the default serves
    (ranker_dir / "ranker.json").write_text(
        json.dumps(
            {"kind": "lambdamart", "features": ["ties"], "config": {}, "validation_recall@10": {}, "consortia": 1}
        )
    )
    r = client.post("/api/v1/recommendations", json=body)
    assert r.status_code == 200 and len(r.get_json()["results"]) == 5
    ready = client.get("/readyz")  # degraded, not unavailable: the default scorer serves
    assert ready.status_code == 200 and ready.get_json()["status"] == "degraded"
    assert "fitted ranker refused" in ready.get_json()["reasons"][0]
    assert runner.invoke(main, ["ranker", "remove"]).output.startswith("removed")
    assert client.get("/readyz").status_code == 200


def test_results_in_two_groups_and_new_to_you_holds_no_old_partner(client) -> None:  # type: ignore[no-untyped-def]
    applicant, partner = first_pair(client)
    body = {"idea": "digital skills for adult learners", "applicant": applicant, "partners": [partner]}
    r = client.post("/api/v1/recommendations", json={**body, "network_k": 4, "new_k": 8, "newcomer_share": 0.3})
    groups = r.get_json()["groups"]
    assert len(groups["network"]) == 4 and len(groups["new_to_you"]) == 8
    known = {
        p["id"]
        for m in (applicant, partner)
        for p in client.get(f"/api/v1/organisations/{m}").get_json()["known_partners"]
    }
    fresh = {g["organisation"]["id"] for g in groups["new_to_you"]}
    assert not fresh & known  # nobody the consortium has worked with
    assert all(not g["known_partner"] for g in groups["new_to_you"])
    assert all(g["known_partner"] for g in groups["network"])
    # a partner of a partner is new to you, introduced: who it worked with, in which project, and whose partner
    introduced = [x for g in groups["new_to_you"] for x in g["reasons"] if x["code"] == "partner_of_partner"]
    assert introduced and all({"via_id", "project_id", "partner_id"} <= set(x) for x in introduced)
    assert all(x["partner_id"] in (applicant, partner) and ", who has worked with " in x["text"] for x in introduced)
    assert (
        any(g["known_partner"] for g in groups["network"])
        and {g["organisation"]["id"] for g in groups["network"]} & known
    )
    assert sum(g["organisation"]["newcomer"] for g in groups["new_to_you"]) >= 2  # the share is held in the group
    # the similarity line stands out (the pool's top decile): never on every result of a long list
    long = client.post("/api/v1/recommendations", json={**body, "k": 60}).get_json()["results"]
    pool = client.get("/api/v1/organisations").get_json()["total"] - 2
    similar = [g for g in long if any(x["code"].startswith("similar") for x in g["reasons"])]
    assert 0 < len(similar) <= pool // 10 + 1 < len(long)
    alone = client.post("/api/v1/recommendations", json={"idea": body["idea"], "network_k": 3}).get_json()["groups"]
    assert alone["network"] == [] and len(alone["new_to_you"]) == 10  # nobody known: no network to draw from


def test_an_idea_like_a_past_project_is_told_which_project(client) -> None:  # type: ignore[no-untyped-def]
    """Project texts are embedded at index build: the reason names the past project the idea resembles."""
    import csv

    from tests.conftest import DEMO

    with (DEMO / "projects.csv").open(encoding="utf-8-sig") as fh:
        row = next(csv.DictReader(fh))
    idea = row["Project Summary"]  # a real project's own text, as an idea
    results = client.post("/api/v1/recommendations", json={"idea": idea, "k": 10}).get_json()["results"]
    named = [x for r in results for x in r["reasons"] if x["code"] == "similar_project"]
    assert named, [r["reasons"] for r in results]
    assert any(row["Project Title"] in x["text"] for x in named)  # the one whose text it is, by its title
    assert all(0 < x["similarity"] <= 1 and x["project_id"] > 0 for x in named)


def test_the_same_request_is_answered_once_until_the_registry_changes(client) -> None:  # type: ignore[no-untyped-def]
    """A reload, a language switch or a download asks again: answered from the last answers, while the
    matcher that made the answer still serves; a registration makes the next answer a fresh one."""
    from matcher.recommend import MatchRequest

    pm = client.application.extensions["partner_match"]
    applicant, partner = first_pair(client)
    req = MatchRequest(idea="digital skills for adult learners", applicant=applicant, partners=[partner])
    first = pm.recommend(req)
    again = pm.recommend(
        MatchRequest(idea="digital skills for adult learners", applicant=applicant, partners=[partner])
    )
    assert again.result is first.result  # not computed again
    other = pm.recommend(MatchRequest(idea="digital skills for adult learners", applicant=applicant, partners=[]))
    assert other.result is not first.result  # another request, another answer
    before = pm.matcher()
    token = bearer(client.application)
    created = client.post(
        "/api/v1/organisations",
        json={
            "name": "Bergen Green Skills Centre",
            "country": "NO",
            "sector": "vet",
            "description": "Green skills for construction apprentices.",
        },
        headers=token,
    )
    assert created.status_code == 201, created.get_json()
    after = pm.recommend(req)
    assert pm.matcher() is not before and after.result is not first.result
