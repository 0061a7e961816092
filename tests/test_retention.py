"""Retention: data past its days goes from PostgreSQL and Neo4j together (graph facts with
the messages and orders they came from), in fenced batches, counted in a sweep log;
everything younger, and every other customer, is untouched."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from tests.test_erasure import _runtime

OLD_WORDS = ["Grobnitzia", "Vexhallow", "Plumtrieve"]
NEW_WORDS = ["Zantimore", "Quorrelby", "Thistlecombe"]
YEAR = 365


def _import(api, user: str, words: list[str], at: datetime) -> None:
    relative, pet, city = words
    r = api.post(
        f"/v1/sessions/{user}/messages",
        json={
            "messages": [
                {
                    "role": "user",
                    "content": f"My sister {relative} and our dog {pet} visit us in {city} every month.",
                    "created_at": at.isoformat(),
                },
                {"role": "assistant", "content": f"How lovely, {relative} sounds fun!", "created_at": at.isoformat()},
            ]
        },
    )
    assert r.status_code == 201, r.text


def _order(api, user: str, order_id: str, at: datetime) -> None:
    r = api.post(
        f"/v1/customers/{user}/orders",
        json={
            "order_id": order_id,
            "placed_at": at.isoformat(),
            "lines": [{"sku": "LOFT-SOF-0001", "qty": 1, "unit_price": 1129.0}],
        },
    )
    assert r.status_code == 201, r.text


def _manifest(api, user: str) -> dict:
    with api.stream("GET", f"/memory/user/{user}/export") as r:
        assert r.status_code == 200
        return json.loads(r.read())["manifest"]


def test_a_backdated_import_is_swept_from_both_stores_and_the_rest_is_untouched(service, api, stack, user):
    from service.core.retention import Policy, sweep
    from service.metrics import PRIVACY_REMOVED

    other = f"o-{user}"
    old, now = datetime(2021, 3, 4, 10, 0, tzinfo=UTC), datetime.now(UTC) - timedelta(minutes=5)
    _import(api, user, OLD_WORDS, old)
    _order(api, user, f"old-{user}", old)
    _import(api, user, NEW_WORDS, now)
    _order(api, user, f"new-{user}", now)
    _import(api, other, ["Ombrevane", "Kettlewick", "Sorrowgate"], now)
    service.wait_idle()
    assert stack.scan_postgres(OLD_WORDS) and stack.scan_neo4j(OLD_WORDS)
    purchases = "MATCH (:Customer {user_id: $u})-[r:PURCHASED]->() RETURN r.order_id AS o ORDER BY o"
    assert [r["o"] for r in stack.cypher(purchases, u=user)] == [f"new-{user}", f"old-{user}"]
    before_mine, before_other = _manifest(api, user), _manifest(api, other)
    version = stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"]
    removed_before = PRIVACY_REMOVED.labels("retention_messages")._value.get()

    async def run() -> dict:
        rt = await _runtime(stack)
        try:
            return await sweep(rt, Policy(YEAR, YEAR, YEAR, YEAR), customers=[user, other])
        finally:
            await rt.close()

    done = asyncio.run(run())
    counts = done.counts
    assert done.customers == 1  # only the customer with expired data was visited
    assert counts["messages"] == 2 and counts["orders"] == 1 and counts["order_lines"] == 1
    assert counts["graph_nodes"] >= 2 and counts["graph_purchases"] == 1
    assert PRIVACY_REMOVED.labels("retention_messages")._value.get() - removed_before == 2

    # the old history is gone from every table and the whole graph
    assert stack.scan_postgres(OLD_WORDS) == []
    assert stack.scan_neo4j(OLD_WORDS) == []
    assert [r["o"] for r in stack.cypher(purchases, u=user)] == [f"new-{user}"]
    # everything younger stays, and the other customer is untouched
    assert stack.scan_postgres(NEW_WORDS) and stack.scan_neo4j(NEW_WORDS)
    after_mine = _manifest(api, user)
    assert after_mine["postgres"]["messages"] == before_mine["postgres"]["messages"] - 2
    assert after_mine["postgres"]["orders"] == 1 and after_mine["postgres"]["order_lines"] == 1
    assert after_mine["neo4j"]["labels"]["Customer"] == 1
    assert _manifest(api, other) == before_other
    # the customer's graph moved on (caches and snapshots re-read it)
    assert stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"] > version

    (log,) = stack.sql(
        "SELECT policy, customers, counts, error, finished_at FROM retention_sweeps WHERE id = $1", done.sweep_id
    )
    assert json.loads(log["counts"]) == counts and log["customers"] == 1 and log["error"] is None
    assert json.loads(log["policy"]) == {
        "messages_days": YEAR,
        "memories_days": YEAR,
        "summaries_days": YEAR,
        "orders_days": YEAR,
    }
    assert log["finished_at"] is not None


def test_unset_kinds_are_kept_and_a_sweep_without_settings_does_nothing(service, api, stack, user):
    from service.core.retention import Policy, Swept, sweep

    old = datetime(2021, 3, 4, 10, 0, tzinfo=UTC)
    _import(api, user, OLD_WORDS, old)
    _order(api, user, f"old-{user}", old)
    service.wait_idle()
    before = _manifest(api, user)

    async def run(policy: Policy) -> Swept:
        rt = await _runtime(stack)
        try:
            return await sweep(rt, policy, customers=[user])
        finally:
            await rt.close()

    assert asyncio.run(run(Policy())) == Swept(None, 0, {})
    only_orders = asyncio.run(run(Policy(orders_days=YEAR)))
    assert only_orders.counts == {"graph_purchases": 1, "order_lines": 1, "orders": 1}
    after = _manifest(api, user)
    assert after["postgres"]["messages"] == before["postgres"]["messages"]
    assert after["neo4j"]["nodes"] == before["neo4j"]["nodes"]
    assert stack.scan_neo4j(OLD_WORDS)


def test_a_sweep_is_due_once_per_interval_and_only_when_configured(stack):
    from service.core.retention import due, sweep
    from service.runtime import Runtime

    async def run() -> None:
        hourly = stack.settings.model_copy(update={"retention_orders_days": 36500, "retention_sweep_s": 3600.0})
        every_second = hourly.model_copy(update={"retention_sweep_s": 1.0})
        runtimes = [await Runtime.open(s, pool_size=2) for s in (stack.settings, hourly, every_second)]
        plain, rt_hourly, rt_second = runtimes
        try:
            assert not await due(plain)  # nothing configured: never
            done = await sweep(rt_hourly, customers=[])
            assert done.customers == 0 and done.counts == {}
            assert not await due(rt_hourly)  # one sweep per interval, across workers
            await asyncio.sleep(1.2)
            assert await due(rt_second)
        finally:
            for rt in runtimes:
                await rt.close()

    asyncio.run(run())
