"""The ingestion worker: claims queued jobs in batches and runs the pipeline.

Run it as its own process (``loftmem worker``; ``make run`` starts one) or in-process
(:func:`drain`, used by tests and benchmarks). Several workers may run at once: jobs
are claimed with ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid

import asyncpg
from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

from service import erasure, pipeline, queue
from service.errors import StoreUnavailable
from service.runtime import Runtime
from service.settings import Settings

log = logging.getLogger("loft.worker")

IDLE_POLL_S = 0.25
# errors that mean "a store is away", not "this job is bad": retried without using attempts
# (OSError covers a Unix socket that is gone while the embedded PostgreSQL restarts)
OUTAGES = (StoreUnavailable, ServiceUnavailable, SessionExpired, TransientError, OSError,
           asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncio.TimeoutError)


class Worker:
    def __init__(self, rt: Runtime, *, worker_id: str | None = None) -> None:
        self.rt = rt
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = rt.settings.worker_batch

    async def step(self) -> int:
        """Claim and run one batch; returns how many jobs it handled."""
        # unfinished erasures first: a customer's data must not wait behind a backlog
        jobs = await queue.claim(self.rt.pool, self.worker_id, 4, ("erase_user",))
        for job in jobs:
            await self._erase(job)
        if jobs:
            return len(jobs)
        jobs = await queue.claim(self.rt.pool, self.worker_id, self.batch, ("ingest_message",))
        if jobs:
            await self._ingest(jobs)
            return len(jobs)
        jobs = await queue.claim(self.rt.pool, self.worker_id, 4, ("summarize_session",))
        for job in jobs:
            await self._run_one(job, pipeline.summarize_session(self.rt, job.payload["session_id"]))
        return len(jobs)

    async def _ingest(self, jobs: list[queue.Job]) -> None:
        by_message = {job.payload["message_id"]: job for job in jobs}
        try:
            results = await pipeline.ingest_messages(self.rt, list(by_message))
        except OUTAGES as exc:
            log.warning("a store is unavailable (%s: %s); %d jobs will be retried", type(exc).__name__, exc, len(jobs))
            for job in jobs:
                await queue.retry(self.rt.pool, job, f"store unavailable: {exc}", counts=False)
            return
        except Exception as exc:
            if len(jobs) == 1:
                log.exception("job %s failed", jobs[0].id)
                await queue.retry(self.rt.pool, jobs[0], f"{type(exc).__name__}: {exc}")
                return
            # isolate the bad message: run the batch again one message at a time
            log.warning("a batch of %d failed (%s); retrying its messages one by one", len(jobs), exc)
            for job in jobs:
                await self._ingest([job])
            return
        done = []
        for message_id, result in results.items():
            job = by_message[message_id]
            if result.ok:
                done.append(job.id)
            else:
                await queue.retry(self.rt.pool, job, result.error or "failed")
        await queue.complete(self.rt.pool, self.worker_id, done)

    async def _erase(self, job: queue.Job) -> None:
        """Finish an erasure whose Neo4j part could not run when it was requested."""
        try:
            receipt = await erasure.finish(self.rt, uuid.UUID(job.payload["receipt_id"]), job.user_identifier)
        except OUTAGES as exc:
            await queue.retry(self.rt.pool, job, f"store unavailable: {type(exc).__name__}", counts=False)
            return
        except Exception as exc:
            log.exception("erasure job %s failed", job.id)
            await queue.retry(self.rt.pool, job, f"{type(exc).__name__}")
            return
        if receipt is not None and receipt.status != "complete":  # a store is still away
            await queue.retry(self.rt.pool, job, receipt.error or "pending", counts=False)
        else:
            log.info("erasure %s complete", job.payload["receipt_id"])

    async def _run_one(self, job: queue.Job, work) -> None:
        try:
            await work
        except OUTAGES as exc:
            await queue.retry(self.rt.pool, job, f"store unavailable: {exc}", counts=False)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            await queue.retry(self.rt.pool, job, f"{type(exc).__name__}: {exc}")
        else:
            await queue.complete(self.rt.pool, self.worker_id, [job.id])

    async def drain(self, *, include_summaries: bool = True, timeout: float = 300.0) -> int:
        """Run until no job is ready (tests, benchmarks, `loftmem worker --once`)."""
        handled = 0
        async with asyncio.timeout(timeout):
            while True:
                n = await self.step()
                if n == 0:
                    return handled
                handled += n


async def run_worker(settings: Settings, *, once: bool = False) -> None:
    rt = await Runtime.open(settings, pool_size=4)
    worker = Worker(rt)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %s started (batch %d)", worker.worker_id, worker.batch)
    try:
        if once:
            log.info("drained %d jobs", await worker.drain())
            return
        while not stop.is_set():
            try:
                handled = await worker.step()
            except OUTAGES as exc:
                log.warning("queue unavailable (%s); retrying", exc)
                handled = 0
                await asyncio.sleep(2)
            if handled == 0:
                try:
                    await asyncio.wait_for(stop.wait(), IDLE_POLL_S)
                except asyncio.TimeoutError:
                    pass
    finally:
        await rt.close()
        log.info("worker %s stopped", worker.worker_id)
