"""Other users of the machine cannot read the embedded stack's data or use its servers: the
data dir and the Neo4j store files are not group/world-readable, PostgreSQL's trust-auth
socket answers only the server's own user, and Neo4j never accepts ``neo4j/neo4j``, not even
during its first start."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from neo4j import GraphDatabase
from neo4j.exceptions import AuthError, ClientError

from tests.conftest import free_port

OTHERS_READ_WRITE = 0o066  # group/other read or write
ANY_OTHERS = 0o077


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _exposed(root: Path, bits: int = ANY_OTHERS) -> list[str]:
    """Every file or folder under ``root`` (itself too) with any of ``bits`` set."""
    paths = [root, *root.rglob("*")]
    return [f"{oct(_mode(p))} {p}" for p in paths if not p.is_symlink() and _mode(p) & bits]


def _socket_dir(database_url: str) -> Path:
    return Path(parse_qs(urlsplit(database_url).query)["host"][0])


def _default_password_refused(uri: str) -> bool:
    with GraphDatabase.driver(uri, auth=("neo4j", "neo4j"), notifications_min_severity="OFF") as driver:
        try:
            driver.verify_connectivity()
        except AuthError:
            return True
    return False


def _connect_as(user: str, socket_path: Path) -> int:
    """Connect to a Unix socket as another local user: 0 connected, 13 refused (EACCES)."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(socket_path)!r})\n"
        "except PermissionError:\n"
        "    sys.exit(13)\n"
    )
    who = pwd.getpwnam(user)
    return subprocess.run(
        ["/usr/bin/python3", "-c", code], user=who.pw_uid, group=who.pw_gid, extra_groups=[], timeout=30
    ).returncode


def _check_private_stack(data_dir: Path, database_url: str) -> None:
    assert not _mode(data_dir) & OTHERS_READ_WRITE, oct(_mode(data_dir))
    assert not _exposed(data_dir / "neo4j" / "data"), _exposed(data_dir / "neo4j" / "data")
    assert _mode(data_dir / "neo4j") == 0o700
    assert _mode(data_dir / "neo4j" / "password") == 0o600
    assert _mode(data_dir / "postgres") == 0o700
    socket_dir = _socket_dir(database_url)
    assert socket_dir == (data_dir / "postgres").resolve(), "the socket left the private data folder"
    assert _mode(socket_dir / ".s.PGSQL.5432") == 0o700


def test_the_data_dir_store_files_and_socket_are_private(stack):
    _check_private_stack(stack.data_dir, stack.settings.database_url)
    assert stack.sql("SELECT current_setting('unix_socket_permissions') AS p")[0]["p"] == "0700"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
def test_another_local_user_cannot_reach_postgres(stack):
    socket_path = _socket_dir(stack.settings.database_url) / ".s.PGSQL.5432"
    assert stack.sql("SELECT 1 AS one")[0]["one"] == 1  # the server's own side connects
    assert _connect_as("nobody", socket_path) == 13


def test_neo4j_refuses_the_default_password(stack):
    # one attempt only: three failures in a row would lock the suite's `neo4j` user for a while
    assert _default_password_refused(stack.settings.neo4j_uri)


@pytest.mark.slow
def test_a_fresh_stack_is_private_from_its_first_start(tmp_path):
    """From an empty data dir: `neo4j/neo4j` is refused from the moment the server listens,
    the generated password works, and nothing is readable by other users."""
    from devstack import ensure_stack
    from service.settings import Settings

    data_dir = tmp_path / "fresh" / "loft"
    bolt_port, http_port = free_port(), free_port()
    settings = Settings(
        database_url=None,
        neo4j_uri=None,
        data_dir=data_dir,
        neo4j_bolt_port=bolt_port,
        neo4j_http_port=http_port,
        neo4j_heap="512m",
    )
    uri = f"bolt://127.0.0.1:{bolt_port}"
    outcomes: list[str] = []
    starting = threading.Event()
    starting.set()

    def try_default_password() -> None:
        while starting.is_set():
            try:
                outcomes.append("refused" if _default_password_refused(uri) else "ACCEPTED")
            except ClientError as exc:  # too many wrong passwords: locked for a few seconds
                outcomes.append(exc.code or "client error")
            except Exception as exc:  # not listening yet
                outcomes.append(type(exc).__name__)
            time.sleep(0.2)

    prober = threading.Thread(target=try_default_password, daemon=True)
    prober.start()
    stack = None
    try:
        stack = ensure_stack(settings)
        starting.clear()
        prober.join(30)
        assert "ACCEPTED" not in outcomes
        assert "refused" in outcomes or _default_password_refused(uri)

        password = stack.settings.neo4j_password.get_secret_value()
        assert password == (data_dir / "neo4j" / "password").read_text().strip()
        deadline = time.monotonic() + 60
        while True:  # the prober's wrong attempts may have locked the user for a moment
            try:
                with GraphDatabase.driver(uri, auth=("neo4j", password)) as driver:
                    driver.verify_connectivity()
                break
            except ClientError as exc:
                if "RateLimit" not in (exc.code or "") or time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert _default_password_refused(uri)
        _check_private_stack(data_dir, stack.settings.database_url)
        assert not (data_dir / "neo4j" / "run" / "initial-password.args").exists()
    finally:
        starting.clear()
        if stack is not None:
            stack.stop()


def test_a_data_dir_too_long_for_the_socket_is_refused(tmp_path):
    from devstack.postgres import EmbeddedPostgres, PostgresStartError

    deep = tmp_path / ("d" * 100) / "postgres"
    with pytest.raises(PostgresStartError, match="shorter LOFT_DATA_DIR"):
        EmbeddedPostgres(deep).start()
    assert not deep.exists(), "nothing may be initialised before the refusal"


def test_an_existing_data_dir_is_tightened_but_a_shared_one_is_left_alone(tmp_path):
    from devstack.private import private_dir, write_private

    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    assert _mode(private_dir(old)) == 0o700
    created = private_dir(tmp_path / "a" / "b")
    assert _mode(created) == 0o700

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    private_dir(shared)
    assert _mode(shared) == 0o1777

    secret = old / "secret"
    secret.write_text("was readable")
    secret.chmod(0o644)
    write_private(secret, "now private")
    assert _mode(secret) == 0o600 and secret.read_text() == "now private"
