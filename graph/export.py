"""Reading out everything the graph holds about one customer, for their export.

What is exported is exactly what an erasure deletes (:mod:`graph.erasure`): the nodes of
every label in ``PER_USER_LABELS`` that carry the customer's ``user_id``, and every
relationship touching them, each once (those leaving a per-user node, and those arriving
at one from a node that is not the customer's). Records are streamed from the server in
fetch-size batches, never collected, so a customer with 100,000 facts costs no more
memory than one with ten. Vector properties (``embedding``) are left out: they are
computed from the exported text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from neo4j import AsyncDriver

from graph.erasure import PER_USER_LABELS

OMITTED_PROPERTIES = ("embedding",)
FETCH_SIZE = 500

# labels come from PER_USER_LABELS only (a fixed allow-list), everything else is a parameter
_NODES = """
MATCH (n:{label} {{user_id: $user_id}})
RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS properties
"""
_FROM = """
MATCH (n:{label} {{user_id: $user_id}})-[r]->(m)
RETURN elementId(r) AS id, type(r) AS type, elementId(n) AS start, elementId(m) AS end,
       labels(m) AS end_labels, properties(r) AS properties
"""
_INTO = """
MATCH (n)-[r]->(m:{label} {{user_id: $user_id}}) WHERE coalesce(n.user_id, '') <> $user_id
RETURN elementId(r) AS id, type(r) AS type, elementId(n) AS start, elementId(m) AS end,
       labels(n) AS start_labels, properties(r) AS properties
"""


def _check(label: str) -> str:
    if label not in PER_USER_LABELS or not label.isalnum():
        raise ValueError(f"not a per-user label: {label!r}")
    return label


async def nodes(driver: AsyncDriver, user_id: str, *, database: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(label, node) for every per-user node of the customer, label by label."""
    async with driver.session(database=database, fetch_size=FETCH_SIZE, default_access_mode="READ") as session:
        for label in PER_USER_LABELS:
            result = await session.run(_NODES.format(label=_check(label)), user_id=user_id)
            async for record in result:
                node = record.data()
                node["properties"] = _without_vectors(node["properties"])
                yield label, node


async def relationships(driver: AsyncDriver, user_id: str, *, database: str) -> AsyncIterator[dict[str, Any]]:
    """Every relationship touching the customer's nodes, once each."""
    async with driver.session(database=database, fetch_size=FETCH_SIZE, default_access_mode="READ") as session:
        for query in (_FROM, _INTO):
            for label in PER_USER_LABELS:
                result = await session.run(query.format(label=_check(label)), user_id=user_id)
                async for record in result:
                    rel = record.data()
                    rel["properties"] = _without_vectors(rel["properties"])
                    yield rel


def _without_vectors(properties: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in properties.items() if k not in OMITTED_PROPERTIES}
