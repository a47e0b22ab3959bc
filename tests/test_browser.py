"""Browser tests: Playwright driving Debian's Chromium against the real service on localhost."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.browser
APPS: dict[str, object] = {}  # live server URL -> its app, to read the mails it "sent"


@pytest.fixture
def live_server(demo_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from tests.conftest import make_app

    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not installed (the README's test command installs Debian's chromium)"
        if os.environ.get("PARTNER_MATCH_REQUIRE_SHARED"):
            pytest.fail(message)
        pytest.skip(message)
    app = make_app(demo_env, TESTING=False, SECRET_KEY="browser-test", PARTNER_MATCH_RATE_LIMIT="10000/minute")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    APPS[url] = app
    yield url
    server.shutdown()


@pytest.fixture
def page(live_server):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        pg = context.new_page()
        pg.set_default_timeout(20_000)
        yield pg
        context.close()
        browser.close()


def experienced_name(base: str) -> str:
    import requests

    items = requests.get(f"{base}/api/v1/organisations?newcomer=false", timeout=10).json()["items"]
    return str(items[0]["name"])


def test_search_add_to_draft_changes_eligibility(page, live_server) -> None:  # type: ignore[no-untyped-def]
    name = experienced_name(live_server)
    page.goto(live_server + "/")
    page.get_by_label("Your project idea").fill("Digital skills and inclusion for vocational students")
    page.get_by_label("Your organisation").fill(name)
    page.get_by_label("Action").select_option("cooperation")
    page.get_by_role("button", name="Find partners").click()
    page.wait_for_url("**/results?s=*")
    assert page.locator(".result").count() >= 5
    assert page.locator(".reason").count() > 0
    panel = page.locator("#eligibility")
    assert "Not yet eligible" in panel.inner_text()
    before = panel.locator(".members li").count()
    missing_before = panel.locator(".missing").inner_text()
    page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)
    second = page.locator(".result").nth(1)
    second.scroll_into_view_if_needed()
    y = page.evaluate("window.scrollY")
    url = page.url
    second.locator(".draft-form button").click()  # no reload: the panel and the button change in place
    page.locator("#eligibility .members li").nth(before).wait_for()  # the CSP forbids wait_for_function's eval
    panel = page.locator("#eligibility")
    assert page.url == url and abs(page.evaluate("window.scrollY") - y) < 5  # the user's place kept
    assert second.locator(".draft-form button").inner_text() == "Remove from draft"
    assert page.evaluate("document.activeElement.textContent") == "Remove from draft"
    labels = page.locator(".result .draft-form button").evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))")
    assert len(set(labels)) == len(labels)  # every button says which organisation it adds
    assert panel.locator(".missing").count() == 0 or panel.locator(".missing").inner_text() != missing_before
    page.screenshot(path=str(ARTIFACTS / "results-with-draft.png"), full_page=True)
    page.get_by_role("link", name="See whole-consortium proposals").click()
    assert page.locator(".proposal").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "consortia.png"), full_page=True)


def test_newcomer_list_and_csv_download(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server + "/newcomers")
    page.get_by_label("Theme").fill("youth participation")
    page.get_by_role("button", name="Show").click()
    assert page.locator(".result").count() > 0
    page.screenshot(path=str(ARTIFACTS / "newcomers.png"), full_page=True)
    page.get_by_label("Theme").fill("digital skills")  # changed on screen, not submitted
    page.get_by_label("Countries").select_option(["EE", "LV"])
    with page.expect_download() as info:
        page.get_by_role("button", name="CSV with semicolons").click()
    assert info.value.suggested_filename == "newcomers-EE-LV-digital-skills.csv"  # the filters on screen
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    rows = [line.split(";") for line in text.splitlines()]
    assert rows[0][:2] == ["Name", "Country"] and {r[1] for r in rows[1:]} <= {"Estonia", "Latvia"} and len(rows) > 1


def sign_up_and_confirm(page, live_server, email: str) -> None:  # type: ignore[no-untyped-def]
    import re

    page.goto(live_server + "/register")  # not signed in: sent to sign in first
    page.wait_for_url("**/login*")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("E-mail", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("correct horse battery")
    page.get_by_label("I have read the privacy notice", exact=False).check()
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/account")
    assert "not confirmed yet" in page.content()
    body = APPS[live_server].extensions["partner_match"].accounts.mailer.sent[-1].body  # type: ignore[attr-defined]
    link = re.search(r"(/verify/\S+)", body)
    assert link
    page.goto(live_server + link.group(1))
    assert "confirmed" in page.locator(".flash").inner_text()


def test_register_then_find_by_search(page, live_server) -> None:  # type: ignore[no-untyped-def]
    sign_up_and_confirm(page, live_server, "bees@aurora.example")
    page.goto(live_server + "/register")
    page.get_by_label("Organisation name").fill("Aurora Beekeeping School Tromsø")
    page.get_by_label("Sector").select_option("vet")
    page.get_by_label("Country").select_option("NO")
    page.get_by_label("City").fill("Tromsø")
    page.get_by_label("What your organisation does").fill(
        "We train young beekeepers and run apprenticeships in arctic beekeeping and honey production."
    )
    page.get_by_role("button", name="Register").click()
    page.wait_for_url("**/organisations/*")
    assert "registered" in page.locator(".flash").inner_text()
    page.goto(live_server + "/")
    page.get_by_label("Your project idea").fill("apprenticeships in arctic beekeeping and honey production")
    page.get_by_label("Only these countries (optional)").select_option("NO")
    page.get_by_role("button", name="Find partners").click()
    page.wait_for_url("**/results?s=*")
    assert "Aurora Beekeeping School Tromsø" in page.locator(".result-list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "registered-found.png"), full_page=True)


def test_registering_a_taken_name_offers_to_claim_it(page, live_server) -> None:  # type: ignore[no-untyped-def]
    import json
    import urllib.request

    with urllib.request.urlopen(live_server + "/api/v1/organisations?newcomer=false") as r:
        taken = json.load(r)["items"][0]
    sign_up_and_confirm(page, live_server, "someone@elsewhere.example")
    page.goto(live_server + "/register")
    page.get_by_label("Organisation name").fill(taken["name"])
    page.get_by_label("Sector").select_option("enterprise")
    page.get_by_label("Country").select_option(taken["country"])
    page.get_by_label("What your organisation does").fill("We are a company that sells things to everyone.")
    page.get_by_role("button", name="Register").click()
    assert "is already in the registry" in page.content()
    page.screenshot(path=str(ARTIFACTS / "register-taken.png"), full_page=True)
    page.get_by_role("button", name="This is us: claim it").click()
    page.wait_for_url(f"**/organisations/{taken['id']}")
    assert "claim is recorded" in page.locator(".flash").inner_text()
    with urllib.request.urlopen(live_server + f"/api/v1/organisations/{taken['id']}") as r:
        after = json.load(r)
    assert after["sector"] == taken["sector"] and after["owned"] is False  # unchanged, waiting for an admin


def test_a_long_greek_idea_survives_the_round_trip(page, live_server) -> None:  # type: ignore[no-untyped-def]
    """4,900 characters of Greek (about 9 KB of UTF-8) would overflow a cookie; the search is kept server-side."""
    idea = ("Ψηφιακές δεξιότητες για εκπαιδευτικούς επαγγελματικής κατάρτισης στην Ελλάδα. " * 70)[:4900]
    page.goto(live_server + "/")
    page.get_by_label("Your project idea").fill(idea)
    assert page.locator("#idea-count").inner_text() == "4,900 of 5,000 characters"
    page.get_by_role("button", name="Find partners").click()
    page.wait_for_url("**/results?s=*")
    assert page.locator(".result").count() >= 5
    assert idea[:200] in page.content()
    shared = page.url
    page.context.clear_cookies()  # another browser opening the link
    page.goto(shared)
    assert page.locator(".result").count() >= 5 and idea[:200] in page.content()
    page.get_by_role("link", name="Edit search").click()  # every character back in the form
    assert page.get_by_label("Your project idea").input_value() == idea
    cookies = page.context.cookies()
    assert all(len(c["value"]) < 1000 for c in cookies)


def test_the_idea_counter_writes_numbers_as_the_page_language_does(page, live_server) -> None:  # type: ignore[no-untyped-def]
    """In Norwegian the counter says "4 900 av 5 000 tegn" (a space groups thousands there), not "4,900"."""
    page.goto(live_server + "/?lang=nb")
    page.locator("#idea").fill("x" * 4900)
    assert page.locator("#idea-count").inner_text() == "4\u00a0900 av 5\u00a0000 tegn"


def test_swagger_ui_renders_from_the_sites_own_files(page, live_server) -> None:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server) else None)
    page.goto(live_server + "/")
    page.get_by_role("link", name="API", exact=True).click()
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() >= 8 and "OAS 3.1" in page.content()
    assert errors == [] and outside == []  # nothing blocked by the CSP, nothing fetched from a CDN


def test_every_page_passes_axe_with_no_serious_violation(live_server) -> None:  # type: ignore[no-untyped-def]
    """axe-core on every page a user meets, the results and proposals of a real search included."""
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    axe = Axe()
    found: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        context = browser.new_context(bypass_csp=True)  # axe runs as an injected script
        page = context.new_page()
        page.goto(live_server + "/")
        page.get_by_label("Your project idea").fill("Digital skills and inclusion for vocational students")
        page.get_by_label("Your organisation").fill(experienced_name(live_server))
        page.get_by_role("button", name="Find partners").click()
        page.wait_for_url("**/results?s=*")
        org = page.locator(".result h3 a").first.get_attribute("href")
        paths = [
            "/",
            page.url.removeprefix(live_server),
            "/consortia",
            "/newcomers",
            "/newcomers?theme=youth&country=EE&country=LV",
            str(org),
            "/login",
            "/signup",
            "/reset",
            "/privacy",
            "/api/docs",
            "/no-such-page",
        ]
        for path in paths:
            page.goto(live_server + path)
            page.wait_for_load_state("networkidle")
            results = axe.run(page)
            serious = [
                f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:8]}"
                for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            if serious:
                found[path] = serious
        browser.close()
    assert found == {}


def test_a_coordinator_refines_adopts_and_shares_a_consortium(page, live_server) -> None:  # type: ignore[no-untyped-def]
    """The whole walk: search, add, edit the search (everything kept), proposals adopted in one click,
    a link that shows another browser the same consortium; and the results fit a phone's width."""
    name = experienced_name(live_server)
    page.goto(live_server + "/")
    page.get_by_label("Your project idea").fill("Digital skills and inclusion for vocational students")
    page.get_by_label("Your organisation").fill(name)
    page.get_by_label("Leave out these countries (optional)").select_option(["TR"])
    page.get_by_role("button", name="Find partners").click()
    page.wait_for_url("**/results?s=*")
    first = page.locator(".group .result").first
    added = first.locator("h3 a").inner_text()
    first.locator(".draft-form button").click()
    page.locator("#eligibility .members li", has_text=added).wait_for()
    page.get_by_role("link", name="Edit search").click()
    assert page.get_by_label("Your project idea").input_value().startswith("Digital skills")
    assert page.get_by_label("Your organisation").input_value() == name
    assert page.get_by_label("Leave out these countries (optional)").evaluate(
        "s => Array.from(s.selectedOptions).map(o => o.value)"
    ) == ["TR"]
    page.get_by_label("Your project idea").fill("Digital skills for adult learners in rural areas")
    page.get_by_role("button", name="Find partners").click()
    page.wait_for_url("**/results?s=*")
    assert "is kept for this search" in page.locator(".flash").inner_text()
    assert page.locator("#eligibility .members li", has_text=added).count() == 1  # the draft survived
    page.get_by_role("link", name="See whole-consortium proposals").click()
    proposal = page.locator(".proposal").first
    proposed = proposal.locator(".member-added a").all_inner_texts()
    proposal.get_by_role("button", name="Adopt proposal 1 into your draft consortium").click()
    for org in proposed:
        page.locator("#eligibility .members li", has_text=org).first.wait_for()
    page.get_by_role("button", name="Make a link to share it").click()
    shared = page.url
    other = page.context.browser.new_context(viewport={"width": 375, "height": 800})  # type: ignore[union-attr]
    try:
        viewer = other.new_page()
        viewer.goto(shared)
        panel = viewer.locator("#eligibility").inner_text()
        assert added in panel and all(org in panel for org in proposed)
        overflow = viewer.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1  # nothing wider than a phone
        # a 300-character name (word-free, as pasted from a database) wraps too
        import requests

        from tests.conftest import bearer

        long_name = "Kunnskapssenteret" + "X" * 283
        body = {"name": long_name, "country": "IS", "sector": "youth", "description": "A youth centre in Reykjavik."}
        made = requests.post(
            f"{live_server}/api/v1/organisations", json=body, headers=bearer(APPS[live_server]), timeout=30
        )  # type: ignore[arg-type]
        assert made.status_code == 201, made.text
        for path in (f"/organisations/{made.json()['id']}", "/newcomers?country=IS"):
            viewer.goto(live_server + path)
            assert long_name in viewer.content()
            assert viewer.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1, path
    finally:
        other.close()
