"""Graph writes for the medium-term tier.

Every value is a query parameter. Labels and relationship types cannot be parameters in
Cypher, so each one has its own query text built once from a fixed allow-list
(``TARGET_LABELS``, ``RELATION_TYPES``); nothing from a message ever reaches query text.

Writes are idempotent per source message: a retried job finds its message id in
``source_message_ids`` and does not count the mention twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neo4j import AsyncManagedTransaction

# preference attribute -> (node label, key property) of what the customer prefers
TARGET_LABELS: dict[str, tuple[str, str]] = {
    "style": ("Style", "name"),
    "category": ("Category", "name"),
    "material": ("Material", "name"),
    "color": ("Color", "name"),
    "brand": ("Brand", "name"),
    "product": ("Product", "sku"),
}
RELATION_TYPES = frozenset(
    {"FAMILY_OF", "PARTNER_OF", "FRIEND_OF", "PET_OF", "LIVES_IN", "WORKS_AT", "ATTENDED", "LOCATED_IN", "PART_OF", "RELATED_TO"}
)


def entity_key(type_: str, name: str) -> str:
    """Stable per-user key of an extracted entity: type + normalised name."""
    return f"{type_}:{' '.join(name.lower().split())}"


@dataclass
class MessageFacts:
    """What one message contributes to the graph (built by the ingestion pipeline)."""

    user_id: str
    message_id: int
    at: datetime
    customer_name: str | None = None
    preferences: list[dict[str, Any]] = field(default_factory=list)  # attribute, value, polarity, strength, confidence, replaces
    purchases: list[dict[str, Any]] = field(default_factory=list)  # sku|None, product_name, category, quantity, price, order_id, at
    interests: list[dict[str, Any]] = field(default_factory=list)  # sku|None, category|None, kind
    entities: list[dict[str, Any]] = field(default_factory=list)  # key, type, name, relation, at, embedding
    relations: list[dict[str, Any]] = field(default_factory=list)  # source_key, target_key, type


# -- customer -------------------------------------------------------------------------------

MERGE_CUSTOMERS = """
UNWIND $rows AS row
MERGE (c:Customer {user_id: row.user_id})
  ON CREATE SET c.created_at = row.at, c.first_seen = row.at
SET c.last_seen = CASE WHEN c.last_seen IS NULL OR c.last_seen < row.at THEN row.at ELSE c.last_seen END,
    c.name = coalesce(row.name, c.name)
"""

# -- preferences ------------------------------------------------------------------------------

# close what a preference replaces: the opposite polarity for the same target, and (for an
# explicit change such as "actually I prefer walnut now") the other current values of the
# same attribute
_CLOSE_PREFS = """
MATCH (c:Customer {{user_id: $user_id}})-[r:PREFERS|DISLIKES]->(t)
WHERE r.valid_to IS NULL AND r.attribute = $attribute
  AND ((type(r) <> $rel_type AND t.{key} = $value)
       OR ($replaces AND type(r) = $rel_type AND t.{key} <> $value))
SET r.valid_to = $at, r.closed_by_message_id = $message_id
RETURN count(r) AS closed
"""

_UPSERT_PREF = """
MATCH (c:Customer {{user_id: $user_id}})
MERGE (t:{label} {{{key}: $value}})
WITH c, t
OPTIONAL MATCH (c)-[open:{rel}]->(t) WHERE open.valid_to IS NULL
CALL (c, t, open) {{
  WITH c, t, open WHERE open IS NULL
  CREATE (c)-[r:{rel} {{attribute: $attribute, strength: $strength, confidence: $confidence, mentions: 1,
                       first_seen: $at, last_seen: $at, valid_from: $at, valid_to: null,
                       source_message_ids: [$message_id]}}]->(t)
  RETURN r
  UNION
  WITH open WHERE open IS NOT NULL
  SET open.mentions = CASE WHEN $message_id IN open.source_message_ids THEN open.mentions ELSE open.mentions + 1 END,
      open.strength = CASE WHEN $strength > open.strength THEN $strength ELSE open.strength END,
      open.confidence = CASE WHEN $confidence > open.confidence THEN $confidence ELSE open.confidence END,
      open.last_seen = CASE WHEN $at > open.last_seen THEN $at ELSE open.last_seen END,
      open.source_message_ids = CASE WHEN $message_id IN open.source_message_ids THEN open.source_message_ids
                                     ELSE open.source_message_ids + $message_id END
  RETURN open AS r
}}
RETURN count(r) AS n
"""


def _pref_queries() -> dict[tuple[str, str], tuple[str, str]]:
    queries = {}
    for attribute, (label, key) in TARGET_LABELS.items():
        for rel in ("PREFERS", "DISLIKES"):
            queries[(attribute, rel)] = (
                _CLOSE_PREFS.format(key=key),
                _UPSERT_PREF.format(label=label, key=key, rel=rel),
            )
    # size, budget and free-form preferences point at a per-user Entity
    for rel in ("PREFERS", "DISLIKES"):
        queries[("entity", rel)] = (_CLOSE_PREFS.format(key="key"), _UPSERT_PREF.format(label="Entity", key="key", rel=rel))
    return queries


PREF_QUERIES = _pref_queries()

ENSURE_PREF_ENTITY = """
MERGE (e:Entity {user_id: $user_id, key: $key})
  ON CREATE SET e.name = $name, e.type = $type, e.first_seen = $at
SET e.last_seen = $at
"""

# -- purchases and interests ----------------------------------------------------------------

MERGE_PURCHASES = """
UNWIND $rows AS row
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
MERGE (c)-[r:PURCHASED {message_id: row.message_id, item: row.key}]->(target)
SET r.at = row.at, r.order_id = row.order_id, r.qty = row.quantity, r.price = row.price,
    r.source_message_ids = [row.message_id]
"""

MERGE_INTERESTS = """
UNWIND $rows AS row
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
UNWIND $rows AS row
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
UNWIND $rows AS row
MATCH (a:Entity {user_id: row.user_id, key: row.source_key})
MATCH (b:Entity {user_id: row.user_id, key: row.target_key})
MERGE (a)-[r:RELATED_TO {type: row.type}]->(b)
  ON CREATE SET r.valid_from = row.at, r.valid_to = null, r.strength = 0.5, r.confidence = 0.6,
                r.source_message_ids = []
SET r.source_message_ids = CASE WHEN row.message_id IN r.source_message_ids THEN r.source_message_ids
                                ELSE r.source_message_ids[-49..] + row.message_id END,
    r.strength = CASE WHEN r.strength < 1.0 THEN r.strength + 0.1 ELSE r.strength END
"""


async def write_facts(tx: AsyncManagedTransaction, batch: list[MessageFacts]) -> None:
    """Apply a batch of messages' facts in one transaction, in message order."""
    if not batch:
        return
    await tx.run(
        MERGE_CUSTOMERS,
        rows=[{"user_id": f.user_id, "at": f.at, "name": f.customer_name} for f in batch],
    )
    for facts in batch:
        for pref in facts.preferences:
            await _write_preference(tx, facts, pref)
    purchases = [
        {
            "user_id": f.user_id,
            "message_id": f.message_id,
            "key": p.get("sku") or entity_key("thing", p["product_name"]),
            "sku": p.get("sku"),
            "name": p["product_name"],
            "category": p.get("category"),
            "quantity": p.get("quantity", 1),
            "price": p.get("price"),
            "order_id": p.get("order_id"),
            "at": p.get("at") or f.at,
        }
        for f in batch
        for p in f.purchases
    ]
    if purchases:
        await tx.run(MERGE_PURCHASES, rows=purchases)
    interests = [
        {"user_id": f.user_id, "message_id": f.message_id, "sku": i.get("sku"), "category": i.get("category"), "kind": i.get("kind", "asked_about"), "at": f.at}
        for f in batch
        for i in f.interests
        if i.get("sku") or i.get("category")
    ]
    if interests:
        await tx.run(MERGE_INTERESTS, rows=interests)
    entities = [
        {
            "user_id": f.user_id,
            "message_id": f.message_id,
            "key": e["key"],
            "name": e["name"],
            "type": e["type"],
            "relation": e.get("relation"),
            "summary": e.get("summary"),
            "event_at": e.get("at"),
            "embedding": e.get("embedding"),
            "at": f.at,
        }
        for f in batch
        for e in f.entities
    ]
    if entities:
        await tx.run(MERGE_ENTITIES, rows=entities)
    related = [
        {"user_id": f.user_id, "message_id": f.message_id, "at": f.at, **r}
        for f in batch
        for r in f.relations
        if r["type"] in RELATION_TYPES
    ]
    if related:
        await tx.run(MERGE_RELATED, rows=related)


async def _write_preference(tx: AsyncManagedTransaction, facts: MessageFacts, pref: dict[str, Any]) -> None:
    rel = "PREFERS" if pref["polarity"] == "prefers" else "DISLIKES"
    attribute = pref["attribute"]
    value = pref["value"]
    if attribute in TARGET_LABELS:
        close_q, upsert_q = PREF_QUERIES[(attribute, rel)]
    else:
        close_q, upsert_q = PREF_QUERIES[("entity", rel)]
        name = value
        value = entity_key(attribute, value)
        await tx.run(ENSURE_PREF_ENTITY, user_id=facts.user_id, key=value, name=name, type=attribute, at=facts.at)
    params = {
        "user_id": facts.user_id,
        "attribute": attribute,
        "value": value,
        "rel_type": rel,
        "replaces": bool(pref.get("replaces")),
        "at": facts.at,
        "message_id": facts.message_id,
        "strength": float(pref.get("strength", 0.6)),
        "confidence": float(pref.get("confidence", 0.7)),
    }
    await tx.run(close_q, **params)
    await tx.run(upsert_q, **params)


# -- catalog --------------------------------------------------------------------------------

LOAD_CATALOG = """
UNWIND $products AS p
MERGE (prod:Product {sku: p.sku})
SET prod.name = p.name, prod.price = p.price, prod.category = p.category, prod.brand = p.brand,
    prod.description = p.description, prod.width_cm = p.width_cm, prod.depth_cm = p.depth_cm,
    prod.height_cm = p.height_cm
MERGE (cat:Category {name: p.category})
MERGE (prod)-[:IN_CATEGORY]->(cat)
FOREACH (s IN p.styles | MERGE (n:Style {name: s}) MERGE (prod)-[:HAS_STYLE]->(n))
FOREACH (m IN p.materials | MERGE (n:Material {name: m}) MERGE (prod)-[:MADE_OF]->(n))
FOREACH (c IN p.colors | MERGE (n:Color {name: c}) MERGE (prod)-[:HAS_COLOR]->(n))
FOREACH (b IN CASE WHEN p.brand IS NULL THEN [] ELSE [p.brand] END |
  MERGE (n:Brand {name: b}) MERGE (prod)-[:MADE_BY]->(n))
"""

LOAD_CATEGORIES = """
UNWIND $categories AS k
MERGE (cat:Category {name: k.name})
SET cat.label = k.label, cat.synonyms = k.synonyms
WITH cat, k WHERE k.parent IS NOT NULL
MERGE (parent:Category {name: k.parent})
MERGE (cat)-[:SUBCATEGORY_OF]->(parent)
"""

CATALOG_VERSION = "MATCH (v:CatalogVersion) RETURN v.hash AS hash"
SET_CATALOG_VERSION = "MERGE (v:CatalogVersion) SET v.hash = $hash, v.loaded_at = datetime(), v.products = $count"


def catalog_hash(products: list[dict], categories: list[dict]) -> str:
    blob = json.dumps([products, categories], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
