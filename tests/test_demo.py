"""The demo shop: deterministic, loaded through the real feeds, idempotent, and rich
enough that recommendations explain themselves on first start."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from devstack import demo
from service.catalog import Catalog


def test_the_population_is_deterministic_and_follows_rooms():
    now = datetime(2026, 6, 15, tzinfo=UTC)
    a = demo.population(Catalog.load(), customers=200, seed=7, now=now)
    b = demo.population(Catalog.load(), customers=200, seed=7, now=now)
    assert [(c.user, [o.lines for o in c.orders]) for c in a] == [(c.user, [o.lines for o in c.orders]) for c in b]
    other = demo.population(Catalog.load(), customers=200, seed=8, now=now)
    assert [c.orders for c in a] != [c.orders for c in other]
    catalog = Catalog.load()
    # every customer furnishes rooms: an anchor piece first, orders in time order, in the past
    for c in a:
        assert c.orders, c.user
        times = [o.placed_at for o in c.orders]
        assert times == sorted(times) and times[-1] < now
        first = catalog.product(c.orders[0].lines[0].sku)
        assert first is not None
    # believable co-purchases: pairs of products bought by several customers, not noise
    pairs: Counter[tuple[str, str]] = Counter()
    for c in a:
        skus = sorted({line.sku for o in c.orders for line in o.lines})
        pairs.update((x, y) for i, x in enumerate(skus) for y in skus[i + 1 :])
    assert pairs.most_common(1)[0][1] >= 8
    assert sum(len(c.orders) for c in a) >= 600


def test_loftmem_demo_loads_through_the_feeds_and_recommends(demo_shop, api, stack):
    people, out = demo_shop
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["customers"] == len(people)
    assert summary["orders"] == sum(len(c.orders) for c in people)
    demo_rows = stack.sql("SELECT count(*) AS n FROM orders WHERE user_identifier LIKE 'demo-%'")[0]["n"]
    assert demo_rows == summary["orders"]
    graph = stack.cypher(
        "MATCH (c:Customer)-[r:PURCHASED {source: 'order'}]->() WHERE c.user_id STARTS WITH 'demo-' "
        "RETURN count(r) AS n, count(DISTINCT c) AS customers"
    )[0]
    distinct_lines = sum(len({(o.order_id, x.sku) for x in o.lines}) for c in people for o in c.orders)
    assert graph == {"n": distinct_lines, "customers": len(people)}

    # a customer with purchases gets recommendations, none of what they own
    body = api.get("/memory/user/demo-0001/recommendations").json()
    assert body["cold_start"] is False and len(body["items"]) == 10
    owned = {x.sku for o in people[0].orders for x in o.lines}
    assert not owned & {i["sku"] for i in body["items"]}
    # co-purchase reasons, explained, wherever at least LOFT_MIN_CROWD (5) customers bought both
    said = [r for i in body["items"] for r in i["reasons"] if r["kind"] == "co_purchase"]
    assert all(r["customers"] >= 5 for r in said)
    user, mine, theirs, n = _strongest_pair_to_suggest(people)
    assert n >= 5
    body = api.get(f"/memory/user/{user}/recommendations").json()
    reasons = {i["sku"]: i["reasons"] for i in body["items"]}
    assert theirs in reasons, body
    co = [r for r in reasons[theirs] if r["kind"] == "co_purchase"]
    assert co and co[0]["customers"] >= 5 and co[0]["sku"] in mine


def _strongest_pair_to_suggest(people):
    """A customer who said nothing, owns one product of the shop's most bought pair and not
    the other: (customer, what they own, the other product, how many customers bought both)."""
    owned = {c.user: {x.sku for o in c.orders for x in o.lines} for c in people}
    pairs: Counter[tuple[str, str]] = Counter()
    for skus in owned.values():
        ordered = sorted(skus)
        pairs.update((a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    for (a, b), n in pairs.most_common():
        for c in people:
            if c.messages:
                continue
            if a in owned[c.user] and b not in owned[c.user]:
                return c.user, owned[c.user], b, n
            if b in owned[c.user] and a not in owned[c.user]:
                return c.user, owned[c.user], a, n
    raise AssertionError("no pair to suggest in the demo shop")


def test_loading_the_demo_again_adds_nothing(demo_shop, stack):
    before = stack.sql("SELECT count(*) AS n FROM orders")[0]["n"]
    done = stack.loftmem("demo", "--customers", "50", "--no-drain", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(done.stdout.strip().splitlines()[-1])
    assert again["orders_created"] == 0 and again["messages_created"] == 0
    assert stack.sql("SELECT count(*) AS n FROM orders")[0]["n"] == before
