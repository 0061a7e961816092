"""The ingestion worker: claims queued jobs in batches and runs the pipeline.

Run it as its own process (``loftmem worker``; ``make run`` starts one) or in-process
(:meth:`Worker.drain`, used by tests and benchmarks). Several workers may run at once:
jobs are claimed with ``SKIP LOCKED`` (see :mod:`service.postgres.queue` for fairness, leases and
fencing). A running worker runs three loops side by side, so a live chat turn never
waits for an import batch: *system* (unfinished erasures; a job of any kind whose
previous worker died holding it, run alone so it cannot take a batch down with it twice;
parked jobs revived by a slow sweep; session summaries that are due), *live* (batches of
chat turns) and *bulk* (batches of imported messages). They share the process's two
cores; the embedder runs one batch at a time.

What the worker tells PostgreSQL and PostgreSQL cannot hear (an outage) is kept and sent
when it answers again: completions first, so a job whose work is done is never given
back and re-run, then give-backs and retries, then claims whose answer was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import asyncpg

from graph import writes as graph_writes
from service import metrics, pipeline
from service.core import consent, erasure, retention, summaries
from service.outages import is_outage, is_statement_timeout, postgres_answers
from service.postgres import orders as orders_module
from service.postgres import queue
from service.runtime import Runtime
from service.settings import Settings
from vectors.pg import Conn

log = logging.getLogger("loft.worker")

IDLE_POLL_S = 0.25
SUMMARIES_PER_STEP = 16  # claimed and embedded together
BATCHES_PER_STEP = 8  # message batches per lane before the worker looks at its other work
IN_FLIGHT = 2  # batches of a lane prepared or written at once
JOB_TIMEOUT_S = 600.0  # a batch of 64 messages through a slow LLM fits well within this
RENEW_RETRY_S = 1.0  # a failed lease renewal is tried again this soon (PostgreSQL may be back)
SWEEP_EVERY_S = 60.0  # how often a worker looks for parked jobs to revive
# kinds whose job, once it was held by a worker that died, runs alone
ALONE_KINDS = ["ingest_message", "summarize_session", orders_module.JOB_KIND, "erase_user"]
T = TypeVar("T")


class Worker:
    def __init__(self, rt: Runtime, *, worker_id: str | None = None) -> None:
        self.rt = rt
        # a restarted process is another worker (its predecessor's jobs are judged as a crash)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch = rt.settings.worker_batch
        self.lease = timedelta(seconds=rt.settings.job_lease_s)
        # jobs to give back or retry when even that failed (PostgreSQL away): sent as soon
        # as it answers again, else they would wait for their lease to run out
        self._unreleased: list[tuple[queue.Job, str, bool]] = []  # (job, error, counts an attempt)
        self._uncompleted: list[queue.Job] = []  # done, but PostgreSQL went away before it heard
        # jobs claimed and not settled yet (completed, retried or given back); the rest of
        # what this worker holds in the table is claims whose answer was lost
        self._holding: set[int] = set()
        self._claiming = asyncio.Lock()  # a claim registers its jobs before orphans are looked for
        self._beaten = -float("inf")  # when this worker last beat (monotonic)
        self._swept = -float("inf")
        self.outage_seen = False  # a loop met an outage: look for claims whose answer was lost

    async def step(self) -> int:
        """One round of every kind of work, in order; returns how many jobs it handled
        (``drain`` and tests use it; a running worker runs the three loops side by side)."""
        return await self.step_system() + await self.step_live() + await self.step_bulk()

    async def store_away(self, exc: BaseException) -> bool:
        """An outage (give the work back, uncounted) rather than a bad job (a counted
        attempt). A statement that ran past its time limit is a slow statement, unless
        PostgreSQL has stopped answering altogether."""
        if is_outage(exc):
            return True
        return is_statement_timeout(exc) and isinstance(exc, TimeoutError) and not await postgres_answers(self.rt.pool)

    async def _give_back(self, job: queue.Job, error: str) -> None:
        """Put a job back without using an attempt (a store is away)."""
        await self._put_back(job, error, counts=False)

    async def _retry(self, job: queue.Job, error: str) -> None:
        """Put a failed job back with back-off (an attempt used; parked after the last)."""
        await self._put_back(job, error, counts=True)

    async def _put_back(self, job: queue.Job, error: str, *, counts: bool) -> None:
        try:
            status = await queue.retry(self.rt.pool, self.worker_id, job, error, counts=counts)
        except Exception as exc:
            if not is_outage(exc):
                self._holding.discard(job.id)
                raise
            self.outage_seen = True
            self._unreleased.append((job, error, counts))  # still ours: sent once PostgreSQL answers
            return
        self._holding.discard(job.id)
        if status is not None:
            outcome = "deferred" if not counts else "failed" if status == "failed" else "retried"
            metrics.observe_jobs(job.kind, outcome)

    async def _well_formed(self, jobs: list[queue.Job], key: str, kind: type) -> list[queue.Job]:
        """The jobs whose payload names what they are about; any other fails on its own (a
        counted attempt, parked after the last) instead of breaking its batch's handling."""
        ok = []
        for job in jobs:
            value = job.payload.get(key)
            if isinstance(value, kind) and not isinstance(value, bool):
                ok.append(job)
            else:
                log.error("job %s (%s) is malformed: its payload has no %s", job.id, job.kind, key)
                await self._retry(job, f"a malformed job: its payload has no {key}")
        return ok

    async def _settle(self) -> None:
        """After an outage, tell PostgreSQL what it could not hear, in this order:
        completions (a job whose work is done must never be given back and re-run), then
        give-backs and retries, then the claims whose answer was lost (orphans)."""
        done, self._uncompleted = self._uncompleted, []
        await self._complete(done)
        unsent, self._unreleased = self._unreleased, []
        for job, error, counts in unsent:
            await self._put_back(job, error, counts=counts)
        if self.outage_seen and not (self._uncompleted or self._unreleased):
            async with self._claiming:  # no claim half-registered meanwhile
                released = await queue.release_orphans(self.rt.pool, self.worker_id, self._holding)
            self.outage_seen = False
            if released:
                log.info("gave back %d jobs whose claim was lost in the outage", released)

    async def _complete(self, jobs: list[queue.Job]) -> None:
        """Finish jobs whose work is done. If PostgreSQL cannot hear it now (an outage, or a
        deadlock with a transaction re-arming the same summaries: PostgreSQL aborts one of
        the two), they are completed at the next step, not left running until their lease
        runs out."""
        if not jobs:
            return
        try:
            await queue.complete(self.rt.pool, self.worker_id, jobs)
        except Exception as exc:
            rolled_back = isinstance(exc, asyncpg.exceptions.TransactionRollbackError)
            if not (rolled_back or is_outage(exc)):
                self._holding -= {j.id for j in jobs}
                raise
            if rolled_back:
                log.warning("completing %d jobs was rolled back (%s); completing them at the next step", len(jobs), exc)
            else:
                self.outage_seen = True
            self._uncompleted += jobs
        else:
            self._holding -= {j.id for j in jobs}
            for job in jobs:
                metrics.observe_jobs(job.kind, "done")

    async def _sweep_if_due(self) -> None:
        if time.monotonic() - self._swept < SWEEP_EVERY_S:
            return
        self._swept = time.monotonic()
        for kind in await queue.revive_failed(self.rt.pool):
            metrics.observe_jobs(kind, "revived")
        await self._remove_idle_sessions()
        await self._retain()

    async def _retain(self) -> None:
        """Retention's sweep, when one is due (every LOFT_RETENTION_SWEEP_S across workers)."""
        try:
            if await retention.due(self.rt):
                await retention.sweep(self.rt)
        except Exception as exc:  # logged and recorded by the sweep; the next one goes on
            log.warning("retention sweep failed (%s); the next sweep goes on", type(exc).__name__)

    async def _remove_idle_sessions(self) -> None:
        """Sessions held under memory mode 'session' go once idle (turns with them)."""
        idle_s = max(self.rt.settings.summary_idle_s, consent.MIN_IDLE_S)
        try:
            removed = await consent.remove_idle_sessions(self.rt, idle_s)
        except Exception as exc:  # a deadlock with an erasure, an outage: the next sweep tries again
            log.warning("removing idle 'session'-mode sessions failed (%s); the next sweep tries again", exc)
            return
        if removed:
            metrics.PRIVACY_REMOVED.labels("idle_sessions").inc(removed)
            log.info("removed %d idle session(s) held under memory mode 'session'", removed)

    async def step_system(self) -> int:
        """Unfinished erasures, a job whose last worker died (alone), summaries that are due."""
        if self._unreleased or self._uncompleted or self.outage_seen:
            await self._settle()
        await self._sweep_if_due()
        handled = 0
        for job in await self._claim(4, "erase_user"):
            await self._erase(job)
            self._holding.discard(job.id)  # settled by the erasure (done, retried or given back)
            handled += 1
        crashed = await self._claim_crashed()
        if crashed:
            log.warning(
                "job %s (%s) was held by a worker that stopped; running it alone", crashed[0].id, crashed[0].kind
            )
            await self._run_alone(crashed[0])
            handled += 1
        due = await self._claim(SUMMARIES_PER_STEP, "summarize_session")
        if due:
            await self._summarize(due)
            handled += len(due)
        return handled

    async def _run_alone(self, job: queue.Job) -> None:
        if job.kind == "ingest_message":
            await self._ingest([job])
        elif job.kind == "summarize_session":
            await self._summarize([job])
        elif job.kind == orders_module.JOB_KIND:
            await self._ingest_orders([job])
        else:
            await self._erase(job)
            self._holding.discard(job.id)

    async def _summarize(self, jobs: list[queue.Job]) -> None:
        """Session summaries, a few at a time (their embeddings in one model call); each job
        completes or is retried on its own outcome."""
        jobs = await self._well_formed(jobs, "session_id", str)
        if not jobs:
            return
        try:
            outcomes = await self._held(
                jobs, summaries.summarize_sessions(self.rt, [j.payload["session_id"] for j in jobs])
            )
        except Exception as exc:  # the batch as a whole (its model call): every job shares the outcome
            outcomes = [exc] * len(jobs)
        done = []
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                done.append(job)
            elif await self.store_away(outcome):
                self.outage_seen = True
                await self._give_back(job, f"store unavailable: {type(outcome).__name__}")
            else:
                log.error("job %s (%s) failed: %r", job.id, job.kind, outcome)
                await self._retry(job, _error_text(outcome))
        await self._complete(done)

    async def _claim(self, limit: int, kind: str, *, lane: queue.Lane = "live") -> list[queue.Job]:
        return await self._registered(
            lambda conn: queue.claim(conn, self.worker_id, limit, kind, lease=self.lease, lane=lane)
        )

    async def _claim_crashed(self) -> list[queue.Job]:
        """A job of any kind whose last worker died holding it (to run it alone)."""
        return await self._registered(
            lambda conn: queue.claim_crashed(conn, self.worker_id, ALONE_KINDS, lease=self.lease)
        )

    async def _registered(self, claiming: Callable[[Conn], Awaitable[list[queue.Job]]]) -> list[queue.Job]:
        """Claim, with this worker's own business first: what PostgreSQL has not heard yet
        (completions first, then give-backs); its beat, every sixth of a lease; the jobs
        whose lease ran out, judged a crash or an outage."""
        if self._unreleased or self._uncompleted:
            await self._settle()
        async with self.rt.pool.acquire() as conn:
            if time.monotonic() - self._beaten >= queue.beat_every(self.lease).total_seconds():
                await queue.beat(conn, self.worker_id, self.lease)
                self._beaten = time.monotonic()
            for expired in await queue.requeue_expired(conn, self.lease):
                outcome = "parked" if expired.parked else "crashed" if expired.crashed else "expired"
                metrics.observe_jobs(expired.kind, outcome)
            async with self._claiming:
                jobs = await claiming(conn)
                self._holding |= {j.id for j in jobs}  # ours from now on, until settled
        return jobs

    async def step_live(self) -> int:
        """Batches of live chat turns."""
        return await self._ingest_lane("live")

    async def step_bulk(self) -> int:
        """Batches of imported messages, then a batch of orders from the order feed."""
        handled = await self._ingest_lane("bulk")
        orders = await self._claim(self.batch, orders_module.JOB_KIND, lane="bulk")
        if orders:
            await self._ingest_orders(orders)
        return handled + len(orders)

    async def _ingest_lane(self, lane: queue.Lane) -> int:
        """Up to ``BATCHES_PER_STEP`` batches of a lane, two in flight: while one batch is
        written (PostgreSQL, then Neo4j: mostly waiting on the stores), the next one is
        claimed and prepared (embedding, extraction), so the embedder is not idle during the
        writes. Writes stay in claim order: a batch commits only after the one before it
        has finished (whatever its outcome)."""
        handled = 0
        tasks: list[asyncio.Task[None]] = []
        try:
            for _ in range(BATCHES_PER_STEP):
                if len(tasks) >= IN_FLIGHT:
                    await asyncio.wait([tasks[-IN_FLIGHT]])
                jobs = await self._claim(self.batch, "ingest_message", lane=lane)
                if not jobs:
                    break
                handled += len(jobs)
                tasks.append(asyncio.create_task(self._ingest(jobs, after=tasks[-1] if tasks else None)))
        except asyncio.CancelledError:
            for task in tasks:  # a cancelled worker (a drain's timeout) cancels its batches too
                task.cancel()
            raise
        finally:
            # a failed claim lets the batches already claimed finish first (their jobs are held)
            if tasks:
                await asyncio.wait(tasks)
        for task in tasks:
            task.result()  # an error of a batch's own handling goes up, as it did unpipelined
        return handled

    async def _ingest_orders(self, jobs: list[queue.Job]) -> None:
        """Orders to the graph, a batch in one transaction; a failing batch is retried one
        order at a time so one bad order never holds up the others."""
        jobs = await self._well_formed(jobs, "order_id", str)
        if not jobs:
            return
        try:
            await self._held(jobs, pipeline.ingest_orders(self.rt, [j.payload["order_id"] for j in jobs]))
        except Exception as exc:
            if await self.store_away(exc):
                self.outage_seen = True
                for job in jobs:
                    await self._give_back(job, f"store unavailable: {type(exc).__name__}")
                return
            if len(jobs) == 1:
                log.exception("order job %s failed", jobs[0].id)
                await self._retry(jobs[0], _error_text(exc))
                return
            log.warning("a batch of %d orders failed (%s); retrying them one by one", len(jobs), _error_text(exc))
            for job in jobs:
                await self._ingest_orders([job])
            return
        await self._complete(jobs)

    async def _held(self, jobs: list[queue.Job], work: Awaitable[T]) -> T:
        """Run ``work`` while renewing the lease of ``jobs`` (a slow LLM batch keeps them),
        but never longer than ``JOB_TIMEOUT_S``: work that hangs is cancelled and retried
        (a counted attempt) instead of holding its jobs for ever."""

        async def renew() -> None:
            every = queue.renew_every(self.lease).total_seconds()
            wait = every
            while True:
                await asyncio.sleep(wait)
                try:
                    await queue.heartbeat(self.rt.pool, self.worker_id, jobs, self.lease)
                    wait = every
                except Exception as exc:  # tried again soon: the lease has two renewals of slack
                    log.warning("could not renew the lease of %d jobs: %s", len(jobs), exc)
                    wait = min(every, RENEW_RETRY_S)

        beat = asyncio.create_task(renew())
        try:
            return await asyncio.wait_for(work, JOB_TIMEOUT_S)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _ingest(self, jobs: list[queue.Job], *, after: asyncio.Task[None] | None = None) -> None:
        """One batch; with ``after``, its writes wait until that batch is done."""
        jobs = await self._well_formed(jobs, "message_id", int)
        if not jobs:
            return
        by_message: dict[int, list[queue.Job]] = {}  # a replayed turn may have two jobs in one batch
        for job in jobs:
            by_message.setdefault(job.payload["message_id"], []).append(job)
        started = time.perf_counter()

        async def previous_done() -> None:
            if after is not None:
                await asyncio.wait([after])  # its outcome is its own (it handles its errors)

        try:
            results = await self._held(
                jobs,
                pipeline.ingest_messages(
                    self.rt,
                    list(by_message),
                    before_commit=previous_done,
                    # chat turns: the customer asks next, so the snapshot is read back now;
                    # an import's customer gets it written back by their first context
                    refresh_snapshots=jobs[0].lane == "live",
                ),
            )
            took = time.perf_counter() - started
            log.info("ingested %d messages (%s) in %.2f s", len(jobs), jobs[0].lane, took)
            metrics.BATCH_SIZE.labels(jobs[0].lane).observe(len(jobs))
            metrics.BATCH_SECONDS.labels(jobs[0].lane).observe(took)
        except Exception as exc:
            if await self.store_away(exc):
                self.outage_seen = True
                log.warning(
                    "a store is unavailable (%s: %s); %d jobs will be retried", type(exc).__name__, exc, len(jobs)
                )
                for job in jobs:
                    await self._give_back(job, f"store unavailable: {type(exc).__name__}")
                return
            if len(jobs) == 1:
                log.exception("job %s failed", jobs[0].id)
                await self._retry(jobs[0], _error_text(exc))
                return
            # isolate the bad message (a bad value, or a statement too slow for its data):
            # run the batch again one message at a time
            log.warning("a batch of %d failed (%s); retrying its messages one by one", len(jobs), _error_text(exc))
            for job in jobs:
                await self._ingest([job], after=after)
            return
        done = []
        for message_id, result in results.items():
            for job in by_message[message_id]:
                if result.ok:
                    done.append(job)
                else:
                    await self._retry(job, result.error or "failed")
        await self._complete(done)

    async def _erase(self, job: queue.Job) -> None:
        """Finish an erasure the API could not (a store was away, Neo4j failed, the
        customer's rows were held). Never parked: a failure is written on its receipt and
        retried with back-off (a store outage without using an attempt) until the erasure,
        or a later one of the same customer, completes."""
        await queue.keep_erasure(self.rt.pool, job)
        receipt_id = uuid.UUID(job.payload["receipt_id"])
        try:
            done = await self._held([job], erasure.attempt(self.rt, receipt_id, job.user_identifier))
        except Exception as exc:
            if is_outage(exc):
                await self._give_back(job, f"store unavailable: {type(exc).__name__}")
            else:
                log.exception("erasure job %s failed", job.id)
                await erasure.note(self.rt, receipt_id, f"the erasure failed ({type(exc).__name__}); it is retried")
                await self._retry(job, type(exc).__name__)
            return
        if done.complete:
            log.info("erasure %s complete", receipt_id)
            metrics.observe_jobs(job.kind, "done")
        elif done.store_unavailable:
            await self._give_back(job, (done.receipt.error if done.receipt else None) or "pending")
        else:
            await self._retry(job, (done.receipt.error if done.receipt else None) or "pending")

    async def drain(self, *, timeout: float = 300.0) -> int:
        """Run until no job is ready (tests, benchmarks, `loftmem worker --once`)."""
        handled = 0
        async with asyncio.timeout(timeout):
            while True:
                n = await self.step()
                if n == 0:
                    return handled
                handled += n


async def run_worker(settings: Settings, *, once: bool = False, metrics_port: int | None = None) -> None:
    rt = await Runtime.open(settings, pool_size=8, role="worker")
    worker = Worker(rt)
    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    exporter = metrics.serve_worker_metrics(settings.worker_metrics_host, port) if port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _log_tasks)  # `kill -USR1 <pid>`: where is every task?
    log.info("worker %s started (batch %d)", worker.worker_id, worker.batch)
    try:
        await warm_up(rt)
        if once:
            log.info("drained %d jobs", await worker.drain())
            return
        # three loops side by side: a live turn never waits for an import batch to finish
        await asyncio.gather(
            *(
                _loop(worker, name, step, stop)
                for name, step in (
                    ("system", worker.step_system),
                    ("live", worker.step_live),
                    ("bulk", worker.step_bulk),
                )
            )
        )
    finally:
        await rt.close()
        if exporter is not None:
            exporter.shutdown()
        log.info("worker %s stopped", worker.worker_id)


def _log_tasks() -> None:
    """Log the stack of every asyncio task (an operator's view of a worker that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=30, file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


async def warm_up(rt: Runtime) -> None:
    """The model's first inference and the graph's first query plans are slow: pay for them
    before the first batch (a store that is down now is simply skipped)."""
    started = time.perf_counter()
    await rt.embedder.aembed(["warming up the embedder", "a second, longer sentence to warm up batching too"])
    try:
        async with rt.graph_store.session() as session:
            await session.execute_write(graph_writes.warm_up)
    except Exception as exc:
        log.info("graph warm-up skipped: %s", type(exc).__name__)
    log.info("warmed up in %.1f s", time.perf_counter() - started)


async def _loop(worker: Worker, name: str, step: Callable[[], Awaitable[int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            handled = await step()
        except Exception as exc:  # the worker keeps going: jobs are leased, nothing is lost
            if await worker.store_away(exc):
                worker.outage_seen = True
                log.warning("%s: queue unavailable (%s); retrying", name, type(exc).__name__)
            else:
                log.exception("%s: worker step failed; retrying", name)
            handled = 0
            await asyncio.sleep(2)
        if handled == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), IDLE_POLL_S)


def _error_text(exc: BaseException) -> str:
    """What a failed job's ``last_error`` says."""
    said = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if is_statement_timeout(exc):
        return f"a PostgreSQL statement ran past its time limit and was cancelled ({said})"
    return said
