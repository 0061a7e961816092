"""Configuration: one pydantic-settings class, read from the environment.

Nothing here has a secret default. With no ``DATABASE_URL`` / ``NEO4J_URI`` the embedded
dev stack (``service.devstack``) starts local servers under ``LOFT_DATA_DIR`` and fills
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


# Measured (bench.latency --ab, 16 clients, `serve --workers 2`, README "Performance"):
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

    # name:role:secret entries, comma-separated (see service/access.py); empty entries are ignored
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="LOFT_API_KEYS")
    api_keys_file: Path | None = Field(default=None, alias="LOFT_API_KEYS_FILE")
    # serve without keys on a non-loopback address (a lab only)
    allow_open: bool = Field(default=False, alias="LOFT_ALLOW_OPEN")
    # HMAC key for erasure receipts' subject hash; unset: generated under LOFT_DATA_DIR
    erasure_key: SecretStr | None = Field(default=None, alias="LOFT_ERASURE_KEY")
    env: Literal["development", "test", "production"] = Field(default="development", alias="LOFT_ENV")
    # `loftmem up` loads the demo shop (service/demo.py) into stores with no customers yet
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
    # the torch backend's device ("cuda" where there is one; falls back to the CPU)
    embedder_device: str = Field(default="cpu", alias="LOFT_EMBEDDER_DEVICE", min_length=1, max_length=32)

    # the context reads a customer's graph facts from their snapshot in PostgreSQL when the
    # process has no copy (service/graph_snapshots.py); 0: from Neo4j on every such miss
    graph_snapshots: bool = Field(default=True, alias="LOFT_GRAPH_SNAPSHOTS")

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

    # operators: log lines as readable text (default) or one JSON object per line
    log_format: Literal["text", "json"] = Field(default="text", alias="LOFT_LOG_FORMAT")
    # the worker's own Prometheus endpoint (`loftmem worker --metrics-port`); 0: none
    worker_metrics_port: int = Field(default=0, alias="LOFT_WORKER_METRICS_PORT", ge=0, le=65535)

    @field_validator("api_keys", mode="before")
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
