"""Item-to-item "bought with" statistics, kept as orders are filed: the owner of the
``product_stats``, ``product_pairs`` and ``product_neighbours`` tables.

What is counted, and why it is exact:

- Only the order feed counts (``pipeline.ingest_orders`` calls :func:`count_orders` in the
  same fenced transaction that files the order); a purchase said in chat is never evidence
  for anyone else.
- Counts are of **distinct customers**: a customer adds 1 to a product the first time one
  of their orders holds it, and 1 to each pair of their counted products. The line that
  brought a product in is marked (``order_lines.counted``), so a retried job or a re-sent
  order adds nothing, and :func:`withdraw` (erasure) subtracts exactly what was added.
- A customer's first :data:`CONTRIBUTION_CAP` distinct products count, no more: the work of
  one order is bounded (at most 50 new products x the cap pairs), and very large baskets
  (a reseller's) weigh no more than anyone's. Measured on the benchmark's realistic shop,
  the cap also ranks better than counting everything (``bench.recommend``).

Each product keeps its :data:`NEIGHBOURS` best neighbours by cosine
(``customers(a, b) / sqrt(customers(a) * customers(b))``, pairs of at least
:data:`MIN_SUPPORT` customers), computed again once the pairs of that product have moved by
:data:`REFRESH_SHARE` of their mass since the last time (at once for a new product), so a
busy product is not recomputed on every order. Cosine beat lift by far on the benchmark's
shop (lift favours rare pairs).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from service import orders
from vectors.pg import Conn

MIN_SUPPORT = 3  # the fewest distinct customers behind a stored neighbour
NEIGHBOURS = 50  # neighbours kept per product
CONTRIBUTION_CAP = 100  # a customer's first distinct products that count
REFRESH_SHARE = 0.1  # recompute a product's neighbours once its pairs moved by this share

# the facets of a product travel as one text joined by '\x1f' (unnest flattens an array of arrays)
UPSERT_STATS = """
INSERT INTO product_stats AS s (sku, customers, changes, name, category, consumable, price, facets)
SELECT t.sku, t.customers, t.changes, t.name, t.category, coalesce(t.consumable, false), t.price,
       coalesce(string_to_array(t.facets, chr(31)), '{}')
FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::text[], $6::boolean[], $7::numeric[], $8::text[])
     AS t(sku, customers, changes, name, category, consumable, price, facets)
ORDER BY t.sku
ON CONFLICT (sku) DO UPDATE SET
  customers = s.customers + excluded.customers,
  changes = s.changes + excluded.changes,
  name = coalesce(excluded.name, s.name),
  category = coalesce(excluded.category, s.category),
  consumable = CASE WHEN excluded.category IS NULL THEN s.consumable ELSE excluded.consumable END,
  price = coalesce(excluded.price, s.price),
  facets = CASE WHEN excluded.category IS NULL THEN s.facets ELSE excluded.facets END
RETURNING sku, changes, mass
"""
UPSERT_PAIRS = """
INSERT INTO product_pairs AS p (sku, other, customers)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS t(sku, other, n) ORDER BY sku, other
ON CONFLICT (sku, other) DO UPDATE SET customers = p.customers + excluded.customers
"""
SUBTRACT_PAIRS = """
UPDATE product_pairs p SET customers = greatest(p.customers - t.n, 0)
FROM unnest($1::text[], $2::text[], $3::int[]) AS t(sku, other, n)
WHERE p.sku = t.sku AND p.other = t.other
"""
DROP_EMPTY_PAIRS = "DELETE FROM product_pairs WHERE sku = ANY($1::text[]) AND customers = 0"
SUBTRACT_STATS = """
UPDATE product_stats s SET customers = greatest(s.customers - t.n, 0), changes = s.changes + t.changes
FROM unnest($1::text[], $2::int[], $3::int[]) AS t(sku, n, changes)
WHERE s.sku = t.sku
"""
DROP_NEIGHBOURS = "DELETE FROM product_neighbours WHERE sku = ANY($1::text[])"
COMPUTE_NEIGHBOURS = """
INSERT INTO product_neighbours (sku, neighbour, score, customers)
SELECT sku, other, score, customers
FROM (
  SELECT p.sku, p.other, p.customers,
         p.customers / sqrt(greatest(a.customers, 1)::float8 * greatest(b.customers, 1)) AS score,
         row_number() OVER (
           PARTITION BY p.sku
           ORDER BY p.customers / sqrt(greatest(a.customers, 1)::float8 * greatest(b.customers, 1)) DESC, p.other
         ) AS r
  FROM product_pairs p
  JOIN product_stats a ON a.sku = p.sku
  JOIN product_stats b ON b.sku = p.other
  WHERE p.sku = ANY($1::text[]) AND p.customers >= $2
) ranked
WHERE r <= $3
"""
RESET_CHANGES = """
UPDATE product_stats s SET changes = 0, mass = coalesce(m.mass, 0)
FROM (
  SELECT x.sku, (SELECT sum(p.customers) FROM product_pairs p WHERE p.sku = x.sku)::int AS mass
  FROM unnest($1::text[]) AS x(sku)
) m
WHERE s.sku = m.sku
"""

# -- reads for recommendations (bounded: by the seeds, by LIMITs) ------------------------------

NEIGHBOURS_OF = """
SELECT n.sku AS via, n.neighbour AS sku, n.score, n.customers, s.customers AS buyers
FROM product_neighbours n JOIN product_stats s ON s.sku = n.neighbour
WHERE n.sku = ANY($1::text[]) AND n.customers >= $2
"""
STATS_OF = """
SELECT sku, customers, name, category, consumable, price, facets FROM product_stats WHERE sku = ANY($1::text[])
"""
BEST_SELLERS_IN = """
SELECT b.sku, b.customers, b.name, b.category, b.consumable, b.price, b.facets
FROM unnest($1::text[]) AS c(category)
CROSS JOIN LATERAL (
  SELECT * FROM product_stats s WHERE s.category = c.category ORDER BY s.customers DESC, s.sku LIMIT $2
) b
"""
BEST_SELLERS = """
SELECT sku, customers, name, category, consumable, price, facets FROM product_stats
ORDER BY customers DESC, sku LIMIT $1
"""


@dataclass
class Contribution:
    """What a batch of orders adds: products newly counted per customer, their pairs."""

    lines: list[tuple[str, int]] = field(default_factory=list)  # (order_id, line_no) now counted
    buyers: Counter[str] = field(default_factory=Counter)  # sku -> new distinct customers
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)  # both directions


def contribution(
    counted: Mapping[str, set[str]], lines: Iterable[Mapping[str, Any]], *, cap: int = CONTRIBUTION_CAP
) -> Contribution:
    """What ``lines`` (``{user_identifier, order_id, line_no, sku}``, in order) add, given
    each customer's products already ``counted``: a product the customer has not had
    counted adds 1 to it and 1 to each pair with the customer's counted products, until
    the customer has ``cap`` of them. Pure: the same input always gives the same counts."""
    out = Contribution()
    seen: dict[str, set[str]] = {}
    for line in lines:
        user, sku = line["user_identifier"], line["sku"]
        mine = seen.setdefault(user, set(counted.get(user, ())))
        if sku in mine or len(mine) >= cap:
            continue
        for other in mine:
            out.pairs[(sku, other)] += 1
            out.pairs[(other, sku)] += 1
        mine.add(sku)
        out.buyers[sku] += 1
        out.lines.append((line["order_id"], line["line_no"]))
    return out


def withdrawal(products: set[str]) -> Contribution:
    """What a customer whose counted products are ``products`` added (their erasure takes it away)."""
    out = Contribution(buyers=Counter(products))
    for a, b in itertools.permutations(sorted(products), 2):
        out.pairs[(a, b)] += 1
    return out


async def count_orders(
    conn: Conn, lines: Sequence[Mapping[str, Any]], facts: Mapping[str, Mapping[str, Any]] | None = None
) -> Contribution:
    """Add the order lines' contribution (call inside the fenced transaction that files
    them; ``lines`` only of orders and customers that are still there). ``facts``: what
    the catalog says of each SKU now (name, category, consumable, price, facets), kept for
    answers given without the graph."""
    if not lines:
        return Contribution()
    counted = await orders.counted_products(conn, [x["user_identifier"] for x in lines])
    added = contribution(counted, lines)
    await orders.mark_counted(conn, added.lines)
    await _apply(conn, added, facts or {}, sign=1)
    return added


async def withdraw(conn: Conn, user: str) -> int:
    """Take the customer's contribution out of the statistics and recompute the neighbours
    it touched, in the caller's transaction (the erasure's, before the orders go); returns
    how many products it touched."""
    products = (await orders.counted_products(conn, [user])).get(user, set())
    if not products:
        return 0
    await _apply(conn, withdrawal(products), {}, sign=-1)
    return len(products)


async def _apply(conn: Conn, c: Contribution, facts: Mapping[str, Mapping[str, Any]], *, sign: int) -> None:
    changes: Counter[str] = Counter()
    for (a, _), n in c.pairs.items():
        changes[a] += n
    skus = sorted(set(c.buyers) | set(changes) | set(facts))
    if c.pairs:
        keys = sorted(c.pairs)
        args = ([a for a, _ in keys], [b for _, b in keys], [c.pairs[k] for k in keys])
        await conn.execute(UPSERT_PAIRS if sign > 0 else SUBTRACT_PAIRS, *args)
    if sign > 0:
        rows = await conn.fetch(
            UPSERT_STATS,
            skus,
            [c.buyers[s] for s in skus],
            [changes[s] for s in skus],
            [facts.get(s, {}).get("name") for s in skus],
            [facts.get(s, {}).get("category") for s in skus],
            [facts.get(s, {}).get("consumable") for s in skus],
            [_price(facts.get(s, {}).get("price")) for s in skus],
            ["\x1f".join(facts.get(s, {}).get("facets") or []) or None for s in skus],
        )
        due = [r["sku"] for r in rows if r["changes"] > 0 and r["changes"] >= REFRESH_SHARE * r["mass"]]
    else:
        await conn.execute(DROP_EMPTY_PAIRS, sorted(changes))
        await conn.execute(SUBTRACT_STATS, skus, [c.buyers[s] for s in skus], [changes[s] for s in skus])
        due = sorted(changes)  # an erased customer's counts leave every list they were in at once
    await refresh(conn, due)


async def refresh(conn: Conn, skus: list[str]) -> None:
    """Compute these products' neighbours again from their pairs."""
    if not skus:
        return
    await conn.execute(DROP_NEIGHBOURS, skus)
    await conn.execute(COMPUTE_NEIGHBOURS, skus, MIN_SUPPORT, NEIGHBOURS)
    await conn.execute(RESET_CHANGES, skus)


def _price(value: Any) -> Decimal | None:
    if value is None:
        return None
    number = float(value)
    return Decimal(str(round(number, 2))) if math.isfinite(number) else None


# -- reads ---------------------------------------------------------------------------------------


@dataclass
class Neighbour:
    sku: str
    score: float  # the seeds' weighted cosine, summed
    buyers: int  # distinct customers who bought it
    via: list[dict[str, Any]]  # the customer's products it is a neighbour of: {sku, customers}, best first


async def neighbours(
    conn: Conn | asyncpg.Pool,
    seeds: Mapping[str, float],
    *,
    min_customers: int,
    exclude: set[str],
    limit: int,
    timeout: float | None = None,
) -> list[Neighbour]:
    """The neighbours of ``seeds`` (SKU -> weight) bought by at least ``min_customers``
    customers with a seed, not in ``exclude``: best ``limit`` by weighted cosine."""
    if not seeds:
        return []
    rows = await conn.fetch(NEIGHBOURS_OF, list(seeds), min_customers, timeout=timeout)
    score: defaultdict[str, float] = defaultdict(float)
    via: defaultdict[str, list[tuple[float, str, int]]] = defaultdict(list)
    buyers: dict[str, int] = {}
    for r in rows:
        if r["sku"] in exclude:
            continue
        buyers[r["sku"]] = int(r["buyers"])
        part = float(r["score"]) * seeds[r["via"]]
        score[r["sku"]] += part
        via[r["sku"]].append((part, r["via"], int(r["customers"])))
    best = sorted(score, key=lambda s: (-score[s], s))[:limit]
    return [
        Neighbour(
            s,
            score[s],
            buyers[s],
            [{"sku": v, "customers": n} for _, v, n in sorted(via[s], key=lambda t: (-t[0], t[1]))],
        )
        for s in best
    ]


async def stats_of(
    conn: Conn | asyncpg.Pool, skus: list[str], *, timeout: float | None = None
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(STATS_OF, sorted(set(skus)), timeout=timeout)
    return {r["sku"]: _stats(r) for r in rows}


async def best_sellers(
    conn: Conn | asyncpg.Pool,
    *,
    categories: list[str] | None = None,
    per_category: int = 20,
    limit: int = 40,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """The most bought products (by distinct customers): in ``categories`` (``per_category``
    each) when given, else of the whole shop."""
    if categories:
        rows = await conn.fetch(BEST_SELLERS_IN, categories, per_category, timeout=timeout)
    else:
        rows = await conn.fetch(BEST_SELLERS, limit, timeout=timeout)
    return [_stats(r) for r in rows]


def _stats(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "sku": r["sku"],
        "customers": int(r["customers"]),
        "name": r["name"],
        "category": r["category"],
        "consumable": bool(r["consumable"]),
        "price": float(r["price"]) if r["price"] is not None else None,
        "facets": list(r["facets"] or []),
    }
