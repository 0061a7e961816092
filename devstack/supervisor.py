"""Keeps the embedded servers of ``loftmem up`` alive: a server that dies (killed, crashed,
or ended by ``-XX:+ExitOnOutOfMemoryError``) is started again on the same data, ports and
password, and the API and worker reconnect by themselves (their drivers and pools retry).

Only a server that *died* is restarted: one stopped on purpose (``loftmem stop``, or
``Stack.stop``) removes its pid file (``neo4j.pid``, ``postmaster.pid``) and is left alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from devstack.neo4j import EmbeddedNeo4j
from devstack.postgres import EmbeddedPostgres

log = logging.getLogger("loft.devstack.supervisor")

CHECK_EVERY_S = 2.0


class Supervisor:
    """A daemon thread that checks the servers every ``interval`` seconds."""

    def __init__(
        self,
        *,
        neo4j: EmbeddedNeo4j | None,
        postgres: EmbeddedPostgres | None,
        interval: float = CHECK_EVERY_S,
    ) -> None:
        self.neo4j = neo4j
        self.postgres = postgres
        self.interval = interval
        self.restarts: dict[str, int] = {"neo4j": 0, "postgres": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        self._thread = threading.Thread(target=self._run, name="devstack-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval * 2 + 1)

    def check(self) -> list[str]:
        """One round: restart each server that died; returns the names restarted."""
        restarted = []
        if self.neo4j is not None and self.neo4j.died() and self._restart("neo4j", self.neo4j.start):
            restarted.append("neo4j")
        if self.postgres is not None and self.postgres.died() and self._restart("postgres", self.postgres.revive):
            restarted.append("postgres")
        return restarted

    def _restart(self, name: str, start: Callable[[], object]) -> bool:
        log.warning("the embedded %s server died; starting it again", name)
        try:
            start()
        except Exception as exc:  # the next round tries again
            log.error("could not restart %s (%s: %s); trying again soon", name, type(exc).__name__, exc)
            return False
        self.restarts[name] += 1
        log.warning("the embedded %s server is back", name)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the thread die: log, and look again next round
                log.exception("supervisor round failed")
