"""Where a worker's batch spends its time, statement by statement (measurement only).

:class:`StatementMeter` monkeypatches, in this process, asyncpg's connection methods and
the Neo4j driver's transaction ``run`` and ``execute_write``, and records for every
statement its name (the constant it is in: ``vectors.memories.FIND_SAME_OR_NEAR``), its
count, its wall time as the worker waits for it, and for Cypher the Neo4j process's CPU
while it ran (``/proc``: an estimate, since the JVM's background threads count too, but
during a drain nothing else talks to Neo4j). A Cypher statement's time includes fetching
its whole result; a write transaction's commit is its own line (``neo4j commit``). The
pipeline's ``prepare`` and ``commit`` are timed as phases; ``commit`` includes the waits
above, ``prepare`` the embedding and extraction.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from neo4j import AsyncSession
from neo4j._async.work.transaction import AsyncTransactionBase

from bench.procstat import ProcessGroup

MODULES = (
    "vectors.memories",
    "vectors.passages",
    "graph.writes",
    "service.postgres.history",
    "service.postgres.users",
    "service.postgres.queue",
    "service.postgres.graph_snapshots",
    "service.postgres.consent",
    "service.core.consent",
    "graph.reads",
)
PG_METHODS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


def statement_names() -> dict[str, str]:
    """Every module-level string constant of the modules that run statements, by its text."""
    names: dict[str, str] = {}
    baselines = [name for name in sys.modules if name.startswith("_baseline_")]  # bench.write_paths
    for module_name in [*MODULES, *baselines]:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and len(value) > 20:
                names.setdefault(value.strip(), f"{module_name}.{name}")
    return names


class StatementMeter:
    def __init__(self, neo4j: ProcessGroup | None) -> None:
        self.neo4j = neo4j
        self.names = statement_names()
        self.rows: dict[str, list[float]] = {}  # name -> [count, wall seconds, neo4j cpu ticks]
        self.phases: dict[str, list[float]] = {}
        self._undo: list[Callable[[], None]] = []

    def _name(self, query: str, store: str) -> str:
        text = query.strip()
        return self.names.get(text) or f"{store}: {' '.join(text.split())[:60]}"

    def _add(self, table: dict[str, list[float]], name: str, seconds: float, ticks: int = 0) -> None:
        row = table.setdefault(name, [0, 0.0, 0])
        row[0] += 1
        row[1] += seconds
        row[2] += ticks

    def _ticks(self) -> int:
        return self.neo4j.ticks() if self.neo4j is not None else 0

    def _patch(self, owner: Any, attr: str, wrap: Callable[[Any], Any]) -> None:
        original = getattr(owner, attr)
        setattr(owner, attr, wrap(original))
        self._undo.append(lambda: setattr(owner, attr, original))

    def install(self) -> None:
        meter = self
        for method in PG_METHODS:

            def wrap_pg(original: Any) -> Any:
                async def timed(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return await original(conn, query, *args, **kwargs)
                    finally:
                        meter._add(meter.rows, meter._name(query, "sql"), time.perf_counter() - t0)

                return timed

            self._patch(asyncpg.connection.Connection, method, wrap_pg)

        def wrap_run(original: Any) -> Any:
            async def timed(tx: Any, query: Any, parameters: Any = None, **kwargs: Any) -> Any:
                t0, c0 = time.perf_counter(), meter._ticks()
                result = await original(tx, query, parameters, **kwargs)
                await result._buffer_all()  # the statement runs as its result is pulled
                meter._add(meter.rows, meter._name(str(query), "cypher"), time.perf_counter() - t0, meter._ticks() - c0)
                return result

            return timed

        self._patch(AsyncTransactionBase, "run", wrap_run)

        def wrap_write(original: Any) -> Any:
            async def timed(session: Any, work: Any, *args: Any, **kwargs: Any) -> Any:
                before = {k: (v[1], v[2]) for k, v in meter.rows.items() if not k.startswith("sql")}
                t0, c0 = time.perf_counter(), meter._ticks()
                try:
                    return await original(session, work, *args, **kwargs)
                finally:
                    wall, ticks = time.perf_counter() - t0, meter._ticks() - c0
                    ran = [
                        (v[1] - before.get(k, (0.0, 0))[0], v[2] - before.get(k, (0.0, 0))[1])
                        for k, v in meter.rows.items()
                        if not k.startswith("sql")
                    ]
                    meter._add(
                        meter.rows,
                        "neo4j commit (execute_write minus its statements)",
                        wall - sum(w for w, _ in ran),
                        ticks - sum(t for _, t in ran),
                    )

            return timed

        self._patch(AsyncSession, "execute_write", wrap_write)

        from service import pipeline

        for phase in ("prepare", "commit"):

            def wrap_phase(original: Any, phase: str = phase) -> Any:
                async def timed(*args: Any, **kwargs: Any) -> Any:
                    t0 = time.perf_counter()
                    try:
                        return await original(*args, **kwargs)
                    finally:
                        meter._add(meter.phases, phase, time.perf_counter() - t0)

                return timed

            self._patch(pipeline, phase, wrap_phase)

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def report(self, messages: int, batches: int) -> dict[str, Any]:
        """Per statement: count, milliseconds per batch and per message (wall), Neo4j CPU
        milliseconds per message; sorted by wall time."""
        from bench.procstat import TICKS_PER_S

        def line(row: list[float]) -> dict[str, Any]:
            count, seconds, ticks = row
            out = {
                "count": int(count),
                "ms_per_batch": round(1000 * seconds / max(batches, 1), 2),
                "ms_per_message": round(1000 * seconds / max(messages, 1), 3),
            }
            if ticks:
                out["neo4j_cpu_ms_per_message"] = round(1000 * ticks / TICKS_PER_S / max(messages, 1), 3)
            return out

        ordered = sorted(self.rows.items(), key=lambda kv: -kv[1][1])
        return {
            "batches": batches,
            "phases": {k: line(v) for k, v in self.phases.items()},
            "statements": {k: line(v) for k, v in ordered},
        }
