"""The test stack: real PostgreSQL (pgvector) and real Neo4j, started for the session in
a throwaway data dir on free ports (so it runs beside `make run`), migrated, with the
API and a worker running as separate processes exactly as in production.

With DATABASE_URL / NEO4J_URI set, those servers are used instead (and not stopped).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TestStack:
    settings: object
    data_dir: Path
    env: dict[str, str]
    stack: object  # devstack.Stack

    def run(self, coro):
        return asyncio.run(coro)

    async def pg(self, query: str, *args):
        import asyncpg

        conn = await asyncpg.connect(self.settings.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    def sql(self, query: str, *args):
        return asyncio.run(self.pg(query, *args))

    def scan_postgres(self, needles: list[str]) -> list[tuple[str, str]]:
        """Every row of every table, as text, that contains any of ``needles`` (case-insensitive)."""
        patterns = [f"%{n}%" for n in needles]
        found = []
        for (table,) in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"):
            for row in self.sql(
                f'SELECT t::text AS row FROM "{table}" t WHERE t::text ILIKE ANY($1::text[])', patterns
            ):
                found.append((table, row["row"][:300]))
        return found

    def scan_neo4j(self, needles: list[str]) -> list[str]:
        """Every node and relationship (labels, type, every property as text) that contains
        any of ``needles`` (case-insensitive)."""
        lowered = [n.lower() for n in needles]
        found = []
        rows = self.cypher("MATCH (n) RETURN labels(n) AS what, properties(n) AS props")
        rows += self.cypher("MATCH ()-[r]->() RETURN [type(r)] AS what, properties(r) AS props")
        for row in rows:
            text = f"{row['what']} {row['props']}".lower()
            if any(n in text for n in lowered):
                found.append(text[:300])
        return found

    def loftmem(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run the CLI (``loftmem …``) against this stack, output captured."""
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            env=os.environ | self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cypher(self, query: str, **params):
        from neo4j import GraphDatabase

        with GraphDatabase.driver(
            self.settings.neo4j_uri,
            auth=(self.settings.neo4j_user, self.settings.neo4j_password.get_secret_value()),
            notifications_min_severity="OFF",
        ) as driver:
            records, _, _ = driver.execute_query(query, **params)
            return [r.data() for r in records]


@pytest.fixture(scope="session")
def stack():
    from devstack import ensure_stack
    from service.settings import Settings
    from service.stores import migrate_all

    external = bool(os.environ.get("DATABASE_URL")) and bool(os.environ.get("NEO4J_URI"))
    data_dir = Path(tempfile.mkdtemp(prefix="loft-test-"))
    env = {
        "LOFT_DATA_DIR": str(data_dir),
        "LOFT_NEO4J_BOLT_PORT": str(free_port()),
        "LOFT_NEO4J_HTTP_PORT": str(free_port()),
        "LOFT_ENV": "development",
        "LOFT_SUMMARY_IDLE_S": "0",
        "LOFT_NEO4J_HEAP": "768m",
        # tests compare an admin's statistics right before and after their own writes
        "LOFT_STATUS_STATS_TTL_S": "0",
    }
    os.environ.update(env)
    os.environ.pop("OPENAI_API_KEY", None)
    settings = Settings()
    running = ensure_stack(settings)
    asyncio.run(migrate_all(running.settings))
    full_env = dict(env)
    full_env["DATABASE_URL"] = running.settings.database_url
    full_env["NEO4J_URI"] = running.settings.neo4j_uri
    full_env["NEO4J_USER"] = running.settings.neo4j_user
    full_env["NEO4J_PASSWORD"] = running.settings.neo4j_password.get_secret_value()
    yield TestStack(running.settings, data_dir, full_env, running)
    if not external:
        running.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


class Service:
    """The API and a worker as subprocesses, and an HTTP client for the API."""

    def __init__(self, stack: TestStack, extra_env: dict[str, str] | None = None, worker: bool = True) -> None:
        self.stack = stack
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | stack.env | (extra_env or {})
        self.logs = stack.data_dir / f"service-{self.port}"
        self.logs.mkdir(exist_ok=True)
        self.api = self._spawn(["serve", "--port", str(self.port)], "api")
        self.worker = self._spawn(["worker"], "worker") if worker else None
        self.http = httpx.Client(base_url=self.base, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.http.get("/memory/status").status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API did not start:\n" + (self.logs / "api.log").read_text()[-3000:])
            time.sleep(0.3)
        # a worker is ready once it has warmed up (tests never meet one half-started)
        while self.worker is not None and "warmed up" not in self.log_tail("worker", 100_000):
            if self.worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + self.log_tail())
            time.sleep(0.2)

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (the child writes to it for its lifetime)
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def wait_idle(self, timeout: float = 60.0) -> dict:
        """Wait until the worker has nothing ready or running (scheduled jobs may remain)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.http.get("/memory/status").json()
            jobs = body.get("stats", {}).get("jobs")
            if jobs and jobs["ready"] == 0 and jobs["running"] == 0:
                return jobs
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker did not finish: {jobs}\n{self.diagnose()}\n"
                    f"{(self.logs / 'worker.log').read_text()[-12000:]}"
                )
            time.sleep(0.2)

    def diagnose(self) -> str:
        """What the stores are doing (when a wait times out): jobs held, sessions waiting."""
        out = []
        try:
            out.append(
                "running jobs: "
                + str(
                    [
                        dict(r)
                        for r in self.stack.sql(
                            "SELECT id, kind, lane, attempts, crashes, locked_by, locked_until, updated_at FROM jobs "
                            "WHERE status = 'running'"
                        )
                    ]
                )
            )
            out.append(
                "postgres sessions: "
                + str(
                    [
                        dict(r)
                        for r in self.stack.sql(
                            "SELECT pid, state, wait_event_type, wait_event, now() - xact_start AS in_xact, left(query, 160) AS query "
                            "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    ]
                )
            )
            out.append(
                "neo4j transactions: "
                + str(
                    self.stack.cypher(
                        "SHOW TRANSACTIONS YIELD transactionId, currentQuery, status, elapsedTime "
                        "RETURN transactionId, left(currentQuery, 120) AS q, status, toString(elapsedTime) AS t"
                    )
                )
            )
        except Exception as exc:  # diagnostics must never hide the real failure
            out.append(f"(diagnostics failed: {exc!r})")
        if self.worker is not None and self.worker.poll() is None:  # the worker logs its tasks' stacks
            self.worker.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        spy = shutil.which("py-spy") or os.environ.get("LOFT_PY_SPY")
        if spy and self.worker is not None:  # where the worker's threads are, if a profiler is at hand
            dump = subprocess.run(
                [spy, "dump", "--pid", str(self.worker.pid)], capture_output=True, text=True, timeout=30
            )
            out.append("worker stacks:\n" + dump.stdout[-6000:] + dump.stderr[-500:])
        return "\n".join(out)

    def log_tail(self, name: str = "worker", chars: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        self.http.close()
        for proc in (self.api, self.worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()


def keyed_service(
    stack: TestStack, keys_dir: Path, *, chat: str, admin: str, customer: str, secret: str, name: str
) -> Service:
    """An API (no worker) that requires keys: a chat and an admin key from
    ``LOFT_API_KEYS``, and ``customer``'s own key (called ``name``) from a keys file in ``keys_dir``."""
    keys_file = keys_dir / "keys.toml"
    keys_file.write_text(
        f'[[keys]]\nname = "{name}"\nrole = "customer"\ncustomer = "{customer}"\nsecret = "{secret}"\n'
    )
    return Service(
        stack,
        worker=False,
        extra_env={"LOFT_API_KEYS": f"backend:chat:{chat}, ops:admin:{admin}", "LOFT_API_KEYS_FILE": str(keys_file)},
    )


@pytest.fixture(scope="session")
def service(stack):
    svc = Service(stack)
    yield svc
    svc.stop()


@pytest.fixture
def api(service) -> httpx.Client:
    return service.http


@pytest.fixture
def loft(service):
    """The typed client (loft_memory) on the suite's API."""
    from loft_memory import LoftClient

    return LoftClient(service.base, http=service.http)


@pytest.fixture
def user() -> str:
    """A fresh customer per test: tests never see each other's data."""
    return f"t-{uuid.uuid4().hex[:10]}"


DEMO_CUSTOMERS = 300


@pytest.fixture(scope="session")
def demo_shop(stack, service):
    """The demo shop loaded once per run through `loftmem demo` (the real feeds and the
    worker); returns the same population computed in Python (same seed) to check against."""
    from devstack import demo
    from service.catalog import Catalog

    done = stack.loftmem("demo", "--customers", str(DEMO_CUSTOMERS), timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    service.wait_idle(timeout=300)
    return demo.population(Catalog.load(), customers=DEMO_CUSTOMERS), done.stdout


@contextmanager
def paused(service: Service):
    """``service``'s worker stops claiming (the queue is drained first) while a test drives
    the queue by hand or counts what another worker does."""
    service.wait_idle()
    service.worker.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        service.worker.send_signal(signal.SIGCONT)


def learned_context(loft, user: str, query: str, *, says: str, budget: int = 1000, timeout: float = 30.0):
    """The customer's context once it says ``says``: after an import, what the worker put in
    the graph reaches the context when a first read has written the customer's snapshot back."""
    deadline = time.monotonic() + timeout
    while True:
        context = loft.context(user, query, budget=budget)
        if says in context.text:
            return context
        if time.monotonic() > deadline:
            raise AssertionError(f"the context never said {says!r}:\n{context.text}")
        time.sleep(0.2)
