"""Item-to-item "bought with" statistics, kept as orders are filed: counted per distinct
customer, from the order feed only, once per order and SKU however often an order is sent
or a job retried, and taken out again when a customer is erased."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from service.postgres import co_purchases
from tests.test_recommendations import make_products, order

# -- pure: what a batch of lines adds ------------------------------------------------------------


def _lines(user: str, order_id: str, *skus: str) -> list[dict]:
    return [{"user_identifier": user, "order_id": order_id, "line_no": n, "sku": s} for n, s in enumerate(skus, 1)]


def test_each_customer_counts_once_per_product_and_pair():
    lines = _lines("ann", "a1", "A", "B", "A") + _lines("ann", "a2", "B", "C") + _lines("bob", "b1", "A", "B")
    added = co_purchases.contribution({}, lines)
    assert added.buyers == {"A": 2, "B": 2, "C": 1}
    assert added.pairs == {("A", "B"): 2, ("A", "C"): 1, ("B", "C"): 1}  # ann and bob bought A and B
    assert added.lines == [("a1", 1), ("a1", 2), ("a2", 2), ("b1", 1), ("b1", 2)]  # the line that brought each in
    # the same lines again, with what is already counted: nothing
    again = co_purchases.contribution({"ann": {"A", "B", "C"}, "bob": {"A", "B"}}, lines)
    assert not again.buyers and not again.pairs and not again.lines


def test_a_customer_counts_their_first_products_only():
    lines = _lines("big", "o1", *[f"P{i}" for i in range(8)])
    added = co_purchases.contribution({}, lines, cap=5)
    assert sorted(added.buyers) == ["P0", "P1", "P2", "P3", "P4"]
    assert sum(added.pairs.values()) == 5 * 4 // 2
    taken = co_purchases.withdrawal({"P0", "P1", "P2", "P3", "P4"})
    assert taken.pairs == added.pairs and taken.buyers == added.buyers  # an erasure takes back exactly that


# -- on the real stores ----------------------------------------------------------------------------


def _pairs(stack, skus: list[str]) -> dict[tuple[str, str], int]:
    rows = stack.sql(
        "SELECT sku, other, customers FROM product_pairs WHERE sku = ANY($1) AND other = ANY($1) AND customers > 0",
        skus,
    )
    return {(r["sku"], r["other"]): r["customers"] for r in rows}


def _buyers(stack, skus: list[str]) -> dict[str, int]:
    rows = stack.sql("SELECT sku, customers FROM product_stats WHERE sku = ANY($1) AND customers > 0", skus)
    return {r["sku"]: r["customers"] for r in rows}


def _neighbours(stack, sku: str) -> dict[str, int]:
    rows = stack.sql("SELECT neighbour, customers FROM product_neighbours WHERE sku = $1", sku)
    return {r["neighbour"]: r["customers"] for r in rows}


def test_orders_build_the_statistics_once_however_often_they_arrive(service, api, stack):
    tag = uuid.uuid4().hex[:6].upper()
    sku = make_products(stack, tag, {k: {"category": "rug"} for k in ("A", "B", "C")})
    a, b, c = sku["A"], sku["B"], sku["C"]
    who = [f"st-{tag}-{i}" for i in range(5)]
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=9)
    for i, user in enumerate(who):  # five customers bought A and B; the first also C, in a later order
        order(api, user, f"{user}-1", [a, b, b], at=first)
        if i == 0:
            order(api, user, f"{user}-2", [c, a], at=first + timedelta(days=7))
    service.wait_idle()
    expected = {(a, b): 5, (a, c): 1, (b, c): 1}
    assert _pairs(stack, [a, b, c]) == expected
    assert _buyers(stack, [a, b, c]) == {a: 5, b: 5, c: 1}
    assert _neighbours(stack, a) == {b: 5}  # a pair of one customer is no neighbour (minimum support 5)

    # the feed sends an order again: a replay, counted nothing
    order(api, who[0], f"{who[0]}-1", [a, b, b], at=first)
    service.wait_idle()
    assert _pairs(stack, [a, b, c]) == expected

    # the worker's job runs again (a retry after a lost acknowledgement): nothing either
    async def file_again() -> None:
        from service import pipeline
        from service.runtime import Runtime

        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            await pipeline.ingest_orders(rt, [f"{u}-1" for u in who] + [f"{who[0]}-2"])
        finally:
            await rt.close()

    asyncio.run(file_again())
    assert _pairs(stack, [a, b, c]) == expected and _buyers(stack, [a, b, c]) == {a: 5, b: 5, c: 1}
    lines = stack.sql("SELECT count(*) AS n FROM order_lines WHERE user_identifier = ANY($1) AND counted", who)
    assert lines[0]["n"] == 5 * 2 + 1  # one line per customer and product


def test_an_erased_customer_leaves_the_statistics(service, api, stack):
    tag = uuid.uuid4().hex[:6].upper()
    sku = make_products(stack, tag, {k: {"category": "rug"} for k in ("A", "B", "C")})
    a, b, c = sku["A"], sku["B"], sku["C"]
    who = [f"er-{tag}-{i}" for i in range(5)]
    for user in who:
        order(api, user, f"{user}-1", [a, b])
    order(api, who[0], f"{who[0]}-2", [c])
    service.wait_idle()
    assert _pairs(stack, [a, b, c])[(a, b)] == 5 and _neighbours(stack, a) == {b: 5}

    r = api.delete(f"/memory/user/{who[0]}")
    assert r.status_code == 200 and r.json()["status"] == "complete", r.text
    assert _pairs(stack, [a, b, c]) == {(a, b): 4}  # their pairs with C are gone altogether
    assert _buyers(stack, [a, b, c]) == {a: 4, b: 4}
    assert _neighbours(stack, a) == {} and _neighbours(stack, b) == {}  # below the minimum support now
    assert stack.sql("SELECT count(*) AS n FROM order_lines WHERE user_identifier = $1", who[0])[0]["n"] == 0


def test_a_customers_seeds_are_bounded_recent_and_frequent(service, api, stack):
    """The statement that reads a customer's products chooses the seeds: half the most
    recently bought, half the most often bought, of the recent orders only."""
    tag = uuid.uuid4().hex[:6].upper()
    sku = make_products(stack, tag, {f"P{i}": {"category": "rug"} for i in range(10)})
    user = f"sd-{tag}"
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    for k in range(10):  # order k holds P{k}; P0 is bought again in orders 1-3, P1 in 2-3
        again = [sku["P0"]] * (1 <= k <= 3) + [sku["P1"]] * (2 <= k <= 3)
        order(api, user, f"{user}-{k}", [sku[f"P{k}"], *again], at=first + timedelta(days=k))
    service.wait_idle()

    async def read(recent_orders: int) -> co_purchases.Candidates:
        from service.runtime import Runtime

        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            return await co_purchases.for_customer(
                rt.pool,
                user,
                recent_orders=recent_orders,
                seeds=4,
                min_customers=5,
                neighbours=10,
                categories=2,
                per_category=3,
                popular=3,
            )
        finally:
            await rt.close()

    found = asyncio.run(read(200))
    assert {m.sku for m in found.mine if m.seed} == {sku["P9"], sku["P8"], sku["P0"], sku["P1"]}
    assert found.mine[0].sku == sku["P9"] and found.mine[0].ago == 0 and found.of_orders == 10
    assert {m.sku: m.orders for m in found.mine}[sku["P0"]] == 4
    five = asyncio.run(read(5))  # the five latest orders only: P0 and P1 are not read at all
    assert {m.sku for m in five.mine} == {sku[f"P{k}"] for k in range(5, 10)} and five.of_orders == 5
    assert {m.sku for m in five.mine if m.seed} == {sku["P9"], sku["P8"], sku["P7"], sku["P6"]}
