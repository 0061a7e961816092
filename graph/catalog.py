"""The shared catalog in Neo4j: products, their categories, styles, materials, colours and
brands, and the vocabulary nodes the catalog defines (marked ``catalog = true``; erasure
never deletes those). Loaded by ``loftmem migrate`` (and the catalog feed) only when its
content hash changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction, Query

from graph.driver import GraphStore
from graph.schema import VOCABULARY_LABELS

log = logging.getLogger("loft.graph.catalog")
BATCH = 200

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

# every style, material, colour, category and brand of the catalog, marked as the
# catalog's (erasure never deletes these; labels from graph.schema's fixed tuple only)
LOAD_VOCABULARY = {
    label: f"UNWIND $names AS name MERGE (n:{label} {{name: name}}) SET n.catalog = true" for label in VOCABULARY_LABELS
}

CATALOG_VERSION = "MATCH (v:CatalogVersion) RETURN v.hash AS hash, v.source AS source"
SET_CATALOG_VERSION = "MERGE (v:CatalogVersion) SET v.hash = $hash, v.loaded_at = datetime(), v.products = $count"


def catalog_hash(
    products: list[dict[str, Any]], categories: list[dict[str, Any]], vocabulary: dict[str, list[str]]
) -> str:
    blob = json.dumps([products, categories, vocabulary], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


async def ensure_catalog(
    driver: AsyncDriver,
    products: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    vocabulary: dict[str, list[str]],
    *,
    database: str,
) -> bool:
    """Load the catalog unless this exact version is already there; True when it loaded."""
    digest = catalog_hash(products, categories, vocabulary)
    records, _, _ = await driver.execute_query(CATALOG_VERSION, database_=database)
    if records and (records[0]["hash"] == digest or records[0]["source"] == "feed"):
        return False  # loaded already, or the shop's own catalog came through the feed since
    await driver.execute_query(LOAD_CATEGORIES, categories=categories, database_=database)
    for start in range(0, len(products), BATCH):
        await driver.execute_query(LOAD_CATALOG, products=products[start : start + BATCH], database_=database)
    for label, names in vocabulary.items():
        await driver.execute_query(LOAD_VOCABULARY[label], names=names, database_=database)
    await driver.execute_query(SET_CATALOG_VERSION, hash=digest, count=len(products), database_=database)
    log.info("loaded the catalog into Neo4j: %d products", len(products))
    return True


KNOWN_SKUS = "UNWIND $skus AS sku MATCH (p:Product {sku: sku}) RETURN collect(p.sku) AS known"
KNOWN_SKUS_TIMEOUT_S = 10.0  # the server ends the read after this long (an order's SKUs: index lookups)


async def known_skus(store: GraphStore, skus: list[str]) -> set[str]:
    """The SKUs of ``skus`` that the catalog in Neo4j knows (discontinued ones included)."""
    records, _, _ = await store.driver.execute_query(
        Query(KNOWN_SKUS, timeout=KNOWN_SKUS_TIMEOUT_S), skus=sorted(set(skus)), database_=store.database, routing_="r"
    )
    return set(records[0]["known"])


# -- the catalog feed (loftmem catalog load) ---------------------------------------------------

FEED_EXISTING = """
MATCH (p:Product)
RETURN p.sku AS sku, p.name AS name, p.category AS category, p.brand AS brand, p.price AS price,
       coalesce(p.in_stock, true) AS in_stock, coalesce(p.discontinued, false) AS discontinued,
       coalesce(p.consumable, false) AS consumable,
       [(p)-[:HAS_STYLE]->(s) | s.name] AS styles, [(p)-[:MADE_OF]->(m) | m.name] AS materials,
       [(p)-[:HAS_COLOR]->(c) | c.name] AS colors
"""

# a product's links to the vocabulary are replaced, not added to (a changed category or
# style must not leave the old one behind); vocabulary nodes are the catalog's
FEED_UPSERT = """
UNWIND $products AS p
MERGE (prod:Product {sku: p.sku})
SET prod.name = p.name, prod.price = p.price, prod.category = p.category, prod.brand = p.brand,
    prod.in_stock = p.in_stock, prod.consumable = p.consumable, prod.discontinued = false,
    prod.updated_at = datetime()
WITH prod, p
CALL (prod) {
  MATCH (prod)-[old:IN_CATEGORY|HAS_STYLE|MADE_OF|HAS_COLOR|MADE_BY]->()
  DELETE old
}
MERGE (cat:Category {name: p.category}) SET cat.catalog = true
MERGE (prod)-[:IN_CATEGORY]->(cat)
FOREACH (s IN p.styles | MERGE (n:Style {name: s}) SET n.catalog = true MERGE (prod)-[:HAS_STYLE]->(n))
FOREACH (m IN p.materials | MERGE (n:Material {name: m}) SET n.catalog = true MERGE (prod)-[:MADE_OF]->(n))
FOREACH (c IN p.colors | MERGE (n:Color {name: c}) SET n.catalog = true MERGE (prod)-[:HAS_COLOR]->(n))
FOREACH (b IN CASE WHEN p.brand IS NULL THEN [] ELSE [p.brand] END |
  MERGE (n:Brand {name: b}) SET n.catalog = true MERGE (prod)-[:MADE_BY]->(n))
"""
FEED_DISCONTINUE = """
UNWIND $skus AS sku
MATCH (p:Product {sku: sku})
SET p.discontinued = true, p.in_stock = false, p.updated_at = datetime()
"""
# from now on the catalog is the feed's: `loftmem migrate` no longer loads the bundled sample over it
FEED_VERSION = "MERGE (v:CatalogVersion) SET v.source = 'feed', v.loaded_at = datetime(), v.products = $count"


async def feed_existing(driver: AsyncDriver, *, database: str) -> dict[str, dict[str, Any]]:
    records, _, _ = await driver.execute_query(FEED_EXISTING, database_=database, routing_="r")
    return {r["sku"]: dict(r) for r in records}


async def feed_load(
    driver: AsyncDriver,
    products: list[dict[str, Any]],
    discontinued: list[str],
    *,
    database: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Upsert ``products`` and discontinue ``discontinued`` in one transaction (all or nothing)."""

    async def work(tx: AsyncManagedTransaction) -> None:
        for start in range(0, len(products), BATCH):
            chunk = products[start : start + BATCH]
            await (await tx.run(FEED_UPSERT, products=chunk)).consume()
            if progress is not None:
                progress(len(chunk))
        if discontinued:
            await (await tx.run(FEED_DISCONTINUE, skus=discontinued)).consume()
        await (await tx.run(FEED_VERSION, count=len(products))).consume()

    async with driver.session(database=database) as session:
        await session.execute_write(work)
