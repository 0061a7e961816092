"""Forgetting a customer in Neo4j: every per-user node and every relationship touching them.

Per-user nodes are found by ``user_id`` (``Customer`` and ``Entity``, each through its
index), not by walking from the ``Customer``: an entity that some write path left
unlinked is still the customer's. Nodes are deleted with ``DETACH DELETE`` in batches
(``CALL { … } IN TRANSACTIONS``), so a customer with tens of thousands of nodes never
needs one huge transaction. The shared catalog stays; shared vocabulary nodes
(``Style``/``Category``/``Material``/``Color``/``Brand``) that are not part of the catalog
and are left with no relationship at all once the customer is gone are deleted too
(current writes never create such nodes from chat text; older data might hold some).

Before deleting, the element ids of the nodes and relationships are collected; after
deleting, :func:`verify` looks again both by ``user_id`` and by those ids (Neo4j reuses
the ids of deleted records, so a record found by id counts only if it still belongs to
the customer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neo4j import AsyncDriver

# labels of nodes that belong to one customer (each has an index on user_id)
PER_USER_LABELS = ("Customer", "Entity")
BATCH_ROWS = 1000

COLLECT = """
CALL () {
  MATCH (c:Customer {user_id: $user_id}) RETURN collect(elementId(c)) AS customers
}
CALL () {
  MATCH (e:Entity {user_id: $user_id}) RETURN collect(elementId(e)) AS entities
}
CALL (customers, entities) {
  UNWIND customers + entities AS id
  MATCH (n)-[r]-() WHERE elementId(n) = id
  RETURN collect(DISTINCT elementId(r)) AS relationships
}
CALL (customers) {
  UNWIND customers AS id
  MATCH (n)-[]->(t) WHERE elementId(n) = id
    AND (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand) AND t.catalog IS NULL
  RETURN collect(DISTINCT elementId(t)) AS vocabulary
}
RETURN customers, entities, relationships, vocabulary
"""

# auto-commit only: CALL { … } IN TRANSACTIONS commits every BATCH_ROWS nodes
DELETE_ENTITIES = """
MATCH (e:Entity {user_id: $user_id})
CALL (e) { DETACH DELETE e } IN TRANSACTIONS OF $batch ROWS
"""
DELETE_CUSTOMER = """
MATCH (c:Customer {user_id: $user_id})
CALL (c) { DETACH DELETE c } IN TRANSACTIONS OF $batch ROWS
"""
# vocabulary nodes that existed only because of this customer's words
DELETE_ORPHANED_VOCABULARY = """
UNWIND $ids AS id
MATCH (t) WHERE elementId(t) = id AND t.catalog IS NULL AND NOT (t)--()
DELETE t
RETURN count(t) AS deleted
"""

VERIFY = """
CALL () { MATCH (c:Customer {user_id: $user_id}) RETURN count(c) AS customers }
CALL () { MATCH (e:Entity {user_id: $user_id}) RETURN count(e) AS entities }
CALL () {
  UNWIND $node_ids AS id MATCH (n) WHERE elementId(n) = id AND n.user_id = $user_id RETURN count(n) AS nodes_by_id
}
CALL () {
  UNWIND $rel_ids AS id MATCH (a)-[r]->(b) WHERE elementId(r) = id AND (a.user_id = $user_id OR b.user_id = $user_id)
  RETURN count(r) AS relationships_by_id
}
RETURN customers, entities, nodes_by_id, relationships_by_id
"""


@dataclass
class GraphErasure:
    nodes: int = 0
    relationships: int = 0
    vocabulary_nodes: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not any(self.leftovers.values())


async def erase_customer(driver: AsyncDriver, user_id: str, *, database: str) -> GraphErasure:
    """Delete the customer's nodes and relationships, then verify nothing is left."""
    async with driver.session(database=database) as session:
        found = await (await session.run(COLLECT, user_id=user_id)).single(strict=True)
        node_ids = list(found["customers"]) + list(found["entities"])
        rel_ids = list(found["relationships"])
        for query in (DELETE_ENTITIES, DELETE_CUSTOMER):
            await (await session.run(query, user_id=user_id, batch=BATCH_ROWS)).consume()
        orphans = 0
        if found["vocabulary"]:
            record = await (await session.run(DELETE_ORPHANED_VOCABULARY, ids=list(found["vocabulary"]))).single(
                strict=True
            )
            orphans = record["deleted"]
        leftovers = await verify(driver, user_id, node_ids, rel_ids, database=database)
    return GraphErasure(len(node_ids), len(rel_ids), orphans, leftovers)


async def verify(
    driver: AsyncDriver, user_id: str, node_ids: list[str], rel_ids: list[str], *, database: str
) -> dict[str, int]:
    """What is still there: per-user nodes by user_id, and the collected nodes and
    relationships by element id."""
    records, _, _ = await driver.execute_query(
        VERIFY, user_id=user_id, node_ids=node_ids, rel_ids=rel_ids, database_=database, routing_="r"
    )
    return dict(records[0])
