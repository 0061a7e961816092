"""Recommendation candidates over the graph, with the evidence for each.

One read query gathers, for one customer:

- what they own (every ``PURCHASED`` product, from the order feed or from chat);
- their current preferences and dislikes (open ``PREFERS``/``DISLIKES``) and budget;
- **co-purchase paths**: products bought by customers who bought what this customer
  bought, each (their product, co-buyer) pair weighted by how recently the co-buyer
  bought the candidate (half-life ``$half_life_days``), grouped by the customer's own
  product so every candidate can say "bought by 12 customers who also bought the Arlo
  sofa";
- products linked to what they like (style, category and its sub-categories, material,
  colour, brand, a liked product itself);
- the most bought products of the shop (for a customer with nothing else to go on).

Every candidate is then filtered *in the query*: in stock and not discontinued, not
owned, none of its style/category/material/colour/brand disliked (a dislike is a veto,
not a demotion), not over ``$max_price`` (the customer's budget, when no explicit
limit is given), in ``$category`` (or under it). Scoring and the sentences that explain a
score are pure Python (:mod:`service.recommendations`), so they are unit-tested without a
store. Other customers are never named: a path shows "12 customers", not who they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from neo4j import AsyncDriver

# how products point at the vocabulary a customer can like or dislike (fixed here, never text)
ATTRIBUTE_RELS = "HAS_STYLE|MADE_OF|HAS_COLOR|MADE_BY"
CO_PURCHASE_POOL = 60  # co-purchased candidates kept before filtering
PREFERENCE_POOL = 60  # preference-matched candidates kept (most bought first)
POPULAR_POOL = 40

RECOMMEND = f"""
OPTIONAL MATCH (c:Customer {{user_id: $user_id}})
CALL (c) {{
  OPTIONAL MATCH (c)-[:PURCHASED]->(o:Product)
  RETURN collect(DISTINCT o) AS owned
}}
CALL (c) {{
  OPTIONAL MATCH (c)-[r:PREFERS]->(t)
  WHERE r.valid_to IS NULL AND (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand OR t:Product)
  RETURN collect(t) AS liked,
         collect({{node: t, attribute: r.attribute, name: coalesce(t.name, t.sku), strength: r.strength}}) AS likes
}}
CALL (c) {{
  OPTIONAL MATCH (c)-[r:DISLIKES]->(t)
  WHERE r.valid_to IS NULL AND (t:Style OR t:Category OR t:Material OR t:Color OR t:Brand OR t:Product)
  RETURN collect(t) AS disliked
}}
CALL (c) {{
  OPTIONAL MATCH (c)-[r:PREFERS {{attribute: 'budget'}}]->(e:Entity)
  WHERE r.valid_to IS NULL
  WITH e ORDER BY r.valid_from DESC
  RETURN head(collect(toFloat(e.name))) AS budget
}}
// co-purchase paths: mine <- other customer -> candidate, weighted by recency of the other's purchase
CALL (c, owned) {{
  UNWIND owned AS mine
  MATCH (mine)<-[:PURCHASED]-(other:Customer)-[b:PURCHASED]->(rec:Product)
  WHERE other <> c AND NOT rec IN owned
  WITH rec, mine, other, max(b.at) AS at
  WITH rec, mine, count(other) AS buyers,
       sum(exp(-0.693 * (($now - coalesce(at.epochSeconds, $now)) / 86400.0) / $half_life_days)) AS weight
  ORDER BY weight DESC
  WITH rec, sum(weight) AS weight, collect({{sku: mine.sku, name: mine.name, buyers: buyers}}) AS via
  ORDER BY weight DESC LIMIT $co_pool
  RETURN collect({{sku: rec.sku, weight: weight, via: via[..3]}}) AS co
}}
CALL (liked, owned) {{
  UNWIND liked AS t
  CALL (t) {{
    MATCH (t)<-[:{ATTRIBUTE_RELS}]-(p:Product) RETURN p
    UNION
    MATCH (t)<-[:SUBCATEGORY_OF*0..2]-(:Category)<-[:IN_CATEGORY]-(p:Product) RETURN p
    UNION
    WITH t WHERE t:Product RETURN t AS p
  }}
  WITH DISTINCT p WHERE NOT p IN owned AND coalesce(p.in_stock, true)
  WITH p, COUNT {{ (p)<-[:PURCHASED]-() }} AS n ORDER BY n DESC, p.sku LIMIT $pref_pool
  RETURN collect(p) AS matching
}}
CALL () {{
  MATCH (p:Product) WHERE coalesce(p.in_stock, true)
  WITH p, COUNT {{ (p)<-[:PURCHASED]-() }} AS n ORDER BY n DESC, p.sku LIMIT $popular_pool
  RETURN collect(p) AS popular
}}
WITH c, owned, likes, disliked, budget, co, matching, popular,
     CASE WHEN $max_price IS NOT NULL THEN $max_price ELSE budget END AS price_cap
CALL (co, matching, popular) {{
  UNWIND [x IN co | x.sku] + [p IN matching | p.sku] + [p IN popular | p.sku] AS sku
  RETURN collect(DISTINCT sku) AS skus
}}
// one row whatever happens (a subquery that aggregates): the customer's basis and the candidates
CALL (skus, owned, disliked, likes, co, budget, price_cap) {{
  UNWIND skus AS sku
  MATCH (p:Product {{sku: sku}})
  WHERE coalesce(p.in_stock, true) AND NOT coalesce(p.discontinued, false) AND NOT p IN owned AND NOT p IN disliked
    AND (price_cap IS NULL OR p.price <= price_cap)
    AND ($category IS NULL
         OR EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(:Category {{name: $category}}) }})
    AND NOT EXISTS {{ (p)-[:{ATTRIBUTE_RELS}]->(x) WHERE x IN disliked }}
    AND NOT EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(x) WHERE x IN disliked }}
  CALL (p, likes) {{
    UNWIND likes AS l
    WITH l WHERE l.node = p
      OR EXISTS {{ (p)-[:{ATTRIBUTE_RELS}]->(x) WHERE x = l.node }}
      OR EXISTS {{ (p)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..2]->(x) WHERE x = l.node }}
    RETURN collect({{attribute: l.attribute, name: l.name, strength: l.strength}}) AS matched
  }}
  WITH p, matched, [x IN co WHERE x.sku = p.sku][0] AS cp
  RETURN collect({{sku: p.sku, name: p.name, category: p.category, price: p.price,
                   buyers: COUNT {{ (p)<-[:PURCHASED]-() }}, matched: matched,
                   co_weight: coalesce(cp.weight, 0.0), via: coalesce(cp.via, [])}}) AS items
}}
RETURN c IS NOT NULL AS known, c.name AS name, size(owned) AS owned, budget,
       [l IN likes WHERE l.attribute IN ['style', 'category', 'material', 'color', 'brand']
        | {{attribute: l.attribute, name: l.name}}] AS likes,
       items
"""


@dataclass
class Candidate:
    """One product that passed every filter, with the evidence the score is built from."""

    sku: str
    name: str
    category: str | None
    price: float | None
    buyers: int  # distinct purchases of it in the whole shop (popularity)
    co_weight: float  # recency-weighted co-purchase pairs (0 without purchases)
    via: list[dict[str, Any]] = field(default_factory=list)  # [{sku, name, buyers}] of the customer's own products
    matched: list[dict[str, Any]] = field(default_factory=list)  # [{attribute, name, strength}] preferences met
    budget: float | None = None


@dataclass
class CustomerBasis:
    known: bool
    name: str | None
    owned: int
    likes: list[dict[str, Any]]


async def candidates(
    driver: AsyncDriver,
    user_id: str,
    *,
    database: str,
    category: str | None = None,
    max_price: float | None = None,
    half_life_days: float = 180.0,
    now: datetime | None = None,
) -> tuple[CustomerBasis, list[Candidate]]:
    """The customer's basis and every candidate that passed the filters (unscored)."""
    at = (now or datetime.now(UTC)).timestamp()
    records, _, _ = await driver.execute_query(
        RECOMMEND,
        user_id=user_id,
        category=category,
        max_price=max_price,
        half_life_days=half_life_days,
        now=int(at),
        co_pool=CO_PURCHASE_POOL,
        pref_pool=PREFERENCE_POOL,
        popular_pool=POPULAR_POOL,
        database_=database,
        routing_="r",
    )
    r = records[0]
    basis = CustomerBasis(bool(r["known"]), r["name"], int(r["owned"]), list(r["likes"]))
    budget = r["budget"]
    found = [
        Candidate(
            sku=x["sku"],
            name=x["name"],
            category=x["category"],
            price=float(x["price"]) if x["price"] is not None else None,
            buyers=int(x["buyers"]),
            co_weight=float(x["co_weight"]),
            via=list(x["via"]),
            matched=list(x["matched"]),
            budget=budget,
        )
        for x in r["items"]
    ]
    return basis, found
