"""The analyst queries in graph/queries/ run on the demo shop and return the rows they should
(checked against the demo population computed in Python), and play as a Browser guide."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

from graph import analyst

QUERIES = {q.name: q for q in analyst.load()}
ASKED = ("bought_together", "customer_network", "customers_by_style", "interest_growth", "preference_changes")
ASKED += ("preference_history", "purchase_paths", "similar_customers", "co_purchases", "popular_categories")


def _params(stack, query, **override):
    """The file's own `:param` examples, evaluated by the server as Browser would."""
    out = {}
    for name, expression in query.params.items():
        out[name] = stack.cypher(f"RETURN {expression} AS v")[0]["v"]
    return out | override


def _run(stack, name, **override):
    query = QUERIES[name]
    return stack.cypher(query.cypher, **_params(stack, query, **override))


def test_every_query_is_documented_and_parameterised():
    assert set(ASKED) <= set(QUERIES)
    for q in QUERIES.values():
        assert "?" in q.question, f"{q.name}: head the file with the question it answers"
        used = set(q.params)
        assert used == set(re.findall(r"\$(\w+)", q.cypher)), q.name
        if used:
            assert q.parameters, f"{q.name}: explain the parameters"


def test_the_guide_has_a_runnable_slide_per_query():
    page = analyst.guide_html(list(QUERIES.values()))
    assert page.startswith('<article class="guide">')
    assert page.count("<slide") == len(QUERIES) + 1
    assert page.count('class="pre-scrollable code runnable"') >= len(QUERIES)


def test_customers_by_style(demo_shop, stack):
    people, _ = demo_shop
    said = [c for c in people if any("I love" in m.content for m in c.messages)]
    style = Counter(c.style for c in said).most_common(1)[0][0]
    expected = {c.user for c in said if c.style == style}
    rows = _run(stack, "customers_by_style", style=style)
    found = {r["customer"] for r in rows}
    assert len(expected & found) == min(len(expected), 100)
    assert all(r["since"] is not None for r in rows)


def test_purchase_paths_of_a_customer(demo_shop, stack):
    people, _ = demo_shop
    c = max(people, key=lambda c: len(c.orders))
    rows = _run(stack, "purchase_paths", user_id=c.user)
    assert sorted((r["order_id"], r["sku"]) for r in rows) == sorted(
        (o.order_id, x.sku) for o in c.orders for x in o.lines
    )
    times = [r["bought_at"] for r in rows]
    assert times == sorted(times) and all(r["source"] == "order" for r in rows)
    owned = {x.sku for o in c.orders for x in o.lines}
    leads = [x for r in rows for x in r["leads_to"]]
    assert leads and not owned & {x["sku"] for x in leads}
    assert all(x["co_buyers"] >= 1 for x in leads)


def _pairs(people):
    pairs: Counter[tuple[str, str]] = Counter()
    for c in people:
        skus = sorted({x.sku for o in c.orders for x in o.lines})
        pairs.update((a, b) for i, a in enumerate(skus) for b in skus[i + 1 :])
    return pairs


def test_products_bought_together(demo_shop, stack):
    people, _ = demo_shop
    pairs = _pairs(people)
    rows = _run(stack, "bought_together", min_customers=3)
    assert rows and all(r["customers"] >= 3 for r in rows)
    top = pairs.most_common(1)[0]
    by_pair = {(r["sku_a"], r["sku_b"]): r["customers"] for r in rows}
    assert by_pair.get(top[0], 0) >= top[1]  # other tests' customers may add to it, never take away
    assert rows[0]["customers"] >= top[1]


def test_preference_changes_and_history(demo_shop, stack):
    people, _ = demo_shop
    changed = {c.user for c in people if any("prefer walnut now" in m.content for m in c.messages)}
    assert changed
    since = datetime.now(UTC) - timedelta(days=800)
    rows = _run(stack, "preference_changes", since=since)
    oak_to_walnut = {r["customer"] for r in rows if (r["from_value"], r["to_value"]) == ("oak", "walnut")}
    assert changed <= oak_to_walnut
    one = sorted(changed)[0]
    history = _run(stack, "preference_history", user_id=one)
    likes = [h for h in history if h["relation"] == "PREFERS" and h["attribute"] == "material"]
    assert [(h["value"], h["current"]) for h in likes] == [
        ("oak", False),
        ("walnut", True),
    ]


def test_similar_customers(demo_shop, stack):
    people, _ = demo_shop
    owned = {c.user: {x.sku for o in c.orders for x in o.lines} for c in people}
    me = people[0].user
    best = max(
        (u for u in owned if u != me),
        key=lambda u: (len(owned[me] & owned[u]) / len(owned[me] | owned[u]), u),
    )
    rows = _run(stack, "similar_customers", user_id=me)
    assert rows and all(r["shared_products"] >= 1 for r in rows)
    assert best in [r["customer"] for r in rows]
    sims = [r["similarity"] for r in rows]
    assert sims == sorted(sims, reverse=True)


def test_categories_whose_interest_grew_this_month(demo_shop, stack):
    rows = _run(stack, "interest_growth")
    assert rows, "the demo has questions and purchases this month"
    assert all(r["this_month"] > r["last_month"] and r["growth"] == r["this_month"] - r["last_month"] for r in rows)


def test_neighbourhood_suggestions_and_popular_categories(demo_shop, stack):
    people, _ = demo_shop
    c = people[0]
    network = _run(stack, "customer_network", user_id=c.user)
    assert len(network) == 1
    assert len(network[0]["purchases"]) == len({x.sku for o in c.orders for x in o.lines})
    suggestions = _run(stack, "co_purchases", user_id=c.user)
    owned = {x.sku for o in c.orders for x in o.lines}
    assert suggestions and not owned & {r["sku"] for r in suggestions}
    assert _run(stack, "popular_categories")


def test_preference_history_and_style_follow_a_live_chat(stack, service, api, user):
    api.post("/v1/chat", json={"user_identifier": user, "message": "I love japandi furniture and I prefer oak."})
    service.wait_idle()
    api.post("/v1/chat", json={"user_identifier": user, "message": "Actually I prefer walnut now."})
    service.wait_idle()
    history = _run(stack, "preference_history", user_id=user)
    materials = [(h["value"], h["current"]) for h in history if h["attribute"] == "material"]
    assert materials == [("oak", False), ("walnut", True)]
    fans = _run(stack, "customers_by_style", style="japandi")
    assert user in [f["customer"] for f in fans]
