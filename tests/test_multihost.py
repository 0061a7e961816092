"""Many processes on many hosts behave as one: two API processes and two workers, each in
a network namespace of its own (a host of its own, as far as the network goes), against
one PostgreSQL and one Neo4j reachable only over a bridge of veth pairs.

Mixed traffic (chat turns and imports) goes through both APIs while one worker is killed
(SIGKILL) holding a batch, and a customer both APIs have served is erased through one of
them. Afterwards every acknowledged message is stored once and filed once (embedded, its
words counted once for BM25), nothing is left in the queue, the erased customer is in
neither store and in neither API's answers, and the two APIs' request counters add up to
the traffic sent.

Needs root and ``ip netns`` (skipped otherwise, saying why). Counts and orders only: no
duration is asserted; every wait is bounded and says what it waited for.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

HOSTS = ("api1", "api2", "worker1", "worker2")
API_PORT = 8001
CHAT_CUSTOMERS = 6
TURNS_EACH = 6
IMPORTS = 3  # per importing customer, one per API in turn
IMPORT_SIZE = 100
VICTIM_WORDS = ("periwinkle", "flamingo")


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def _unavailable() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"loftprobe{os.getpid()}"
    made = _sh("ip", "netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _sh("ip", "netns", "del", probe)
    return None


@dataclass
class Net:
    """A bridge in this namespace (the stores' address) and one namespace per host, each
    joined to the bridge by a veth pair."""

    tag: str
    prefix: str  # the /24's first three octets
    namespaces: dict[str, str] = field(default_factory=dict)  # host -> namespace

    @property
    def bridge(self) -> str:
        return f"lbr{self.tag}"

    @property
    def stores(self) -> str:
        return f"{self.prefix}.1"

    def address(self, host: str) -> str:
        return f"{self.prefix}.{10 + HOSTS.index(host)}"

    def up(self) -> None:
        self._must("ip", "link", "add", self.bridge, "type", "bridge")
        self._must("ip", "addr", "add", f"{self.stores}/24", "dev", self.bridge)
        self._must("ip", "link", "set", self.bridge, "up")
        for i, host in enumerate(HOSTS):
            ns, outside, inside = f"loft{self.tag}{host}", f"lv{self.tag}{i}", f"lp{self.tag}{i}"
            self._must("ip", "netns", "add", ns)
            self.namespaces[host] = ns
            self._must("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            self._must("ip", "link", "set", inside, "netns", ns)
            self._must("ip", "link", "set", outside, "master", self.bridge)
            self._must("ip", "link", "set", outside, "up")
            self._must("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", inside)
            self._must("ip", "-n", ns, "link", "set", inside, "up")
            self._must("ip", "-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        for ns in self.namespaces.values():
            _sh("ip", "netns", "del", ns)  # its end of the veth pair goes with it
        _sh("ip", "link", "del", self.bridge)

    @staticmethod
    def _must(*args: str) -> None:
        done = _sh(*args)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr.strip()}"


def _free_prefix() -> str:
    used = _sh("ip", "-4", "addr").stdout
    for third in range(os.getpid() % 200, os.getpid() % 200 + 50):
        prefix = f"10.213.{third % 250}"
        if f"{prefix}." not in used:
            return prefix
    raise AssertionError("no free 10.213.x.0/24 for the test's bridge")


@pytest.fixture(scope="module")
def net():
    reason = _unavailable()
    if reason is not None:
        pytest.skip(reason)
    found = Net(tag=str(os.getpid() % 100000), prefix=_free_prefix())
    try:
        found.up()
        yield found
    finally:
        found.down()


def _bridged_neo4j(address: str):
    """The embedded Neo4j, listening on ``address`` instead of loopback."""
    from devstack.neo4j import START_TIMEOUT_S, EmbeddedNeo4j

    class BridgedNeo4j(EmbeddedNeo4j):
        def _write_config(self) -> None:
            super()._write_config()
            conf = self.home / "conf" / "neo4j.conf"
            conf.write_text(conf.read_text().replace("127.0.0.1", address))

        def _wait_ready(self, proc, log_file) -> None:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(_listening(address, p) for p in (self.bolt_port, self.http_port)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("Neo4j did not start:\n" + log_file.read_text(errors="replace")[-3000:])
                time.sleep(0.25)

    return BridgedNeo4j


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Stores:
    data_dir: Path
    local_pg: str  # the test's own door: the server's socket
    env: dict[str, str]  # what every process of the service gets (TCP over the bridge)
    neo4j_auth: tuple[str, str]
    neo4j_uri: str

    async def pg(self, query: str, *args):
        conn = await asyncpg.connect(self.local_pg)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    def sql(self, query: str, *args):
        return asyncio.run(self.pg(query, *args))

    def cypher(self, query: str, **params):
        from neo4j import GraphDatabase

        with GraphDatabase.driver(self.neo4j_uri, auth=self.neo4j_auth, notifications_min_severity="OFF") as driver:
            records, _, _ = driver.execute_query(query, **params)
            return [r.data() for r in records]


def _start_postgres(data_dir: Path, net: Net, password: str) -> tuple[str, int]:
    """The embedded PostgreSQL, then restarted to listen on the bridge too, with a password
    for connections from the hosts' subnet."""
    from devstack.postgres import EmbeddedPostgres, start_server

    pg = EmbeddedPostgres(data_dir / "postgres")
    socket_url = pg.start()

    async def set_password() -> None:
        conn = await asyncpg.connect(socket_url)
        try:
            await conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
        finally:
            await conn.close()

    asyncio.run(set_password())
    with (pg.pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"\nhost all all {net.prefix}.0/24 scram-sha-256\n")
    pg.stop()
    port = free_port()
    return start_server(pg.pgdata, port=port, listen=net.stores), port


@pytest.fixture(scope="module")
def stores(net):
    from devstack.postgres import stop_server
    from devstack.private import private_dir
    from service.settings import Settings
    from service.stores import migrate_all

    data_dir = private_dir(Path(tempfile.mkdtemp(prefix="loft-mh-")))
    pg_password = secrets.token_urlsafe(18)
    neo4j = _bridged_neo4j(net.stores)(
        data_dir / "neo4j",
        cache_dir=Settings().cache_dir,
        bolt_port=free_port(),
        http_port=free_port(),
        heap="512m",
    )
    try:
        local_pg, pg_port = _start_postgres(data_dir, net, pg_password)
        _, neo4j_password = neo4j.start()
        neo4j_uri = f"bolt://{net.stores}:{neo4j.bolt_port}"
        settings = Settings(database_url=local_pg, neo4j_uri=neo4j_uri, neo4j_password=neo4j_password)
        asyncio.run(migrate_all(settings))
        env = {
            "DATABASE_URL": f"postgresql://postgres:{pg_password}@{net.stores}:{pg_port}/postgres",
            "NEO4J_URI": neo4j_uri,
            "NEO4J_USER": "neo4j",
            "NEO4J_PASSWORD": neo4j_password,
            "LOFT_DATA_DIR": str(data_dir / "service"),
        }
        yield Stores(data_dir, local_pg, env, ("neo4j", neo4j_password), neo4j_uri)
    finally:
        neo4j.stop()
        stop_server(data_dir / "postgres")
        shutil.rmtree(data_dir, ignore_errors=True)


class Host:
    """One process of the service in its host's namespace."""

    def __init__(self, net: Net, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        out = open(self.log, "wb")  # noqa: SIM115 (the child writes to it for its lifetime)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.namespaces[name], sys.executable, "-m", "service.cli", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Cluster:
    stores: Stores
    apis: list[httpx.Client]
    api_hosts: list[Host]
    workers: list[Host]

    def diagnose(self) -> str:
        jobs = self.stores.sql(
            "SELECT kind, lane, status, attempts, crashes, locked_by, last_error FROM jobs ORDER BY id LIMIT 30"
        )
        return f"jobs: {[dict(j) for j in jobs]}\n" + "\n".join(f"--- {h.name}\n{h.tail()}" for h in self.workers)


def _wait(what: str, check, timeout: float, diagnose=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}\n{diagnose()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(net, stores):
    admin = secrets.token_urlsafe(24)
    env = (
        os.environ
        | stores.env
        | {
            "LOFT_API_KEYS": f"ops:admin:{admin}",
            "LOFT_ERASURE_KEY": secrets.token_urlsafe(32),
            "LOFT_ENV": "development",
            # a killed worker's jobs come back within seconds, not the default five minutes
            "LOFT_JOB_LEASE_S": "10",
            "LOFT_WORKER_METRICS_PORT": "0",
        }
    )
    for name in ("DATABASE_READ_URL", "OPENAI_API_KEY", "LOFT_API_KEYS_FILE"):
        env.pop(name, None)
    logs = stores.data_dir / "logs"
    logs.mkdir()
    apis = [
        Host(net, name, ["serve", "--host", net.address(name), "--port", str(API_PORT)], env, logs)
        for name in ("api1", "api2")
    ]
    workers = [Host(net, name, ["worker"], env, logs) for name in ("worker1", "worker2")]
    clients = [
        httpx.Client(base_url=f"http://{net.address(h.name)}:{API_PORT}", headers={"X-API-Key": admin}, timeout=60)
        for h in apis
    ]
    found = Cluster(stores, clients, apis, workers)
    try:
        for host, client in zip(apis, clients, strict=True):
            _wait(f"{host.name} to answer", lambda c=client: _status(c) == 200, 300, host.tail)
        for host in workers:
            _wait(f"{host.name} to warm up", lambda h=host: "warmed up" in h.tail(100_000), 300, host.tail)
        yield found
    finally:
        for client in clients:
            client.close()
        for host in apis + workers:
            host.stop()


def _status(client: httpx.Client) -> int:
    try:
        return client.get("/memory/status").status_code
    except httpx.HTTPError:
        return 0


class Ledger:
    """What the APIs acknowledged: message ids per customer, and chat turns per API."""

    def __init__(self) -> None:
        self.ids: dict[str, set[int]] = {}
        self.chats = [0, 0]
        self.lock = threading.Lock()

    def add(self, user: str, ids: list[int]) -> None:
        with self.lock:
            self.ids.setdefault(user, set()).update(ids)


def _chats(cluster: Cluster, ledger: Ledger, user: str, first_api: int) -> None:
    session = None
    for turn in range(TURNS_EACH):
        which = (first_api + turn) % 2
        r = cluster.apis[which].post(
            "/v1/chat",
            json={"user_identifier": user, "message": f"turn {turn}: I like oak tables", "session_id": session},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        session = body["session_id"]
        ledger.add(user, [body["message_id"], body["reply_message_id"]])
        with ledger.lock:
            ledger.chats[which] += 1


def _import(cluster: Cluster, ledger: Ledger, user: str, part: int) -> None:
    messages = [
        {"role": "user", "content": f"import {part} line {i}: the lamp {i} is brass", "external_id": f"{part}-{i}"}
        for i in range(IMPORT_SIZE)
    ]
    r = cluster.apis[part % 2].post(f"/v1/sessions/{user}/messages", json={"messages": messages})
    assert r.status_code == 201, r.text
    assert r.json()["created"] == IMPORT_SIZE
    ledger.add(user, r.json()["message_ids"])


def _holding(cluster: Cluster, worker: Host) -> int:
    """Jobs the worker holds (its id carries its pid: no PID namespace here)."""
    rows = cluster.stores.sql(
        "SELECT count(*) AS n FROM jobs WHERE status = 'running' AND locked_by LIKE $1", f"%:{worker.proc.pid}:%"
    )
    return int(rows[0]["n"])


def _context(client: httpx.Client, user: str, query: str) -> str:
    r = client.get(f"/memory/context/{user}", params={"query": query})
    assert r.status_code == 200, r.text
    return str(r.json()["text"])


def _served_victim(cluster: Cluster, victim: str) -> None:
    """The victim talks through both APIs, is filed, and both APIs read (and cache) them."""
    for i, client in enumerate(cluster.apis):
        r = client.post("/v1/chat", json={"user_identifier": victim, "message": f"my {VICTIM_WORDS[i]} rug"})
        assert r.status_code == 200, r.text
    _wait("the victim's turns to be filed", lambda: _pending(cluster, victim) == 0, 300, cluster.diagnose)
    for client, word in zip(cluster.apis, VICTIM_WORDS, strict=True):
        assert word in _context(client, victim, f"{word} rug")


def _pending(cluster: Cluster, user: str | None = None) -> int:
    """Jobs not finished (a session summary waiting for its time aside)."""
    rows = cluster.stores.sql(
        "SELECT count(*) AS n FROM jobs WHERE status <> 'failed' AND NOT (kind = 'summarize_session' AND status = 'queued' AND run_after > now()) "
        "AND ($1::text IS NULL OR user_identifier = $1)",
        user,
    )
    return int(rows[0]["n"])


def test_two_apis_and_two_workers_on_four_hosts_behave_as_one(cluster):
    run = uuid.uuid4().hex[:8]
    victim, importers = f"mh-{run}-victim", [f"mh-{run}-bulk-a", f"mh-{run}-bulk-b"]
    talkers = [f"mh-{run}-chat-{i}" for i in range(CHAT_CUSTOMERS)]
    ledger = Ledger()
    _served_victim(cluster, victim)
    doomed, survivor = cluster.workers
    survivor.proc.send_signal(signal.SIGSTOP)  # so the doomed worker surely claims the next batch
    try:
        with ThreadPoolExecutor(4) as pool:
            talking = [pool.submit(_chats, cluster, ledger, u, i % 2) for i, u in enumerate(talkers)]
            _import(cluster, ledger, importers[0], 0)
            _wait("worker1 to hold a batch", lambda: _holding(cluster, doomed) > 0, 300, cluster.diagnose)
            doomed.proc.kill()  # SIGKILL, mid-batch
            doomed.proc.wait(30)
            survivor.proc.send_signal(signal.SIGCONT)
            importing = [pool.submit(_import, cluster, ledger, importers[p % 2], p) for p in range(1, 2 * IMPORTS)]
            receipt = cluster.apis[1].delete(f"/memory/user/{victim}")
            for job in talking + importing:
                job.result()
    finally:
        survivor.proc.send_signal(signal.SIGCONT)
    assert receipt.status_code == 200 and receipt.json()["status"] == "complete", receipt.text
    _wait("the queue to drain", lambda: _pending(cluster) == 0, 600, cluster.diagnose)

    _every_acknowledged_message_stored_and_filed_once(cluster, ledger)
    _the_victim_is_gone(cluster, victim)
    _the_apis_counters_add_up(cluster, ledger)


def _every_acknowledged_message_stored_and_filed_once(cluster: Cluster, ledger: Ledger) -> None:
    users = sorted(ledger.ids)
    assert len(ledger.ids) == CHAT_CUSTOMERS + 2
    stored = cluster.stores.sql(
        "SELECT user_identifier, array_agg(id) AS ids, count(*) FILTER (WHERE embedding IS NULL) AS unembedded "
        "FROM messages WHERE user_identifier = ANY($1) GROUP BY 1",
        users,
    )
    by_user = {r["user_identifier"]: r for r in stored}
    for user in users:
        assert sorted(by_user[user]["ids"]) == sorted(ledger.ids[user]), f"{user}: stored is not what was acknowledged"
        assert by_user[user]["unembedded"] == 0, f"{user}: acknowledged messages never embedded"
    # a message filed twice would count its words twice in the customer's BM25 frequencies
    miscounted = cluster.stores.sql(
        """
        WITH truth AS (
          SELECT m.user_identifier, t.lexeme, count(*) AS n
          FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
          WHERE m.user_identifier = ANY($1) AND m.embedding IS NOT NULL GROUP BY 1, 2
        )
        SELECT user_identifier, lexeme, truth.n, u.ndoc
        FROM truth FULL JOIN (SELECT * FROM user_terms WHERE user_identifier = ANY($1)) u USING (user_identifier, lexeme)
        WHERE truth.n IS DISTINCT FROM u.ndoc
        """,
        users,
    )
    assert [dict(r) for r in miscounted] == []
    assert cluster.stores.sql("SELECT count(*) AS n FROM jobs WHERE status = 'failed'")[0]["n"] == 0
    customers = cluster.stores.cypher(
        "MATCH (c:Customer) WHERE c.user_id IN $users RETURN c.user_id AS user, count(*) AS n", users=users
    )
    assert sorted((c["user"], c["n"]) for c in customers) == [(u, 1) for u in users]


def _the_victim_is_gone(cluster: Cluster, victim: str) -> None:
    needles = [victim, *VICTIM_WORDS]
    patterns = [f"%{n}%" for n in needles]
    left = []
    for (table,) in cluster.stores.sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    ):
        rows = cluster.stores.sql(
            f'SELECT t::text AS row FROM "{table}" t WHERE t::text ILIKE ANY($1::text[])', patterns
        )
        left += [(table, r["row"][:200]) for r in rows]
    assert left == []
    lowered = [n.lower() for n in needles]
    graph = cluster.stores.cypher("MATCH (n) RETURN labels(n) AS what, properties(n) AS props")
    graph += cluster.stores.cypher("MATCH ()-[r]->() RETURN [type(r)] AS what, properties(r) AS props")
    assert [g for g in graph if any(n in f"{g['what']} {g['props']}".lower() for n in lowered)] == []
    for client in cluster.apis:
        for word in VICTIM_WORDS:
            assert word not in _context(client, victim, f"{word} rug")
        assert client.get(f"/memory/user/{victim}/summary").status_code == 404
        assert client.get(f"/v1/sessions/{victim}").json()["sessions"] == []


def _the_apis_counters_add_up(cluster: Cluster, ledger: Ledger) -> None:
    """Each API counts its own requests; their sum is the traffic (the victim's two turns too)."""
    counted = []
    for client in cluster.apis:
        text = client.get("/metrics").text
        found = re.search(
            r'^loft_http_requests_total\{method="POST",route="/v1/chat",status="200"\} (\S+)$', text, re.M
        )
        counted.append(int(float(found.group(1))) if found else 0)
    assert [c - 1 for c in counted] == ledger.chats
    assert sum(counted) == CHAT_CUSTOMERS * TURNS_EACH + 2
