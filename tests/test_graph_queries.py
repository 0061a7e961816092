"""The analyst queries in graph/queries/ run on the real graph and answer correctly."""

from __future__ import annotations

import re

from tests.conftest import ROOT

QUERIES = sorted((ROOT / "graph" / "queries").glob("*.cypher"))


def _run(stack, path, **params):
    text = re.sub(r"^//.*$", "", path.read_text(), flags=re.M).strip().rstrip(";")
    return stack.cypher(text, **params)


def test_every_analyst_query_runs(stack, service, api, user):
    assert len(QUERIES) >= 5
    for path in QUERIES:
        _run(stack, path, user_id=user, style="modern")  # raises on a syntax or schema error


def test_preference_history_and_style_queries_answer(stack, service, api, user):
    api.post("/v1/chat", json={"user_identifier": user, "message": "I love japandi furniture and I prefer oak."})
    service.wait_idle()
    api.post("/v1/chat", json={"user_identifier": user, "message": "Actually I prefer walnut now."})
    service.wait_idle()
    history = _run(stack, ROOT / "graph/queries/preference_history.cypher", user_id=user)
    materials = [(h["value"], h["current"]) for h in history if h["attribute"] == "material"]
    assert materials == [("oak", False), ("walnut", True)]
    fans = _run(stack, ROOT / "graph/queries/customers_by_style.cypher", style="japandi")
    assert user in [f["customer"] for f in fans]
