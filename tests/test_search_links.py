"""A search is a link: the form comes back filled in, a refined search keeps the draft consortium,
and the draft can be shared as a link or taken away as a file."""

from __future__ import annotations

import csv
import io
import re

from flask import Flask


def token(client) -> str:  # type: ignore[no-untyped-def]
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/").get_data(as_text=True))
    assert found
    return found.group(1)


def test_edit_search_keeps_everything_and_a_refined_search_keeps_the_draft(app: Flask) -> None:
    client = app.test_client()
    items = client.get("/api/v1/organisations?newcomer=false").get_json()["items"]
    applicant, partner, extra = items[0], items[1], items[2]
    form = {
        "idea": "Ψηφιακές δεξιότητες για ενήλικες",
        "applicant": applicant["name"],
        "partners": partner["name"],
        "action": "cooperation",
        "call_year": "2027",
        "sectors": ["youth", "vet"],
        "exclude_countries": ["TR"],
        "newcomer_share": "40",
        "csrf_token": token(client),
    }
    r = client.post("/search", data=form)
    assert r.status_code == 302
    key = re.search(r"s=([\w-]+)", r.headers["Location"]).group(1)  # type: ignore[union-attr]
    results = client.get(r.headers["Location"]).get_data(as_text=True)
    assert f'href="/?s={key}"' in results  # "Edit search"
    page = client.get(f"/?s={key}").get_data(as_text=True)
    assert "Edit your search" in page and "Ψηφιακές δεξιότητες για ενήλικες" in page
    assert f'value="{applicant["name"]}"' in page and partner["name"] in page
    assert re.search(r'<input checked[^>]*value="youth"', page) and re.search(r'<option selected value="TR"', page)
    assert 'value="40"' in page
    # add one to the draft, then refine the search: the draft survives
    client.post("/draft", data={"org_id": extra["id"], "op": "add", "next": "/results", "csrf_token": token(client)})
    r = client.post("/search", data={**form, "idea": "digital skills for adults", "csrf_token": token(client)})
    refined = client.get(r.headers["Location"]).get_data(as_text=True)
    assert (
        "is kept for this search" in refined
        and f'/organisations/{extra["id"]}"' in refined.split('id="eligibility"')[1]
    )
    # share it: another browser opening the link sees the same draft consortium
    shared = client.post("/draft/share", data={"csrf_token": token(client)})
    assert shared.status_code == 302
    other = app.test_client().get(shared.headers["Location"]).get_data(as_text=True)
    assert f'/organisations/{extra["id"]}"' in other.split('id="eligibility"')[1]
    # and take it away as a file Excel reads (byte-order mark, roles, the Guide's verdict)
    data = client.get("/draft.csv").data
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data[3:].decode())))
    roles = {row[1]: row[0] for row in rows[1:] if len(row) > 1 and row[0] not in ("Missing", "Note")}
    assert roles[applicant["name"]] == "Applicant (coordinator)" and roles[partner["name"]] == "Partner"
    assert roles[extra["name"]] == "Partner (draft)" and any(
        row and row[0].startswith("Programme Guide") for row in rows
    )
    assert client.get("/draft.xlsx").status_code == 200


def test_proposals_differ_show_the_whole_consortium_and_are_adopted_in_one_click(app: Flask) -> None:
    client = app.test_client()
    items = client.get("/api/v1/organisations?newcomer=false").get_json()["items"]
    body = {"idea": "digital skills for adult learners", "applicant": items[0]["id"], "n": 3, "newcomer_share": 0.3}
    proposals = client.post("/api/v1/consortia", json=body).get_json()["consortia"]
    assert len(proposals) == 3
    added = [[m["organisation"]["id"] for m in c["members"]] for c in proposals]
    assert all(len(set(a) & set(b)) < min(len(a), len(b)) for i, a in enumerate(added) for b in added[i + 1 :])
    newcomers = [{m["organisation"]["id"] for m in c["members"] if m["organisation"]["newcomer"]} for c in proposals]
    assert not set.intersection(*newcomers)  # not the same newcomer in every proposal
    form = {
        "idea": body["idea"],
        "applicant": items[0]["name"],
        "action": "cooperation",
        "call_year": "2027",
        "newcomer_share": "30",
        "csrf_token": token(client),
    }
    client.post("/search", data=form)
    page = client.get("/consortia").get_data(as_text=True)
    first = page.split('id="proposal-1"')[1].split("</article>")[0]
    assert "in your consortium" in first and items[0]["name"] in first  # the whole consortium
    ids = re.findall(r'name="org_id" value="(\d+)"', first)
    r = client.post("/draft/adopt", data={"org_id": ids, "csrf_token": token(client)})
    assert r.status_code == 302
    panel = client.get("/results").get_data(as_text=True).split('id="eligibility"')[1]
    assert all(f'/organisations/{i}"' in panel for i in ids) and "Eligible for a" in panel


def test_an_applicant_not_yet_registered_gives_its_country_and_sector(app: Flask) -> None:
    client = app.test_client()
    body = {"idea": "green skills in construction apprenticeships", "k": 20, "network_k": 0}
    anonymous = client.post("/api/v1/recommendations", json=body).get_json()
    told = client.post(
        "/api/v1/recommendations", json={**body, "applicant_country": "NO", "applicant_sector": "vet"}
    ).get_json()
    # eligibility counts it as the coordinator: one member, one country so far
    assert told["eligibility"]["programme_countries"] == ["NO"] and not anonymous["eligibility"]["programme_countries"]
    # complementarity: nobody "adds" Norway or VET any more, and nobody from Norway adds a country
    for result in told["results"]:
        codes = {r["code"]: r for r in result["reasons"]}
        assert "adds_country" not in codes or codes["adds_country"]["country"] != "NO"
        assert "adds_sector" not in codes or codes["adds_sector"]["sector"] != "vet"
    # the form: an unknown name with a country and a sector is searched with, not refused
    form = {
        "idea": body["idea"],
        "applicant": "Bygg og Anlegg Fagskole Tromsø",
        "applicant_country": "NO",
        "applicant_sector": "vet",
        "action": "cooperation",
        "call_year": "2027",
        "newcomer_share": "30",
        "csrf_token": token(client),
    }
    r = client.post("/search", data=form)
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    panel = page.split('id="eligibility"')[1]
    assert "Bygg og Anlegg Fagskole Tromsø" in panel and "not registered" in panel and 'href="/register"' in panel
    refused = client.post("/search", data={**form, "applicant_country": "", "applicant_sector": ""})
    assert refused.status_code == 400 and "Give your country and sector" in refused.get_data(as_text=True)
