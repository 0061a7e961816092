"""Configuration: one pydantic-settings class, read from the environment.

Nothing here has a secret default. With no ``DATABASE_URL`` / ``NEO4J_URI`` the embedded
dev stack (``devstack``) starts local servers under ``LOFT_DATA_DIR`` and fills
them in; generated passwords live under that directory, never in the repository.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger("loft.settings")


# Measured (bench.latency --ab, 16 clients, `serve --workers 2`; docs/configuration.md#embeddings):
# without spinning, 2 threads per API process cost the same CPU per request as 1 and
# gave 1.49x the throughput (shorter embeddings queue less behind the embedder lock);
# the worker embeds batches of 64 turns
API_EMBEDDER_THREADS = 2
WORKER_EMBEDDER_THREADS = 2
# the speakers' names kept per customer (LOFT_MAX_SPEAKERS)
DEFAULT_MAX_SPEAKERS = 64


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    # a PostgreSQL streaming replica of DATABASE_URL (one server, not a balancer) for the
    # context's reads (service/postgres/db.py: ReadReplica); unset: everything reads the primary
    database_read_url: str | None = Field(default=None, alias="DATABASE_READ_URL")
    # a read sent to the replica waits at most this long for it to replay the primary's
    # position at the read's start (so it sees every write before it, erasures included),
    # then reads the primary instead
    replica_wait_ms: float = Field(default=100.0, alias="LOFT_REPLICA_WAIT_MS", ge=0, le=10_000)
    neo4j_uri: str | None = Field(default=None, alias="NEO4J_URI")
    neo4j_user: str = Field(default="neo4j", alias="NEO4J_USER")
    neo4j_password: SecretStr | None = Field(default=None, alias="NEO4J_PASSWORD")
    neo4j_database: str = Field(default="neo4j", alias="NEO4J_DATABASE")

    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", alias="LOFT_LLM_MODEL")
    llm_timeout_s: float = Field(default=30.0, alias="LOFT_LLM_TIMEOUT_S")

    data_dir: Path = Field(default=Path(".loft"), alias="LOFT_DATA_DIR")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "loft", alias="LOFT_CACHE_DIR")
    host: str = Field(default="127.0.0.1", alias="LOFT_HOST")
    port: int = Field(default=8001, alias="LOFT_PORT", ge=1, le=65535)
    neo4j_bolt_port: int = Field(default=7687, alias="LOFT_NEO4J_BOLT_PORT", ge=1, le=65535)
    neo4j_http_port: int = Field(default=7474, alias="LOFT_NEO4J_HTTP_PORT", ge=1, le=65535)
    neo4j_heap: str = Field(default="1g", alias="LOFT_NEO4J_HEAP")

    # name:role:secret entries, comma-separated (see service/api/access.py); empty entries are ignored
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="LOFT_API_KEYS")
    api_keys_file: Path | None = Field(default=None, alias="LOFT_API_KEYS_FILE")
    # serve without keys on a non-loopback address (a lab only)
    allow_open: bool = Field(default=False, alias="LOFT_ALLOW_OPEN")
    # without keys the API answers only requests addressed to a loopback name (Host, and Origin
    # when sent), so a web page cannot reach it through DNS rebinding; more names, comma-separated
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="LOFT_ALLOWED_HOSTS")

    # requests per minute of each key, per API process (a key may make N times this through N
    # processes: divide the budget you want by LOFT's process count); admin keys and a service
    # without keys are not limited; 0: no limit
    rate_limit_per_min: int = Field(default=6000, alias="LOFT_RATE_LIMIT_PER_MIN", ge=0)
    customer_rate_limit_per_min: int = Field(default=120, alias="LOFT_CUSTOMER_RATE_LIMIT_PER_MIN", ge=0)
    # streamed chat replies a key may have in progress at once, per API process (a reply goes on
    # after its client leaves, so it is counted until it is stored); 0: no cap
    streams_per_key: int = Field(default=64, alias="LOFT_STREAMS_PER_KEY", ge=0)
    customer_streams_per_key: int = Field(default=2, alias="LOFT_CUSTOMER_STREAMS_PER_KEY", ge=0)
    # HMAC key for erasure receipts' subject hash; unset: generated under LOFT_DATA_DIR
    erasure_key: SecretStr | None = Field(default=None, alias="LOFT_ERASURE_KEY")
    # Erased customers' client ids (turn keys, external ids, order and session ids) are kept
    # as keyed hashes this many days, and a replay of one is refused (410) instead of
    # re-creating the customer (service/postgres/tombstones.py). 400 days covers an order feed's
    # yearly reconciliation plus a month of slack, and the months an import may be re-run
    # from an old export; longer keeps (keyed, unreadable) records past any replay we know
    # of. 0: no tombstones (replays re-create the customer).
    tombstone_days: int = Field(default=400, alias="LOFT_TOMBSTONE_DAYS", ge=0, le=3650)
    # retention (service/core/retention.py): days each kind of data is kept, unset = for ever. Graph
    # facts follow the messages (and orders) they came from; the worker sweeps every
    # LOFT_RETENTION_SWEEP_S
    retention_messages_days: int | None = Field(default=None, alias="LOFT_RETENTION_MESSAGES_DAYS", ge=1, le=36500)
    retention_memories_days: int | None = Field(default=None, alias="LOFT_RETENTION_MEMORIES_DAYS", ge=1, le=36500)
    retention_summaries_days: int | None = Field(default=None, alias="LOFT_RETENTION_SUMMARIES_DAYS", ge=1, le=36500)
    retention_orders_days: int | None = Field(default=None, alias="LOFT_RETENTION_ORDERS_DAYS", ge=1, le=36500)
    retention_sweep_s: float = Field(default=3600.0, alias="LOFT_RETENTION_SWEEP_S", ge=1)
    env: Literal["development", "test", "production"] = Field(default="development", alias="LOFT_ENV")
    # `loftmem up` loads the demo shop (devstack/demo.py) into stores with no customers yet
    # (development only; LOFT_DEMO=0 starts empty)
    demo_on_empty: bool = Field(default=True, alias="LOFT_DEMO")

    # request bodies over these are refused with 413 before parsing
    max_body_bytes: int = Field(default=64 * 1024, alias="LOFT_MAX_BODY_BYTES", ge=1024)
    max_import_bytes: int = Field(default=1024 * 1024, alias="LOFT_MAX_IMPORT_BYTES", ge=1024)

    # embeddings: ONNX Runtime (default) or torch (sentence-transformers)
    embedder: Literal["onnx", "torch"] = Field(default="onnx", alias="LOFT_EMBEDDER")
    # intra-op threads per embedding; unset: the measured default of each kind of process
    # (API_EMBEDDER_THREADS, WORKER_EMBEDDER_THREADS)
    embedder_threads: int | None = Field(default=None, alias="LOFT_EMBEDDER_THREADS", ge=1, le=64)
    # let ONNX Runtime's idle threads busy-wait for the next run (CPU the stores need)
    embedder_spinning: bool = Field(default=False, alias="LOFT_EMBEDDER_SPINNING")
    # at most this many concurrent query embeddings share one model call (1: one each)
    embedder_query_batch: int = Field(default=8, alias="LOFT_EMBEDDER_QUERY_BATCH", ge=1, le=64)
    # questions are embedded by an int8 copy of the model (about half the CPU, cosine ~0.99 to
    # fp32; what is stored is always fp32, so this may change at any restart); fp32: the full model
    embedder_query_precision: Literal["int8", "fp32"] = Field(default="int8", alias="LOFT_EMBEDDER_QUERY_PRECISION")
    # the torch backend's device ("cuda" where there is one; falls back to the CPU)
    embedder_device: str = Field(default="cpu", alias="LOFT_EMBEDDER_DEVICE", min_length=1, max_length=32)

    # the context reads a customer's graph facts from their snapshot in PostgreSQL when the
    # process has no copy (service/postgres/graph_snapshots.py); 0: from Neo4j on every such miss
    graph_snapshots: bool = Field(default=True, alias="LOFT_GRAPH_SNAPSHOTS")
    # an API process keeps customers' graph facts (with their entities' embeddings: ~2 MB
    # as graph/cache.py counts a customer with 500 entities, a few KB for most) up to this
    # many MiB, least recently used out first; 0: no cache (every context reads the
    # snapshot or Neo4j)
    graph_cache_mb: int = Field(default=256, alias="LOFT_GRAPH_CACHE_MB", ge=0, le=65536)

    # bounds of what one request reads about one customer, however much history they have:
    # the context searches the newest this many of their turns, memories and summaries (older
    # turns still reach it through the period a question names, memories, summaries and the graph)
    search_window: int = Field(default=2000, alias="LOFT_SEARCH_WINDOW", ge=100)
    # a session listing shows each session's newest this many turns (older ones page through
    # GET /v1/sessions/{customer}/{session}/messages)
    session_list_messages: int = Field(default=20, alias="LOFT_SESSION_LIST_MESSAGES", ge=1, le=200)
    # a session summary reads the session's newest this many turns
    summary_turns: int = Field(default=500, alias="LOFT_SUMMARY_TURNS", ge=10, le=100_000)
    # the table counts of an admin's GET /memory/status are reused for this long (one
    # computation at a time per process; anonymous callers get a probe, never counts)
    status_stats_ttl_s: float = Field(default=5.0, alias="LOFT_STATUS_STATS_TTL_S", ge=0, le=3600)

    # served memories' access counts gather this long in an API process before one write
    # for all of them; 0: written after every context
    access_flush_s: float = Field(default=1.0, alias="LOFT_ACCESS_FLUSH_S", ge=0, le=60)

    # threads of a process's CPU pool (Runtime.cpu): the work whose cost grows with a text's
    # length (mining a message, reading a question, matching speakers' names, clipping long
    # turns) runs there, never on the event loop. All but one may mine whole messages at once,
    # so one is always free for the short work of other requests (3: the machine's two cores
    # for messages, one thread kept for questions)
    cpu_workers: int = Field(default=3, alias="LOFT_CPU_WORKERS", ge=1, le=64)
    # the names of the people who speak in a customer's history kept (users.speakers): the most
    # recently introduced; every context matches the question against them
    max_speakers: int = Field(default=DEFAULT_MAX_SPEAKERS, alias="LOFT_MAX_SPEAKERS", ge=1, le=4096)
    # an event loop's lag is sampled this often (the loft_event_loop_lag_seconds gauge)
    loop_lag_interval_s: float = Field(default=0.25, alias="LOFT_LOOP_LAG_INTERVAL_S", gt=0, le=60)

    # extraction: "rules" (deterministic, default) or "llm" (needs OPENAI_API_KEY)
    extractor: Literal["rules", "llm"] = Field(default="rules", alias="LOFT_EXTRACTOR")
    worker_batch: int = Field(default=64, alias="LOFT_WORKER_BATCH", ge=1, le=1024)
    summary_idle_s: float = Field(default=300.0, alias="LOFT_SUMMARY_IDLE_S")
    # a claimed job's lease; the worker renews it every third of this while it works
    job_lease_s: float = Field(default=300.0, alias="LOFT_JOB_LEASE_S", ge=3)

    # recommendations: a co-purchase reason or path never states fewer distinct customers
    # than this (it is dropped instead), and no neighbour bought by fewer is used at all
    min_crowd: int = Field(default=5, alias="LOFT_MIN_CROWD", ge=1, le=1000)
    # each store read of a recommendation gives up after this long (driver and server side);
    # the answer then degrades to the best sellers of the customer's categories, flagged
    recommend_timeout_s: float = Field(default=2.0, alias="LOFT_RECOMMEND_TIMEOUT_S", gt=0, le=60)
    # the embedded Neo4j's own limits on every transaction, whoever runs it (the service,
    # the analysts in Browser): db.transaction.timeout, and db.memory.transaction.max
    # (unset: a quarter of LOFT_NEO4J_HEAP; dbms.memory.transaction.total.max is 60% of it)
    neo4j_tx_timeout_s: int = Field(default=120, alias="LOFT_NEO4J_TX_TIMEOUT_S", ge=1, le=86400)
    neo4j_tx_memory: str | None = Field(
        default=None, alias="LOFT_NEO4J_TX_MEMORY", pattern=r"^[0-9]+[kKmMgG]?$", max_length=16
    )

    # operators: log lines as readable text (default) or one JSON object per line
    log_format: Literal["text", "json"] = Field(default="text", alias="LOFT_LOG_FORMAT")
    # the worker's own Prometheus endpoint (`loftmem worker --metrics-port`); 0: none
    worker_metrics_port: int = Field(default=0, alias="LOFT_WORKER_METRICS_PORT", ge=0, le=65535)
    # where that endpoint listens: it has no authentication, so loopback unless set here
    # (LOFT_HOST opens the API, never this)
    worker_metrics_host: str = Field(default="127.0.0.1", alias="LOFT_WORKER_METRICS_HOST", min_length=1)

    @field_validator("api_keys", "allowed_hosts", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("data_dir", "cache_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def embedder_threads_for(self, role: Literal["api", "worker"]) -> int:
        """Intra-op threads for an embedding in this kind of process."""
        if self.embedder_threads is not None:
            return self.embedder_threads
        return API_EMBEDDER_THREADS if role == "api" else WORKER_EMBEDDER_THREADS

    @property
    def llm_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    if not settings.llm_enabled:
        log.info("OPENAI_API_KEY is not set: LLM replies, extraction and summaries are off (offline mode)")
    return settings


def with_local_stack(settings: Settings) -> Settings:
    """``settings`` with the stores of the dev stack running under the data dir filled in.

    The dev stack (``devstack``) comes with a checkout and is not in the image: an installed
    service takes its stores from the environment (``DATABASE_URL``, ``NEO4J_URI``) only.
    """
    try:
        from devstack import running_stack
    except ModuleNotFoundError as exc:
        if exc.name != "devstack":  # the dev stack is there but broken: say so
            raise
        return settings
    return running_stack(settings)
