"""Graph reads: a customer's neighbourhood, entity search, statistics.

Every read is scoped by ``user_id`` first (a range index / uniqueness constraint), so
one customer's context never touches another's nodes. Entity similarity is computed
exactly over the customer's own entities (``vector.similarity.cosine``): per customer
there are tens to hundreds of them, and an exact scan of those beats a global ANN query
that must over-fetch and post-filter by user. The ``entity_embedding`` vector index and
the full-text indexes serve cross-customer analyst queries; those, and the purchase-path
recommendations, live in ``graph/queries/*.cypher``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neo4j import Query
from neo4j.time import Date, DateTime

from graph.driver import GraphStore
from graph.facts import CustomerFacts, FactsRead, GraphRows
from graph.schema import VOCABULARY_LABELS
from loft_memory.models import EntityHit

# The customer's current (or, for the profile, also closed) preferences, purchases and
# interests: shared by the profile read and the retriever's hot-path read.
_CUSTOMER = "MATCH (c:Customer {user_id: $user_id})\n"
_FACTS_OF_C = """CALL (c) {
  MATCH (c)-[r:PREFERS|DISLIKES]->(t)
  WHERE r.valid_to IS NULL OR $include_closed
  WITH r, t ORDER BY r.last_seen DESC LIMIT $fact_limit
  RETURN collect({rel: type(r), attribute: r.attribute, value: coalesce(t.name, t.sku), sku: t.sku,
                  strength: r.strength, confidence: r.confidence, mentions: r.mentions,
                  first_seen: r.first_seen, last_seen: r.last_seen, valid_from: r.valid_from,
                  valid_to: r.valid_to, source_message_ids: r.source_message_ids}) AS preferences
}
CALL (c) {
  MATCH (c)-[r:PURCHASED]->(p)
  WITH r, p ORDER BY r.at DESC LIMIT $fact_limit
  RETURN collect({sku: p.sku, name: p.name, category: p.category, price: coalesce(r.price, p.price),
                  qty: r.qty, order_id: r.order_id, at: r.at, source_message_ids: r.source_message_ids}) AS purchases
}
CALL (c) {
  MATCH (c)-[r:ASKED_ABOUT|VIEWED]->(t)
  WITH r, t ORDER BY r.at DESC LIMIT $fact_limit
  RETURN collect({rel: type(r), sku: t.sku, name: coalesce(t.name, t.sku), mentions: r.mentions, at: r.at,
                  source_message_ids: r.source_message_ids}) AS interests
}
"""
_FACTS = _CUSTOMER + _FACTS_OF_C

# the whole profile: every entity the customer mentioned, with how they relate
NEIGHBOURHOOD = (
    _FACTS
    + """
CALL (c) {
  MATCH (c)-[m:MENTIONED]->(e:Entity)
  OPTIONAL MATCH (e)-[rel:RELATED_TO]-(other:Entity)
  WITH m, e, collect(DISTINCT {type: rel.type, other: other.name}) AS rels
  ORDER BY m.last_seen DESC
  LIMIT $entity_limit
  RETURN collect({key: e.key, name: e.name, type: e.type, relation: m.relation, summary: e.summary,
                  event_at: e.event_at, mentions: m.mentions, first_seen: m.first_seen, last_seen: m.last_seen,
                  source_message_ids: m.source_message_ids,
                  related: [x IN rels WHERE x.type IS NOT NULL]}) AS entities
}
RETURN c.name AS name, c.first_seen AS first_seen, c.last_seen AS last_seen,
       preferences, purchases, interests, entities
"""
)

# what the retriever caches per customer: current facts and every mentioned entity with
# its embedding (the entities nearest a query are then found in-process)
_RETRIEVER_FACTS_OF_C = (
    _FACTS_OF_C
    + """
CALL (c) {
  MATCH (c)-[m:MENTIONED]->(e:Entity)
  WHERE e.embedding IS NOT NULL
  WITH m, e ORDER BY m.last_seen DESC LIMIT $entity_limit
  RETURN collect({key: e.key, name: e.name, type: e.type, relation: m.relation, summary: e.summary,
                  event_at: e.event_at, mentions: m.mentions, last_seen: m.last_seen,
                  source_message_ids: m.source_message_ids, embedding: e.embedding}) AS entities
}
"""
)
CUSTOMER_FACTS = (
    _CUSTOMER
    + _RETRIEVER_FACTS_OF_C
    + """RETURN c.name AS name, c.first_seen AS first_seen, c.last_seen AS last_seen,
       preferences, purchases, interests, entities
"""
)
# the same for many customers in one round trip (the worker's graph snapshots)
CUSTOMERS_FACTS = (
    """UNWIND $user_ids AS user_id
MATCH (c:Customer {user_id: user_id})
"""
    + _RETRIEVER_FACTS_OF_C
    + """RETURN user_id, c.name AS name, c.first_seen AS first_seen, c.last_seen AS last_seen,
       preferences, purchases, interests, entities
"""
)

ENTITY_SEARCH = """
MATCH (e:Entity {user_id: $user_id})
WHERE e.embedding IS NOT NULL
WITH e, vector.similarity.cosine(e.embedding, $embedding) AS score
ORDER BY score DESC
LIMIT $limit
OPTIONAL MATCH (e)-[r:RELATED_TO]-(other:Entity)
OPTIONAL MATCH (c:Customer {user_id: $user_id})-[m:MENTIONED]->(e)
RETURN e.key AS key, e.name AS name, e.type AS type, e.summary AS summary, e.event_at AS event_at,
       score, m.relation AS relation, m.mentions AS mentions, m.last_seen AS last_seen,
       m.source_message_ids AS source_message_ids,
       [x IN collect(DISTINCT {type: r.type, name: other.name, key: other.key,
                               direction: CASE WHEN startNode(r) = e THEN 'out' ELSE 'in' END})
        WHERE x.type IS NOT NULL] AS relationships
ORDER BY score DESC
"""

# a customer's neighbourhood as nodes and edges, for the chat page's graph view: what they
# prefer or dislike, bought, asked about, the people and things they mentioned and how
# those relate, and the catalog links (category, style) of the products among them
GRAPH = """
MATCH (c:Customer {user_id: $user_id})
CALL (c) {
  MATCH (c)-[r:PREFERS|DISLIKES|PURCHASED|ASKED_ABOUT|VIEWED]->(t)
  WHERE NOT type(r) IN ['PREFERS', 'DISLIKES'] OR r.valid_to IS NULL OR $include_closed
  WITH r, t ORDER BY coalesce(r.last_seen, r.at) DESC LIMIT $limit
  RETURN collect({type: type(r), label: head([l IN labels(t) WHERE l IN $labels]), key: coalesce(t.sku, t.name),
                  name: coalesce(t.name, t.sku), attribute: r.attribute, current: r.valid_to IS NULL,
                  at: coalesce(r.at, r.last_seen, r.valid_from), order_id: r.order_id}) AS facts,
         [x IN collect(CASE WHEN t:Product THEN t END) WHERE x IS NOT NULL] AS products
}
CALL (products) {
  UNWIND products AS p
  MATCH (p)-[l:IN_CATEGORY|HAS_STYLE]->(v)
  RETURN collect({sku: p.sku, type: type(l), label: head([x IN labels(v) WHERE x IN $labels]), name: v.name})
         AS catalog
}
CALL (c) {
  MATCH (c)-[m:MENTIONED]->(e:Entity)
  WITH m, e ORDER BY m.last_seen DESC LIMIT $limit
  RETURN collect(e) AS mentioned,
         collect({key: e.key, name: e.name, type: e.type, relation: m.relation, at: m.last_seen}) AS entities
}
CALL (mentioned) {
  UNWIND mentioned AS e
  MATCH (e)-[r:RELATED_TO]->(o:Entity)
  WHERE o IN mentioned
  RETURN collect({source: e.key, target: o.key, type: r.type, current: r.valid_to IS NULL}) AS related
}
RETURN c.name AS name, facts, catalog, entities, related
"""

STATS = """
CALL () { MATCH (c:Customer) RETURN count(c) AS customers }
CALL () { MATCH (e:Entity) RETURN count(e) AS entities }
CALL () { MATCH (p:Product) RETURN count(p) AS products }
CALL () { MATCH ()-[r:PREFERS|DISLIKES]->() RETURN count(r) AS preferences }
CALL () { MATCH ()-[r:PURCHASED]->() RETURN count(r) AS purchases }
CALL () { MATCH ()-[r:RELATED_TO]->() RETURN count(r) AS relations }
RETURN customers, entities, products, preferences, purchases, relations
"""

SERVER_INFO = "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition"


# the server ends any of these reads that runs longer (callers also wait_for less than this)
READ_TIMEOUT_S = 10.0


async def _read(store: GraphStore, query: str, **params: Any) -> list[dict[str, Any]]:
    """An auto-commit read: one round trip, about half the latency of ``execute_query``'s
    managed transaction (BEGIN/RUN/COMMIT) on the hot path. The server ends it after
    :data:`READ_TIMEOUT_S` (a caller's ``wait_for`` only stops waiting for it). Records
    come back as dicts with native temporal values: the edge the models below parse."""
    async with store.session(read=True) as session:
        result = await session.run(Query(query, timeout=READ_TIMEOUT_S), params)
        return [native(dict(r)) async for r in result]


# one customer's read is bounded, however much they have said or bought: a huge customer
# costs the hot path (and the per-process cache) no more than this
FACT_LIMIT = 200
ENTITY_LIMIT = 500


async def neighbourhood(
    store: GraphStore, user_id: str, *, include_closed: bool = False, entity_limit: int = 50
) -> CustomerFacts | None:
    """The customer's facts with every entity's relationships (``related``) and first
    mention, and with ``include_closed`` their closed preferences too."""
    records = await _read(
        store,
        NEIGHBOURHOOD,
        user_id=user_id,
        include_closed=include_closed,
        entity_limit=entity_limit,
        fact_limit=FACT_LIMIT,
    )
    return CustomerFacts.model_validate(records[0]) if records else None


GRAPH_LABELS = ("Product", "Entity", *VOCABULARY_LABELS)


async def customer_graph(
    store: GraphStore, user_id: str, *, limit: int = 40, include_closed: bool = False
) -> GraphRows | None:
    """The customer's neighbourhood (``None`` for an unknown customer);
    :func:`service.core.graph_view.shape` draws it as nodes and edges."""
    records = await _read(
        store, GRAPH, user_id=user_id, limit=limit, include_closed=include_closed, labels=list(GRAPH_LABELS)
    )
    return GraphRows.model_validate(records[0]) if records else None


async def customer_facts(store: GraphStore, user_id: str) -> FactsRead | None:
    """The retriever's read: current facts and the most recently mentioned entities."""
    records = await _read(
        store, CUSTOMER_FACTS, user_id=user_id, include_closed=False, fact_limit=FACT_LIMIT, entity_limit=ENTITY_LIMIT
    )
    return FactsRead.parse(records[0]) if records else None


async def customers_facts(store: GraphStore, user_ids: list[str]) -> dict[str, FactsRead | None]:
    """:func:`customer_facts` for many customers in one read; ``None`` for one with no
    Customer node (yet, or any more)."""
    records = await _read(
        store,
        CUSTOMERS_FACTS,
        user_ids=user_ids,
        include_closed=False,
        fact_limit=FACT_LIMIT,
        entity_limit=ENTITY_LIMIT,
    )
    found: dict[str, FactsRead | None] = dict.fromkeys(user_ids)
    for record in records:
        found[record["user_id"]] = FactsRead.parse(record)
    return found


async def search_entities(store: GraphStore, user_id: str, embedding: list[float], limit: int = 10) -> list[EntityHit]:
    """The customer's entities nearest ``embedding``, with their relationships."""
    records = await _read(store, ENTITY_SEARCH, user_id=user_id, embedding=embedding, limit=limit)
    return [EntityHit.model_validate(r) for r in records]


async def stats(store: GraphStore) -> dict[str, int]:
    records = await _read(store, STATS)
    return {k: int(v) for k, v in records[0].items()}


async def server_info(store: GraphStore) -> dict[str, str]:
    records = await _read(store, SERVER_INFO)
    record = records[0]
    return {"name": record["name"], "version": record["version"], "edition": record["edition"]}


def native(value: Any) -> Any:
    """Neo4j temporal values as timezone-aware Python datetimes, recursively (they meet
    PostgreSQL's in the retriever and in JSON). A date, or a time stored without a zone
    (older data, a date-only value from an LLM), is read as UTC."""
    if isinstance(value, DateTime):
        out = value.to_native()
        return out if out.tzinfo is not None else out.replace(tzinfo=UTC)
    if isinstance(value, Date):
        d = value.to_native()
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    if isinstance(value, dict):
        return {k: native(v) for k, v in value.items()}
    if isinstance(value, list):
        return [native(v) for v in value]
    return value
