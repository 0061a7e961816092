"""Recommendation candidates checked against the graph, with the customer's basis.

The candidates themselves come from PostgreSQL (:mod:`service.postgres.co_purchases`: the
precomputed neighbours of the customer's products, their categories' best sellers, the
shop's best sellers, the consumables they buy again); one bounded read here adds what only
the graph knows, for one customer:

- their current preferences (the :data:`LIKE_LIMIT` most recent), dislikes and budget;
- products linked to what they like (style, category and its sub-categories, material,
  colour, brand, a liked product itself): at most :data:`EXPAND_LIMIT` per liked thing,
  the :data:`PREFERENCE_POOL` most bought of them;
- for every candidate: in stock and not discontinued, none of its style/category/material/
  colour/brand disliked (a dislike is a veto, not a demotion), not over ``$max_price``
  (the customer's budget, when no explicit limit is given: -1), in ``$category[0]`` (or
  under it; '' for any), not claimed in chat unless the catalog says it is consumable (the
  caller leaves out what the order feed says they own); and which preferences it meets.

No step walks other customers: the work is bounded by the candidates passed in, the
customer's own preferences and the catalog, never by the shop's purchases. The query runs
with a transaction timeout (the server ends it) and the caller's ``wait_for``; the
server's ``db.memory.transaction.max`` bounds its memory. Scoring and the sentences that
explain a score are pure Python (:mod:`service.core.recommendations`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neo4j import AsyncDriver, Query

log = logging.getLogger("loft.recommendations")

# how products point at the vocabulary a customer can like or dislike (fixed here, never text)
ATTRIBUTE_RELS = "HAS_STYLE|MADE_OF|HAS_COLOR|MADE_BY"
LIKE_LIMIT = 20  # current preferences considered, most recent first
DISLIKE_LIMIT = 200  # current dislikes applied as vetoes
EXPAND_LIMIT = 1000  # products followed from one liked style, category, material, colour or brand
PREFERENCE_POOL = 60  # preference-matched candidates kept (most bought first)

# ``replan=skip``: the server keeps this query's plan when the shop's statistics move (by
# default it plans again once the counts diverge by 75%, which took 3.5 s on a busy 2-core
# machine, past the request's timeout, so answers degraded while a shop grew). The plan does
# not depend on those statistics: every node it starts from is a unique-constraint lookup
# (Customer.user_id, Product.sku) and every step is an expansion from those.
RECOMMEND = f"""CYPHER replan=skip
OPTIONAL MATCH (c:Customer {{user_id: $user_id[0]}})
CALL (c) {{
  MATCH (c)-[r:PREFERS]->(t)
  WHERE r.valid_to IS NULL AND (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand OR t:Product)
  WITH r, t ORDER BY r.last_seen DESC LIMIT $like_limit
  RETURN collect(t) AS liked,
         collect({{node: t, attribute: r.attribute, name: coalesce(t.name, t.sku), strength: r.strength}}) AS likes
}}
CALL (c) {{
  MATCH (c)-[r:DISLIKES]->(t)
  WHERE r.valid_to IS NULL AND (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand OR t:Product)
  WITH t LIMIT $dislike_limit
  RETURN collect(t) AS disliked
}}
// what they said in chat they bought (the order feed's purchases the caller knows already):
// not looked for when none was ever filed for them (graph.writes: said_purchases)
CALL (c) {{
  WITH c WHERE coalesce(c.said_purchases, true)
  MATCH (c)-[r:PURCHASED]->(o:Product) WHERE r.source = 'chat'
  RETURN collect(o) AS claimed
}}
CALL (c) {{
  MATCH (c)-[r:PREFERS {{attribute: 'budget'}}]->(e:Entity)
  WHERE r.valid_to IS NULL
  WITH e ORDER BY r.valid_from DESC
  RETURN head(collect(toFloat(e.name))) AS budget
}}
CALL (liked) {{
  UNWIND liked AS t
  CALL (t) {{
    MATCH (t)<-[:{ATTRIBUTE_RELS}]-(p:Product) RETURN p LIMIT $expand_limit
    UNION
    MATCH (t)<-[:SUBCATEGORY_OF*0..2]-(:Category)<-[:IN_CATEGORY]-(p:Product) RETURN p LIMIT $expand_limit
    UNION
    WITH t WHERE t:Product RETURN t AS p
  }}
  WITH DISTINCT p WHERE coalesce(p.in_stock, true) AND NOT coalesce(p.discontinued, false)
  WITH p, COUNT {{ (p)<-[:PURCHASED]-() }} AS n ORDER BY n DESC, p.sku LIMIT $pref_pool
  RETURN collect(p.sku) AS matching
}}
WITH c, likes, disliked, claimed, budget, matching,
     CASE WHEN $max_price >= 0 THEN $max_price ELSE budget END AS price_cap
// one row whatever happens (a subquery that aggregates): the candidates that pass every filter
CALL (c, matching, disliked, claimed, likes, price_cap) {{
  UNWIND $skus + matching AS sku
  WITH DISTINCT sku WHERE sku <> ''
  MATCH (p:Product {{sku: sku}})
  WHERE coalesce(p.in_stock, true) AND NOT coalesce(p.discontinued, false) AND NOT p IN disliked
    AND (price_cap IS NULL OR p.price <= price_cap)
    AND ($category[0] = ''
         OR EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(:Category {{name: $category[0]}}) }})
    AND (size(disliked) = 0
         OR (NOT EXISTS {{ (p)-[:{ATTRIBUTE_RELS}]->(x) WHERE x IN disliked }}
             AND NOT EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(x) WHERE x IN disliked }}))
  WITH p, coalesce(p.consumable, false) AS consumable, p IN claimed AS owned
  WHERE consumable OR NOT owned
  CALL (p, likes) {{
    UNWIND likes AS l
    WITH l WHERE l.node = p
      OR EXISTS {{ (p)-[:{ATTRIBUTE_RELS}]->(x) WHERE x = l.node }}
      OR EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(x) WHERE x = l.node }}
    RETURN collect({{attribute: l.attribute, name: l.name, strength: l.strength}}) AS matched
  }}
  RETURN collect({{sku: p.sku, name: p.name, category: p.category, price: p.price, consumable: consumable,
                   owned: owned, matched: matched}}) AS items
}}
// the names of the customer's own products that explain a candidate
CALL () {{
  UNWIND $named AS sku
  WITH sku WHERE sku <> ''
  MATCH (p:Product {{sku: sku}})
  RETURN collect({{sku: p.sku, name: p.name}}) AS names
}}
RETURN c IS NOT NULL AS known, c.name AS name, COUNT {{ (c)-[:PURCHASED]->() }} AS owned, budget,
       [l IN likes WHERE l.attribute IN ['style', 'category', 'material', 'color', 'brand']
        | {{attribute: l.attribute, name: l.name}}] AS likes,
       items, names
"""


# The server's plan cache is keyed by the query text and its parameters' types *and size
# buckets* (a string's or a list's length: 0, 1, up to 10, up to 100, up to 1000, ...); each
# new key costs a plan (a second or two on a busy machine, counted in the transaction's time).
# So every call sends one shape: the customer's identifier and the category as short lists,
# "no price cap" as -1, and the lists of SKUs padded with '' (dropped before any lookup) into one
# bucket. The first call of a process still allows for planning (``first_call_timeout``).
# A server that restarted has no plan: a request that times out then has the plan made in
# the background (``plan_again``) so the next requests find it.
PLANNING_S = 30.0
PADDED = 101  # lists of SKUs are padded to at least this many: the bucket of 101-1000
_planned = False
_planning: asyncio.Task[None] | None = None


def first_call_timeout(timeout: float) -> float:
    """The timeout to give :func:`check`: ``timeout``, or room to plan the query if this
    process has not run it yet."""
    return timeout if _planned else max(timeout, PLANNING_S)


def _padded(skus: list[str]) -> list[str]:
    return skus + [""] * (PADDED - len(skus))


def _params(
    user_id: str, skus: list[str], named: list[str], category: str | None, max_price: float | None
) -> dict[str, Any]:
    return {
        "user_id": [user_id],
        "skus": _padded(skus),
        "named": _padded(named),
        "category": [category or "", ""],
        "max_price": float(max_price) if max_price is not None else -1.0,
        "like_limit": LIKE_LIMIT,
        "dislike_limit": DISLIKE_LIMIT,
        "expand_limit": EXPAND_LIMIT,
        "pref_pool": PREFERENCE_POOL,
    }


def plan_again(driver: AsyncDriver, *, database: str) -> bool:
    """Have the server plan :data:`RECOMMEND` again in the background (after a request timed
    out: the server may have restarted, or dropped the plan): the query for no customer and
    no candidates, which costs its planning and almost nothing else, with room to plan. At
    most one at a time; returns whether one was started."""
    global _planning
    if _planning is not None and not _planning.done() and _planning.get_loop() is asyncio.get_running_loop():
        return False

    async def plan() -> None:
        try:
            async with driver.session(database=database, default_access_mode="READ") as session:
                result = await session.run(Query(RECOMMEND, timeout=PLANNING_S), _params("", [], [], None, None))
                await result.consume()
        except Exception as exc:  # the next timed-out request tries again
            log.warning("planning the recommendation query failed (%s)", type(exc).__name__)

    _planning = asyncio.get_running_loop().create_task(plan(), name="recommend-plan")
    return True


@dataclass(frozen=True)
class CoPurchase:
    """One of the customer's own products a candidate was bought with: by how many customers."""

    sku: str
    name: str | None
    customers: int


@dataclass(frozen=True)
class Match:
    """A current preference a product meets (``strength`` 0..1, as the customer said it)."""

    attribute: str  # style, category, material, color, brand or product
    name: str
    strength: float | None = None


@dataclass(frozen=True)
class Like:
    attribute: str
    name: str


@dataclass
class Candidate:
    """One product that passed every filter, with the evidence the score is built from."""

    sku: str
    name: str
    category: str | None
    price: float | None
    buyers: int  # distinct customers who ordered it (popularity)
    co_weight: float = 0.0  # the customer's products' weighted cosine to it (0 without purchases)
    via: list[CoPurchase] = field(default_factory=list)  # of the customer's own products, strongest first
    matched: list[Match] = field(default_factory=list)  # preferences met
    budget: float | None = None
    consumable: bool = False
    repeat: float = 0.0  # a consumable the customer buys again: how regularly and how lately (0..1)
    orders: int = 0  # how many of the customer's recent orders held it (a repeat)
    best_in: str | None = None  # a best seller of this category the customer buys in


@dataclass
class CustomerBasis:
    known: bool
    name: str | None
    owned: int
    likes: list[Like]


@dataclass(frozen=True)
class Checked:
    """A candidate that passed the graph's filters, as the graph knows it."""

    sku: str
    name: str
    category: str | None
    price: float | None
    consumable: bool
    owned: bool  # claimed in chat
    matched: tuple[Match, ...]


@dataclass
class GraphCheck:
    """What the graph says: the basis, the budget, and the candidates that passed."""

    basis: CustomerBasis
    budget: float | None
    items: dict[str, Checked]
    names: dict[str, str]  # sku -> name, of the products asked for in ``named``


async def check(
    driver: AsyncDriver,
    user_id: str,
    skus: list[str],
    *,
    named: list[str],
    database: str,
    timeout: float,
    category: str | None = None,
    max_price: float | None = None,
) -> GraphCheck:
    """Filter ``skus`` (and the products the customer's preferences lead to) for ``user_id``,
    and name the products of ``named``. The server ends the transaction after ``timeout``
    seconds."""
    if len(skus) > 1000 or len(named) > 1000:
        raise ValueError("at most 1000 candidates and 1000 named products (one plan size bucket)")
    params = _params(user_id, skus, named, category, max_price)
    # auto-commit: one round trip instead of a managed transaction's three
    async with driver.session(database=database, default_access_mode="READ") as session:
        result = await session.run(Query(RECOMMEND, timeout=timeout), params)
        r = await result.single(strict=True)
    global _planned
    _planned = True
    likes = [Like(x["attribute"], x["name"]) for x in r["likes"]]
    basis = CustomerBasis(bool(r["known"]), r["name"], int(r["owned"] or 0), likes)
    budget = float(r["budget"]) if r["budget"] is not None else None
    items = {x["sku"]: _checked(x) for x in r["items"]}
    return GraphCheck(basis, budget, items, {x["sku"]: x["name"] for x in r["names"]})


def _checked(x: Mapping[str, Any]) -> Checked:
    return Checked(
        sku=x["sku"],
        name=x["name"],
        category=x["category"],
        price=float(x["price"]) if x["price"] is not None else None,
        consumable=bool(x["consumable"]),
        owned=bool(x["owned"]),
        matched=tuple(
            Match(m["attribute"], m["name"], float(m["strength"]) if m["strength"] is not None else None)
            for m in x["matched"]
        ),
    )
