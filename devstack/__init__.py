"""The embedded dev/test stack: a local PostgreSQL (pgvector) and a local Neo4j, no Docker.

``ensure_stack(settings)`` starts whatever is not configured through the environment and
returns settings pointing at the servers; ``stop_stack`` stops what this data dir runs.
Both are idempotent: a server already running for the data dir is reused.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from devstack.neo4j import EmbeddedNeo4j
from devstack.postgres import EmbeddedPostgres
from devstack.private import private_dir
from service.settings import Settings


@dataclass
class Stack:
    settings: Settings
    postgres: EmbeddedPostgres | None
    neo4j: EmbeddedNeo4j | None

    def stop(self) -> None:
        if self.neo4j is not None:
            self.neo4j.stop()
        if self.postgres is not None:
            self.postgres.stop()


def ensure_stack(settings: Settings, *, start_postgres: bool = True, start_neo4j: bool = True) -> Stack:
    """Start the embedded servers the environment did not configure; return resolved settings."""
    update: dict[str, str | SecretStr] = {}
    pg = neo = None
    private_dir(settings.data_dir)  # store files and generated passwords: this user's only
    if settings.database_url is None and start_postgres:
        pg = EmbeddedPostgres(settings.data_dir / "postgres")
        update["database_url"] = pg.start()
    if settings.neo4j_uri is None and start_neo4j:
        neo = EmbeddedNeo4j(
            settings.data_dir / "neo4j",
            cache_dir=settings.cache_dir,
            bolt_port=settings.neo4j_bolt_port,
            http_port=settings.neo4j_http_port,
            heap=settings.neo4j_heap,
            tx_timeout_s=settings.neo4j_tx_timeout_s,
            tx_memory=settings.neo4j_tx_memory,
        )
        uri, password = neo.start()
        update |= {"neo4j_uri": uri, "neo4j_user": "neo4j", "neo4j_password": SecretStr(password)}
    return Stack(settings.model_copy(update=update), pg, neo)


def running_stack(settings: Settings) -> Settings:
    """Settings for servers already running under the data dir (no start), for `loftmem env`."""
    update: dict[str, str | SecretStr] = {}
    if settings.database_url is None:
        url = EmbeddedPostgres(settings.data_dir / "postgres").running_url()
        if url:
            update["database_url"] = url
    if settings.neo4j_uri is None:
        neo = EmbeddedNeo4j(settings.data_dir / "neo4j", cache_dir=settings.cache_dir)
        found = neo.running()
        if found:
            update |= {"neo4j_uri": found[0], "neo4j_user": "neo4j", "neo4j_password": SecretStr(found[1])}
    return settings.model_copy(update=update)
