"""Versioned schema migrations for both stores.

``migrations/postgres/NNNN_name.sql`` and ``migrations/neo4j/NNNN_name.cypher`` are
applied in order and recorded in the store they change (PostgreSQL:
``schema_migrations``; Neo4j: ``(:SchemaMigration)`` nodes), with a checksum so an edited,
already-applied file is reported instead of silently skipped. Running twice changes
nothing. PostgreSQL migrations run one transaction each under an advisory lock, so an
API and a worker starting together do not race.

A small runner rather than a library: no migration tool covers both SQL and Cypher, and
the one Neo4j tool (neo4j-migrations) is a Java CLI.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from neo4j import AsyncDriver

from service.errors import ConfigurationError
from vectors.pg import Conn

log = logging.getLogger("loft.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.(sql|cypher)$")
_PG_LOCK_ID = 0x10F7  # advisory lock key for migrations


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def load(store: str) -> list[Migration]:
    found = []
    for path in sorted((MIGRATIONS_DIR / store).iterdir()):
        match = _NAME.match(path.name)
        if match is None:
            continue
        found.append(Migration(int(match.group(1)), path.name, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigurationError(f"duplicate migration versions in migrations/{store}")
    return found


async def migrate_postgres(conn: Conn) -> list[str]:
    """Apply pending PostgreSQL migrations; returns the names applied."""
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except asyncpg.PostgresError as exc:
        raise ConfigurationError(
            "the PostgreSQL server has no pgvector extension. Install it on that server "
            "(Debian/Ubuntu: apt-get install postgresql-<version>-pgvector; or use the "
            "pgvector/pgvector Docker image), or unset DATABASE_URL to use the embedded "
            f"PostgreSQL with pgvector. ({exc})"
        ) from exc
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _PG_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
        for migration in load("postgres"):
            if migration.version in done:
                _check(done[migration.version]["checksum"], migration)
                continue
            async with conn.transaction():
                await conn.execute(migration.text)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("postgres: applied %s", migration.name)
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _PG_LOCK_ID)
    return applied


async def migrate_neo4j(driver: AsyncDriver, database: str = "neo4j") -> list[str]:
    """Apply pending Cypher migrations, one statement per auto-commit transaction
    (schema changes and data writes cannot share a transaction in Neo4j)."""
    await driver.execute_query(
        "CREATE CONSTRAINT schema_migration_version IF NOT EXISTS FOR (m:SchemaMigration) REQUIRE m.version IS UNIQUE",
        database_=database,
    )
    records, _, _ = await driver.execute_query(
        "MATCH (m:SchemaMigration) RETURN m.version AS version, m.checksum AS checksum", database_=database
    )
    done = {r["version"]: r for r in records}
    applied: list[str] = []
    for migration in load("neo4j"):
        if migration.version in done:
            _check(done[migration.version]["checksum"], migration)
            continue
        for statement in split_cypher(migration.text):
            async with driver.session(database=database) as session:
                result = await session.run(statement)
                await result.consume()
        await driver.execute_query(
            "CREATE (:SchemaMigration {version: $version, name: $name, checksum: $checksum, applied_at: datetime()})",
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            database_=database,
        )
        log.info("neo4j: applied %s", migration.name)
        applied.append(migration.name)
    return applied


def split_cypher(text: str) -> list[str]:
    """Statements separated by ';' at the end of a line; '//' comment lines dropped."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("//")]
    statements = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [s.strip() for s in statements if s.strip()]


def _check(recorded: str, migration: Migration) -> None:
    if recorded != migration.checksum:
        log.warning(
            "migration %s was changed after it was applied (checksum %s, file %s); "
            "add a new migration instead of editing an applied one",
            migration.name,
            recorded,
            migration.checksum,
        )
