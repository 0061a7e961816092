"""Reads from a streaming replica (``DATABASE_READ_URL``): the context is served by the
replica once it has replayed every write made before the request, by the primary while it
lags, so a customer's own turn and a finished erasure are never missed; its lag is a metric.

The replica is real: ``pg_basebackup -R`` from the suite's primary, started with the same
embedded binaries (``devstack.postgres.Standby``), logging every statement it runs, so the
test can tell which server ran a context's search.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import asyncpg
import pytest

from tests.conftest import Service

# the first line of the context's one search statement (vectors/search.py: HYBRID)
SEARCH = "WITH terms AS (SELECT DISTINCT t.lexeme"


def _fetchval(dsn: str, query: str):
    async def run():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    return asyncio.run(run())


class Replica:
    def __init__(self, standby, url: str) -> None:
        self.standby = standby
        self.url = url

    def searches(self) -> int:
        """How many context searches the replica has run (its statement log)."""
        return (self.standby.pgdata / "server.log").read_text(errors="replace").count(SEARCH)

    def sql(self, query: str):
        return _fetchval(self.url, query)

    def wait(self, what: str, check, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica never {what} within {timeout:.0f} s")
            time.sleep(0.1)

    def caught_up(self, stack) -> None:
        """Wait until the replica has replayed what the primary has written so far."""
        target = _fetchval(stack.settings.database_url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        self.wait(
            "caught up with the primary",
            lambda: self.sql("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')") >= target,
        )

    def pause(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")
        self.wait("paused its replay", lambda: self.sql("SELECT pg_get_wal_replay_pause_state()") == "paused")

    def resume(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def replica(stack):
    from devstack.postgres import Standby

    if stack.stack.postgres is None:
        pytest.skip("the suite runs against an external PostgreSQL (DATABASE_URL): no embedded primary to copy")
    standby = Standby(stack.stack.postgres, stack.data_dir / "replica")
    url = standby.start("log_statement=all")
    found = Replica(standby, url)
    found.wait("accepted connections", lambda: _ready(url))
    assert found.sql("SELECT pg_is_in_recovery()") is True
    yield found
    standby.stop()


def _ready(url: str) -> bool:
    try:
        return _fetchval(url, "SELECT 1") == 1
    except (OSError, asyncpg.PostgresError):
        return False


@pytest.fixture(scope="module")
def reading(stack, replica):
    # a generous wait: the shared machine's load must not turn a replica read into a primary one
    svc = Service(stack, extra_env={"DATABASE_READ_URL": replica.url, "LOFT_REPLICA_WAIT_MS": "10000"})
    yield svc
    svc.stop()


def _metric(svc: Service, name: str, labels: str = "") -> float:
    text = svc.http.get("/metrics").text
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _chat(svc: Service, user: str, text: str, session: str | None = None) -> dict:
    r = svc.http.post("/v1/chat", json={"user_identifier": user, "message": text, "session_id": session})
    assert r.status_code == 200, r.text
    return r.json()


def _context(svc: Service, user: str, query: str, session: str | None = None) -> str:
    params = {"query": query} | ({"session_id": session} if session else {})
    r = svc.http.get(f"/memory/context/{user}", params=params)
    assert r.status_code == 200, r.text
    return r.json()["text"]


def test_the_context_is_served_by_a_replica_that_has_replayed_the_customer(stack, replica, reading):
    user = f"t-{uuid.uuid4().hex[:10]}"
    session = _chat(reading, user, "I am looking for a walnut bookcase for the study")["session_id"]
    reading.wait_idle()
    replica.caught_up(stack)
    before = replica.searches()
    served = _metric(reading, "loft_replica_reads_total", '{served="replica",why="replayed"}') + _metric(
        reading, "loft_replica_reads_total", '{served="replica",why="waited"}'
    )

    assert "walnut bookcase" in _context(reading, user, "bookcase", session)

    assert replica.searches() == before + 1  # the search ran on the replica
    after = _metric(reading, "loft_replica_reads_total", '{served="replica",why="replayed"}') + _metric(
        reading, "loft_replica_reads_total", '{served="replica",why="waited"}'
    )
    assert after == served + 1
    assert _metric(reading, "loft_store_up", '{store="replica"}') == 1.0


def test_a_lagging_replica_never_hides_a_customers_own_turn_or_shows_an_erased_one(stack, replica, reading):
    talker, erased = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"
    session = _chat(reading, talker, "hello, I need a new sofa")["session_id"]
    erased_session = _chat(reading, erased, "my favourite colour is turquoise velvet")["session_id"]
    reading.wait_idle()
    replica.caught_up(stack)
    replica.pause()
    try:
        # written on the primary while the replica replays nothing
        _chat(reading, talker, "the sofa must be emerald corduroy", session)
        receipt = reading.http.delete(f"/memory/user/{erased}")
        assert receipt.status_code == 200 and receipt.json()["status"] == "complete", receipt.text
        # the replica still holds the erased customer: a read it served would show them
        assert replica.sql(f"SELECT count(*) FROM messages WHERE user_identifier = '{erased}'") > 0
        assert _metric(reading, "loft_replica_lag_bytes") > 0
        lagging = _metric(reading, "loft_replica_reads_total", '{served="primary",why="lagging"}')
        before = replica.searches()

        assert "emerald corduroy" in _context(reading, talker, "which sofa?", session)
        assert "turquoise" not in _context(reading, erased, "favourite colour", erased_session)

        assert replica.searches() == before  # neither search ran on the replica
        assert _metric(reading, "loft_replica_reads_total", '{served="primary",why="lagging"}') == lagging + 2
    finally:
        replica.resume()
    replica.caught_up(stack)
    before = replica.searches()
    assert "emerald corduroy" in _context(reading, talker, "which sofa?", session)
    assert replica.searches() == before + 1  # replayed: the replica serves the customer again
    assert replica.sql(f"SELECT count(*) FROM messages WHERE user_identifier = '{erased}'") == 0
