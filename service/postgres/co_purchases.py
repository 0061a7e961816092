"""Item-to-item "bought with" statistics, kept as orders are filed: the owner of the
``product_stats``, ``product_pairs`` and ``product_neighbours`` tables.

Why PostgreSQL and not Neo4j relationships: the same work per order, measured both ways on
the benchmark's realistic shop (``python -m bench.recommend --compare-stores 1500``: 1,500
orders, 363,613 pairs), costs 9.0 ms p50 / 31.8 ms p95 here against 28.1 / 114 ms (max
4.9 s) as ``(:Product)-[:CO_BOUGHT]->(:Product)`` merges on dense product nodes; the
neighbours of 60 products read in 2.2 ms against 8.8 ms; the counts change in the same
transaction as the fence and the erasure that hold the customer's rows, so they are exact
without a second store's transaction; and nothing of it sits in Neo4j's heap or page cache.
Neo4j's store was the more compact (27 MB against 45 MB of tables and indexes).

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

A pair is one row (``sku < other``). Each product keeps its :data:`NEIGHBOURS` best
neighbours by cosine (``customers(a, b) / sqrt(customers(a) * customers(b))``, pairs of at
least :data:`MIN_SUPPORT` customers), computed again once the pairs of that product have
moved by :data:`REFRESH_SHARE` of their mass (the sum of their counts) since the last time
(at once for a new product), so a busy product is not recomputed on every order. Cosine
beat lift by far on the benchmark's shop (lift favours rare pairs).

The crowd a reason states ("bought by 12 customers who also bought ...") is the pair's
count as its neighbour list has it: never more than the pair's count now (counts only grow
between refreshes, and an erasure recomputes every list it touched at once) and never under
the minimum crowd (the same count filters the neighbours), but it may lag behind a pair
that grew faster than its product's mass (on the benchmark's realistic shop: a quarter of
the stated counts lower than the live ones, the worst by 38%). Reading the live counts from
``product_pairs`` instead cost a third of the statement's CPU (two lookups per candidate in
the largest table).
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

from service.postgres import orders, queue
from vectors.pg import Conn

# the fewest distinct customers behind a stored neighbour: LOFT_MIN_CROWD's default, so a
# product's top neighbours are ones that may be said (support 3 ranked no better on the
# benchmark's shop, and let rarer pairs crowd the lists); a larger crowd filters at read time
MIN_SUPPORT = 5
NEIGHBOURS = 50  # neighbours kept per product
CONTRIBUTION_CAP = 100  # a customer's first distinct products that count
REFRESH_SHARE = 0.1  # recompute a product's neighbours once its pairs moved by this share

# the facets of a product travel as one text joined by '\x1f' (unnest flattens an array of arrays)
UPSERT_STATS = """
INSERT INTO product_stats AS s (sku, customers, mass, changes, name, category, consumable, price, facets)
SELECT t.sku, t.customers, t.changes, t.changes, t.name, t.category, coalesce(t.consumable, false), t.price,
       coalesce(string_to_array(t.facets, chr(31)), '{}')
FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::text[], $6::boolean[], $7::numeric[], $8::text[])
     AS t(sku, customers, changes, name, category, consumable, price, facets)
ORDER BY t.sku
ON CONFLICT (sku) DO UPDATE SET
  customers = s.customers + excluded.customers,
  mass = s.mass + excluded.changes,
  changes = s.changes + excluded.changes,
  name = coalesce(excluded.name, s.name),
  category = coalesce(excluded.category, s.category),
  consumable = CASE WHEN excluded.category IS NULL THEN s.consumable ELSE excluded.consumable END,
  price = coalesce(excluded.price, s.price),
  facets = CASE WHEN excluded.category IS NULL THEN s.facets ELSE excluded.facets END
RETURNING sku, changes, mass_refreshed
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
DROP_EMPTY_PAIRS = """
DELETE FROM product_pairs p USING unnest($1::text[], $2::text[]) AS t(sku, other)
WHERE p.sku = t.sku AND p.other = t.other AND p.customers = 0
"""
SUBTRACT_STATS = """
UPDATE product_stats s SET customers = greatest(s.customers - t.n, 0), mass = greatest(s.mass - t.changes, 0),
                           changes = s.changes + t.changes
FROM unnest($1::text[], $2::int[], $3::int[]) AS t(sku, n, changes)
WHERE s.sku = t.sku
"""
DROP_NEIGHBOURS = "DELETE FROM product_neighbours WHERE sku = ANY($1::text[])"
COMPUTE_NEIGHBOURS = """
INSERT INTO product_neighbours (sku, neighbour, score, customers)
SELECT sku, other, score, customers
FROM (
  SELECT x.sku, x.other, x.customers,
         x.customers / sqrt(greatest(a.customers, 1)::float8 * greatest(b.customers, 1)) AS score,
         row_number() OVER (
           PARTITION BY x.sku
           ORDER BY x.customers / sqrt(greatest(a.customers, 1)::float8 * greatest(b.customers, 1)) DESC, x.other
         ) AS r
  FROM (
    SELECT p.sku, p.other, p.customers FROM product_pairs p WHERE p.sku = ANY($1::text[]) AND p.customers >= $2
    UNION ALL
    SELECT p.other, p.sku, p.customers FROM product_pairs p WHERE p.other = ANY($1::text[]) AND p.customers >= $2
  ) x
  JOIN product_stats a ON a.sku = x.sku
  JOIN product_stats b ON b.sku = x.other
) ranked
WHERE r <= $3
"""
RESET_CHANGES = "UPDATE product_stats SET changes = 0, mass_refreshed = mass WHERE sku = ANY($1::text[])"

# -- reads for recommendations (bounded: by the customer's recent orders, the seeds, LIMITs) ----

# Everything PostgreSQL knows for one customer, in one round trip: whether their erasure is
# pending (``queue.PENDING_ERASURE``), their products of their $2
# most recent orders (``orders.RECENT_PRODUCTS``), the $3 seeds among them (half the most
# recently bought, half the most often bought), the neighbours of the seeds (cosine summed,
# not owned, bought with a seed by at least $4 customers, the best $5), the best sellers of
# the $6 categories they own most ($7 each) and the shop's $8 best sellers.
FOR_CUSTOMER = f"""
WITH mine AS MATERIALIZED (
{orders.RECENT_PRODUCTS.strip()}
), recent AS (
  SELECT sku FROM mine ORDER BY ago, orders DESC, sku LIMIT $3 / 2
), seeds AS (
  SELECT sku FROM recent
  UNION ALL
  (SELECT sku FROM mine WHERE sku NOT IN (SELECT sku FROM recent)
   ORDER BY orders DESC, ago, sku LIMIT $3 - (SELECT count(*) FROM recent))
), near AS (
  SELECT n.neighbour AS sku, sum(n.score) AS score, array_agg(n.sku ORDER BY n.score DESC, n.sku) AS via,
         array_agg(n.customers ORDER BY n.score DESC, n.sku) AS via_customers
  FROM seeds s CROSS JOIN LATERAL (
    -- one index range per seed (a product keeps at most NEIGHBOURS): never the whole table
    SELECT x.sku, x.neighbour, x.score, x.customers FROM product_neighbours x
    WHERE x.sku = s.sku AND x.customers >= $4 LIMIT {NEIGHBOURS}
  ) n
  WHERE NOT EXISTS (SELECT 1 FROM mine o WHERE o.sku = n.neighbour)
  GROUP BY n.neighbour
  ORDER BY score DESC, n.neighbour
  LIMIT $5
), owned AS (
  SELECT m.sku, m.orders, m.ago, m.of_orders, m.sku IN (SELECT sku FROM seeds) AS seed, p.customers,
         p.name, p.category, coalesce(p.consumable, false) AS consumable, p.price, p.facets
  FROM mine m LEFT JOIN product_stats p USING (sku)
), cats AS (
  SELECT category FROM owned WHERE category IS NOT NULL
  GROUP BY category ORDER BY count(*) DESC, category LIMIT $6
)
-- a row when the customer's erasure is pending (nothing may be recommended to them)
SELECT 'erasing' AS kind, NULL::text AS sku, NULL::int AS orders, NULL::int AS ago, NULL::int AS of_orders,
       NULL::boolean AS seed, NULL::float8 AS score, NULL::text[] AS via, NULL::int[] AS via_customers,
       NULL::int AS customers, NULL::text AS name, NULL::text AS category, NULL::boolean AS consumable,
       NULL::numeric AS price, NULL::text[] AS facets
WHERE ({queue.PENDING_ERASURE})
UNION ALL
SELECT 'own' AS kind, sku, orders, ago, of_orders, seed, NULL::float8 AS score, NULL::text[] AS via,
       NULL::int[] AS via_customers, customers,
       -- a consumable's facts: it may be offered again (the rest only counts as owned)
       CASE WHEN consumable THEN name END AS name, CASE WHEN consumable THEN category END AS category,
       consumable, CASE WHEN consumable THEN price END AS price, CASE WHEN consumable THEN facets END AS facets
FROM owned
UNION ALL
SELECT 'near', p.sku, NULL, NULL, NULL, NULL, x.score, x.via[1:2],
       -- the two strongest paths' counts as the neighbour lists have them (see the module docstring)
       x.via_customers[1:2],
       p.customers, p.name, p.category, p.consumable, p.price, p.facets
FROM near x JOIN product_stats p ON p.sku = x.sku
UNION ALL
SELECT 'best', b.sku, NULL, NULL, NULL, NULL, NULL, NULL, NULL, b.customers, b.name, b.category, b.consumable,
       b.price, b.facets
FROM cats CROSS JOIN LATERAL (
  SELECT * FROM product_stats s WHERE s.category = cats.category ORDER BY s.customers DESC, s.sku LIMIT $7
) b
UNION ALL
(SELECT 'popular', sku, NULL, NULL, NULL, NULL, NULL, NULL, NULL, customers, name, category, consumable, price,
        facets
 FROM product_stats ORDER BY customers DESC, sku LIMIT $8)
"""
NEIGHBOURS_OF = """
SELECT n.sku AS via, n.neighbour AS sku, n.score, n.customers, s.customers AS buyers
FROM product_neighbours n JOIN product_stats s ON s.sku = n.neighbour
WHERE n.sku = ANY($1::text[]) AND n.customers >= $2
"""
STATS_OF = """
SELECT sku, customers, name, category, consumable, price, facets FROM product_stats WHERE sku = ANY($1::text[])
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
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (a, b) with a < b


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
            out.pairs[(sku, other) if sku < other else (other, sku)] += 1
        mine.add(sku)
        out.buyers[sku] += 1
        out.lines.append((line["order_id"], line["line_no"]))
    return out


def withdrawal(products: set[str]) -> Contribution:
    """What a customer whose counted products are ``products`` added (their erasure takes it away)."""
    out = Contribution(buyers=Counter(products))
    for a, b in itertools.combinations(sorted(products), 2):
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
    changes: Counter[str] = Counter()  # how much of each product's pair mass moves
    for (a, b), n in c.pairs.items():
        changes[a] += n
        changes[b] += n
    skus = sorted(set(c.buyers) | set(changes) | set(facts))
    keys = sorted(c.pairs)
    firsts, seconds = [a for a, _ in keys], [b for _, b in keys]
    if keys:
        await conn.execute(UPSERT_PAIRS if sign > 0 else SUBTRACT_PAIRS, firsts, seconds, [c.pairs[k] for k in keys])
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
        due = [r["sku"] for r in rows if r["changes"] > 0 and r["changes"] >= REFRESH_SHARE * r["mass_refreshed"]]
    else:
        await conn.execute(DROP_EMPTY_PAIRS, firsts, seconds)
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


@dataclass(frozen=True)
class ProductStats:
    """What the statistics know of a product: its distinct customers and what the catalog
    said of it when it was last ordered (``facets``: ``"attribute:value"``)."""

    sku: str
    customers: int
    name: str | None = None
    category: str | None = None
    consumable: bool = False
    price: float | None = None
    facets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Via:
    """One of the customer's products a candidate is a neighbour of, and how many
    customers bought both."""

    sku: str
    customers: int


@dataclass(frozen=True)
class Neighbour:
    sku: str
    score: float  # the seeds' cosine to it, summed
    buyers: int  # distinct customers who bought it
    via: tuple[Via, ...]  # the customer's products it is a neighbour of, best first


@dataclass(frozen=True)
class OwnProduct:
    """A product of the customer's recent orders: in how many of them (``orders``), how
    many orders ago last (0: the latest), of how many read; a seed or not."""

    sku: str
    orders: int
    ago: int
    of_orders: int
    seed: bool = False


@dataclass
class Candidates:
    """What PostgreSQL offers for one customer (see :data:`FOR_CUSTOMER`)."""

    erasing: bool = False  # the customer's erasure is pending
    mine: list[OwnProduct] = field(default_factory=list)  # most recently bought first
    neighbours: list[Neighbour] = field(default_factory=list)
    consumables: dict[str, ProductStats] = field(default_factory=dict)  # the customer's, by SKU
    best: list[ProductStats] = field(default_factory=list)  # of the categories they buy in most
    popular: list[ProductStats] = field(default_factory=list)  # of the shop

    @property
    def of_orders(self) -> int:
        return self.mine[0].of_orders if self.mine else 0


async def for_customer(
    conn: Conn | asyncpg.Pool,
    user: str,
    *,
    recent_orders: int,
    seeds: int,
    min_customers: int,
    neighbours: int,
    categories: int,
    per_category: int,
    popular: int,
    timeout: float | None = None,
) -> Candidates:
    """The customer's products of their ``recent_orders`` latest orders and every candidate
    for them, in one statement (bounded by its limits)."""
    rows = await conn.fetch(
        FOR_CUSTOMER,
        user,
        recent_orders,
        seeds,
        min_customers,
        neighbours,
        categories,
        per_category,
        popular,
        timeout=timeout,
    )
    out = Candidates()
    for r in rows:
        kind = r["kind"]
        if kind == "erasing":
            out.erasing = True
        elif kind == "own":
            out.mine.append(OwnProduct(r["sku"], r["orders"], r["ago"], r["of_orders"], r["seed"]))
            if r["consumable"]:
                out.consumables[r["sku"]] = _stats(r)
        elif kind == "near":
            via = tuple(Via(v, int(n)) for v, n in zip(r["via"], r["via_customers"], strict=True))
            out.neighbours.append(Neighbour(r["sku"], float(r["score"]), int(r["customers"]), via))
        elif kind == "best":
            out.best.append(_stats(r))
        else:
            out.popular.append(_stats(r))
    out.mine.sort(key=lambda m: (m.ago, -m.orders, m.sku))
    return out


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
        Neighbour(s, score[s], buyers[s], tuple(Via(v, n) for _, v, n in sorted(via[s], key=lambda t: (-t[0], t[1]))))
        for s in best
    ]


async def stats_of(
    conn: Conn | asyncpg.Pool, skus: list[str], *, timeout: float | None = None
) -> dict[str, ProductStats]:
    rows = await conn.fetch(STATS_OF, sorted(set(skus)), timeout=timeout)
    return {r["sku"]: _stats(r) for r in rows}


async def best_sellers(conn: Conn | asyncpg.Pool, *, limit: int, timeout: float | None = None) -> list[ProductStats]:
    """The shop's most bought products (by distinct customers)."""
    return [_stats(r) for r in await conn.fetch(BEST_SELLERS, limit, timeout=timeout)]


def _stats(r: asyncpg.Record) -> ProductStats:
    return ProductStats(
        sku=r["sku"],
        customers=int(r["customers"] or 0),
        name=r["name"],
        category=r["category"],
        consumable=bool(r["consumable"]),
        price=float(r["price"]) if r["price"] is not None else None,
        facets=tuple(r["facets"] or ()),
    )
