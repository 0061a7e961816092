"""Graph facts follow their sources out: what retention removes from Neo4j.

A chat fact carries the ids of the messages it came from (``source_message_ids``, the
latest 50): a relationship of the customer's on itself, an ``Entity`` on the ``MENTIONED``
relationship that links the customer to it (the entity goes with its last mention, and
its own relationships with it); a purchase from
the order feed carries its ``order_id``. When a retention sweep deletes messages, the
facts that cite any of them are read back with all their sources; the caller keeps those
whose every source is gone from PostgreSQL (:func:`delete`). A purchase goes with its
order. Shared nodes (products, the catalog's vocabulary) are never deleted here.
"""

from __future__ import annotations

from dataclasses import dataclass

from neo4j import AsyncManagedTransaction

# facts of the customer citing any of $ids, with every source they cite
CITING = """
CALL () {
  MATCH (:Customer {user_id: $user_id})-[m:MENTIONED]->(e:Entity {user_id: $user_id})
  WHERE any(i IN coalesce(m.source_message_ids, []) WHERE i IN $ids)
  RETURN elementId(e) AS id, 'node' AS kind, m.source_message_ids AS sources
  UNION ALL
  MATCH (n {user_id: $user_id})-[r]->()
  WHERE (n:Customer OR n:Entity) AND type(r) <> 'MENTIONED'
    AND any(i IN coalesce(r.source_message_ids, []) WHERE i IN $ids)
  RETURN elementId(r) AS id, 'relationship' AS kind, r.source_message_ids AS sources
}
RETURN id, kind, sources
"""
DELETE_NODES = """
UNWIND $ids AS id
MATCH (e:Entity {user_id: $user_id}) WHERE elementId(e) = id
DETACH DELETE e
RETURN count(*) AS n
"""
DELETE_RELATIONSHIPS = """
UNWIND $ids AS id
MATCH (n {user_id: $user_id})-[r]->() WHERE elementId(r) = id
DELETE r
RETURN count(*) AS n
"""
DELETE_PURCHASES = """
MATCH (:Customer {user_id: $user_id})-[r:PURCHASED]->()
WHERE r.order_id IN $order_ids
DELETE r
RETURN count(*) AS n
"""


@dataclass(frozen=True)
class Citing:
    """A node or relationship of the customer's that cites messages (``sources``)."""

    kind: str  # node | relationship
    id: str  # its element id
    sources: list[int]


async def citing(tx: AsyncManagedTransaction, user_id: str, message_ids: list[int]) -> list[Citing]:
    result = await tx.run(CITING, user_id=user_id, ids=message_ids)
    return [Citing(r["kind"], r["id"], list(r["sources"] or [])) async for r in result]


async def delete(
    tx: AsyncManagedTransaction, user_id: str, node_ids: list[str], relationship_ids: list[str], order_ids: list[str]
) -> dict[str, int]:
    """Delete these facts of the customer (by element id) and the purchases of these orders."""
    counts = {"nodes": 0, "relationships": 0, "purchases": 0}
    if node_ids:
        counts["nodes"] = (await (await tx.run(DELETE_NODES, user_id=user_id, ids=node_ids)).single(strict=True))["n"]
    if relationship_ids:
        result = await tx.run(DELETE_RELATIONSHIPS, user_id=user_id, ids=relationship_ids)
        counts["relationships"] = (await result.single(strict=True))["n"]
    if order_ids:
        result = await tx.run(DELETE_PURCHASES, user_id=user_id, order_ids=order_ids)
        counts["purchases"] = (await result.single(strict=True))["n"]
    return counts
