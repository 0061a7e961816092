"""A local Neo4j 5.26 LTS Community server built from Maven Central artifacts.

``neo4j-pom.xml`` (beside this file) names the server and Neo4j Browser; ``mvn
dependency:copy-dependencies`` resolves them once per machine into
``$LOFT_CACHE_DIR/neo4j-<version>/lib`` (Maven's own ``~/.m2`` caches the downloads),
and every jar is checked against the sha256 pinned in ``neo4j-jars.lock``
(:mod:`devstack.jars`). The server runs as ``java -cp lib/*
org.neo4j.server.CommunityEntryPoint`` with its home, configuration, data and logs under
``$LOFT_DATA_DIR/neo4j`` (0700, files written under umask 077), authentication on, and a
generated password in ``$LOFT_DATA_DIR/neo4j/password`` (mode 0600), set with
``neo4j-admin dbms set-initial-password`` before the first start: ``neo4j/neo4j`` is
never accepted.

Starting is idempotent: a live server recorded in ``neo4j.pid`` for this directory is
reused. Stopping sends SIGTERM to the server's process group and waits, then SIGKILL,
so no JVM is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from devstack import jars
from devstack.limits import transaction_limits
from devstack.private import private_dir, write_private

log = logging.getLogger("loft.devstack.neo4j")

POM = jars.POM
START_TIMEOUT_S = 120.0
# files the server writes (store files, logs) are for this user only
STORE_UMASK = 0o077
# what the password file may hold: generated passwords, and what the argument file can carry
PASSWORD_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Neo4j Browser, as the embedded server serves it. Neo4j 5.26 names the guide hosts' setting
# `browser.remote_content_hostname_whitelist` (hosts only, no ports; Browser reads it through
# dbms.clientConfig() after logging in); `..._allowlist` and `browser.allow_outgoing_connections`
# are not settings of this server, and strict config validation refuses unknown names. The API
# serves the analysts' guide on loopback. Browser's product analytics stay off.
BROWSER_SETTINGS = """\
browser.remote_content_hostname_whitelist=guides.neo4j.com,localhost,127.0.0.1
client.allow_telemetry=false
"""


class Neo4jStartError(RuntimeError):
    pass


def neo4j_version() -> str:
    match = re.search(r"<neo4j.version>([^<]+)</neo4j.version>", POM.read_text())
    assert match, "neo4j.version missing from neo4j-pom.xml"
    return match.group(1)


def ensure_server_jars(cache_dir: Path, *, lock: Path = jars.LOCK) -> Path:
    """Resolve the server's classpath once per machine, every jar checked against the
    checksums pinned in ``neo4j-jars.lock`` (:mod:`devstack.jars`); returns the lib
    directory. The marker records which lock the jars were checked against."""
    lib = cache_dir / f"neo4j-{neo4j_version()}" / "lib"
    marker = lib.parent / ".complete"
    checked = jars.lock_id(lock)
    try:
        if marker.exists():
            if marker.read_text().strip() != checked:
                # resolved before this lock existed, or against another one: check what is there
                jars.verify(lib, lock)
                marker.write_text(checked)
            return lib
        log.info("resolving Neo4j %s from Maven Central into %s (once per machine)", neo4j_version(), lib)
        shutil.rmtree(lib.parent, ignore_errors=True)
        lib.mkdir(parents=True)
        jars.resolve(lib)
        jars.verify(lib, lock)
    except jars.JarChecksumError as exc:
        raise Neo4jStartError(str(exc)) from exc
    marker.write_text(checked)
    return lib


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class EmbeddedNeo4j:
    def __init__(
        self,
        home: Path,
        *,
        cache_dir: Path,
        bolt_port: int = 7687,
        http_port: int = 7474,
        heap: str = "1g",
        tx_timeout_s: int = 120,
        tx_memory: str | None = None,
    ) -> None:
        self.home = home.resolve()
        self.cache_dir = cache_dir
        self.bolt_port = bolt_port
        self.http_port = http_port
        self.heap = heap
        self.tx_timeout_s = tx_timeout_s  # db.transaction.timeout (devstack/limits.py)
        self.tx_memory = tx_memory  # db.memory.transaction.max; None: a quarter of the heap
        self.pid_file = self.home / "neo4j.pid"
        self.password_file = self.home / "password"
        self.ports_file = self.home / "ports"

    # -- state ---------------------------------------------------------------------------

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"CommunityEntryPoint" not in cmdline.read_bytes():
            return None  # the pid was reused by something else
        return pid

    def died(self) -> bool:
        """The server was started for this directory and is gone without being stopped
        (``stop`` removes the pid file; a killed or crashed server leaves it)."""
        return self.pid_file.exists() and self._pid() is None

    def running(self) -> tuple[str, str] | None:
        """(bolt uri, password) of the server running for this directory, if any."""
        if self._pid() is None:
            return None
        bolt = int(self.ports_file.read_text().split()[0]) if self.ports_file.exists() else self.bolt_port
        return f"bolt://127.0.0.1:{bolt}", self.password_file.read_text().strip()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> tuple[str, str]:
        found = self.running()
        if found is not None:
            log.info("reusing the Neo4j server already running for %s", self.home)
            return found
        lib = ensure_server_jars(self.cache_dir)
        for port in (self.bolt_port, self.http_port):
            if _port_open(port):
                raise Neo4jStartError(
                    f"port {port} is already in use by another process; set LOFT_NEO4J_BOLT_PORT / "
                    "LOFT_NEO4J_HTTP_PORT to free ports, or NEO4J_URI to use that server"
                )
        java = shutil.which("java")
        if java is None:
            raise Neo4jStartError(
                "Java 17+ is needed to run the local Neo4j server "
                "(apt-get install openjdk-17-jre-headless), or set NEO4J_URI"
            )
        self._make_private_dirs()
        self._write_config()
        self._set_initial_password(java, lib)
        log_file = self.home / "logs" / "console.log"
        with os.fdopen(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xms{self.heap}",
                    f"-Xmx{self.heap}",
                    "-XX:+UseG1GC",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-Djdk.tls.ephemeralDHKeySize=2048",
                    "-Dfile.encoding=UTF-8",
                    "-cp",
                    f"{lib}/*",
                    "org.neo4j.server.CommunityEntryPoint",
                    f"--home-dir={self.home}",
                    f"--config-dir={self.home / 'conf'}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() kills the whole tree
                umask=STORE_UMASK,
            )
        self.pid_file.write_text(str(proc.pid))
        self.ports_file.write_text(f"{self.bolt_port} {self.http_port}")
        self._wait_ready(proc, log_file)
        return f"bolt://127.0.0.1:{self.bolt_port}", self.password_file.read_text().strip()

    def stop(self, timeout: float = 60.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pid() is None:
                break
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        else:
            log.warning("Neo4j did not stop within %.0f s; killing it", timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------

    def _write_config(self) -> None:
        for sub in ("conf", "data", "logs", "plugins", "import", "run"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        conf = f"""# written by loftmem on every start; edit devstack/neo4j.py instead
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:{self.bolt_port}
server.bolt.advertised_address=127.0.0.1:{self.bolt_port}
server.http.enabled=true
server.http.listen_address=127.0.0.1:{self.http_port}
server.http.advertised_address=127.0.0.1:{self.http_port}
server.https.enabled=false
server.directories.data={self.home / "data"}
server.directories.logs={self.home / "logs"}
server.directories.plugins={self.home / "plugins"}
server.directories.import={self.home / "import"}
server.directories.run={self.home / "run"}
dbms.security.auth_enabled=true
server.memory.pagecache.size=256m
db.tx_log.rotation.retention_policy=100M size
dbms.usage_report.enabled=false
server.jvm.additional=-XX:+ExitOnOutOfMemoryError
"""
        conf += transaction_limits(self.heap, timeout_s=self.tx_timeout_s, tx_memory=self.tx_memory)
        (self.home / "conf" / "neo4j.conf").write_text(conf + BROWSER_SETTINGS)

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_file: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_file.read_text(errors="replace")[-3000:]
                raise Neo4jStartError(
                    f"Neo4j exited with code {proc.returncode} while starting; last log lines:\n{tail}"
                )
            if _port_open(self.bolt_port) and _port_open(self.http_port):
                return
            time.sleep(0.25)
        self.stop()
        raise Neo4jStartError(
            f"Neo4j did not open bolt port {self.bolt_port} within {START_TIMEOUT_S:.0f} s; see {log_file}"
        )

    def _make_private_dirs(self) -> None:
        """The server's home and every folder in it for this user only (store files, logs,
        the password file); an existing home made before is tightened too."""
        private_dir(self.home)
        for sub in ("conf", "data", "logs", "plugins", "import", "run"):
            private_dir(self.home / sub)

    def _set_initial_password(self, java: str, lib: Path) -> None:
        """Before the first start, give the ``neo4j`` user a generated password, so the server
        never accepts ``neo4j/neo4j``, not even for a moment. The password goes to the password
        file (created 0600) first, then to ``neo4j-admin dbms set-initial-password`` (the
        ``SetInitialPasswordCommand`` of the jars, run as ``org.neo4j.cli.AdminTool``) through
        an argument file (0600, removed after), never on a command line other users can read."""
        if (self.home / "data" / "databases" / "system").exists():  # started before: users exist
            if not self.password_file.exists():
                raise Neo4jStartError(
                    f"the Neo4j data in {self.home} has a password that is not in {self.password_file}; "
                    f"remove {self.home} to start afresh"
                )
            return
        # a first start that stopped half-way keeps the password it already wrote down
        password = self.password_file.read_text().strip() if self.password_file.exists() else ""
        if not PASSWORD_RE.fullmatch(password):
            password = secrets.token_urlsafe(24)
        write_private(self.password_file, password)
        args = self.home / "run" / "initial-password.args"
        write_private(args, f"-- {password}\n")  # `--`: a password starting with '-' is not an option
        try:
            result = subprocess.run(
                [
                    java,
                    "-Xmx256m",
                    "-cp",
                    f"{lib}/*",
                    "org.neo4j.cli.AdminTool",
                    "dbms",
                    "set-initial-password",
                    f"@{args}",
                ],
                env=os.environ | {"NEO4J_HOME": str(self.home), "NEO4J_CONF": str(self.home / "conf")},
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                umask=STORE_UMASK,
            )
        finally:
            args.unlink(missing_ok=True)
        if result.returncode != 0:
            raise Neo4jStartError(
                f"neo4j-admin could not set the initial password:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
