"""Bad input and faults: every one a clear 4xx naming the problem, never a 500."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

BIG = 2**40


@pytest.mark.parametrize("body", [{"applicant": BIG}, {"partners": [BIG]}, {"applicant": 0}])
def test_ids_beyond_the_database_range(client: FlaskClient, body: dict[str, object]) -> None:
    r = client.post("/api/v1/recommendations", json=body)
    assert r.status_code == 400 and r.get_json()["detail"][0]["field"].startswith(("applicant", "partners"))


def test_id_paths_beyond_the_range_are_404(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get(f"/api/v1/organisations/{BIG}").status_code == 404
    assert client.get(f"/organisations/{BIG}").status_code == 404
    assert client.patch(f"/api/v1/organisations/{BIG}", json={"city": "x"}, headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [({"k": True}, "k"), ({"applicant": True}, "applicant"), ({"k": "10"}, "k"), ({"partners": [1.5]}, "partners")],
)
def test_strict_types(client: FlaskClient, body: dict[str, object], field: str) -> None:
    r = client.post("/api/v1/recommendations", json=body)
    assert r.status_code == 400 and r.get_json()["detail"][0]["field"].startswith(field), r.get_json()


@pytest.mark.parametrize("raw", [b"null", b"[1, 2]", b'"text"', b"{" * 50 + b"}" * 50])
def test_json_that_is_not_an_object(client: FlaskClient, raw: bytes) -> None:
    r = client.post("/api/v1/recommendations", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.is_json and r.get_json()["detail"][0]["field"] == "body"


TEXT_FIELDS = {
    "name": "Zero Org",
    "description": "x" * 30,
    "organisation_type": "NGO",
    "city": "Bergen",
    "website": "zero.example.org",
    "contact_name": "Kari",
    "contact_email": "kari@zero.example.org",
}


def test_nul_and_control_characters_are_refused_naming_the_field(backend_app: Flask) -> None:
    """On PostgreSQL too (which cannot store NUL): every text field of every input a 400 naming it."""
    from tests.conftest import bearer

    client, auth = backend_app.test_client(), bearer(backend_app)
    for field in ("idea",):
        r = client.post("/api/v1/recommendations", json={field: "robots\x00"})
        assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == field
    for field in ("q", "theme", "type"):
        r = client.get(f"/api/v1/organisations?{field}=a%00b")
        assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == field
    body = {**TEXT_FIELDS, "country": "NO", "sector": "youth", "pic": "999999999"}
    for field in [*TEXT_FIELDS, "pic"]:
        for bad in ("\x00", "\x1b", "\ud800"):
            r = client.post("/api/v1/organisations", headers=auth, json={**body, field: body[field][:2] + bad})
            assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == field, (field, r.get_json())
    created = client.post("/api/v1/organisations", headers=auth, json=body)
    assert created.status_code == 201, created.get_json()
    org = created.get_json()["id"]
    for field in ("name", "description", "city", "org_type", "contact_name"):
        r = client.patch(f"/api/v1/organisations/{org}", headers=auth, json={field: "ab\x00cd"})
        assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == field
    assert client.get("/newcomers?theme=%00").status_code == 400
    assert client.get("/organisations?q=%00").status_code == 400


def test_invisible_names_and_foreign_digits(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {"name": "\u200b\u200b\u200b", "country": "NO", "sector": "youth", "description": "x" * 30}
    r = client.post("/api/v1/organisations", json=body, headers=auth)
    assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == "name"
    r = client.post("/api/v1/organisations", json={**body, "name": "Real Org", "pic": "٩٩٩٩٩٩٩٩٩"}, headers=auth)
    assert r.status_code == 400 and r.get_json()["detail"][0]["field"] == "pic"


def test_odd_query_parameters_and_methods(client: FlaskClient) -> None:
    assert client.get("/api/v1/newcomers?endpoint=x").status_code == 200
    assert client.get("/newcomers?endpoint=x").status_code == 200
    assert client.get("/?_method=POST").status_code == 200
    r = client.delete("/api/v1/recommendations")
    assert r.status_code == 405 and "POST" in r.headers["Allow"] and r.is_json


def test_a_registry_without_projects_serves_every_page(app: Flask, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher.db import Database
    from matcher.indexing import build_index
    from tests.conftest import bearer, make_app

    env = {
        "PARTNER_MATCH_INSTANCE_DIR": str(tmp_path),
        "PARTNER_MATCH_DATABASE_URL": f"sqlite:///{tmp_path}/e.sqlite",
        "PARTNER_MATCH_INDEX_DIR": str(tmp_path / "index"),
    }
    db = Database(env["PARTNER_MATCH_DATABASE_URL"]).upgrade()
    fresh = make_app(env, RATELIMIT_ENABLED=False)
    client = fresh.test_client()
    r = client.post(
        "/api/v1/organisations",
        headers=bearer(fresh),
        json={
            "name": "First Youth Club",
            "country": "NO",
            "sector": "youth",
            "description": "Youth work in the north.",
        },
    )
    assert r.status_code == 201
    build_index(db, HashingEncoder(), IndexStore(tmp_path / "index"), progress=False)
    for path in ("/", "/newcomers", f"/organisations/{r.get_json()['id']}", "/api/v1/newcomers", "/readyz"):
        assert client.get(path).status_code == 200, path
    found = client.post("/api/v1/recommendations", json={"idea": "youth work"})
    assert found.status_code == 200 and found.get_json()["results"]


def test_two_imports_at_once_give_the_counts_of_one(db) -> None:  # type: ignore[no-untyped-def]
    import threading

    from sqlalchemy import func, select

    from matcher import importers
    from matcher.db import Organisation, Participation, Project
    from tests.conftest import DEMO

    errors: list[BaseException] = []

    def run() -> None:
        try:
            with db.session() as s:
                importers.import_path(s, DEMO / "projects.csv", progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session() as s:
        counts = [s.scalar(select(func.count()).select_from(m)) for m in (Organisation, Project, Participation)]
    assert counts == [183, 140, 671]  # exactly one import's worth


def test_twenty_identical_registrations_at_once_make_one(app: Flask) -> None:
    import threading

    pm = app.extensions["partner_match"]
    owner = pm.accounts.sign_up("click@example.org", "correct horse battery", True, verified=True)
    body = {"name": "Double Click Academy", "country": "NO", "sector": "vet", "description": "x" * 40}
    ids: list[int] = []
    failures: list[BaseException] = []

    def register() -> None:
        try:
            ids.append(pm.register(dict(body), owner))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=register) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(set(ids)) == 1 and len(ids) == 20


def test_readiness_tells_the_truth(
    app: Flask, client: FlaskClient, auth: dict[str, str], demo_env: dict[str, str]
) -> None:
    from pathlib import Path

    assert client.get("/readyz").get_json() == {"status": "ok", "reasons": []}
    ok = client.get("/api/v1/organisations")
    assert ok.status_code == 200 and "Retry-After" not in ok.headers  # only on 429 and 503
    # an organisation written straight to the registry, not embedded: degraded, still serving
    from matcher.db import Organisation

    pm = app.extensions["partner_match"]
    with pm.db.session() as s:
        s.add(Organisation(name="Unembedded Org", country="NO", sector="youth", other_names=[], sources=[]))
    pm.fingerprint(force=True)
    degraded = client.get("/readyz")
    assert degraded.status_code == 200 and degraded.get_json()["status"] == "degraded"
    assert "1 organisation not embedded yet" in degraded.get_json()["reasons"][0]
    # the version the next worker would load is corrupted: unavailable at the next poll, no path revealed
    store = Path(demo_env["PARTNER_MATCH_INDEX_DIR"])
    current = (store / "CURRENT").read_text().strip()
    vectors = store / "versions" / current / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])  # flip the last bytes: a changed file, same size
    vectors.write_bytes(bytes(data))
    broken = client.get("/readyz")
    assert broken.status_code == 503 and broken.headers["Retry-After"]
    message = " ".join(broken.get_json()["reasons"])
    assert "checksum" in message and str(store) not in message and "/" not in message.replace("/readyz", "")


def test_rollback_goes_to_the_newest_version_that_verifies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from embeddings.index import IndexStore

    store = IndexStore(tmp_path)
    names = []
    for i in range(3):
        manifest = store.write(np.arange(3), np.eye(3, dtype=np.float32) * (i + 1), "m", "p1", f"c{i}")
        names.append(manifest.version)
        store.switch(manifest.version, "m")
    (tmp_path / "versions" / names[1] / "vectors.npy").write_bytes(b"broken")
    assert store.previous("m") == names[0]  # the corrupt middle one is skipped


def test_next_only_leads_to_this_site(client: FlaskClient) -> None:
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    r = client.post(
        "/draft", data={"org_id": "1", "op": "add", "next": "https://evil.example/", "csrf_token": token.group(1)}
    )
    assert r.status_code == 302 and r.headers["Location"].startswith("/") and "evil" not in r.headers["Location"]
    r = client.post(
        "/draft", data={"org_id": "1", "op": "add", "next": "//evil.example/x", "csrf_token": token.group(1)}
    )
    assert "evil" not in r.headers["Location"]


def test_behind_a_proxy_each_client_has_its_own_rate_limit(demo_env: dict[str, str]) -> None:
    from tests.conftest import make_app

    app = make_app({**demo_env, "PARTNER_MATCH_PROXY_FIX": "1"}, PARTNER_MATCH_RATE_LIMIT="3/minute")
    client = app.test_client()
    first = [client.get("/livez", headers={"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(4)]
    other = client.get("/livez", headers={"X-Forwarded-For": "203.0.113.2"}).status_code
    assert first == [200, 200, 200, 429] and other == 200
    assert make_app(demo_env).config["WTF_CSRF_TIME_LIMIT"] == 7200  # CSRF tokens expire


def test_a_long_greek_idea_survives_and_the_search_is_a_link(app: Flask) -> None:
    import re

    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    idea = ("Ψηφιακές δεξιότητες για εκπαιδευτικούς επαγγελματικής κατάρτισης στην Ελλάδα. " * 70)[:4900]
    r = client.post(
        "/search",
        data={
            "idea": idea,
            "action": "cooperation",
            "call_year": "2026",
            "newcomer_share": "30",
            "csrf_token": token.group(1),
        },
    )
    assert r.status_code == 302 and "s=" in r.headers["Location"]
    cookie = client.get_cookie("session")
    assert cookie is not None and len(cookie.value) < 1000  # the idea is not in the cookie
    results = client.get(r.headers["Location"])
    assert results.status_code == 200 and idea[:200] in results.get_data(as_text=True)
    shared = app.test_client().get(r.headers["Location"])  # another browser opens the link
    assert shared.status_code == 200 and idea[:200] in shared.get_data(as_text=True)
