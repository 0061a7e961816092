"""The chat page in a real browser: Debian's Chromium driven by Playwright (through
``executable_path``; Playwright never downloads a browser — `make browser` installs the
distribution's package). The flow of issue 9: Sarah introduces herself, asks for
sectionals, comes back in a new conversation, is remembered in the reply and in the
memory panel, sees recommendations with their reasons, and is forgotten.

Screenshots of every step go to ``build/test-output/screenshots/`` (printed at the end).
The suite's API runs without keys on localhost, so the page acts as admin there and
"Forget me" may erase.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

SHOTS = ROOT / "build" / "test-output" / "screenshots"
WAIT_MS = 30_000  # how long a step may take to appear (a wait, not a measured time)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on PATH: run `make browser` (installs Debian's chromium)")


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (which never fetches a browser of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_binary(), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser(request):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with launched_chromium() as chromium:
        yield chromium
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nbrowser test screenshots: {SHOTS}")


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1440, "height": 960}, base_url=service.base)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the page is self-contained: nothing may be fetched from anywhere but the API
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((service.base, "data:")) else outside.append(r.url))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not outside, f"the page fetched from outside the service: {outside}"


def shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def scroll_to(page, element_id: str) -> None:
    """Scroll a panel section into view for a screenshot. The page re-renders the memory
    panel a moment after each reply (extraction runs in the background), so the element is
    looked up when the scroll runs, not held from before."""
    page.evaluate("id => document.getElementById(id)?.scrollIntoView({block: 'start'})", element_id)


def say(page, text: str) -> None:
    """Send a message and wait for its reply (the composer is free again)."""
    before = page.locator(".turn.assistant").count()
    page.fill("#message", text)
    page.keyboard.press("Enter")
    page.locator(".turn.assistant").nth(before).wait_for(timeout=WAIT_MS)
    page.wait_for_function("() => !document.querySelector('#send').disabled", timeout=WAIT_MS)


def last_reply(page):
    return page.locator(".turn.assistant").last


def test_sarah_is_remembered_recommended_and_forgotten(page, service, api, user):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page.goto("/")
    # the customer switcher
    page.fill("#user-id", user)
    page.press("#user-id", "Enter")
    expect(page.locator("#memory-body")).to_contain_text("Nothing remembered yet")

    say(page, "Hi, my name is Sarah and I love modern furniture")
    reply = last_reply(page)
    expect(reply.locator(".msg")).to_contain_text("Sarah")
    assert int(reply.get_attribute("data-pieces")) > 1, "the reply did not arrive as a stream"
    # the service runs without an LLM, and the page says so (from /memory/status, or the reply)
    expect(page.locator("#llm-badge")).to_have_text(re.compile("LLM off"))
    shot(page, "1-introduced")

    say(page, "Show me sectionals")
    expect(last_reply(page).locator(".msg")).to_contain_text("Sectional")
    shot(page, "2-sectionals")
    service.wait_idle()

    # a new conversation: what LOFT remembers comes from the stores, not from this session
    page.click("#new-session")
    expect(page.locator(".turn")).to_have_count(0)
    say(page, "What do you remember about me?")
    remembered = last_reply(page).locator(".msg")
    expect(remembered).to_contain_text("Sarah")
    expect(remembered).to_contain_text("modern")
    expect(page.locator("#sessions button.session")).to_have_count(2)

    # the memory panel: profile, preference, graph, recommendations with their reasons
    page.click("#memory-refresh")
    panel = page.locator("#memory-body")
    expect(panel.locator(".mem-name")).to_have_text("Sarah")
    expect(panel.locator("#mem-preferences li.current")).to_contain_text(["modern"])
    expect(panel.locator("#mem-graph svg .g-node")).not_to_have_count(0)
    expect(panel.locator("#mem-graph svg")).to_contain_text("modern")
    reasons = panel.locator("#mem-recommendations .rec-reason")
    expect(reasons.first).to_be_visible()
    assert any("modern" in t for t in reasons.all_inner_texts()), reasons.all_inner_texts()
    expect(panel.locator("#mem-recommendations .rec-note")).to_contain_text("No purchases yet")
    shot(page, "3-remembered")
    scroll_to(page, "mem-graph")
    shot(page, "3b-graph")
    scroll_to(page, "mem-recommendations")
    shot(page, "4-recommendations")

    # "Forget me": asks first; cancelling keeps everything
    page.click("#forget-me")
    expect(page.locator("#forget-dialog")).to_be_visible()
    expect(page.locator("#forget-who")).to_have_text(user)
    shot(page, "5-forget-confirm")
    page.click("#forget-cancel")
    expect(page.locator("#forget-dialog")).to_be_hidden()
    assert api.get(f"/memory/user/{user}/summary").status_code == 200

    page.click("#forget-me")
    page.click("#forget-confirm")
    expect(page.locator("#forget-msg")).to_contain_text("Forgotten")
    expect(panel.locator("#memory-empty")).to_be_visible()
    expect(page.locator("#sessions")).to_contain_text("No conversations yet")
    page.click("#memory-refresh")
    expect(panel.locator("#memory-empty")).to_be_visible()
    shot(page, "6-forgotten")
    assert api.get(f"/memory/user/{user}/summary").status_code == 404


def test_forget_me_needs_an_admin_key(browser, stack, tmp_path):
    """Behind keys, a chat-role key may talk but not erase: the page says an admin key is needed."""
    from playwright.sync_api import expect

    from tests.conftest import Service

    chat_key = "chat-" + "k" * 24
    svc = Service(stack, worker=False, extra_env={"LOFT_API_KEYS": f"backend:chat:{chat_key}"})
    context = browser.new_context(viewport={"width": 1440, "height": 960}, base_url=svc.base)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("#auth-banner")).to_be_visible(timeout=WAIT_MS)  # no key yet: said plainly
        page.click("#open-settings")
        page.fill("#api-key", chat_key)
        page.click("#save-key")
        expect(page.locator("#auth-banner")).to_be_hidden(timeout=WAIT_MS)
        page.click("#forget-me")
        expect(page.locator("#forget-msg")).to_contain_text("needs an admin key", timeout=WAIT_MS)
        expect(page.locator("#forget-dialog")).to_be_hidden()
        shot(page, "7-forget-needs-admin")
    finally:
        context.close()
        svc.stop()


def test_the_memory_mode_is_shown_and_changed_on_the_page(page, service, api, user):
    """The customer sees their memory mode and lowers it: the page asks first, then the
    erasure runs and its receipt is shown; a turn afterwards is answered, not remembered."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page.goto("/")
    page.fill("#user-id", user)
    page.press("#user-id", "Enter")
    expect(page.locator("#memory-mode")).to_be_enabled()
    expect(page.locator("#memory-mode")).to_have_value("full")
    expect(page.locator("#memory-mode-hint")).to_contain_text("across conversations")
    say(page, "Hi, my name is Odalys and I love rattan chairs")
    service.wait_idle()
    page.click("#memory-refresh")
    expect(page.locator("#memory-body .mem-name")).to_have_text("Odalys")
    scroll_to(page, "memory-mode")
    shot(page, "7-memory-mode-full")

    # lowering asks first; cancelling keeps the mode and the memory
    page.select_option("#memory-mode", "off")
    expect(page.locator("#consent-dialog")).to_be_visible()
    expect(page.locator("#consent-to")).to_have_text("Don't remember me")
    shot(page, "8-memory-mode-confirm")
    page.click("#consent-cancel")
    expect(page.locator("#memory-mode")).to_have_value("full")
    assert api.get(f"/memory/user/{user}/consent").json()["mode"] == "full"

    page.select_option("#memory-mode", "off")
    page.click("#consent-confirm")
    expect(page.locator("#consent-msg")).to_contain_text("receipt")
    expect(page.locator("#memory-mode")).to_have_value("off")
    expect(page.locator("#memory-body #memory-empty")).to_be_visible()
    assert api.get(f"/memory/user/{user}/consent").json()["mode"] == "off"
    assert api.get(f"/memory/user/{user}/summary").status_code == 404

    say(page, "My name is Odalys, do you have rattan chairs?")
    service.wait_idle()
    assert api.get(f"/memory/user/{user}/summary").status_code == 404  # answered, not remembered
    page.reload()
    expect(page.locator("#memory-mode")).to_have_value("off")  # the page reads it back
    scroll_to(page, "memory-mode")
    shot(page, "9-memory-mode-off")
