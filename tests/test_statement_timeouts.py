"""A slow statement is not an outage: a PostgreSQL statement that runs past its time limit
(here, one that waits behind another transaction's lock) is a counted attempt for the
worker, which isolates its batch, and a 504 for the API; only a store that cannot be
reached is retried uncounted (503 from the API)."""

from __future__ import annotations

import asyncio
import socket
import time

import asyncpg

from service.outages import is_outage, is_statement_timeout, postgres_answers
from service.postgres import db, users
from tests.conftest import paused

TIMEOUT_S = 2.0  # the statement time limit of the in-process pools below


def test_a_slow_statement_is_told_from_a_store_that_is_away(stack):
    async def scenario():
        pool = await asyncpg.create_pool(stack.settings.database_url, min_size=1, max_size=1, command_timeout=0.5)
        found: dict[str, BaseException] = {}
        try:
            try:
                await pool.fetchval("SELECT pg_sleep(5)")
            except TimeoutError as exc:
                found["slow"] = exc
            async with pool.acquire() as conn:
                try:
                    await conn.execute("SET statement_timeout = '100ms'; SELECT pg_sleep(5)")
                except asyncpg.QueryCanceledError as exc:
                    found["cancelled by the server"] = exc
                await conn.execute("RESET statement_timeout")
                try:  # the pool's only connection is taken: no connection in time is not a slow statement
                    async with pool.acquire(timeout=0.3):
                        pass
                except TimeoutError as exc:
                    found["no connection"] = exc
            answers = await postgres_answers(pool)
        finally:
            await pool.close()
        with socket.socket() as silent:  # a server that accepts connections and never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            try:
                await asyncpg.connect(f"postgresql://x@127.0.0.1:{silent.getsockname()[1]}/x", timeout=0.5)
            except TimeoutError as exc:
                found["no answer"] = exc
            closed = await asyncpg.create_pool(stack.settings.database_url, min_size=1, max_size=1)
            await closed.close()
        return found, answers, await postgres_answers(closed, timeout=1)

    found, answers, closed_answers = asyncio.run(scenario())
    assert set(found) == {"slow", "cancelled by the server", "no connection", "no answer"}
    for name in ("slow", "cancelled by the server"):
        assert is_statement_timeout(found[name]) and not is_outage(found[name]), name
    for name in ("no connection", "no answer"):
        assert is_outage(found[name]) and not is_statement_timeout(found[name]), name
    assert answers and not closed_answers


def test_a_statement_that_times_out_is_a_counted_attempt_and_its_batch_is_isolated(
    service, api, stack, user, monkeypatch
):
    """Three imported turns in one batch; another transaction holds the row of the second
    (a long transaction, a lock wait), so the batch's write runs past the time limit. The
    batch is retried one turn at a time: the other two are written, the slow one is
    retried with an attempt counted and an error that says what happened."""
    from service.runtime import Runtime
    from service.worker import Worker

    monkeypatch.setattr(db, "STATEMENT_TIMEOUT_S", TIMEOUT_S)

    async def scenario(ids: list[int]):
        rt = await Runtime.open(stack.settings, pool_size=4)
        blocker = await asyncpg.connect(stack.settings.database_url)
        try:
            worker = Worker(rt, worker_id=f"test-{user}")
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM messages WHERE id = $1 FOR UPDATE", ids[1])
            handled = await worker.step_live() + await worker.step_bulk()
            await tx.rollback()
            embedded = {
                r["id"]
                for r in await rt.pool.fetch(
                    "SELECT id FROM messages WHERE id = ANY($1::bigint[]) AND embedding IS NOT NULL", ids
                )
            }
            jobs = await rt.pool.fetch(
                "SELECT payload->>'message_id' AS mid, status, attempts, crashes, last_error FROM jobs "
                "WHERE user_identifier = $1 AND kind = 'ingest_message'",
                user,
            )
            return handled, embedded, jobs
        finally:
            await blocker.close()
            await rt.pool.execute("DELETE FROM worker_heartbeats WHERE worker_id = $1", f"test-{user}")
            await rt.close()

    with paused(service):
        r = api.post(
            f"/v1/sessions/{user}/messages",
            json={"messages": [{"role": "user", "content": f"Note {i}: I love walnut."} for i in range(3)]},
        )
        assert r.status_code == 201, r.text
        ids = r.json()["message_ids"]
        handled, embedded, jobs = asyncio.run(scenario(ids))
    assert handled == 3
    assert embedded == {ids[0], ids[2]}  # the batch-mates of the slow turn were written
    assert len(jobs) == 1 and int(jobs[0]["mid"]) == ids[1]
    job = jobs[0]
    assert (job["status"], job["attempts"], job["crashes"]) == ("queued", 1, 0)
    assert "ran past its time limit" in job["last_error"]
    # once the lock is gone the turn goes through, after its back-off (a guard, not a speed target)
    deadline = time.monotonic() + 120
    while stack.sql("SELECT 1 FROM jobs WHERE user_identifier = $1", user):
        assert time.monotonic() < deadline, f"the slow turn was never retried:\n{service.log_tail()}"
        time.sleep(0.5)
    assert stack.sql("SELECT embedding IS NOT NULL AS done FROM messages WHERE id = $1", ids[1])[0]["done"] is True


def test_a_request_whose_statement_times_out_is_a_504_not_a_500_or_503(stack, user, monkeypatch):
    """A request whose statement waits past the time limit (an erasure of the same customer
    holds its lock) is a 504 ``store_timeout``: not a 500, and not a 503 (PostgreSQL is not
    away; retrying at once will not help). Nothing of it is stored; the same request
    succeeds once the lock is gone."""
    import httpx

    from service.api.app import create_app

    monkeypatch.setattr(db, "STATEMENT_TIMEOUT_S", 1.0)
    body = {"messages": [{"role": "user", "content": "I love teak.", "created_at": "2024-05-01T10:00:00Z"}]}

    async def scenario():
        app = create_app(stack.settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
        ):
            blocker = await asyncpg.connect(stack.settings.database_url)
            try:
                async with blocker.transaction():
                    await users.lock_for_erasure(blocker, user)
                    slow = await http.post(f"/v1/sessions/{user}/messages", json=body)
                stored = await blocker.fetchval("SELECT count(*) FROM messages WHERE user_identifier = $1", user)
                again = await http.post(f"/v1/sessions/{user}/messages", json=body)
            finally:
                await blocker.close()
            return slow, stored, again

    slow, stored, again = asyncio.run(scenario())
    assert slow.status_code == 504, slow.text
    assert slow.json()["error"] == "store_timeout" and "time limit" in slow.json()["detail"]
    assert "retry-after" not in slow.headers
    assert stored == 0  # nothing half-done
    assert again.status_code == 201, again.text
