"""Neo4j's own limits on every transaction: the embedded server ends one that would hold
more memory than db.memory.transaction.max, a read the service or an analyst runs is ended
by its timeout, and both failures are what recommendations degrade on (never a 5xx)."""

from __future__ import annotations

import asyncio

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import Neo4jError

from devstack.limits import size_bytes, transaction_limits
from graph import analyst
from service.core import recommendations

HUNGRY = "UNWIND range(1, 50000000) AS x WITH collect(x) AS xs RETURN size(xs) AS n"
LONG = "UNWIND range(1, 2000000000) AS x WITH x WHERE x % 7 = 3 RETURN count(x) AS n"


def test_the_limits_follow_the_heap_unless_set():
    assert size_bytes("768m") == 768 * 2**20 and size_bytes("1g") == 2**30 and size_bytes("4096") == 4096
    conf = transaction_limits("1g", timeout_s=90)
    assert "db.transaction.timeout=90s" in conf
    assert "db.memory.transaction.max=256m" in conf and "dbms.memory.transaction.total.max=614m" in conf
    assert "db.memory.transaction.max=64m" in transaction_limits("1g", timeout_s=90, tx_memory="64m")
    with pytest.raises(ValueError):
        size_bytes("lots")


def _driver(stack):
    s = stack.settings
    return GraphDatabase.driver(
        s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password.get_secret_value()), notifications_min_severity="OFF"
    )


def test_the_server_has_the_limits(stack):
    rows = stack.cypher(
        "SHOW SETTINGS YIELD name, value WHERE name IN "
        "['db.transaction.timeout', 'db.memory.transaction.max', 'dbms.memory.transaction.total.max'] "
        "RETURN name, value ORDER BY name"
    )
    values = {r["name"]: r["value"] for r in rows}
    assert values["db.transaction.timeout"] != "0s" and values["db.memory.transaction.max"] not in ("0B", "0")
    assert values["dbms.memory.transaction.total.max"] not in ("0B", "0")


def test_a_transaction_over_its_memory_limit_fails_alone(stack):
    with _driver(stack) as driver:
        with pytest.raises(Neo4jError) as caught:
            driver.execute_query(HUNGRY)
        assert "Memory" in caught.value.code and recommendations.is_limit_error(caught.value)
        # the server is fine: the next transaction runs
        assert driver.execute_query("RETURN 1 AS one").records[0]["one"] == 1


def test_a_graph_read_is_ended_by_its_timeout(stack, monkeypatch):
    """graph/reads.py: every read carries a transaction timeout the server enforces."""
    from neo4j import AsyncGraphDatabase

    from graph import reads
    from graph.driver import GraphStore

    monkeypatch.setattr(reads, "READ_TIMEOUT_S", 0.5)

    async def scenario() -> None:
        s = stack.settings
        driver = AsyncGraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password.get_secret_value()))
        try:
            await reads._read(GraphStore(driver, s.neo4j_database), LONG)
        finally:
            await driver.close()

    with pytest.raises(Neo4jError) as caught:
        asyncio.run(scenario())
    assert "TimedOut" in caught.value.code and recommendations.is_limit_error(caught.value)


def test_an_analyst_query_runs_with_a_timeout(stack):
    from neo4j import AsyncGraphDatabase

    long = analyst.AnalystQuery("long", "How long?", "", {}, LONG)

    async def scenario() -> str:
        s = stack.settings
        driver = AsyncGraphDatabase.driver(s.neo4j_uri, auth=(s.neo4j_user, s.neo4j_password.get_secret_value()))
        try:
            found = await analyst.run(driver, analyst.load()[0], database=s.neo4j_database, timeout=30, min_customers=3)
            assert isinstance(found, list)
            try:
                await analyst.run(driver, long, database=s.neo4j_database, timeout=0.5)
            except Neo4jError as exc:
                return exc.code or ""
            return "finished"
        finally:
            await driver.close()

    assert "TimedOut" in asyncio.run(scenario())
