"""The real stack: both stores up, versions read from the servers, migrations idempotent,
bad configuration explained."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def test_status_reports_both_stores_from_the_servers(api):
    response = api.get("/memory/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    pg, neo = body["stores"]["postgres"], body["stores"]["neo4j"]
    assert pg["ok"] and pg["version"].startswith("18") and pg["pgvector"].startswith("0.8")
    assert neo["ok"] and neo["version"].startswith("5.26") and neo["edition"] == "community"
    assert body["embedder"] == {"model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}
    assert body["llm"]["enabled"] is False
    assert body["stats"]["neo4j"]["products"] >= 300  # the sample catalog was loaded
    assert set(body["stats"]["jobs"]) == {"ready", "scheduled", "running", "failed"}


def test_migrations_twice_leave_the_schema_unchanged(stack):
    from service.stores import migrate_all

    def schema():
        tables = stack.sql(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        indexes = stack.sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
        graph = stack.cypher("SHOW INDEXES YIELD name, type, labelsOrTypes, properties RETURN * ORDER BY name")
        constraints = stack.cypher("SHOW CONSTRAINTS YIELD name, type RETURN * ORDER BY name")
        return [tuple(r) for r in tables], [tuple(r) for r in indexes], graph, constraints

    before = schema()
    applied = asyncio.run(migrate_all(stack.settings))
    assert applied == {"postgres": [], "neo4j": []}
    assert schema() == before
    recorded = stack.sql("SELECT version, name FROM schema_migrations ORDER BY version")
    assert next(r["name"] for r in recorded) == "0001_init.sql"
    assert stack.cypher("MATCH (m:SchemaMigration) RETURN count(m) AS n")[0]["n"] >= 1


def test_design_indexes_exist(stack):
    names = {r["indexname"]: r["indexdef"] for r in stack.sql("SELECT indexname, indexdef FROM pg_indexes")}
    assert "USING hnsw (embedding vector_cosine_ops)" in names["ltm_embedding_hnsw_idx"]
    graph = {
        r["name"]: r for r in stack.cypher("SHOW INDEXES YIELD name, type, labelsOrTypes, properties, options RETURN *")
    }
    vector = graph["entity_embedding"]
    assert vector["type"] == "VECTOR" and vector["labelsOrTypes"] == ["Entity"]
    assert vector["options"]["indexConfig"]["vector.dimensions"] == 384
    assert vector["options"]["indexConfig"]["vector.similarity_function"].lower() == "cosine"
    assert graph["entity_names"]["type"] == "FULLTEXT"
    constraints = {r["name"] for r in stack.cypher("SHOW CONSTRAINTS YIELD name RETURN name")}
    assert {"customer_user_id", "product_sku", "entity_user_key"} <= constraints


def _loftmem(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "NEO4J_"))}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_unreachable_database_url_fails_fast_with_a_clear_message(stack, tmp_path):
    result = _loftmem(
        ["migrate"],
        {
            "DATABASE_URL": "postgresql://loft@127.0.0.1:1/loft",
            "NEO4J_URI": stack.env["NEO4J_URI"],
            "NEO4J_PASSWORD": stack.env["NEO4J_PASSWORD"],
            "LOFT_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert "cannot reach PostgreSQL at postgresql://loft@127.0.0.1:1/loft" in result.stderr
    assert "check DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_neo4j_password_fails_fast_with_a_clear_message(stack, tmp_path):
    result = _loftmem(
        ["migrate"],
        {
            "DATABASE_URL": stack.env["DATABASE_URL"],
            "NEO4J_URI": stack.env["NEO4J_URI"],
            "NEO4J_PASSWORD": "not-the-password",
            "LOFT_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 2
    assert "wrong NEO4J_USER/NEO4J_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_loftmem_env_prints_working_exports(stack):
    result = _loftmem(["env"], {"LOFT_DATA_DIR": str(stack.data_dir)})
    assert result.returncode == 0, result.stderr
    lines = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert lines["NEO4J_URI"] == stack.env["NEO4J_URI"]
    assert lines["NEO4J_PASSWORD"].strip("'") == stack.env["NEO4J_PASSWORD"]
    # the printed DATABASE_URL really opens the server
    import asyncpg

    async def version():
        conn = await asyncpg.connect(lines["DATABASE_URL"].strip("'"))
        try:
            return await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        finally:
            await conn.close()

    assert asyncio.run(version()).startswith("0.8")


def test_neo4j_password_lives_in_the_data_dir_not_the_repo(stack):
    password_file = stack.data_dir / "neo4j" / "password"
    assert password_file.read_text().strip() == stack.env["NEO4J_PASSWORD"]
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    tracked = subprocess.run(
        ["git", "grep", "-l", stack.env["NEO4J_PASSWORD"]], cwd=ROOT, capture_output=True, text=True
    )
    assert tracked.stdout == ""


def test_docker_compose_wires_the_same_environment():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["neo4j"]["image"].startswith("neo4j:5.26-community@sha256:")
    assert services["postgres"]["image"].startswith("pgvector/pgvector:pg17")
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert {"DATABASE_URL", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"} <= set(env)
        assert "depends_on" in services[name]
    # no credentials committed: passwords come from the operator's environment
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${NEO4J_PASSWORD:?" in text and "${POSTGRES_PASSWORD:?" in text
