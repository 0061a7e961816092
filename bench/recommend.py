"""Recommendations: quality and latency on two populations, beside strong baselines.

    python -m bench.recommend --json            # demo shop 10,000 customers + realistic shop 10,000
    python -m bench.recommend --json --quick    # 1,000 customers each, for a quick look
    python -m bench.recommend --json --compare-stores 2000   # where the statistics live (see below)

Two populations, each on its own throwaway stack, written through the real feeds (orders
with ``service.postgres.orders.record`` and the worker's ``ingest_order`` path, which keeps the
co-purchase statistics; catalog through the catalog feed):

- **demo**: the demo shop (``devstack/demo.py``: rooms furnished in a taste, 316 products,
  a few one-line orders per customer, chat for a share of them), as the benchmark had it;
- **realistic**: a gift-and-homeware shop shaped like a real purchase log (see
  :func:`realistic_population`): 5,000 products with a long-tailed popularity in 45
  categories and 12 themes (13 categories consumable: candles, napkins, gift wrap, ...);
  customers with at least three orders, heavy-tailed (most own tens of products, some up to
  500), orders of 1 to 50 lines (a dozen typical), their consumables bought again, and
  baskets that match (a theme's mug with its plate and napkins).

For ``--eval`` customers with at least two orders the **last order is held back** (never
written). Then, per population, in one run:

- **hits@10** (at least one held-back SKU among the 10) and **recall@10** (the share of the
  held-back SKUs among the 10), and p50/p95/max latency, of the system
  (``service.core.recommendations.recommend``: stores and scoring, in process, no HTTP) and of
  three baselines computed from the same written orders: **popularity** (the most bought
  products the customer does not own), **item-to-item kNN** (cosine over customers x
  products, every owned product a seed, owned products excluded: the classic co-purchase
  recommender; beside it the same over pairs of at least 5 customers only, what the system
  may use under ``LOFT_MIN_CROWD``, and with **lift** over those pairs, the other
  normalisation the statistics could keep), and the customer's own **repeat purchases**
  (what they bought in most of their orders). Baseline latencies are in-memory numpy
  calls, not store queries;
- the **largest customers** (most products owned) asked one by one: their latency;
- realistic population: **every customer asked once**, with Neo4j's heap read from JMX
  (``dbms.queryJmx``) before, during and after: heap used, the old generation's occupancy
  (what survives young collections; it grows if something is retained) and what the last
  old-generation collection left, and the garbage collectors' counts and time.

``--compare-stores N`` measures where the statistics should live, on the realistic shop's
first N orders (by time), both ways on one stack, doing the same work per order (add each
new product's pairs with the customer's counted products, one record per pair; recompute the
top-50 neighbours of products whose pairs moved by 10%): PostgreSQL tables
(``service.postgres.co_purchases``, what the service uses) against Neo4j relationships
(``(:Product)-[:CO_BOUGHT {customers}]->(:Product)`` for every pair and
``-[:BOUGHT_WITH {score, customers}]->`` for the top 50, written here only). It reports the
write time per order, the read time of 60 seeds' neighbours, and the space each takes (on
disk: PostgreSQL's tables with their indexes; Neo4j's store files, without transaction
logs, after a restart).

JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import bench_stack, log

K = 10

# -- the realistic shop -------------------------------------------------------------------------

DEPARTMENTS: dict[str, list[tuple[str, bool]]] = {
    "kitchen": [
        ("mug", False),
        ("plate", False),
        ("cake stand", False),
        ("tea towel", False),
        ("storage tin", False),
        ("lunch box", False),
        ("baking cases", True),
        ("paper napkins", True),
        ("paper cups", True),
        ("cutlery", False),
    ],
    "decor": [
        ("cushion", False),
        ("photo frame", False),
        ("clock", False),
        ("sign", False),
        ("vase", False),
        ("ornament", False),
        ("wall art", False),
        ("doorstop", False),
    ],
    "lighting": [
        ("candle", True),
        ("tea lights", True),
        ("lantern", False),
        ("string lights", False),
        ("candle holder", False),
    ],
    "stationery": [
        ("notebook", False),
        ("wrapping paper", True),
        ("gift tags", True),
        ("greeting card", True),
        ("stickers", True),
        ("pen set", False),
    ],
    "bags": [("jumbo bag", False), ("shopping bag", False), ("purse", False), ("pouch", False)],
    "christmas": [
        ("bauble", False),
        ("hanging decoration", False),
        ("advent calendar", True),
        ("crackers", True),
        ("wreath", False),
    ],
    "garden": [("planter", False), ("bird house", False), ("watering can", False), ("seed kit", True)],
    "kids": [("toy", False), ("party bags", True), ("balloons", True), ("jigsaw", False), ("bunting", False)],
    "bath": [("soap", True), ("bath salts", True), ("towel", False), ("toiletry bag", False)],
}
THEMES = (
    "retrospot",
    "vintage",
    "polkadot",
    "woodland",
    "botanical",
    "nautical",
    "scandi",
    "rustic",
    "pastel",
    "french chic",
    "spaceboy",
    "dolly girl",
)
MATERIALS = ("ceramic", "cotton", "paper", "wax", "metal", "wood", "glass", "plastic", "jute", "enamel")
COLOURS = ("red", "pink", "blue", "green", "white", "cream", "black", "gold")
STAPLE_P = 0.25  # each of a customer's consumables is in an order with this chance
FAVOURITE_P = 0.3  # an order holds one or two things the customer bought before
MATCHING_P = 0.25  # a line is a matching piece of what is in the basket (same theme and department)
OWN_TASTE_P = 0.85  # else from the customer's themes and categories (the rest: anything popular)
MAX_OWNED = 500


@dataclass
class Shopper:
    user: str
    orders: list[Any] = field(default_factory=list)  # service.postgres.orders.Order
    messages: list[Any] = field(default_factory=list)


def realistic_catalog(products: int, rng: random.Random) -> list[dict[str, Any]]:
    """The shop's products as catalog-feed records (``loftmem catalog load`` columns)."""
    cats = [(d, c, cons) for d, cs in DEPARTMENTS.items() for c, cons in cs]
    cat_w = [1.0 / (i + 1) ** 0.5 for i in range(len(cats))]
    rng.shuffle(cat_w)
    theme_w = [1.0 / (i + 1) ** 0.7 for i in range(len(THEMES))]
    out = []
    for n in range(products):
        d, c, cons = rng.choices(cats, weights=cat_w)[0]
        theme = rng.choices(THEMES, weights=theme_w)[0]
        out.append(
            {
                "sku": f"GH-{n + 1:05d}",
                "name": f"{theme.title()} {c.title()} No. {n + 1}",
                "category": c,
                "department": d,
                "style": [theme],
                "material": [rng.choice(MATERIALS)],
                "colour": [rng.choice(COLOURS)],
                "price": round(math.exp(rng.gauss(1.3 if cons else 1.9, 0.6)), 2),
                "in_stock": rng.random() > 0.03,
                "consumable": cons,
            }
        )
    return out


def realistic_population(
    customers: int, *, products: int = 5000, seed: int = 7, now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[Shopper]]:
    """The catalog and the customers (nothing written). Each customer has one to three
    themes and three to nine categories; a few consumables they buy again; a basket size
    (log-normal around 10 lines, 1 to 50); three or more orders (heavy-tailed) over up to
    two years. A line is a staple, a favourite bought again, a matching piece of the basket,
    something of their taste, or anything popular; nobody owns more than 500 products."""
    from service.postgres import orders

    now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    items = realistic_catalog(products, rng)
    order = list(range(products))
    rng.shuffle(order)
    pop = [0.0] * products
    for rank, i in enumerate(order):  # long-tailed popularity
        pop[i] = 1.0 / (rank + 10) ** 0.8
    by_cat_theme: dict[tuple[str, str], list[int]] = {}
    by_dept_theme: dict[tuple[str, str], list[int]] = {}
    by_cat: dict[str, list[int]] = {}
    for i, p in enumerate(items):
        by_cat_theme.setdefault((p["category"], p["style"][0]), []).append(i)
        by_dept_theme.setdefault((p["department"], p["style"][0]), []).append(i)
        by_cat.setdefault(p["category"], []).append(i)
    cats = list(by_cat)
    cat_pop = {c: sum(pop[i] for i in by_cat[c]) for c in cats}
    theme_w = [1.0 / (i + 1) ** 0.7 for i in range(len(THEMES))]
    everyone = list(range(products))
    all_consumables = [i for i in everyone if items[i]["consumable"]]
    cumulative: dict[int, tuple[list[int], list[float]]] = {}

    def pick(pool: list[int], k: int = 1) -> list[int]:
        got = cumulative.get(id(pool))
        if got is None or got[0] is not pool:
            got = (pool, list(itertools.accumulate(pop[i] for i in pool)))
            cumulative[id(pool)] = got
        return rng.choices(pool, cum_weights=got[1], k=k)

    people = []
    for n in range(customers):
        c = Shopper(f"gh-{n + 1:05d}")
        themes = rng.choices(THEMES, weights=theme_w, k=rng.choice((1, 2, 2, 3)))
        mine = rng.choices(cats, weights=[cat_pop[x] for x in cats], k=rng.randint(3, 9))
        taste = sorted({i for t in themes for k in mine for i in by_cat_theme.get((k, t), [])})
        taste = taste or sorted({i for k in mine for i in by_cat[k]})
        consumables = [i for i in taste if items[i]["consumable"]] or all_consumables
        staples = sorted(set(pick(consumables, rng.randint(1, 6))))
        size = math.exp(rng.gauss(math.log(10), 0.6))
        n_orders = min(3 + int(math.exp(rng.gauss(math.log(3), 0.9))), 80)
        at = now - timedelta(days=rng.randint(60, 720))
        gap = max(2, (now - at).days // (n_orders + 1))
        owned: list[int] = []
        owned_set: set[int] = set()
        for k in range(n_orders):
            at += timedelta(days=max(1, int(rng.expovariate(1 / gap))))
            if at >= now:
                at = now - timedelta(hours=n_orders - k)
            lines = max(1, min(50, round(size * math.exp(rng.gauss(0, 0.4)))))
            basket: dict[int, int] = {}
            for s in staples:
                if rng.random() < STAPLE_P:
                    basket[s] = rng.choice((1, 2, 6, 12))
            if owned and rng.random() < FAVOURITE_P:
                recent = owned[-60:]
                for i in rng.sample(recent, k=min(len(recent), rng.randint(1, 2))):
                    basket.setdefault(i, rng.choice((1, 2, 6)))
            tries = 0
            while len(basket) < lines and tries < lines * 6:
                tries += 1
                r = rng.random()
                if basket and r < MATCHING_P:
                    anchor = items[rng.choice(list(basket))]
                    i = pick(by_dept_theme.get((anchor["department"], anchor["style"][0])) or taste)[0]
                elif r < OWN_TASTE_P:
                    i = pick(taste)[0]
                else:
                    i = pick(everyone)[0]
                if i in owned_set and not items[i]["consumable"]:
                    continue
                if i not in owned_set and len(owned_set) >= MAX_OWNED:
                    continue
                basket.setdefault(i, rng.choice((1, 2, 3, 6, 12)))
            for i in list(basket):
                if i in owned_set:
                    continue
                if len(owned_set) >= MAX_OWNED:  # a staple or a match past the cap: not bought
                    del basket[i]
                    continue
                owned_set.add(i)
                owned.append(i)
            if not basket:
                continue
            lines_out = tuple(orders.Line(items[i]["sku"], q, items[i]["price"]) for i, q in basket.items())
            c.orders.append(orders.Order(f"{c.user}-{k + 1:03d}", at.replace(microsecond=0), lines_out))
        c.orders.sort(key=lambda o: o.placed_at)
        people.append(c)
    return items, people


# -- loading ---------------------------------------------------------------------------------------


async def load_catalog(rt: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Through the catalog feed's checks and its one-transaction load (``loftmem catalog load``)."""
    from graph import catalog as graph_catalog
    from service.catalog import feed as catalog_feed

    t0 = time.perf_counter()
    products = []
    for n, record in enumerate(records, start=1):
        product, error = catalog_feed.check(record, n)
        assert product is not None, error
        products.append(product)
    db = rt.settings.neo4j_database
    existing = await graph_catalog.feed_existing(rt.graph, database=db)
    summary = catalog_feed.diff(existing, products, full=True)
    await graph_catalog.feed_load(rt.graph, products, summary.discontinued, database=db)
    return {"products": len(products), "consumable": sum(p["consumable"] for p in products), "load_s": _s(t0)}


async def load(rt: Any, people: list[Any], held: dict[str, Any], chat_share: float, seed: int) -> dict[str, Any]:
    """Write the population (without the held-back orders) and let the worker file it."""
    from service.postgres import history, orders
    from service.worker import Worker

    rng = random.Random(seed)
    t0 = time.perf_counter()
    written = lines = messages = 0
    for start in range(0, len(people), 200):
        async with rt.pool.acquire() as conn, conn.transaction():
            for c in people[start : start + 200]:
                for order in c.orders:
                    if held.get(c.user) is order:
                        continue
                    written += await orders.record(conn, c.user, order)
                    lines += len(order.lines)
                if c.messages and rng.random() < chat_share:
                    session = uuid.uuid5(uuid.NAMESPACE_URL, f"loft-bench:{c.user}")
                    await history.create_session(conn, c.user, session, at=c.messages[0].created_at, channel="bench")
                    await history.add_messages(conn, c.user, session, c.messages, summary_idle_s=3600, lane="bulk")
                    messages += len(c.messages)
        if start % 2000 == 0:
            log(f"  wrote {start + 200} customers ({time.perf_counter() - t0:.0f} s)")
    wrote_s = time.perf_counter() - t0
    handled = await Worker(rt).drain(timeout=14_400)
    return {
        "orders": written,
        "order_lines": lines,
        "messages": messages,
        "write_s": round(wrote_s, 1),
        "worker_s": round(time.perf_counter() - t0 - wrote_s, 1),
        "jobs": handled,
    }


# -- baselines, from the written orders -----------------------------------------------------------


class Baselines:
    """Popularity, item-to-item kNN (cosine) and repeat purchases over what was written."""

    def __init__(self, people: list[Any], held: dict[str, Any]) -> None:
        skus = sorted({x.sku for c in people for o in c.orders for x in o.lines})
        self.index = {s: i for i, s in enumerate(skus)}
        self.skus = skus
        self.rows = {c.user: r for r, c in enumerate(people)}
        x = np.zeros((len(people), len(skus)), dtype=np.float32)
        self.times: dict[str, Counter[int]] = {}
        self.last: dict[str, dict[int, int]] = {}
        for r, c in enumerate(people):
            times: Counter[int] = Counter()
            last: dict[int, int] = {}
            written = [o for o in c.orders if held.get(c.user) is not o]
            for k, o in enumerate(written):
                for i in {self.index[line.sku] for line in o.lines}:
                    times[i] += 1
                    last[i] = k
                    x[r, i] = 1.0
            self.times[c.user], self.last[c.user] = times, last
        self.x = x
        buyers = x.sum(axis=0)
        self.popular = [int(i) for i in np.argsort(-buyers, kind="stable")]
        co = x.T @ x
        norm = np.sqrt(np.maximum(buyers, 1.0))
        self.cosine = co / norm[:, None] / norm[None, :]
        np.fill_diagonal(self.cosine, 0.0)
        # the same cosine over pairs of at least 5 customers: what the system may use (LOFT_MIN_CROWD)
        self.cosine_crowd = np.where(co >= 5, self.cosine, 0.0)
        # lift, the other normalisation the statistics could keep (pairs of 5 customers or more)
        self.lift = np.where(co >= 5, co * len(people) / np.maximum(np.outer(buyers, buyers), 1.0), 0.0)
        np.fill_diagonal(self.lift, 0.0)
        del co

    def popularity(self, user: str) -> list[str]:
        owned = self.times[user]
        return [self.skus[i] for i in itertools.islice((i for i in self.popular if i not in owned), K)]

    def knn(self, user: str) -> list[str]:
        return self._nearest(user, self.cosine)

    def knn_crowd(self, user: str) -> list[str]:
        return self._nearest(user, self.cosine_crowd)

    def knn_lift(self, user: str) -> list[str]:
        return self._nearest(user, self.lift)

    def _nearest(self, user: str, similarity: np.ndarray) -> list[str]:
        row = self.x[self.rows[user]]
        score = row @ similarity
        score[row > 0] = -np.inf
        return [self.skus[i] for i in np.argsort(-score, kind="stable")[:K]]

    def repeat(self, user: str) -> list[str]:
        times, last = self.times[user], self.last[user]
        return [self.skus[i] for i in sorted(times, key=lambda i: (-times[i], -last[i], i))[:K]]


# -- measuring --------------------------------------------------------------------------------------


@dataclass
class Scored:
    hits: int = 0
    recall: float = 0.0
    ms: list[float] = field(default_factory=list)
    asked: int = 0

    def add(self, wanted: set[str], got: list[str], ms: float) -> None:
        found = len(wanted & set(got[:K]))
        self.hits += found > 0
        self.recall += found / len(wanted)
        self.ms.append(ms)
        self.asked += 1

    def as_dict(self) -> dict[str, Any]:
        n = max(self.asked, 1)
        return {"hits_at_10": round(self.hits / n, 3), "recall_at_10": round(self.recall / n, 3), **_latency(self.ms)}


def _latency(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def _s(t0: float) -> float:
    return round(time.perf_counter() - t0, 1)


HEAP = "java.lang:type=Memory"
OLD_GEN = "java.lang:type=MemoryPool,name=G1 Old Gen"
COLLECTORS = "java.lang:type=GarbageCollector,name=*"
JMX = "CALL dbms.queryJmx($name) YIELD name, attributes RETURN name, attributes"


async def heap(rt: Any) -> dict[str, Any]:
    """Neo4j's heap as JMX tells it: used now, used after the last old-generation
    collection, and the collectors' counts and time (ms)."""

    async def query(name: str) -> list[Any]:
        records, _, _ = await rt.graph.execute_query(JMX, name=name, database_=rt.settings.neo4j_database)
        return list(records)

    def mb(usage: dict[str, Any]) -> float:
        return round(usage["value"]["properties"]["used"] / 2**20, 1)

    (memory,) = await query(HEAP)
    (old,) = await query(OLD_GEN)
    out: dict[str, Any] = {
        "heap_used_mb": mb(memory["attributes"]["HeapMemoryUsage"]),
        "old_gen_used_mb": mb(old["attributes"]["Usage"]),
        "old_gen_after_gc_mb": mb(old["attributes"]["CollectionUsage"]),
    }
    for collector in await query(COLLECTORS):
        name = collector["name"]
        kind = "old" if "Old" in name else "young" if "Young" in name else "other"
        out[f"gc_{kind}_count"] = collector["attributes"]["CollectionCount"]["value"]
        out[f"gc_{kind}_ms"] = collector["attributes"]["CollectionTime"]["value"]
    return out


async def measure(
    rt: Any, people: list[Any], held: dict[str, Any], args: argparse.Namespace, *, every: bool
) -> dict[str, Any]:
    """Quality and latency of the system and the baselines; the largest customers; with
    ``every``, every customer asked once with the heap read along the way. With ``--ab``,
    the system is asked under each tuning, alternating which goes first per customer, so
    the machine's load weighs on both alike."""
    from service.core import recommendations

    t0 = time.perf_counter()
    base = Baselines(people, held)
    log(f"  baselines ready ({_s(t0)} s)")
    # the population and the baselines live as long as the run: out of the collector's way,
    # or its full collections (60-230 ms over them) land inside the requests being timed
    gc.collect()
    gc.freeze()
    systems = _systems(args.ab)
    for c in random.Random(args.seed).sample(people, min(20, len(people))):  # plans and caches warm
        for tuning in systems.values():
            await recommendations.recommend(rt, c.user, limit=K, tuning=tuning)
    scored = {name: Scored() for name in systems}
    scored |= {name: Scored() for name in ("popularity", "item_knn", "item_knn_crowd", "item_knn_lift", "repeat")}
    degraded = cold = 0
    for n, (user, order) in enumerate(held.items()):  # the system first: numpy's threads never share its calls
        wanted = {x.sku for x in order.lines}
        for name, answer, ms in await _ask(rt, user, systems, n):
            scored[name].add(wanted, [i["sku"] for i in answer["items"]], ms)
            degraded += bool(answer["degraded"])
            cold += bool(answer["cold_start"])
    for user, order in held.items():
        wanted = {x.sku for x in order.lines}
        for name, baseline in (
            ("popularity", base.popularity),
            ("item_knn", base.knn),
            ("item_knn_crowd", base.knn_crowd),
            ("item_knn_lift", base.knn_lift),
            ("repeat", base.repeat),
        ):
            t = time.perf_counter()
            got = baseline(user)
            scored[name].add(wanted, got, (time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {
        "load_average": _load_average(),
        "held_back_customers": len(held),
        "degraded_answers": degraded,
        "cold_start_answers": cold,
        **{name: s.as_dict() for name, s in scored.items()},
    }
    for name in systems:
        sys_hits = scored[name].hits
        suffix = "" if name == "system" else f"_{name}"
        knn, pop = scored["item_knn"].hits, scored["popularity"].hits
        out[f"ratio_hits_to_item_knn{suffix}"] = round(sys_hits / knn, 2) if knn else None
        out[f"ratio_hits_to_popularity{suffix}"] = round(sys_hits / pop, 2) if pop else None
    out |= _ab_ratios({name: scored[name].ms for name in systems}, "held_back")

    out["largest_customers"], biggest = await largest_customers(rt, people, systems, args.largest)
    if args.profile:
        sample = biggest[:5] + random.Random(args.seed + 1).sample(people, min(args.profile, len(people)))
        out["profile"] = {name: await profile(rt, sample, tuning) for name, tuning in systems.items()}
    if every:
        out["every_customer"] = await every_customer(rt, people, systems)
    out["load_average_after"] = _load_average()
    return out


async def largest_customers(
    rt: Any, people: list[Any], systems: dict[str, Any], largest: int
) -> tuple[dict[str, Any], list[Any]]:
    """The customers owning most, asked one by one (under each tuning)."""
    owned = {c.user: len({x.sku for o in c.orders for x in o.lines}) for c in people}
    biggest = sorted(people, key=lambda c: -owned[c.user])[:largest]
    times: dict[str, list[float]] = {name: [] for name in systems}
    for n, c in enumerate(biggest):
        for name, _, ms in await _ask(rt, c.user, systems, n):
            times[name].append(ms)
    out = {
        "customers": len(biggest),
        "owned_products": [owned[c.user] for c in biggest[:5]],
        **{k: v for name, ms in times.items() for k, v in _named_latency(name, ms).items()},
        **_ab_ratios(times, "largest"),
    }
    return out, biggest


def _systems(ab: str) -> dict[str, Any]:
    """The system's tunings to ask: the default (``system``), or the ``--ab`` ones by name."""
    from service.core import recommendations

    if not ab:
        return {"system": recommendations.TUNING}
    return {name: tunings()[name] for name in ab.split(",")}


async def _ask(rt: Any, user: str, systems: dict[str, Any], n: int) -> list[tuple[str, dict[str, Any], float]]:
    """The customer asked under each tuning, the n-th customer starting with the (n mod k)-th."""
    from service.core import recommendations

    names = list(systems)
    names = names[n % len(names) :] + names[: n % len(names)]
    out = []
    for name in names:
        t = time.perf_counter()
        answer = await recommendations.recommend(rt, user, limit=K, tuning=systems[name])
        out.append((name, answer, (time.perf_counter() - t) * 1000))
    return out


def _named_latency(name: str, ms: list[float]) -> dict[str, float]:
    prefix = "" if name == "system" else f"{name}_"
    return {f"{prefix}{k}": v for k, v in _latency(ms).items()}


def _ab_ratios(times: dict[str, list[float]], what: str) -> dict[str, Any]:
    """The second tuning's p50 and p95 over the first's (below 1: the second is faster)."""
    if len(times) != 2:
        return {}
    (a, ms_a), (b, ms_b) = times.items()
    la, lb = _latency(ms_a), _latency(ms_b)
    return {
        f"ratio_{what}_p50_{b}_to_{a}": round(lb["p50_ms"] / max(la["p50_ms"], 1e-9), 3),
        f"ratio_{what}_p95_{b}_to_{a}": round(lb["p95_ms"] / max(la["p95_ms"], 1e-9), 3),
    }


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def every_customer(rt: Any, people: list[Any], systems: dict[str, Any]) -> dict[str, Any]:
    """Every customer asked once (under each tuning), Neo4j's heap read ten times on the way,
    and the CPU each process spent per request (``cpu``: this process, which runs the
    service's code in process, PostgreSQL and Neo4j, from ``/proc``; with ``--ab``, of every
    tuning together)."""
    checkpoints = [await heap(rt)]
    times: dict[str, list[float]] = {name: [] for name in systems}
    late = 0
    step = max(len(people) // 10, 1)
    meter = await _cpu_meter(rt)
    cpu_before = meter.snapshot()
    t0 = time.perf_counter()
    load_before = _load_average()
    for n, c in enumerate(people, start=1):
        for name, answer, ms in await _ask(rt, c.user, systems, n):
            times[name].append(ms)
            late += bool(answer["degraded"])
        if n % step == 0:
            checkpoints.append(await heap(rt) | {"asked": n})
            log(f"  asked {n} customers ({_s(t0)} s): {checkpoints[-1]}")
    cpu = meter.report(cpu_before, meter.snapshot(), len(people) * len(systems))
    first, last = checkpoints[0], checkpoints[-1]
    out: dict[str, Any] = {"asked": len(people), "seconds": _s(t0), "load_average": [load_before, _load_average()]}
    out["cpu"] = {k: cpu[k] for k in ("requests", "cpu_ms_per_request", "other_ms_per_request", "cores_busy")}
    for name, spent in times.items():
        out |= _named_latency(name, spent)
        key = "slower_than_250ms" if name == "system" else f"{name}_slower_than_250ms"
        out[key] = sum(m > 250 for m in spent)
    return out | {
        **_ab_ratios(times, "every"),
        "degraded_answers": late,
        "heap": checkpoints,
        "old_gen_used_mb": [c["old_gen_used_mb"] for c in checkpoints],
        "old_gen_after_gc_mb": [c["old_gen_after_gc_mb"] for c in checkpoints],
        "gc_old_count_during": last.get("gc_old_count", 0) - first.get("gc_old_count", 0),
        "gc_young_ms_during": last.get("gc_young_ms", 0) - first.get("gc_young_ms", 0),
        "gc_old_ms_during": last.get("gc_old_ms", 0) - first.get("gc_old_ms", 0),
    }


async def _cpu_meter(rt: Any) -> Any:
    """CPU by process: this one (the service's code runs in it), PostgreSQL's and Neo4j's."""
    from bench.procstat import CpuMeter, neo4j_group, postgres_group, self_group

    async with rt.pool.acquire() as conn:
        postgres = await postgres_group(conn)
    neo4j = neo4j_group(rt.settings.neo4j_uri) if rt.settings.neo4j_uri else None
    return CpuMeter({"service": self_group("service"), "postgres": postgres, "neo4j": neo4j})


# the store calls one request makes, timed by :func:`profile` (module, attribute)
PHASES = (
    ("service.postgres.co_purchases", "for_customer"),
    ("service.postgres.co_purchases", "stats_of"),
    ("service.postgres.queue", "erasure_pending"),
    ("graph.recommend", "check"),
)


async def profile(rt: Any, people: list[Any], tuning: Any) -> dict[str, Any]:
    """Where one request's time goes: each store call's median and p95 (ms), and the rest
    (Python: scoring, sentences, pool acquisition), over ``people`` asked one by one."""
    import importlib

    from service.core import recommendations

    spent: dict[str, list[float]] = {}
    originals = []
    for module_name, attr in PHASES:
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            continue
        original = getattr(module, attr)
        originals.append((module, attr, original))
        setattr(module, attr, _timed(original, spent.setdefault(f"{module_name.rsplit('.', 1)[-1]}.{attr}", [])))
    totals, rest = [], []
    try:
        for c in people:
            before = {k: len(v) for k, v in spent.items()}
            t = time.perf_counter()
            await recommendations.recommend(rt, c.user, limit=K, tuning=tuning)
            total = (time.perf_counter() - t) * 1000
            totals.append(total)
            rest.append(total - sum(sum(v[before[k] :]) for k, v in spent.items()))
    finally:
        for module, attr, original in originals:
            setattr(module, attr, original)
    out: dict[str, Any] = {"requests": len(people), "total": _latency(totals), "python_and_waits": _latency(rest)}
    for name, ms in spent.items():
        out[name] = {"calls": len(ms), **_latency(ms)}
    return out


def _timed(fn: Any, into: list[float]) -> Any:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - t) * 1000)

    return timed


async def statistics_size(rt: Any) -> dict[str, Any]:
    """The statistics tables: rows, and megabytes with their indexes."""
    out = {}
    for table in ("product_stats", "product_pairs", "product_neighbours"):
        row = await rt.pool.fetchrow(
            f"SELECT pg_total_relation_size('{table}') AS bytes, (SELECT count(*) FROM {table}) AS rows"
        )
        out[table] = {"mb": round(row["bytes"] / 2**20, 1), "rows": int(row["rows"])}
    return out


def _stack_args(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """A throwaway stack, or with ``--store`` one kept under it for the next run."""
    store = args.store / name if args.store else None
    return {"heap": args.heap, "extra_env": {"LOFT_WORKER_BATCH": "256"}, "store": store}


async def _loaded(rt: Any, people: list[Any], held: dict[str, Any]) -> dict[str, Any] | None:
    """What a kept stack holds already (None: nothing yet, load it); a stack holding another
    number of orders than the population's (a load cut short) is refused."""
    orders = int(await rt.pool.fetchval("SELECT count(*) FROM orders"))
    if not orders:
        return None
    expected = sum(len(c.orders) for c in people) - len(held)
    if orders != expected:
        raise SystemExit(f"the kept stack holds {orders} orders, not {expected}: delete it and load again")
    jobs = int(await rt.pool.fetchval("SELECT count(*) FROM jobs"))
    if jobs:
        from service.worker import Worker

        await Worker(rt).drain(timeout=14_400)
    return {"orders": orders, "reused": True}


# -- the populations ------------------------------------------------------------------------------


async def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    from devstack import demo
    from service.catalog import Catalog
    from service.runtime import Runtime

    customers = 1000 if args.quick else args.demo_customers
    evaluate = min(args.eval, 150 if args.quick else args.eval)
    people = demo.population(Catalog.load(), customers=customers, seed=args.seed)
    rng = random.Random(args.seed)  # the same held-back customers as earlier versions of this benchmark
    eligible = [c for c in people if len(c.orders) >= 2]
    held = {c.user: c.orders[-1] for c in rng.sample(eligible, min(evaluate, len(eligible)))}
    async with bench_stack(**_stack_args(args, f"demo-{customers}-{args.seed}")) as settings:
        rt = await Runtime.open(settings, pool_size=4)
        try:
            loaded = await _loaded(rt, people, held)
            if loaded is None:
                log(f"demo: loading {customers} customers ({len(held)} with their last order held back)")
                loaded = await load(rt, people, held, args.chat_share, args.seed)
            log(f"demo: loaded {loaded}")
            quality = {} if args.load_only else await measure(rt, people, held, args, every=False)
            stats = await statistics_size(rt)
        finally:
            await rt.close()
    return {
        "population": {
            "customers": customers,
            "orders_per_customer": dict(sorted(Counter(len(c.orders) for c in people).items())),
            "load": loaded,
            "statistics": stats,
        },
        **quality,
    }


async def run_realistic(args: argparse.Namespace) -> dict[str, Any]:
    from service.runtime import Runtime

    customers = 1000 if args.quick else args.realistic_customers
    evaluate = min(args.eval, 150 if args.quick else args.eval)
    t0 = time.perf_counter()
    catalog, people = realistic_population(customers, products=args.products, seed=args.seed)
    log(f"realistic: generated {customers} customers in {_s(t0)} s")
    rng = random.Random(args.seed)
    held = {c.user: c.orders[-1] for c in rng.sample(people, min(evaluate, len(people)))}
    owned = np.asarray([len({x.sku for o in c.orders for x in o.lines}) for c in people])
    lines = np.asarray([len(o.lines) for c in people for o in c.orders])
    shape = {
        "customers": customers,
        "products": args.products,
        "orders": int(sum(len(c.orders) for c in people)),
        "order_lines": int(lines.sum()),
        "lines_per_order": {
            "p50": float(np.median(lines)),
            "p95": float(np.percentile(lines, 95)),
            "max": int(lines.max()),
        },
        "owned_products": {
            "p50": float(np.median(owned)),
            "p90": float(np.percentile(owned, 90)),
            "p99": float(np.percentile(owned, 99)),
            "max": int(owned.max()),
        },
    }
    log(f"realistic: {shape}")
    store = f"realistic-{customers}-{args.products}-{args.seed}"
    async with bench_stack(**_stack_args(args, store)) as settings:
        rt = await Runtime.open(settings, pool_size=4)
        try:
            shape["load"] = await _loaded(rt, people, held)
            if shape["load"] is None:
                shape["catalog"] = await load_catalog(rt, catalog)
                log(f"realistic: catalog {shape['catalog']}; loading orders ({len(held)} held back)")
                shape["load"] = await load(rt, people, held, 0.0, args.seed)
            log(f"realistic: loaded {shape['load']}")
            shape["statistics"] = await statistics_size(rt)
            quality = {} if args.load_only else await measure(rt, people, held, args, every=not args.skip_every)
        finally:
            await rt.close()
    return {"population": shape, **quality}


# -- where the statistics live -------------------------------------------------------------------

NEO_ADD_PAIRS = """
UNWIND $pairs AS x
MATCH (a:Product {sku: x[0]}), (b:Product {sku: x[1]})
MERGE (a)-[r:CO_BOUGHT]->(b)
  ON CREATE SET r.customers = x[2]
  ON MATCH SET r.customers = r.customers + x[2]
"""
NEO_ADD_STATS = """
UNWIND $rows AS x
MATCH (p:Product {sku: x[0]})
SET p.co_customers = coalesce(p.co_customers, 0) + x[1], p.co_changes = coalesce(p.co_changes, 0) + x[2],
    p.co_mass = coalesce(p.co_mass, 0) + x[2]
RETURN p.sku AS sku, p.co_changes AS changes, coalesce(p.co_mass_refreshed, 0) AS mass
"""
NEO_REFRESH = """
UNWIND $skus AS sku
MATCH (a:Product {sku: sku})
CALL (a) { MATCH (a)-[old:BOUGHT_WITH]->() DELETE old }
CALL (a) {
  MATCH (a)-[r:CO_BOUGHT]-(b) WHERE r.customers >= $min_support
  WITH a, b, r, r.customers / sqrt(toFloat(a.co_customers) * b.co_customers) AS score
  ORDER BY score DESC, b.sku LIMIT $k
  CREATE (a)-[:BOUGHT_WITH {score: score, customers: r.customers}]->(b)
}
SET a.co_changes = 0, a.co_mass_refreshed = a.co_mass
"""
NEO_NEIGHBOURS = """
UNWIND $seeds AS sku
MATCH (:Product {sku: sku})-[r:BOUGHT_WITH]->(n:Product)
WHERE r.customers >= $min
RETURN sku AS via, n.sku AS sku, r.score AS score, r.customers AS customers
"""


async def compare_stores(args: argparse.Namespace) -> dict[str, Any]:
    """The same statistics kept both ways on one stack, order by order (see the docstring)."""
    from service.core import recommendations
    from service.postgres import co_purchases, orders
    from service.runtime import Runtime

    customers = max(args.compare_stores // 6, 50)
    catalog, people = realistic_population(customers, products=args.products, seed=args.seed)
    stream = sorted(((o, c.user) for c in people for o in c.orders), key=lambda t: t[0].placed_at)
    stream = stream[: args.compare_stores]
    async with bench_stack(heap=args.heap, with_stack=True) as (settings, stack):
        databases = stack.neo4j.home / "data" / "databases" if stack.neo4j else None
        rt = await Runtime.open(settings, pool_size=2)
        try:
            await load_catalog(rt, catalog)
            async with rt.pool.acquire() as conn, conn.transaction():
                for o, user in stream:
                    await orders.record(conn, user, o)
                await conn.execute("DELETE FROM jobs")  # no worker: the orders are replayed here
            db = settings.neo4j_database
            neo_before = await asyncio.to_thread(_flushed_size, stack, databases)
            heap_before = await heap(rt)
            pg_ms: list[float] = []
            neo_ms: list[float] = []
            counted: dict[str, set[str]] = {}
            for n, (o, user) in enumerate(stream, start=1):
                lines = [
                    {"user_identifier": user, "order_id": o.order_id, "line_no": i, "sku": x.sku}
                    for i, x in enumerate(o.lines, start=1)
                ]
                t = time.perf_counter()
                async with rt.pool.acquire() as conn, conn.transaction():
                    await co_purchases.count_orders(conn, lines, {})
                pg_ms.append((time.perf_counter() - t) * 1000)

                added = co_purchases.contribution(counted, lines)
                for x in lines:
                    if len(counted.setdefault(user, set())) < co_purchases.CONTRIBUTION_CAP:
                        counted[user].add(x["sku"])
                changes: Counter[str] = Counter()
                for (a, b), k in added.pairs.items():
                    changes[a] += k
                    changes[b] += k
                skus = sorted(set(added.buyers) | set(changes))
                t = time.perf_counter()
                pairs = [[a, b, k] for (a, b), k in sorted(added.pairs.items())]
                rows = [[s, added.buyers[s], changes[s]] for s in skus]
                async with rt.graph.session(database=db) as session:
                    await session.execute_write(_neo4j_apply, pairs, rows)
                neo_ms.append((time.perf_counter() - t) * 1000)
                if n % 500 == 0:
                    log(f"  compared {n} orders: pg {_latency(pg_ms)}, neo4j {_latency(neo_ms)}")
            heap_after = await heap(rt)

            # reads: 60 seeds' neighbours, from each store, for customers drawn at random
            sample = random.Random(args.seed).sample(people, min(200, len(people)))
            read_pg: list[float] = []
            read_neo: list[float] = []
            for c in sample:
                found = await recommendations.from_orders(rt.pool, c.user, min_crowd=5, timeout=10.0)
                seeds = {m.sku: 1.0 for m in found.mine if m.seed}
                t = time.perf_counter()
                await co_purchases.neighbours(rt.pool, seeds, min_customers=5, exclude=set(), limit=150)
                read_pg.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                async with rt.graph.session(database=db, default_access_mode="READ") as session:
                    result = await session.run(NEO_NEIGHBOURS, seeds=list(seeds), min=5)
                    _ = [r async for r in result]
                read_neo.append((time.perf_counter() - t) * 1000)
            neo_after = await asyncio.to_thread(_flushed_size, stack, databases)
            counts, _, _ = await rt.graph.execute_query(
                "CALL () { MATCH ()-[r:CO_BOUGHT]->() RETURN count(r) AS pairs } "
                "CALL () { MATCH ()-[r:BOUGHT_WITH]->() RETURN count(r) AS neighbours } RETURN pairs, neighbours",
                database_=db,
            )
            pg_size = await statistics_size(rt)
        finally:
            await rt.close()
    return {
        "orders": len(stream),
        "order_lines": sum(len(o.lines) for o, _ in stream),
        "postgres": {
            "write_per_order": _latency(pg_ms),
            "write_total_s": round(sum(pg_ms) / 1000, 1),
            "read_60_seeds": _latency(read_pg),
            "size": pg_size,
        },
        "neo4j": {
            "write_per_order": _latency(neo_ms),
            "write_total_s": round(sum(neo_ms) / 1000, 1),
            "read_60_seeds": _latency(read_neo),
            "relationships": dict(counts[0]),
            "store_growth_mb": round((neo_after - neo_before) / 2**20, 1),  # bytes after a restart
            "heap_before": heap_before,
            "heap_after": heap_after,
        },
        "ratio_write_p50_neo4j_to_postgres": round(float(np.median(neo_ms)) / max(float(np.median(pg_ms)), 1e-9), 1),
    }


async def _neo4j_apply(tx: Any, pairs: list[list[Any]], rows: list[list[Any]]) -> None:
    """One order's pairs and counts as Neo4j relationships and properties, then the top
    neighbours of the products whose pairs moved enough (the comparison's Neo4j side)."""
    from service.postgres import co_purchases

    if pairs:
        await (await tx.run(NEO_ADD_PAIRS, pairs=pairs)).consume()
    result = await tx.run(NEO_ADD_STATS, rows=rows)
    due = [
        r["sku"] async for r in result if r["changes"] > 0 and r["changes"] >= co_purchases.REFRESH_SHARE * r["mass"]
    ]
    if due:
        query = NEO_REFRESH
        await (await tx.run(query, skus=due, min_support=co_purchases.MIN_SUPPORT, k=co_purchases.NEIGHBOURS)).consume()


def _flushed_size(stack: Any, path: Path | None) -> int:
    """Bytes of the Neo4j store on disk, after a restart has flushed everything (Community
    has no checkpoint procedure); an external server's store is not at hand: 0."""
    if path is None or stack.neo4j is None:
        return 0
    stack.neo4j.stop()
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "transactions" not in p.parts)
    stack.neo4j.start()
    return size


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "recommend", "goals": GOALS}
    if args.compare_stores:
        out["stores"] = await compare_stores(args)
        return out
    if not args.skip_demo:
        out["demo"] = await run_demo(args)
    if not args.skip_realistic:
        out["realistic"] = await run_realistic(args)
    return out


GOALS = {
    "realistic_p95_ms": 30.0,
    "max_ms": 250.0,
    "largest_customer_ms": 100.0,
    "realistic_hits": "above item_knn and popularity",
    "demo_hits": "no worse than before (0.432 at 10,000 customers, the request-time walk)",
}


TUNING_NAMES = ("all", "top30", "top50", "top80")


def tunings() -> dict[str, Any]:
    """The tunings ``--ab`` may compare, by name: how many ranked candidates the graph checks."""
    from service.core.recommendations import TUNING

    return {
        "all": replace(TUNING, graph_pool=None),  # every candidate PostgreSQL finds (the former path)
        "top30": replace(TUNING, graph_pool=30),
        "top50": replace(TUNING, graph_pool=50),
        "top80": replace(TUNING, graph_pool=80),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-customers", type=int, default=10_000)
    parser.add_argument("--realistic-customers", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=5000, help="the realistic shop's catalog")
    parser.add_argument("--eval", type=int, default=500, help="customers whose last order is held back")
    parser.add_argument("--largest", type=int, default=20, help="the customers owning most, asked for latency")
    parser.add_argument("--chat-share", type=float, default=0.2, help="share of demo customers whose chat is ingested")
    parser.add_argument("--heap", default="1500m", help="Neo4j heap (LOFT_NEO4J_HEAP)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1,000 customers per population, 150 held back")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-realistic", action="store_true")
    parser.add_argument("--skip-every", action="store_true", help="do not ask every realistic customer")
    parser.add_argument(
        "--compare-stores", type=int, default=0, metavar="N", help="only compare the stores on N orders"
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each population's stack under DIR and reuse it on the next run (loaded once)",
    )
    parser.add_argument("--load-only", action="store_true", help="with --store: load the populations, measure nothing")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="time the phases of N customers' requests")
    parser.add_argument(
        "--ab",
        default="",
        metavar="A,B",
        help=f"ask the system under these tunings, interleaved per customer (of {', '.join(TUNING_NAMES)})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2 if not args.json else None))


if __name__ == "__main__":
    main()
