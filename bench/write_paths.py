"""The worker's store writes as they were before batching, as a benchmark's baseline.

``bench.ingest --ab-rounds N`` drains populations with the write path of today and of
``BASELINE`` side by side in one run. The baseline's modules are read from git
(``git show BASELINE:graph/writes.py``, ``…:vectors/memories.py``) and loaded under other
names, so the baseline is exactly the code that ran then, not a copy kept in step:
``write_facts`` with one statement per kind of fact, and ``add_memory`` with two or three
round trips per memory. An arm swaps them into the pipeline's modules for its drain (a
measurement-only monkeypatch of this process, like :class:`bench.ingest.EmbedMeter`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

# the last commit whose worker wrote one statement per kind of fact and 2-3 per memory
BASELINE = "bfa0857"
# the last commit whose one graph statement took its rows in six list parameters (a plan per
# mix of section sizes: ``graph.writes.WRITE_FACTS``)
LISTS = "edb743d"
ROOT = Path(__file__).resolve().parent.parent


def _load(rev: str, path: str, name: str) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


class Baseline:
    def __init__(self, rev: str = BASELINE, lists: str = LISTS) -> None:
        self.rev = rev
        self.writes = _load(rev, "graph/writes.py", "_baseline_graph_writes")
        self.memories = _load(rev, "vectors/memories.py", "_baseline_memories")
        self.list_writes = _load(lists, "graph/writes.py", "_lists_graph_writes")

    async def add_memories_one_by_one(self, conn: Any, batch: Sequence[tuple[str, Any]]) -> list[Any]:
        return [await self.memories.add_memory(conn, user, memory) for user, memory in batch]


ARMS = ("before", "graph", "lists", "graph+memories")  # what is batched in each arm


@contextmanager
def arm(name: str, baseline: Baseline) -> Iterator[None]:
    """Run the pipeline with the arm's write path: ``before`` (neither batched), ``graph``
    (the graph write batched, memories one by one), ``lists`` (both batched, the graph
    statement's rows in six list parameters as of ``LISTS``), ``graph+memories`` (today's)."""
    from graph import writes
    from vectors import memories

    patches: list[tuple[ModuleType, str, Callable[..., Any]]] = []
    if name in ("before",):
        patches.append((writes, "write_facts", baseline.writes.write_facts))
    if name in ("lists",):
        patches.append((writes, "write_facts", baseline.list_writes.write_facts))
    if name in ("before", "graph"):
        patches.append((memories, "add_memories", baseline.add_memories_one_by_one))
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    for module, attr, value in patches:
        setattr(module, attr, value)
    try:
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
