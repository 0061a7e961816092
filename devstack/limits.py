"""Neo4j's own limits on every transaction, written into the embedded server's config.

They hold whoever runs the transaction: the service, a worker, or an analyst in Neo4j
Browser. A query that walks too much is ended by the server (``db.transaction.timeout``),
and one that would hold too much memory fails alone (``db.memory.transaction.max``)
instead of driving the heap into garbage-collection stalls that stop the whole server;
``dbms.memory.transaction.total.max`` caps all transactions together below the heap.

For an external server (``NEO4J_URI``), set the same three settings in its
``neo4j.conf`` (see the operations docs); the service's own reads carry a client-side
timeout as well, so they are bounded on any server.
"""

from __future__ import annotations

import re

TX_MEMORY_SHARE = 0.25  # of the heap, for one transaction (unless LOFT_NEO4J_TX_MEMORY says)
TOTAL_MEMORY_SHARE = 0.6  # of the heap, for all transactions together

_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")
_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size_bytes(size: str) -> int:
    """``"768m"`` -> bytes (the JVM's -Xmx notation: k, m, g; no unit: bytes)."""
    match = _SIZE.match(size)
    if match is None:
        raise ValueError(f"not a memory size: {size!r} (use e.g. 512m or 1g)")
    return int(match.group(1)) * _UNIT[match.group(2).lower()]


def transaction_limits(heap: str, *, timeout_s: int, tx_memory: str | None = None) -> str:
    """The neo4j.conf lines: a transaction timeout, a per-transaction memory limit (a
    quarter of the heap unless ``tx_memory`` is given) and a limit for all transactions
    together (60% of the heap; never below the per-transaction one)."""
    heap_mb = size_bytes(heap) // 1024**2
    one_mb = size_bytes(tx_memory) // 1024**2 if tx_memory else int(heap_mb * TX_MEMORY_SHARE)
    total_mb = max(int(heap_mb * TOTAL_MEMORY_SHARE), one_mb)
    return (
        "# transaction limits (devstack/limits.py): every transaction, whoever runs it\n"
        f"db.transaction.timeout={timeout_s}s\n"
        f"db.memory.transaction.max={max(one_mb, 1)}m\n"
        f"dbms.memory.transaction.total.max={max(total_mb, 1)}m\n"
    )
