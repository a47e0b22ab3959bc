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
    yield f"http://127.0.0.1:{server.server_port}"
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
    page.wait_for_url("**/results")
    assert page.locator(".result").count() >= 5
    assert page.locator(".reason").count() > 0
    panel = page.locator("#eligibility")
    assert "Not yet eligible" in panel.inner_text()
    before = panel.locator(".members li").count()
    missing_before = panel.locator(".missing").inner_text()
    page.screenshot(path=str(ARTIFACTS / "results.png"), full_page=True)
    page.locator(".result").first.get_by_role("button", name="Add to draft consortium").click()
    page.wait_for_load_state()
    panel = page.locator("#eligibility")
    assert panel.locator(".members li").count() == before + 1
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
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    path = info.value.path()
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("id,name,country") and len(text.splitlines()) > 1


def test_register_then_find_by_search(page, live_server) -> None:  # type: ignore[no-untyped-def]
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
    page.wait_for_url("**/results")
    assert "Aurora Beekeeping School Tromsø" in page.locator(".result-list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "registered-found.png"), full_page=True)
