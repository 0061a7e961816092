"""Forgetting a customer in Neo4j: every per-user node and every relationship touching them.

Per-user nodes are found by ``user_id`` (``Customer`` and ``Entity``, each through its
index), not by walking from the ``Customer``: an entity that some write path left
unlinked is still the customer's. Everything is deleted in batches
(``CALL { … } IN TRANSACTIONS``): first the Customer's relationships (a customer with
100,000 purchases and mentions must not need one huge transaction), then the entities
with theirs, then the Customer. The shared catalog stays; shared vocabulary nodes
(``Style``/``Category``/``Material``/``Color``/``Brand``) that are not part of the catalog
and are left with no relationship at all once the customer is gone are deleted too
(current writes never create such nodes from chat text; older data might hold some).

Deleting relationships to shared ``Product`` nodes can deadlock with another customer's
order write on the same products; Neo4j then aborts one of the two with a transient
error. Every statement here deletes by ``user_id`` and can run again, so a transient
error is retried (with back-off) rather than failing the erasure.

What was there is *counted* before deleting and counted again after (by ``user_id``),
never collected: a verification that sent back every element id would grow with the
customer and could itself exceed the server's transaction memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from neo4j import AsyncSession
from neo4j.exceptions import Neo4jError, TransientError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from graph.driver import GraphStore

log = logging.getLogger("loft.erasure")

# labels of nodes that belong to one customer (each has an index on user_id)
PER_USER_LABELS = ("Customer", "Entity")
BATCH_ROWS = 1000
RETRIES = 6

# what the customer has: nodes, and relationships touching them (each once: those leaving a
# per-user node, and those arriving at one from a node that is not the customer's)
COUNT = """
CALL () { MATCH (c:Customer {user_id: $user_id}) RETURN count(c) AS customers }
CALL () { MATCH (e:Entity {user_id: $user_id}) RETURN count(e) AS entities }
CALL () { MATCH (:Customer {user_id: $user_id})-[r]->() RETURN count(r) AS from_customer }
CALL () { MATCH (:Entity {user_id: $user_id})-[r]->() RETURN count(r) AS from_entities }
CALL () {
  MATCH (n)-[r]->(:Customer {user_id: $user_id}) WHERE coalesce(n.user_id, '') <> $user_id
  RETURN count(r) AS into_customer
}
CALL () {
  MATCH (n)-[r]->(:Entity {user_id: $user_id}) WHERE coalesce(n.user_id, '') <> $user_id
  RETURN count(r) AS into_entities
}
RETURN customers + entities AS nodes, from_customer + from_entities + into_customer + into_entities AS relationships,
       customers, entities
"""
# vocabulary nodes outside the catalog that the customer points at: at most the shop's
# vocabulary, whatever the customer's size
VOCABULARY = """
MATCH (:Customer {user_id: $user_id})-->(t)
WHERE (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand) AND t.catalog IS NULL
RETURN collect(DISTINCT elementId(t)) AS ids
"""

# auto-commit only: CALL { … } IN TRANSACTIONS commits every BATCH_ROWS rows
DELETE_CUSTOMER_RELATIONSHIPS = """
MATCH (:Customer {user_id: $user_id})-[r]-()
CALL (r) { DELETE r } IN TRANSACTIONS OF $batch ROWS
"""
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
RETURN customers, entities
"""


@dataclass
class GraphErasure:
    nodes: int = 0
    relationships: int = 0
    vocabulary_nodes: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)  # nodes deleted per label of PER_USER_LABELS

    @property
    def clean(self) -> bool:
        return not any(self.leftovers.values())


def transient(exc: BaseException) -> bool:
    """A Neo4j error that running the same statement again may not meet (a deadlock, a
    lock or memory limit reached under load): the server says so."""
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, Neo4jError) and (exc.is_retryable() or "Deadlock" in (exc.code or ""))


async def run_again_if_transient(session: AsyncSession, query: str, **params: Any) -> list[dict[str, Any]]:
    """Run an auto-commit statement that may run again (it deletes or counts by
    ``user_id``), again after a transient error, with back-off; its records."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(RETRIES),
        wait=wait_random_exponential(multiplier=0.2, max=5.0),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "Neo4j statement of an erasure failed (%s); running it again",
            getattr(state.outcome.exception() if state.outcome else None, "code", None) or "transient",
        ),
    ):
        with attempt:
            result = await session.run(query, **params)
            return [record.data() async for record in result]
    raise AssertionError("unreachable: the retry re-raises")


async def erase_customer(store: GraphStore, user_id: str) -> GraphErasure:
    """Delete the customer's nodes and relationships, then verify nothing is left."""
    async with store.session() as session:
        (counted,) = await run_again_if_transient(session, COUNT, user_id=user_id)
        (vocabulary,) = await run_again_if_transient(session, VOCABULARY, user_id=user_id)
        for query in (DELETE_CUSTOMER_RELATIONSHIPS, DELETE_ENTITIES, DELETE_CUSTOMER):
            await run_again_if_transient(session, query, user_id=user_id, batch=BATCH_ROWS)
        orphans = 0
        if vocabulary["ids"]:
            (deleted,) = await run_again_if_transient(session, DELETE_ORPHANED_VOCABULARY, ids=vocabulary["ids"])
            orphans = deleted["deleted"]
        (leftovers,) = await run_again_if_transient(session, VERIFY, user_id=user_id)
    labels = {"Customer": counted["customers"], "Entity": counted["entities"]}
    return GraphErasure(counted["nodes"], counted["relationships"], orphans, dict(leftovers), labels)
