"""Recommendations for one customer: candidates from the precomputed co-purchase statistics
(:mod:`service.postgres.co_purchases`, PostgreSQL), checked against the graph
(:mod:`graph.recommend`), scored and explained here by pure functions.

Bounded work, whatever the customer or the shop: the customer's :data:`RECENT_ORDERS` most
recent orders are read; at most :data:`SEED_PRODUCTS` of their products (half the most
recently bought, half the most often bought) lead to neighbours; each store read has a
timeout (``LOFT_RECOMMEND_TIMEOUT_S``, on the server and in ``wait_for``). A read that
times out, hits Neo4j's transaction memory limit or finds Neo4j away gives a cheaper answer
instead of an error: the best sellers of the customer's categories from PostgreSQL,
flagged ``degraded`` with the reason.

The score blends normalised signals (each 0..1 within one answer):

- ``co``: the customer's products' cosine to the candidate (customers who bought what you
  bought also bought it), summed over the seeds, divided by the best candidate's;
- ``repeat``: a product the catalog marks consumable that the customer buys again, by how
  many of their recent orders held it and how lately (the benchmark's realistic shop:
  repeat purchases are most of what a customer buys next);
- ``pref``: the strengths of the current preferences the product meets (style, category,
  material, colour, brand, a liked product), capped at two preferences' worth;
- ``pop``: how many customers bought it (log scale), so ties go to proven products.

``score = 0.6·co + 1.0·repeat + 0.3·pref + 0.1·pop`` for a customer with purchases (the best
sellers of the categories they buy in are candidates too, ranked by ``pop``: what fills the
list when little else does); a customer without any (cold start) has no co-purchase signal,
so ``score = 0.6·pref + 0.4·pop`` over the products that meet a preference (all when none
does). Dislikes, stock, ownership (unless consumable), price caps and the budget are
filters, not score terms. The weights were chosen on ``bench.recommend``'s two shops: a
consumable bought in most orders and lately outranks even the best co-purchase (repeat at
0.6: hits@10 0.79 on the realistic shop; at 1.0: 0.86), and a bonus for category best
sellers cost the demo shop hits (0.05: 0.487 -> 0.477 of 300 held back; 0.2: 0.403).

Privacy: other customers appear only as a count of distinct customers, and never fewer
than ``LOFT_MIN_CROWD``: a neighbour bought with the customer's product by fewer is not
used, and a co-purchase reason or path that would state fewer is dropped. Purchases said
in chat are never anyone else's evidence (the statistics count the order feed only) and
never seed the customer's own neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from neo4j.exceptions import Neo4jError

from graph import recommend as graph_recommend
from graph.recommend import Candidate, CustomerBasis
from service.errors import Conflict
from service.outages import is_outage
from service.postgres import co_purchases, graph_snapshots, orders, queue

if TYPE_CHECKING:
    from service.runtime import Runtime

log = logging.getLogger("loft.recommendations")

W_CO, W_REPEAT, W_PREF, W_POP = 0.6, 1.0, 0.3, 0.1
COLD_PREF, COLD_POP = 0.6, 0.4
PREF_CAP = 2.0

RECENT_ORDERS = 200  # the customer's orders read, most recent first
SEED_PRODUCTS = 60  # the customer's products whose neighbours are followed
CO_POOL = 100  # co-purchase candidates checked against the graph
REPEAT_POOL = 40  # consumables the customer bought, checked to buy again
CATEGORIES = 5  # the customer's categories whose best sellers are candidates
PER_CATEGORY = 10
POPULAR_POOL = 40
GRACE_S = 0.5  # the client's wait_for beyond the server's own timeout

_ATTRIBUTE_WORD = {
    "style": "style",
    "category": "category",
    "material": "material",
    "color": "colour",
    "brand": "brand",
}
# Neo4j status codes of a transaction ended by its timeout or its memory limit
LIMIT_CODES = ("TimedOut", "OutOfMemory", "MemoryLimit", "Transaction.Terminated")


# -- pure: seeds, repeats, scores, sentences --------------------------------------------------


def seeds(mine: list[dict[str, Any]], limit: int = SEED_PRODUCTS) -> dict[str, float]:
    """The products whose neighbours are followed: half the most recently bought, half the
    most often bought (``mine``: ``{sku, orders, ago}``), each weighing 1."""
    recent = sorted(mine, key=lambda m: (m["ago"], -m["orders"], m["sku"]))[: limit // 2]
    frequent = sorted(mine, key=lambda m: (-m["orders"], m["ago"], m["sku"]))
    chosen = dict.fromkeys(m["sku"] for m in recent)
    for m in frequent:
        if len(chosen) >= limit:
            break
        chosen.setdefault(m["sku"])
    return dict.fromkeys(chosen, 1.0)


def repeat_score(orders_with_it: int, of_orders: int, ago: int) -> float:
    """How strongly to offer a consumable again (0..1): bought in a larger share of the
    customer's orders, and lately (in one of their last two orders), scores higher."""
    if of_orders <= 0 or orders_with_it <= 0:
        return 0.0
    share = min(orders_with_it / of_orders, 1.0)
    lately = 1.0 if ago <= 1 else 0.5
    return (0.5 + 0.5 * share) * lately


def is_limit_error(exc: BaseException) -> bool:
    """A read ended by a timeout (ours or the server's) or by Neo4j's transaction memory limit."""
    if isinstance(exc, TimeoutError | asyncpg.QueryCanceledError):
        return True
    return isinstance(exc, Neo4jError) and any(code in (exc.code or "") for code in LIMIT_CODES)


def score(candidate: Candidate, *, best_co: float, best_buyers: int, cold: bool) -> float:
    """The blended score of one candidate (see the module docstring)."""
    co = candidate.co_weight / best_co if best_co > 0 else 0.0
    pref = min(sum(float(m.get("strength") or 0.5) for m in candidate.matched), PREF_CAP) / PREF_CAP
    pop = math.log1p(candidate.buyers) / math.log1p(best_buyers) if best_buyers > 0 else 0.0
    if cold:
        return COLD_PREF * pref + COLD_POP * pop
    return W_CO * co + W_REPEAT * candidate.repeat + W_PREF * pref + W_POP * pop


def preference_text(attribute: str, name: str) -> str:
    if attribute == "category":
        return f"in a category you like ({name})"
    if attribute == "product":
        return f"a product you said you like ({name})"
    if attribute == "style":
        return f"matches your preference for {name} style"
    return f"matches your preference for {name}"


def _customers(n: int) -> str:
    return "1 customer" if n == 1 else f"{n} customers"


def stated_via(candidate: Candidate, min_crowd: int) -> list[dict[str, Any]]:
    """The co-purchase evidence that may be said: crowds of at least ``min_crowd``."""
    return [v for v in candidate.via if int(v["customers"]) >= min_crowd and v.get("name")]


def reasons(candidate: Candidate, *, cold: bool, min_crowd: int) -> list[dict[str, Any]]:
    """Why this product: as data and as a sentence each, strongest first."""
    out: list[dict[str, Any]] = []
    if candidate.repeat > 0:
        times = "once" if candidate.orders == 1 else f"{candidate.orders} times"
        out.append(
            {
                "kind": "repeat",
                "text": f"you buy it again and again (in your recent orders {times})",
                "orders": candidate.orders,
            }
        )
    for via in stated_via(candidate, min_crowd)[:2]:
        n = int(via["customers"])
        out.append(
            {
                "kind": "co_purchase",
                "text": f"bought by {_customers(n)} who also bought the {via['name']}",
                "customers": n,
                "sku": via["sku"],
                "name": via["name"],
            }
        )
    out.extend(
        {
            "kind": "preference",
            "text": preference_text(m["attribute"], m["name"]),
            "attribute": m["attribute"],
            "value": m["name"],
        }
        for m in sorted(candidate.matched, key=lambda m: -float(m.get("strength") or 0))
    )
    if candidate.budget is not None and candidate.price is not None and candidate.price <= candidate.budget:
        out.append(
            {
                "kind": "budget",
                "text": f"within your ${candidate.budget:,.0f} budget",
                "budget": candidate.budget,
                "price": candidate.price,
            }
        )
    if candidate.buyers >= min_crowd and not candidate.repeat:
        if candidate.best_in and not out:
            out.append(
                {
                    "kind": "popular",
                    "text": f"a best seller in {candidate.best_in} (bought by {_customers(candidate.buyers)})",
                    "customers": candidate.buyers,
                    "category": candidate.best_in,
                }
            )
        elif cold or not out:
            out.append(
                {
                    "kind": "popular",
                    "text": f"popular in the shop (bought by {_customers(candidate.buyers)})",
                    "customers": candidate.buyers,
                }
            )
    return out


def path(candidate: Candidate, user: str, name: str | None, *, min_crowd: int) -> tuple[list[dict[str, str]], str]:
    """The graph path behind the strongest reason, as nodes and as Cypher-like text. Other
    customers appear only as a count, and only when at least ``min_crowd`` of them."""
    me = {"label": "Customer", "key": user, "name": name or user}
    target = {"label": "Product", "key": candidate.sku, "name": candidate.name}
    if candidate.repeat > 0:
        return [me, target], f"(you)-[:PURCHASED ×{candidate.orders}]->({candidate.name})"
    via_list = stated_via(candidate, min_crowd)
    if via_list:
        via = via_list[0]
        n = int(via["customers"])
        group = {"label": "Customer", "key": f"co-buyers:{n}", "name": _customers(n)}
        mine = {"label": "Product", "key": via["sku"], "name": via["name"]}
        nodes = [me, mine, group, target]
        text = f"(you)-[:PURCHASED]->({via['name']})<-[:PURCHASED]-({group['name']})-[:PURCHASED]->({candidate.name})"
        return nodes, text
    if candidate.matched:
        m = max(candidate.matched, key=lambda m: float(m.get("strength") or 0))
        label = {"style": "Style", "category": "Category", "material": "Material", "color": "Color"}.get(
            m["attribute"], "Brand" if m["attribute"] == "brand" else "Product"
        )
        rel = {
            "Style": "HAS_STYLE",
            "Category": "IN_CATEGORY",
            "Material": "MADE_OF",
            "Color": "HAS_COLOR",
            "Brand": "MADE_BY",
        }.get(label)
        if label == "Product":
            return [me, target], f"(you)-[:PREFERS]->({candidate.name})"
        nodes = [me, {"label": label, "key": m["name"], "name": m["name"]}, target]
        return nodes, f"(you)-[:PREFERS]->(:{label} {m['name']})<-[:{rel}]-({candidate.name})"
    if candidate.best_in:
        return [target], f"({candidate.name})-[:IN_CATEGORY]->(:Category {candidate.best_in}) — a best seller"
    return [target], f"({candidate.name}) — bought by {_customers(candidate.buyers)} in the shop"


def explanation(basis: CustomerBasis, *, cold: bool, category: str | None) -> str:
    where = f" in {category}" if category else ""
    if cold:
        styles = [x["name"] for x in basis.likes if x["attribute"] == "style"]
        categories = [x["name"] for x in basis.likes if x["attribute"] == "category"]
        others = [x["name"] for x in basis.likes if x["attribute"] not in ("style", "category")]
        parts = []
        if styles:
            parts.append(f"your preferred styles ({', '.join(styles)})")
        if categories:
            parts.append(f"your preferred categories ({', '.join(categories)})")
        if others:
            parts.append(f"what you like ({', '.join(others)})")
        if parts:
            return f"No purchases yet: popular{where} in " + " and ".join(parts)
        return f"No purchases yet and no known preferences: the shop's most popular products{where}"
    owned = f"{basis.owned} product{'s' if basis.owned != 1 else ''} you bought"
    return f"Based on what customers who bought the same {owned} also bought{where}, and your current preferences"


def rank(
    basis: CustomerBasis,
    found: list[Candidate],
    user: str,
    *,
    limit: int,
    category: str | None = None,
    min_crowd: int = 5,
) -> dict[str, Any]:
    """The answer: scored, explained, best first (ties by SKU, so answers are stable)."""
    cold = basis.owned == 0
    if cold and any(c.matched for c in found):  # cold start: popular *in what they like*
        found = [c for c in found if c.matched]
    best_co = max((c.co_weight for c in found), default=0.0)
    best_buyers = max((c.buyers for c in found), default=0)
    scored = [(score(c, best_co=best_co, best_buyers=best_buyers, cold=cold), c) for c in found]
    scored.sort(key=lambda t: (-t[0], t[1].sku))
    items: list[dict[str, Any]] = []
    for value, c in scored:
        why = reasons(c, cold=cold, min_crowd=min_crowd)
        if not why:  # nothing that may be said for it: not a recommendation
            continue
        if len(items) >= limit:
            break
        nodes, text = path(c, user, basis.name, min_crowd=min_crowd)
        items.append(
            {
                "sku": c.sku,
                "name": c.name,
                "category": c.category,
                "price": c.price,
                "score": round(value, 4),
                "reasons": why,
                "path": nodes,
                "path_text": text,
            }
        )
    return {
        "user_identifier": user,
        "cold_start": cold,
        "explanation": explanation(basis, cold=cold, category=category),
        "degraded": False,
        "degraded_reason": None,
        "items": items,
    }


# -- reading the stores --------------------------------------------------------------------------


@dataclass
class FromOrders:
    """What PostgreSQL gives for one customer: their recent products and the candidates."""

    mine: list[dict[str, Any]] = field(default_factory=list)  # {sku, orders, ago, last_at, of_orders}
    found: co_purchases.Candidates = field(default_factory=co_purchases.Candidates)

    @property
    def of_orders(self) -> int:
        return int(self.mine[0]["of_orders"]) if self.mine else 0

    def repeats(self) -> list[dict[str, Any]]:
        """The consumables among the customer's products, most regular first."""
        found = [m for m in self.mine if m["sku"] in self.found.consumables]
        found.sort(key=lambda m: (-repeat_score(m["orders"], self.of_orders, m["ago"]), m["sku"]))
        return found[:REPEAT_POOL]

    def graph_args(self) -> tuple[list[str], list[str]]:
        """The candidates for the graph to check, and the customer's products to name."""
        skus = [n.sku for n in self.found.neighbours] + [m["sku"] for m in self.repeats()]
        skus += [b["sku"] for b in self.found.best]
        if not self.found.best:  # the shop's best sellers: for a customer with no category yet
            skus += [p["sku"] for p in self.found.popular]
        named = sorted({v["sku"] for n in self.found.neighbours for v in n.via[:2]})
        return list(dict.fromkeys(skus)), named


async def from_orders(conn: Any, user: str, *, min_crowd: int, timeout: float) -> FromOrders:
    """The customer's recent products and every PostgreSQL candidate: two bounded reads."""
    mine = await orders.recent_products(conn, user, orders=RECENT_ORDERS, timeout=timeout)
    found = await co_purchases.candidates(
        conn,
        seeds(mine),
        [m["sku"] for m in mine],
        min_customers=min_crowd,
        neighbours=CO_POOL,
        categories=CATEGORIES,
        per_category=PER_CATEGORY,
        popular=POPULAR_POOL,
        timeout=timeout,
    )
    return FromOrders(mine, found)


async def recommend(
    rt: Runtime,
    user: str,
    *,
    limit: int = 10,
    category: str | None = None,
    max_price: float | None = None,
) -> dict[str, Any]:
    """Recommendations for ``user`` (a customer LOFT does not know yet gets the cold-start
    answer). Raises Conflict while the customer's erasure is pending."""
    settings = rt.settings
    timeout, min_crowd = settings.recommend_timeout_s, settings.min_crowd
    async with rt.pool.acquire() as conn:
        if await queue.erasure_pending(conn, user):
            raise Conflict(f"customer '{user}' is being erased; nothing is recommended to them")
        try:
            pg = await asyncio.wait_for(
                from_orders(conn, user, min_crowd=min_crowd, timeout=timeout), timeout + GRACE_S
            )
        except Exception as exc:
            if not is_limit_error(exc):
                raise
            log.warning("recommendations: the order statistics did not answer in time (%s)", type(exc).__name__)
            pg, pg_failed = FromOrders(), True
        else:
            pg_failed = False
    try:
        answer = await asyncio.wait_for(
            _checked(rt, user, pg, limit=limit, category=category, max_price=max_price),
            graph_recommend.first_call_timeout(timeout) + GRACE_S,
        )
    except Exception as exc:
        if not (is_limit_error(exc) or is_outage(exc)):
            raise
        reason = _reason(exc)
        log.warning("recommendations degraded: %s (%s)", reason, type(exc).__name__)
        if isinstance(exc, TimeoutError) or "TimedOut" in (getattr(exc, "code", None) or ""):
            # planning may be what ran out of time (a restarted server has no plan)
            graph_recommend.plan_again(rt.graph, database=settings.neo4j_database)
        return await degraded(rt, user, pg, reason, limit=limit, category=category, max_price=max_price)
    if pg_failed:
        answer["degraded"] = True
        answer["degraded_reason"] = "the co-purchase statistics did not answer in time: no co-purchase suggestions"
    return answer


def _reason(exc: BaseException) -> str:
    if is_outage(exc):
        return "the knowledge graph is unavailable"
    if isinstance(exc, Neo4jError) and "Memory" in (exc.code or ""):
        return "the graph query reached its memory limit"
    return "the graph query did not finish in time"


async def _checked(
    rt: Runtime, user: str, pg: FromOrders, *, limit: int, category: str | None, max_price: float | None
) -> dict[str, Any]:
    settings = rt.settings
    repeats = {m["sku"]: m for m in pg.repeats()}
    best_in = {b["sku"]: b for b in pg.found.best}
    popular = {p["sku"]: p for p in pg.found.popular}
    co = {n.sku: n for n in pg.found.neighbours}
    skus, named = pg.graph_args()
    graph = await graph_recommend.check(
        rt.graph,
        user,
        skus,
        named=named,
        database=settings.neo4j_database,
        timeout=graph_recommend.first_call_timeout(settings.recommend_timeout_s),
        category=category,
        max_price=max_price,
    )
    owned = {m["sku"] for m in pg.mine}
    basis = graph.basis
    if owned and basis.owned == 0:  # orders the worker has not filed in the graph yet
        basis.owned = len(owned)
    buyers = {s: int(x["customers"]) for s, x in {**popular, **best_in, **pg.found.consumables}.items()}
    buyers |= {n.sku: n.buyers for n in pg.found.neighbours}
    unknown = [s for s in graph.items if s not in buyers]
    if unknown:  # products only the customer's preferences led to
        async with rt.pool.acquire() as conn:
            extra = await co_purchases.stats_of(conn, unknown, timeout=settings.recommend_timeout_s)
        buyers |= {s: x["customers"] for s, x in extra.items()}
    found: list[Candidate] = []
    for sku, item in graph.items.items():
        again = repeats.get(sku) if item["consumable"] else None
        if (sku in owned or item["owned"]) and again is None:
            continue  # owned, and not something one buys again
        n = co.get(sku)
        found.append(
            Candidate(
                sku=sku,
                name=item["name"],
                category=item["category"],
                price=float(item["price"]) if item["price"] is not None else None,
                buyers=buyers.get(sku, 0),
                co_weight=n.score if n else 0.0,
                via=[v | {"name": graph.names.get(v["sku"])} for v in n.via] if n else [],
                matched=list(item["matched"]),
                budget=graph.budget,
                consumable=bool(item["consumable"]),
                repeat=repeat_score(again["orders"], pg.of_orders, again["ago"]) if again else 0.0,
                orders=int(again["orders"]) if again else 0,
                best_in=best_in[sku]["category"] if sku in best_in else None,
            )
        )
    return rank(basis, found, user, limit=limit, category=category, min_crowd=settings.min_crowd)


async def degraded(
    rt: Runtime,
    user: str,
    pg: FromOrders,
    reason: str,
    *,
    limit: int,
    category: str | None,
    max_price: float | None,
) -> dict[str, Any]:
    """The cheaper answer, from PostgreSQL only: the best sellers of the customer's
    categories (of the shop, without purchases), not owned, without what the customer's
    graph snapshot says they dislike, within the price cap, flagged ``degraded``. Stock is
    not checked: the catalog's stock lives in the graph."""
    settings = rt.settings
    owned = {m["sku"] for m in pg.mine}
    disliked, budget = set(), None
    async with rt.pool.acquire() as conn:
        snapshot = (await graph_snapshots.state(conn, user, None)).snapshot
        pool = pg.found.best or pg.found.popular
        if not pool:
            pool = await co_purchases.best_sellers(conn, limit=POPULAR_POOL, timeout=settings.recommend_timeout_s)
    for p in ((snapshot.facts or {}).get("preferences") or []) if snapshot else []:
        if p.get("valid_to") is not None:
            continue
        if p.get("rel") == "DISLIKES":
            disliked.add(f"{p.get('attribute')}:{p.get('value')}")
            if p.get("sku"):
                disliked.add(f"product:{p['sku']}")
        elif p.get("attribute") == "budget" and budget is None:
            try:
                budget = float(p.get("value"))
            except (TypeError, ValueError):
                budget = None
    cap = max_price if max_price is not None else budget
    under = rt.catalog.descendants(category) if category else None
    found: list[Candidate] = []
    for p in pool:
        facets = set(p["facets"]) | {f"category:{p['category']}", f"product:{p['sku']}"}
        if p["sku"] in owned or facets & disliked:
            continue
        if cap is not None and (p["price"] is None or p["price"] > cap):
            continue
        if under is not None and p["category"] not in under:
            continue
        found.append(
            Candidate(
                sku=p["sku"],
                name=p["name"] or p["sku"],
                category=p["category"],
                price=p["price"],
                buyers=p["customers"],
                best_in=p["category"] if pg.found.best else None,
            )
        )
    basis = CustomerBasis(known=bool(pg.mine), name=None, owned=len(owned), likes=[])
    answer = rank(basis, found, user, limit=limit, category=category, min_crowd=settings.min_crowd)
    answer["degraded"] = True
    answer["degraded_reason"] = f"{reason}: the best sellers of your categories instead (stock not re-checked)"
    if not owned:
        answer["explanation"] = "The shop's best sellers (a cheaper answer: the full recommendation was not available)"
    else:
        answer["explanation"] = "Best sellers in the categories you buy in (the full recommendation was not available)"
    return answer
