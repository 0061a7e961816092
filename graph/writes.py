"""Graph writes for the medium-term tier.

Every value is a query parameter. Labels and relationship types cannot be parameters in
Cypher, so each one has its own query text built once from a fixed allow-list
(``TARGET_LABELS``, ``RELATION_TYPES``); nothing from a message ever reaches query text.

Writes are idempotent per source message: a retried job finds its message id in
``source_message_ids`` and does not count the mention twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

from neo4j import AsyncManagedTransaction, unit_of_work

from graph.schema import PREFERENCE_TYPES, RELATION_TYPES, TARGET_LABELS, entity_key, fact_key
from vectors.embedder import DIM
from vectors.memories import fact_hash


class PreferenceFact(TypedDict):
    """A stance on a value (``service.extraction.Preference``); ``shared``: the value names
    a catalog node (under the catalog's own name), else it stays the customer's own."""

    attribute: str
    value: str
    polarity: str  # a key of ``PREFERENCE_TYPES``
    strength: NotRequired[float]
    confidence: NotRequired[float]
    replaces: NotRequired[bool]
    shared: NotRequired[bool]


class PurchaseFact(TypedDict):
    product_name: str
    sku: NotRequired[str | None]
    category: NotRequired[str | None]
    quantity: NotRequired[int]
    price: NotRequired[float | None]
    order_id: NotRequired[str | None]
    at: NotRequired[datetime | None]


class InterestFact(TypedDict):
    sku: NotRequired[str | None]
    category: NotRequired[str | None]
    kind: NotRequired[str]


class EntityFact(TypedDict):
    key: str  # ``graph.schema.entity_key``
    type: str
    name: str
    relation: NotRequired[str | None]
    summary: NotRequired[str | None]
    at: NotRequired[datetime | None]  # when what it names happens (an event's date)
    embedding: NotRequired[list[float] | None]


class RelationFact(TypedDict):
    source_key: str
    target_key: str
    type: str  # one of ``RELATION_TYPES``


@dataclass
class MessageFacts:
    """What one message contributes to the graph (built by the ingestion pipeline)."""

    user_id: str
    message_id: int
    at: datetime
    customer_name: str | None = None
    preferences: list[PreferenceFact] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    interests: list[InterestFact] = field(default_factory=list)
    entities: list[EntityFact] = field(default_factory=list)
    relations: list[RelationFact] = field(default_factory=list)


# -- customer -------------------------------------------------------------------------------

MERGE_CUSTOMERS = """
UNWIND $customers AS row
MERGE (c:Customer {user_id: row.user_id})
  ON CREATE SET c.created_at = row.at, c.first_seen = row.at, c.said_purchases = false
SET c.last_seen = CASE WHEN c.last_seen IS NULL OR c.last_seen < row.at THEN row.at ELSE c.last_seen END,
    c.name = coalesce(row.name, c.name)
"""

# -- preferences ------------------------------------------------------------------------------

# All of a batch's preferences in one query, applied row by row in message order (a
# CALL subquery per row sees the writes of the rows before it). The target node's label
# comes from the allow-list through a UNION of fixed branches, never from text. Shared
# catalog nodes are only MATCHed: a value the catalog does not know (free text from an
# LLM, "large", a budget) goes to a per-customer Entity, so nothing shared is ever created
# from what a customer said, and erasing them leaves no trace in shared nodes. The
# relationship type is chosen by FOREACH branches for the same reason. For each row:
# close what it replaces -- the opposite polarity for the same target, and (for an
# explicit change such as "actually I prefer walnut now") the other current values of
# the same attribute -- then create the open relationship or count the mention on it.
# Time is the message's, not the processing order's: a message replayed after newer
# ones (a retry, a late import) never closes a newer fact nor re-opens one a newer
# message closed; what it says is recorded as history (closed when a newer fact ended it).
UPSERT_PREFERENCES = """
UNWIND $preferences AS row
CALL (row) {
  MATCH (c:Customer {user_id: row.user_id})
  CALL (row) {
    WITH row WHERE row.label = 'Style' MATCH (t:Style {name: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Category' MATCH (t:Category {name: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Material' MATCH (t:Material {name: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Color' MATCH (t:Color {name: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Brand' MATCH (t:Brand {name: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Product' MATCH (t:Product {sku: row.value}) RETURN t
    UNION
    WITH row WHERE row.label = 'Entity'
    MERGE (t:Entity {user_id: row.user_id, key: row.value})
      ON CREATE SET t.name = row.name, t.type = row.attribute, t.first_seen = row.at
    SET t.last_seen = row.at
    RETURN t
  }
  // close the current facts this message contradicts, if they are older than it
  CALL (c, t, row) {
    MATCH (c)-[r:PREFERS|DISLIKES]->(x)
    WHERE r.valid_to IS NULL AND r.attribute = row.attribute AND r.valid_from <= row.at
      AND ((type(r) <> row.rel AND x = t) OR (row.replaces AND type(r) = row.rel AND x <> t))
    SET r.valid_to = row.at, r.closed_by_message_id = row.message_id
  }
  // a message replayed late: the first newer fact that ended what it says, if any (the
  // opposite stance on the same target, or an explicit change of the same attribute)
  CALL (c, t, row) {
    OPTIONAL MATCH (c)-[n:PREFERS|DISLIKES]->(x)
    WHERE n.attribute = row.attribute AND n.valid_from > row.at
      AND ((x = t AND type(n) <> row.rel) OR (x <> t AND type(n) = row.rel AND coalesce(n.replaces, false)))
    RETURN min(n.valid_from) AS ended_at
  }
  // the relationship this mention belongs to: the one that already holds this message
  // (a retried job), one whose validity covers the message's time, or the open one
  CALL (c, t, row, ended_at) {
    OPTIONAL MATCH (c)-[s:PREFERS|DISLIKES]->(t)
    WHERE type(s) = row.rel AND s.attribute = row.attribute
      AND (row.message_id IN s.source_message_ids
           OR (s.valid_from <= row.at AND (s.valid_to IS NULL OR s.valid_to > row.at))
           OR (s.valid_to IS NULL AND ended_at IS NULL))
    WITH s ORDER BY CASE WHEN row.message_id IN s.source_message_ids THEN 0 ELSE 1 END, s.valid_from
    RETURN head(collect(s)) AS same
  }
  // a new relationship: current, or (older than a fact that ended it) closed at once
  FOREACH (_ IN CASE WHEN same IS NULL AND row.rel = 'PREFERS' THEN [1] ELSE [] END |
    CREATE (c)-[:PREFERS {attribute: row.attribute, strength: row.strength, confidence: row.confidence, mentions: 1,
                          first_seen: row.at, last_seen: row.at, valid_from: row.at, valid_to: ended_at,
                          replaces: row.replaces, source_message_ids: [row.message_id]}]->(t))
  FOREACH (_ IN CASE WHEN same IS NULL AND row.rel = 'DISLIKES' THEN [1] ELSE [] END |
    CREATE (c)-[:DISLIKES {attribute: row.attribute, strength: row.strength, confidence: row.confidence, mentions: 1,
                           first_seen: row.at, last_seen: row.at, valid_from: row.at, valid_to: ended_at,
                           replaces: row.replaces, source_message_ids: [row.message_id]}]->(t))
  FOREACH (o IN CASE WHEN same IS NULL THEN [] ELSE [same] END |
    SET o.mentions = CASE WHEN row.message_id IN o.source_message_ids THEN o.mentions ELSE o.mentions + 1 END,
        o.strength = CASE WHEN row.strength > o.strength THEN row.strength ELSE o.strength END,
        o.confidence = CASE WHEN row.confidence > o.confidence THEN row.confidence ELSE o.confidence END,
        o.first_seen = CASE WHEN row.at < o.first_seen THEN row.at ELSE o.first_seen END,
        o.last_seen = CASE WHEN row.at > o.last_seen THEN row.at ELSE o.last_seen END,
        o.source_message_ids = CASE WHEN row.message_id IN o.source_message_ids THEN o.source_message_ids
                                    ELSE o.source_message_ids[-49..] + row.message_id END)
}
"""


# -- purchases and interests ----------------------------------------------------------------

# A purchase said in chat (source 'chat'). If the order feed already sent a purchase of the
# same product for this customer, the mention joins that order's relationship (its message
# id is added, ``mentioned_in_chat``) instead of creating a second PURCHASED: one purchase,
# counted once. (The order feed applies the same rule the other way round: WRITE_ORDER_LINES.)
# The customer's ``said_purchases`` becomes true: one was filed for them (it stays true when
# the purchase goes again). False on a customer created without one, so a read of what they
# said they bought skips a customer of hundreds of ordered products instead of scanning them
# (``graph.recommend``); missing (a customer written before the flag): not known, read.
MERGE_PURCHASES = """
UNWIND $purchases AS row
MATCH (c:Customer {user_id: row.user_id})
CALL (row) {
  OPTIONAL MATCH (p:Product {sku: row.sku})
  WITH p WHERE p IS NOT NULL RETURN p AS target
  UNION
  WITH row WHERE row.sku IS NULL
  MERGE (e:Entity {user_id: row.user_id, key: row.key})
    ON CREATE SET e.name = row.name, e.type = 'thing', e.first_seen = row.at, e.category = row.category
  RETURN e AS target
}
CALL (c, target) {
  OPTIONAL MATCH (c)-[o:PURCHASED {source: 'order'}]->(target)
  WITH o ORDER BY o.at DESC
  RETURN head(collect(o)) AS ordered
}
FOREACH (_ IN CASE WHEN ordered IS NULL THEN [1] ELSE [] END |
  MERGE (c)-[r:PURCHASED {message_id: row.message_id, item: row.key}]->(target)
  SET r.at = row.at, r.order_id = row.order_id, r.qty = row.quantity, r.price = row.price, r.source = 'chat',
      r.source_message_ids = [row.message_id], c.said_purchases = true)
FOREACH (o IN CASE WHEN ordered IS NULL THEN [] ELSE [ordered] END |
  SET o.mentioned_in_chat = true,
      o.source_message_ids = CASE WHEN row.message_id IN coalesce(o.source_message_ids, []) THEN o.source_message_ids
                                  ELSE coalesce(o.source_message_ids, [])[-49..] + row.message_id END)
"""

# Order lines from the order feed (one row per order and SKU). Idempotent per (order, SKU).
# A purchase of the same product the customer told us about in chat is taken to be this
# one: the order absorbs it (its message ids move here, the chat relationship goes), so
# the same sofa is never counted twice.
WRITE_ORDER_LINES = """
UNWIND $rows AS row
MERGE (c:Customer {user_id: row.user_id})
  ON CREATE SET c.created_at = row.at, c.first_seen = row.at, c.said_purchases = false
SET c.last_seen = CASE WHEN c.last_seen IS NULL OR c.last_seen < row.at THEN row.at ELSE c.last_seen END,
    // a customer written before the flag: known from their next order on
    c.said_purchases = CASE WHEN c.said_purchases IS NULL
                            THEN EXISTS { (c)-[s:PURCHASED]->() WHERE s.source = 'chat' }
                            ELSE c.said_purchases END
WITH c, row
MATCH (p:Product {sku: row.sku})
MERGE (c)-[r:PURCHASED {order_id: row.order_id, item: row.sku}]->(p)
SET r.at = row.at, r.qty = row.qty, r.price = row.price, r.source = 'order'
WITH c, p, r
CALL (c, p, r) {
  OPTIONAL MATCH (c)-[s:PURCHASED {source: 'chat'}]->(p)
  WITH r, collect(s) AS said
  SET r.mentioned_in_chat = coalesce(r.mentioned_in_chat, false) OR size(said) > 0,
      r.source_message_ids = reduce(ids = coalesce(r.source_message_ids, []), x IN said |
                                    ids + [i IN coalesce(x.source_message_ids, []) WHERE NOT i IN ids])
  FOREACH (x IN said | DELETE x)
}
WITH DISTINCT p
RETURN p.sku AS sku, p.name AS name, p.category AS category, coalesce(p.consumable, false) AS consumable,
       p.price AS price,
       [(p)-[:HAS_STYLE]->(x) | 'style:' + x.name] + [(p)-[:MADE_OF]->(x) | 'material:' + x.name]
       + [(p)-[:HAS_COLOR]->(x) | 'color:' + x.name] + [(p)-[:MADE_BY]->(x) | 'brand:' + x.name] AS facets
"""


class OrderLineRow(TypedDict):
    """An order's lines of one SKU, quantities summed, at their mean unit price."""

    user_id: str
    order_id: str
    sku: str
    qty: int
    price: float
    at: datetime


class ProductFacts(TypedDict):
    """What the catalog says of a product (``WRITE_ORDER_LINES``' answer)."""

    name: str | None
    category: str | None
    consumable: bool
    price: float | None
    facets: list[str]


@unit_of_work(timeout=60.0)
async def write_orders(tx: AsyncManagedTransaction, rows: list[OrderLineRow]) -> dict[str, ProductFacts]:
    """Order lines ``{user_id, order_id, sku, qty, price, at}`` as PURCHASED, in one transaction.
    Returns what the catalog says of each product written (``{sku: {name, category,
    consumable, price, facets}}``; a SKU the graph does not know is missing), for the co-purchase
    statistics (``service.postgres.co_purchases``)."""
    if not rows:
        return {}
    result = await tx.run(WRITE_ORDER_LINES, rows=rows)
    return {
        r["sku"]: ProductFacts(
            name=r["name"], category=r["category"], consumable=r["consumable"], price=r["price"], facets=r["facets"]
        )
        async for r in result
    }


MERGE_INTERESTS = """
UNWIND $interests AS row
MATCH (c:Customer {user_id: row.user_id})
CALL (row) {
  MATCH (p:Product {sku: row.sku}) RETURN p AS target
  UNION
  MATCH (k:Category {name: row.category}) WHERE row.sku IS NULL RETURN k AS target
}
MERGE (c)-[r:ASKED_ABOUT]->(target)
  ON CREATE SET r.first_seen = row.at, r.mentions = 0, r.source_message_ids = []
SET r.mentions = CASE WHEN row.message_id IN r.source_message_ids THEN r.mentions ELSE r.mentions + 1 END,
    r.source_message_ids = CASE WHEN row.message_id IN r.source_message_ids THEN r.source_message_ids
                                ELSE r.source_message_ids[-49..] + row.message_id END,
    r.at = CASE WHEN r.at IS NULL OR row.at > r.at THEN row.at ELSE r.at END,
    r.kind = row.kind
"""

# -- entities -------------------------------------------------------------------------------

MERGE_ENTITIES = """
UNWIND $entities AS row
MATCH (c:Customer {user_id: row.user_id})
MERGE (e:Entity {user_id: row.user_id, key: row.key})
  ON CREATE SET e.first_seen = row.at, e.name = row.name, e.type = row.type
SET e.last_seen = CASE WHEN e.last_seen IS NULL OR row.at > e.last_seen THEN row.at ELSE e.last_seen END,
    e.summary = coalesce(row.summary, e.summary),
    e.event_at = coalesce(row.event_at, e.event_at)
WITH c, e, row
CALL (e, row) {
  WITH e, row WHERE row.embedding IS NOT NULL
  CALL db.create.setNodeVectorProperty(e, 'embedding', row.embedding)
}
MERGE (c)-[m:MENTIONED]->(e)
  ON CREATE SET m.first_seen = row.at, m.mentions = 0, m.source_message_ids = []
SET m.mentions = CASE WHEN row.message_id IN m.source_message_ids THEN m.mentions ELSE m.mentions + 1 END,
    m.source_message_ids = CASE WHEN row.message_id IN m.source_message_ids THEN m.source_message_ids
                                ELSE m.source_message_ids[-49..] + row.message_id END,
    m.last_seen = row.at,
    m.relation = coalesce(row.relation, m.relation)
"""

MERGE_RELATED = """
UNWIND $relations AS row
MATCH (a:Entity {user_id: row.user_id, key: row.source_key})
MATCH (b:Entity {user_id: row.user_id, key: row.target_key})
MERGE (a)-[r:RELATED_TO {type: row.type}]->(b)
  ON CREATE SET r.valid_from = row.at, r.valid_to = null, r.strength = 0.5, r.confidence = 0.6,
                r.source_message_ids = []
SET r.source_message_ids = CASE WHEN row.message_id IN r.source_message_ids THEN r.source_message_ids
                                ELSE r.source_message_ids[-49..] + row.message_id END,
    r.strength = CASE WHEN r.strength < 1.0 THEN r.strength + 0.1 ELSE r.strength END
"""


# a write transaction the server ends on its own if its holder hangs (its locks would
# otherwise stall every other writer of the same nodes)
WRITE_TIMEOUT_S = 60.0


def _rows_of_batch(section: str) -> str:
    """A section's ``UNWIND $name AS row`` read from the one map parameter instead:
    ``UNWIND $batch.name AS row``."""
    return re.sub(r"^UNWIND \$(\w+) AS row$", r"UNWIND $batch.\1 AS row", section.strip(), count=1, flags=re.M)


# A batch's facts in one statement: each section a unit subquery over its own rows, in this
# order (customers first: every other section MATCHes them). The statement runs with one
# driving row, so each section ends before the next one starts and sees all its writes,
# as the sections' statements one after another did in the same transaction.
#
# Its rows come in one map parameter, ``$batch`` (``FactRows``), not six lists: Neo4j keys
# a cached plan by the query text and its parameters' types, and a list's type carries its
# size's order of magnitude (empty, 1, 2-9, 10-99, ...). Six lists made a new plan for
# every mix of section sizes a batch happened to have, and this statement takes a second
# or more of the server's CPU to plan; a map's type does not depend on what it holds, so
# the statement is planned once (and again only when the graph's statistics move).
WRITE_FACTS = "\n".join(
    f"CALL () {{\n{_rows_of_batch(section)}\n}}"
    for section in (
        MERGE_CUSTOMERS,
        UPSERT_PREFERENCES,
        MERGE_PURCHASES,
        MERGE_INTERESTS,
        MERGE_ENTITIES,
        MERGE_RELATED,
    )
)


class CustomerRow(TypedDict):
    user_id: str
    at: datetime
    name: str | None


class _FactRow(TypedDict):
    user_id: str
    message_id: int
    at: datetime


class PreferenceRow(_FactRow):
    label: str  # from ``TARGET_LABELS``, or "Entity" for a value the catalog does not know
    attribute: str
    value: str  # the catalog node's key, or the customer's Entity key
    name: str
    rel: str  # from ``PREFERENCE_TYPES``
    replaces: bool
    strength: float
    confidence: float


class PurchaseRow(_FactRow):
    key: str
    sku: str | None
    name: str
    category: str | None
    quantity: int
    price: float | None
    order_id: str | None


class InterestRow(_FactRow):
    sku: str | None
    category: str | None
    kind: str


class EntityRow(_FactRow):
    key: str
    name: str
    type: str
    relation: str | None
    summary: str | None
    event_at: datetime | None
    embedding: list[float] | None


class RelatedRow(_FactRow):
    source_key: str
    target_key: str
    type: str


class FactRows(TypedDict):
    """The parameters of ``WRITE_FACTS``: a batch's rows, section by section, in message order."""

    customers: list[CustomerRow]
    preferences: list[PreferenceRow]
    purchases: list[PurchaseRow]
    interests: list[InterestRow]
    entities: list[EntityRow]
    relations: list[RelatedRow]


@unit_of_work(timeout=WRITE_TIMEOUT_S)
async def write_facts(tx: AsyncManagedTransaction, batch: Sequence[MessageFacts]) -> None:
    """Apply a batch of messages' facts in one transaction and one statement, in message order."""
    if not batch:
        return
    await (await tx.run(WRITE_FACTS, batch=fact_rows(batch))).consume()


def fact_rows(batch: Sequence[MessageFacts]) -> FactRows:
    return FactRows(
        customers=[CustomerRow(user_id=f.user_id, at=f.at, name=f.customer_name) for f in batch],
        preferences=[_preference_row(f, p) for f in batch for p in f.preferences],
        purchases=[_purchase_row(f, p) for f in batch for p in f.purchases],
        interests=[_interest_row(f, i) for f in batch for i in f.interests if i.get("sku") or i.get("category")],
        entities=_entity_rows(batch),
        relations=[
            RelatedRow(user_id=f.user_id, message_id=f.message_id, at=f.at, **r)
            for f in batch
            for r in f.relations
            if r["type"] in RELATION_TYPES
        ],
    )


def _preference_row(facts: MessageFacts, pref: PreferenceFact) -> PreferenceRow:
    """``pref["shared"]`` (set by the pipeline from the catalog) says the value names a
    catalog node; anything else is kept on a per-customer Entity."""
    attribute = pref["attribute"]
    shared = attribute in TARGET_LABELS and bool(pref.get("shared"))
    return PreferenceRow(
        user_id=facts.user_id,
        message_id=facts.message_id,
        at=facts.at,
        label=TARGET_LABELS[attribute][0] if shared else "Entity",
        attribute=attribute,
        value=pref["value"] if shared else entity_key(attribute, pref["value"]),
        name=pref["value"],
        rel=PREFERENCE_TYPES[pref["polarity"]],
        replaces=bool(pref.get("replaces")),
        strength=float(pref.get("strength", 0.6)),
        confidence=float(pref.get("confidence", 0.7)),
    )


def _purchase_row(facts: MessageFacts, purchase: PurchaseFact) -> PurchaseRow:
    sku = purchase.get("sku")
    return PurchaseRow(
        user_id=facts.user_id,
        message_id=facts.message_id,
        at=purchase.get("at") or facts.at,
        key=sku or entity_key("thing", purchase["product_name"]),
        sku=sku,
        name=purchase["product_name"],
        category=purchase.get("category"),
        quantity=purchase.get("quantity", 1),
        price=purchase.get("price"),
        order_id=purchase.get("order_id"),
    )


def _interest_row(facts: MessageFacts, interest: InterestFact) -> InterestRow:
    return InterestRow(
        user_id=facts.user_id,
        message_id=facts.message_id,
        at=facts.at,
        sku=interest.get("sku"),
        category=interest.get("category"),
        kind=interest.get("kind", "asked_about"),
    )


def _entity_rows(batch: Sequence[MessageFacts]) -> list[EntityRow]:
    """Every mention, in message order; an entity named in several messages of the batch gets
    its embedding once, from its last mention (what the rows one by one would leave): one
    vector-index update, and 384 floats sent once instead of per mention."""
    rows = [
        EntityRow(
            user_id=f.user_id,
            message_id=f.message_id,
            at=f.at,
            key=e["key"],
            name=e["name"],
            type=e["type"],
            relation=e.get("relation"),
            summary=e.get("summary"),
            event_at=e.get("at"),
            embedding=e.get("embedding"),
        )
        for f in batch
        for e in f.entities
    ]
    last = {(row["user_id"], row["key"]): i for i, row in enumerate(rows) if row["embedding"] is not None}
    for i, row in enumerate(rows):
        if last.get((row["user_id"], row["key"]), i) != i:
            row["embedding"] = None
    return rows


# -- forgetting a preference ------------------------------------------------------------------

# The customer's relationships that state these facts (``graph.schema.fact_key``: the
# stance, the attribute, the value as the catalog or the customer named it), closed as of
# ``$at`` (history, like a replaced preference) and marked forgotten. A message said before
# ``$at`` that is written later joins the closed relationship (its time is covered) instead
# of opening it again; the pipeline also leaves out what such messages say
# (``without_forgotten``). Returns how many were current.
FORGET_PREFERENCES = """
UNWIND $facts AS f
MATCH (c:Customer {user_id: $user_id})-[r:PREFERS|DISLIKES]->(t)
WHERE type(r) = f.rel AND r.attribute = f.attribute
  AND (toLower(trim(coalesce(t.name, ''))) = f.value OR toLower(coalesce(t.sku, '')) = f.value)
WITH DISTINCT r
WITH r, r.valid_to IS NULL AS current
SET r.valid_to = CASE WHEN current THEN $at ELSE r.valid_to END, r.forgotten_at = $at
RETURN count(CASE WHEN current THEN 1 END) AS closed
"""


def _fact_rows(fact_keys: list[str]) -> list[dict[str, str]]:
    rows = []
    for key in fact_keys:
        polarity, attribute, value = [*key.split(":", 2), "", ""][:3]
        if polarity in PREFERENCE_TYPES and attribute and value:
            rows.append({"rel": PREFERENCE_TYPES[polarity], "attribute": attribute, "value": " ".join(value.split())})
    return rows


@unit_of_work(timeout=WRITE_TIMEOUT_S)
async def forget_preferences(tx: AsyncManagedTransaction, user_id: str, fact_keys: list[str], at: datetime) -> int:
    """Close the customer's current preferences that state ``fact_keys``; how many."""
    rows = _fact_rows(fact_keys)
    if not rows:
        return 0
    record = await (await tx.run(FORGET_PREFERENCES, user_id=user_id, facts=rows, at=at)).single(strict=True)
    return int(record["closed"])


def without_forgotten(facts: MessageFacts, forgotten: dict[str, int]) -> MessageFacts:
    """``facts`` without the preferences the customer had forgotten (deleted the memory of)
    since this message was stored: ``forgotten`` maps a fact's hash
    (``vectors.memories.fact_hash``) to the newest message id when it was forgotten."""
    if not forgotten:
        return facts
    kept = [
        p
        for p in facts.preferences
        if forgotten.get(fact_hash(fact_key(p["polarity"], p["attribute"], p["value"])), -1) < facts.message_id
    ]
    return replace(facts, preferences=kept) if len(kept) != len(facts.preferences) else facts


WARM_UP_USER = "(warm up)"  # no customer can have this identifier: the API refuses spaces and brackets


@unit_of_work(timeout=WRITE_TIMEOUT_S)
async def warm_up(tx: AsyncManagedTransaction) -> None:
    """Plan the write statement (one plan for every batch: ``WRITE_FACTS``) with a row of
    the right shape in every section for a customer that does not exist (nothing is written:
    every section MATCHes the customer first, and the customers' section is empty), so a
    fresh worker's first batch is not slow."""
    facts = MessageFacts(
        WARM_UP_USER,
        0,
        datetime.now(UTC),
        preferences=[PreferenceFact(attribute="style", value="modern", polarity="prefers", shared=True)],
        purchases=[PurchaseFact(product_name="x")],
        interests=[InterestFact(category="sofa")],
        entities=[EntityFact(key="person:x", type="person", name="x", embedding=[0.0] * DIM)],
        relations=[RelationFact(source_key="a", target_key="b", type="RELATED_TO")],
    )
    rows = fact_rows([facts])
    rows["customers"] = []
    await (await tx.run(WRITE_FACTS, batch=rows)).consume()
