"""A registry with owners: accounts, tokens, ownership, claims, moderation, contact relay, hardening."""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ROOT, bearer, make_app

BODY = {
    "name": "Nordlys Marine Robotics Club",
    "country": "NO",
    "sector": "youth",
    "website": "https://nordlys.example",
    "description": "Teenagers build underwater robots to monitor fjord ecosystems and plastic waste.",
}


def busiest(client: FlaskClient) -> dict[str, Any]:
    """An imported organisation with past projects (no owner)."""
    item = client.get("/api/v1/organisations?newcomer=false").get_json()["items"][0]
    return dict(client.get(f"/api/v1/organisations/{item['id']}").get_json())


def test_registering_an_existing_name_never_overwrites_it(client: FlaskClient, auth: dict[str, str]) -> None:
    before = busiest(client)
    attempt = {
        **BODY,
        "name": before["name"],
        "country": before["country"],
        "sector": "enterprise",
        "website": "https://spam.example",
    }
    r = client.post("/api/v1/organisations", json=attempt, headers=auth)
    assert r.status_code == 409, r.get_json()
    data = r.get_json()
    assert data["existing"]["id"] == before["id"] and data["existing"]["claim_url"].endswith(f"/{before['id']}/claim")
    after = client.get(f"/api/v1/organisations/{before['id']}").get_json()
    assert (after["sector"], after["website"], after["description"]) == (
        before["sector"],
        before["website"],
        before["description"],
    )
    # anonymous writes are refused, and say how to authenticate
    anonymous = client.post("/api/v1/organisations", json=BODY)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    # "a different organisation": stored apart and flagged as a likely duplicate
    different = client.post("/api/v1/organisations", json={**attempt, "different": True}, headers=auth)
    assert different.status_code == 201 and different.get_json()["id"] != before["id"]


def test_registering_a_pic_the_registry_holds_is_refused_and_changes_nothing(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    """A PIC names one organisation: a registration carrying another's PIC (a typo, or someone else's
    number) is a 409 naming the holder, even with "different", never a 500 or a second holder."""
    theirs = {**BODY, "name": "Tromsø Fjord Science Centre", "pic": "912345678"}
    holder_id = client.post("/api/v1/organisations", json=theirs, headers=bearer(app, "holder@example.org")).get_json()
    holder = client.get(f"/api/v1/organisations/{holder_id['id']}").get_json()
    total = client.get("/api/v1/organisations").get_json()["total"]
    for extra in ({}, {"different": True}):
        r = client.post("/api/v1/organisations", json={**BODY, "pic": "912345678", **extra}, headers=auth)
        assert r.status_code == 409, r.get_json()
        data = r.get_json()
        assert data["existing"]["id"] == holder["id"] and data["detail"][0]["field"] == "pic"
        assert "PIC" in data["detail"][0]["message"]
    assert client.get("/api/v1/organisations").get_json()["total"] == total
    assert client.get(f"/api/v1/organisations/{holder['id']}").get_json() == holder
    # a PIC nobody holds registers
    other = client.post("/api/v1/organisations", json={**BODY, "pic": "999999999"}, headers=auth).get_json()["id"]
    # and a search may name its members by PIC or id, mixed: both are resolved (in one unit of work)
    by_pic = client.post(
        "/api/v1/recommendations", json={"idea": "robots", "applicant": "912345678", "partners": [other]}
    )
    by_id = client.post(
        "/api/v1/recommendations", json={"idea": "robots", "applicant": holder["id"], "partners": [other]}
    )
    assert by_pic.status_code == 200 and by_pic.get_json()["results"] == by_id.get_json()["results"]


def test_double_submit_makes_one_organisation(client: FlaskClient, auth: dict[str, str]) -> None:
    first = client.post("/api/v1/organisations", json=BODY, headers=auth)
    again = client.post("/api/v1/organisations", json=BODY, headers=auth)
    assert first.status_code == 201 and again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]


def test_only_owners_and_admins_edit(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    org_id = client.post("/api/v1/organisations", json=BODY, headers=auth).get_json()["id"]
    mine = client.patch(f"/api/v1/organisations/{org_id}", json={"city": "Tromsø"}, headers=auth)
    assert mine.status_code == 200 and mine.get_json()["changed"]["city"] == [None, "Tromsø"]
    other = bearer(app, "other@example.org")
    assert client.patch(f"/api/v1/organisations/{org_id}", json={"city": "Oslo"}, headers=other).status_code == 403
    # a token acts for its own organisations only: the other owner's organisation is out of reach too
    theirs = client.post(
        "/api/v1/organisations", json={**BODY, "name": "Oslo Youth Robotics", "website": None}, headers=other
    ).get_json()["id"]
    assert client.patch(f"/api/v1/organisations/{theirs}", json={"city": "x"}, headers=auth).status_code == 403
    assert client.patch(f"/api/v1/organisations/{org_id}", json={"city": "x"}).status_code == 401
    admin = bearer(app, "agency@example.org", admin=True)
    assert client.patch(f"/api/v1/organisations/{org_id}", json={"city": "Bodø"}, headers=admin).status_code == 200
    bad = client.patch(f"/api/v1/organisations/{org_id}", json={"website": "javascript:alert(1)"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["detail"][0]["field"] == "website"
    assert client.get(f"/api/v1/organisations/{org_id}").get_json()["city"] == "Bodø"
    # a revoked token writes nothing
    pm = app.extensions["partner_match"]
    actor = pm.accounts.actor_for_token(auth["Authorization"].split()[1])
    token_id = pm.accounts.tokens(actor)[0]["id"]
    pm.accounts.revoke_token(actor, token_id)
    assert client.patch(f"/api/v1/organisations/{org_id}", json={"city": "y"}, headers=auth).status_code == 401


def sign_up(client: FlaskClient, email: str, password: str = "correct horse battery") -> None:
    page = client.get("/signup").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    r = client.post(
        "/signup", data={"email": email, "password": password, "consent": "y", "csrf_token": token.group(1)}
    )
    assert r.status_code == 302, r.get_data(as_text=True)


def csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found, path
    return found.group(1)


def test_unverified_cannot_edit_and_a_claim_waits_for_an_admin(app: Flask) -> None:
    pm = app.extensions["partner_match"]
    client = app.test_client()
    sign_up(client, "someone@university.example")
    target = busiest(client)
    claim_path = f"/organisations/{target['id']}/claim"
    token = csrf(client, f"/organisations/{target['id']}")
    assert client.post(claim_path, data={"csrf_token": token}).status_code == 403  # e-mail not confirmed yet
    assert client.get(f"/organisations/{target['id']}/edit").status_code == 403
    link = re.search(r"(/verify/\S+)", pm.accounts.mailer.sent[-1].body)
    assert link and client.get(link.group(1)).status_code == 302
    assert client.post(claim_path, data={"csrf_token": token}).status_code == 302
    assert client.get(f"/organisations/{target['id']}/edit").status_code == 403  # pending: not yours yet
    admin = app.test_client()
    pm.accounts.sign_up("agency@example.org", "correct horse battery", True, admin=True, verified=True)
    login = admin.post(
        "/login",
        data={"email": "agency@example.org", "password": "correct horse battery", "csrf_token": csrf(admin, "/login")},
    )
    assert login.status_code == 302
    page = admin.get("/admin/").get_data(as_text=True)
    claim_id = re.search(r"Approve claim (\d+)", page)
    assert claim_id and target["name"] in page
    done = admin.post(
        f"/admin/claims/{claim_id.group(1)}", data={"decision": "approve", "csrf_token": csrf(admin, "/admin/")}
    )
    assert done.status_code == 302
    assert client.get(f"/organisations/{target['id']}/edit").status_code == 200  # the owner edits now
    log = admin.get("/admin/").get_data(as_text=True)
    assert "claim.approved" in log and f"organisation:{target['id']}" in log
    assert client.get("/admin/").status_code == 403  # not an admin


def test_a_claim_by_the_website_domain_is_granted_at_once(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    pm = app.extensions["partner_match"]
    owner = pm.accounts.actor_for_token(auth["Authorization"].split()[1])
    org_id = pm.register({**BODY, "name": "Fjord School", "website": "https://www.fjordschool.example"}, owner)
    pm.accounts.delete(owner)  # no owner any more: open to claims
    staff = pm.accounts.sign_up("head@fjordschool.example", "correct horse battery", True, verified=True)
    result = pm.accounts.claim(staff, org_id)
    assert result["status"] == "approved" and "fjordschool.example" in result["reason"]


@pytest.fixture
def smtp_sink() -> Iterator[list[Any]]:
    """A real SMTP server on localhost that keeps what it receives."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    received.append(port)
    yield received
    controller.stop()


def test_contact_form_relays_through_smtp_and_never_shows_the_address(
    demo_env: dict[str, str], smtp_sink: list[Any]
) -> None:
    port = smtp_sink.pop(0)
    app = make_app({**demo_env, "PARTNER_MATCH_SMTP_URL": f"smtp://127.0.0.1:{port}"}, RATELIMIT_ENABLED=False)
    pm = app.extensions["partner_match"]
    owner = pm.accounts.sign_up("owner@example.org", "correct horse battery", True, verified=True)
    org_id = pm.register({**BODY, "contact_name": "Ingrid", "contact_email": "ingrid@nordlys.example"}, owner)
    client = app.test_client()
    page = client.get(f"/organisations/{org_id}").get_data(as_text=True)
    assert "Write to Ingrid" in page and "ingrid@nordlys.example" not in page
    form = client.get(f"/organisations/{org_id}/contact").get_data(as_text=True)
    assert "ingrid@nordlys.example" not in form
    sent = client.post(
        f"/organisations/{org_id}/contact",
        data={
            "name": "Ola Nordmann",
            "email": "ola@school.example",
            "csrf_token": csrf(client, f"/organisations/{org_id}/contact"),
            "message": "We look for a youth partner in a project on marine plastic.",
        },
    )
    assert sent.status_code == 302
    envelope = next(e for e in smtp_sink if "ingrid@nordlys.example" in e.rcpt_tos)
    mail = message_from_bytes(envelope.content)
    assert mail["Reply-To"] == "ola@school.example" and "marine plastic" in mail.get_payload()
    assert "ingrid@nordlys.example" not in client.get(f"/api/v1/organisations/{org_id}").get_data(as_text=True)


def test_csv_exports_neutralise_formulas(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {**BODY, "name": '=HYPERLINK("http://evil.example","x")', "website": None}
    assert client.post("/api/v1/organisations", json=body, headers=auth).status_code == 201
    text = client.get("/api/v1/newcomers?format=csv&country=NO&limit=500").data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    names = [r["Name"] for r in rows if "HYPERLINK" in r["Name"]]
    assert names == ["'" + body["name"]]


def test_account_data_download_and_delete(app: Flask) -> None:
    client = app.test_client()
    sign_up(client, "ada@example.org")
    data = client.get("/account/data.json").get_json()
    assert data["account"]["email"] == "ada@example.org" and data["account"]["consent_at"]
    assert client.post("/account/delete", data={"csrf_token": csrf(client, "/account")}).status_code == 302
    assert client.get("/account").status_code in (302, 401)
    assert app.extensions["partner_match"].accounts.authenticate("ada@example.org", "correct horse battery") is None


def test_production_refuses_in_memory_rate_limits(demo_env: dict[str, str]) -> None:
    with pytest.raises(SystemExit, match="PARTNER_MATCH_RATELIMIT_STORAGE_URI"):
        make_app({**demo_env, "PARTNER_MATCH_ENV": "production"})
    app = make_app(
        {
            **demo_env,
            "PARTNER_MATCH_ENV": "production",
            "PARTNER_MATCH_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15",
        }
    )
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]


def test_openapi_declares_the_bearer_scheme(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/organisations/{org_id}"]["patch"]["security"] == [{"bearer": []}]


@pytest.mark.slow
def test_rate_limits_hold_across_two_gunicorn_workers_with_redis(demo_env: dict[str, str]) -> None:
    import redis
    import requests

    redis.Redis(host="127.0.0.1", port=6379, db=15).flushdb()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        **demo_env,
        "PARTNER_MATCH_RATE_LIMIT": "6/minute",
        "PARTNER_MATCH_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/15",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "service:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):  # the port opens once gunicorn is up (no request, so nothing is counted)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        statuses = [
            requests.get(f"http://127.0.0.1:{port}/api/v1/organisations", timeout=30).status_code for _ in range(14)
        ]
    finally:
        server.terminate()
        server.wait(10)
    # 6 a minute in all, however the two workers shared the requests (in memory, each would allow 6)
    assert statuses.count(200) == 6 and statuses.count(429) == 8, statuses


def test_the_registration_form_is_rate_limited_too(demo_env: dict[str, str]) -> None:
    app = make_app(demo_env)  # rate limits on, as in production
    client = app.test_client()
    sign_up(client, "busy@example.org")
    token = csrf(client, "/register")
    statuses = [client.post("/register", data={"name": "x", "csrf_token": token}).status_code for _ in range(31)]
    assert statuses[:30] == [400] * 30 and statuses[30] == 429
