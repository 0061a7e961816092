"""Prometheus metrics of the API and the worker (``GET /metrics``; the worker's own port).

Counted where it happens: requests (per route *template*, so a customer's identifier
never becomes a label), context stages and the tiers that answered, worker batches and
job outcomes, the embedder's calls and query-cache hits, and how late the process's event
loop runs what it is given (``loft_event_loop_lag_seconds``: anything that holds the loop
holds every request of the process). Read from the stores when
scraped: queue depth and the oldest ready job's age (one SQL statement), and whether
each store answers. Everything lives in the process-wide default registry, which also
carries prometheus-client's process metrics (CPU, memory, open files).

The API and the worker are separate processes, so each serves its own counters: the
API at ``/metrics`` (admin key), the worker on ``loftmem worker --metrics-port N``
(``LOFT_WORKER_METRICS_PORT``; listening on ``LOFT_WORKER_METRICS_HOST``, loopback unless set:
it has no authentication, and LOFT_HOST, which opens the API, does not open it). The queue's
gauges come from PostgreSQL, so any API process reports the same depth.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from service.runtime import Runtime
    from vectors.embedder import Embedder

log = logging.getLogger("loft.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT_S = 2.0
# an unmatched path (a 404 on a made-up URL) is one label value, not one per URL
UNMATCHED = "<unmatched>"
# no `*_created` series beside every counter and histogram: they double the scrape for
# nothing a rate() needs
disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter("loft_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "loft_http_request_duration_seconds",
    "HTTP request latency, from the first byte in to the last byte out",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONTEXT_STAGE_SECONDS = Histogram(
    "loft_context_stage_seconds",
    "Time spent in each stage of building a context (embed, postgres, graph, fuse, expand, pack)",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 1.0),
)
CONTEXT_TIERS = Counter(
    "loft_context_tier_answers_total",
    "Contexts built, by tier and whether that tier answered (false: served without it)",
    ["tier", "answered"],
)
JOBS = Counter(
    "loft_worker_jobs_total",
    "Jobs a worker finished, by kind and outcome (done, retried: will run again after a back-off, "
    "failed: parked after its last attempt, deferred: given back while a store was away)",
    ["kind", "outcome"],
)
BATCH_SIZE = Histogram(
    "loft_worker_batch_size",
    "Messages per ingestion batch",
    ["lane"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
BATCH_SECONDS = Histogram(
    "loft_worker_batch_duration_seconds",
    "Time to ingest one batch into every tier",
    ["lane"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)

PRIVACY_REMOVED = Counter(
    "loft_privacy_removed_total",
    "Rows and nodes removed by the worker's privacy sweeps, by what (idle_sessions: sessions held under memory "
    "mode 'session'; retention_<kind>: data past its retention)",
    ["what"],
)
AUDIT_FAILURES = Counter(
    "loft_audit_failures_total",
    "Audit entries that could not be written (context reads are answered anyway; other actions fail)",
    ["action"],
)

LAG_WINDOW_S = 10.0
EVENT_LOOP_LAG = Gauge(
    "loft_event_loop_lag_seconds",
    f"The longest an event-loop timer of this process fired late in the last {LAG_WINDOW_S:.0f} s (sampled "
    "every LOFT_LOOP_LAG_INTERVAL_S): how long any callback, any request, waited for the loop",
)


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    labels = (method, route or UNMATCHED, str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(seconds)


def observe_context(timings_ms: Mapping[str, float], tiers: Mapping[str, bool]) -> None:
    for stage, ms in timings_ms.items():
        CONTEXT_STAGE_SECONDS.labels(stage).observe(ms / 1000)
    for tier, answered in tiers.items():
        CONTEXT_TIERS.labels(tier, "true" if answered else "false").inc()


def observe_jobs(kind: str, outcome: str, n: int = 1) -> None:
    if n:
        JOBS.labels(kind, outcome).inc(n)


async def watch_event_loop(interval: float) -> None:
    """Sample the running event loop's lag for ever: sleep ``interval`` and see how much later
    than asked the loop woke up (it was busy running something else for that long). The
    gauge holds the worst sample of the last ``LAG_WINDOW_S`` seconds, so a scrape every
    few seconds still sees a stall between two scrapes. Costs one timer per interval."""
    loop = asyncio.get_running_loop()
    samples: deque[float] = deque(maxlen=max(1, round(LAG_WINDOW_S / interval)))
    while True:
        asked = loop.time()
        await asyncio.sleep(interval)
        samples.append(max(0.0, loop.time() - asked - interval))
        EVENT_LOOP_LAG.set(max(samples))


# -- the embedder: counted in vectors/embedder.py as plain integers, exported here ----------

_embedders: weakref.WeakSet[Embedder] = weakref.WeakSet()


def watch_embedder(embedder: Embedder) -> None:
    """Export this process's embedder counters (one model per process; idempotent)."""
    _embedders.add(embedder)


class EmbedderCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        totals: dict[str, int] = {}
        for embedder in list(_embedders):
            for key, value in embedder.stats.items():
                totals[key] = totals.get(key, 0) + value
        for key, doc in (
            ("encode_calls", "Model forward passes (a batch of texts is one call)"),
            ("texts", "Texts embedded by the model"),
            ("query_cache_hits", "Query embeddings served from the cache"),
            ("query_cache_misses", "Query embeddings computed (not in the cache)"),
            ("query_batches", "Model calls that embedded queries for the event loop (several queries may share one)"),
        ):
            family = CounterMetricFamily(f"loft_embedder_{key}", doc)
            family.add_metric([], totals.get(key, 0))
            yield family


REGISTRY.register(EmbedderCollector())


# -- read from the stores when scraped ------------------------------------------------------


class _Snapshot(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


async def _queue_families(rt: Runtime) -> list[Metric]:
    from service.postgres import queue

    rows = await queue.stats(rt.pool)
    depth = GaugeMetricFamily(
        "loft_queue_jobs",
        "Jobs in the queue by kind, lane and state (ready, scheduled, running, failed)",
        labels=["kind", "lane", "state"],
    )
    oldest = GaugeMetricFamily(
        "loft_queue_oldest_ready_age_seconds",
        "Age of the oldest job ready to run (0 when none is waiting), by kind and lane",
        labels=["kind", "lane"],
    )
    for row in rows:
        depth.add_metric([row["kind"], row["lane"], row["state"]], row["n"])
        if row["state"] == "ready":
            oldest.add_metric([row["kind"], row["lane"]], row["oldest_s"] or 0.0)
    return [depth, oldest]


async def _neo4j_up(rt: Runtime) -> None:
    from graph import reads as graph_reads

    await graph_reads.server_info(rt.graph_store)


async def _replica_families(rt: Runtime, up: GaugeMetricFamily) -> list[Metric]:
    """How far the read replica (``DATABASE_READ_URL``) is behind the primary, read at scrape
    time, and where this process's context reads went (``served``: replica or primary; ``why``:
    ``replayed`` / ``waited`` for the replica, ``lagging`` / ``unreachable`` /
    ``not_a_replica`` for the primary)."""
    assert rt.replica is not None
    reads = CounterMetricFamily(
        "loft_replica_reads", "Context reads by the pool that served them and why", labels=["served", "why"]
    )
    for (served, why), n in sorted(rt.replica.served.items()):
        reads.add_metric([served, why], n)
    try:
        behind, age = await asyncio.wait_for(rt.replica.lag(rt.pool), SCRAPE_TIMEOUT_S)
    except Exception as exc:
        log.warning("metrics: the read replica did not answer (%s)", type(exc).__name__)
        up.add_metric(["replica"], 0.0)
        return [reads]
    up.add_metric(["replica"], 1.0)
    lag_bytes = GaugeMetricFamily(
        "loft_replica_lag_bytes", "WAL the read replica has yet to replay (primary position - replayed position)"
    )
    lag_bytes.add_metric([], float(behind))
    lag_seconds = GaugeMetricFamily(
        "loft_replica_lag_seconds", "Age of the last transaction the read replica replayed, 0 when it is caught up"
    )
    lag_seconds.add_metric([], age)
    return [reads, lag_bytes, lag_seconds]


async def scrape(rt: Runtime) -> bytes:
    """Everything this process counts, plus the queue and the stores' health, as the
    Prometheus text format. A store that does not answer in time is reported down."""
    pg, neo = await asyncio.gather(
        asyncio.wait_for(_queue_families(rt), SCRAPE_TIMEOUT_S),
        asyncio.wait_for(_neo4j_up(rt), SCRAPE_TIMEOUT_S),
        return_exceptions=True,
    )
    families: list[Metric] = []
    up = GaugeMetricFamily("loft_store_up", "1 when the store answered this scrape, else 0", labels=["store"])
    for store, result in (("postgres", pg), ("neo4j", neo)):
        if isinstance(result, BaseException):
            log.warning("metrics: %s did not answer (%s)", store, type(result).__name__)
        up.add_metric([store], 0.0 if isinstance(result, BaseException) else 1.0)
    families.append(up)
    if isinstance(pg, list):
        families += pg
    breaker = GaugeMetricFamily("loft_graph_breaker_open", "1 while the retriever skips Neo4j after failures")
    breaker.add_metric([], 1.0 if rt.graph_breaker.open else 0.0)
    families.append(breaker)
    if rt.replica is not None:
        families += await _replica_families(rt, up)
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(families))
    return generate_latest(REGISTRY) + generate_latest(snapshot)


def serve_worker_metrics(host: str, port: int) -> Any:
    """The worker's endpoint: this process's registry on its own port (a thread)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host)
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    if not ipaddress.ip_address(str(server.server_address[0])).is_loopback:
        log.warning("the worker's metrics (no authentication) are reachable beyond this machine on %s", host)
    return server
