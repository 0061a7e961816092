"""The analysts' guide in a real Neo4j Browser, as a new analyst meets it: Debian's Chromium
(through Playwright's ``executable_path``, as in tests/test_browser.py) opens the Neo4j
Browser the embedded server serves, logs in, plays ``:play http://127.0.0.1:<api>/analysts/guide``,
clicks a slide's ``:param`` block and its query, runs them, and sees the rows the query
returns when the driver runs it.

The screenshot of the result is saved under the test's tmp dir; with
``LOFT_SCREENSHOTS=<dir>`` (relative to the repository) it is copied there as
``neo4j-browser-guide.png`` too (``LOFT_SCREENSHOTS=docs/img`` for the documentation).
"""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urlsplit

import pytest

from graph import analyst
from tests.conftest import ROOT
from tests.test_browser import launched_chromium

pytestmark = pytest.mark.browser

WAIT_MS = 60_000  # how long a step may take to appear (a wait, not a measured time)
SLIDE = "customers_by_style"
SHOT = "neo4j-browser-guide.png"


@pytest.fixture(scope="module")
def chromium():
    with launched_chromium() as browser:
        yield browser


def _received(frames: list[bytes | str], needle: bytes) -> bool:
    return any(needle in (f if isinstance(f, bytes) else f.encode()) for f in frames)


def test_the_guide_plays_in_neo4j_browser_and_its_query_runs(chromium, stack, service, demo_shop, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    bolt = urlsplit(stack.settings.neo4j_uri)
    guide_url = f"{service.base}/analysts/guide"
    query = next(q for q in analyst.load() if q.name == SLIDE)
    style = stack.cypher(f"RETURN {query.params['style']} AS v")[0]["v"]
    expected = [r["customer"] for r in stack.cypher(query.cypher, style=style)]
    assert expected, "the demo shop has customers who prefer the guide's example style"

    context = chromium.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    bolt_frames: list[bytes | str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: bolt_frames.append(payload)))
    try:
        page.goto(f"http://127.0.0.1:{stack.env['LOFT_NEO4J_HTTP_PORT']}/browser/")
        page.get_by_test_id("boltaddress").fill(f"{bolt.hostname}:{bolt.port}")
        page.get_by_test_id("username").fill(stack.settings.neo4j_user)
        page.get_by_test_id("password").fill(stack.settings.neo4j_password.get_secret_value())
        page.get_by_test_id("connect").click()
        # Browser reads the server's allow-list of guide hosts (dbms.clientConfig) after logging
        # in; a guide played before that is refused as if it did not exist
        waited_ms = 0
        while not _received(bolt_frames, b"remote_content_hostname") and waited_ms < WAIT_MS:
            page.wait_for_timeout(100)
            waited_ms += 100
        assert _received(bolt_frames, b"remote_content_hostname"), "Browser never read the server's settings"

        page.get_by_test_id("activeEditor").click()
        page.keyboard.type(f":play {guide_url}")
        page.keyboard.press("Enter")
        guide = page.get_by_test_id("frame").filter(
            has=page.get_by_test_id("frameCommand").filter(has_text=f":play {guide_url}")
        )
        expect(guide).to_contain_text("LOFT: questions for the customer graph")
        heading = query.name.replace("_", " ")
        for _ in range(len(analyst.load()) + 1):
            if guide.get_by_role("heading", name=heading).count():
                break
            guide.get_by_test_id("nextSlide").click()
        expect(guide.get_by_role("heading", name=heading)).to_be_visible()

        params, cypher = guide.locator("pre.runnable").all()
        params.click()  # a guide's block goes into the editor; Run runs it
        page.get_by_test_id("editor-Run").click()
        param_frame = page.get_by_test_id("frame").filter(has_text="Successfully set your parameters")
        expect(param_frame).to_contain_text(f'"style": "{style}"')
        cypher.click()
        page.get_by_test_id("editor-Run").click()
        result = page.get_by_test_id("frame").filter(has=page.get_by_test_id("frameCommand").filter(has_text="MATCH"))
        expect(result).to_contain_text(f"Started streaming {len(expected)} record")

        shown = re.findall(r'"([^"]+)"', result.locator("table").first.inner_text())
        customers = [v for v in shown if v in set(expected)]
        assert customers[:5] == expected[:5], (customers, expected)

        # the picture: the result above the guide it came from
        param_frame.get_by_title("Close").click()
        shot = tmp_path / SHOT
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 0
        if os.environ.get("LOFT_SCREENSHOTS"):
            target = ROOT / os.environ["LOFT_SCREENSHOTS"]
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target / SHOT)
        print(f"\nNeo4j Browser guide screenshot: {shot}")
    finally:
        context.close()


def test_the_guide_answers_browser_s_preflight(api):
    """Browser's guide fetch carries Cache-Control and Pragma, so Chromium asks first."""
    asked = api.options(
        "/analysts/guide",
        headers={
            "Origin": "http://127.0.0.1:7474",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "cache-control,pragma",
        },
    )
    assert asked.status_code == 204
    assert asked.headers["access-control-allow-origin"] == "*"
    assert {"cache-control", "pragma"} <= {
        h.strip().lower() for h in asked.headers["access-control-allow-headers"].split(",")
    }
    assert "GET" in asked.headers["access-control-allow-methods"]
    served = api.get("/analysts/guide", headers={"Origin": "http://127.0.0.1:7474"})
    assert served.status_code == 200 and "<slide" in served.text
    assert served.headers["access-control-allow-origin"] == "*"
