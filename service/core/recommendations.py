"""Recommendations for one customer: candidates from the precomputed co-purchase statistics
(:mod:`service.postgres.co_purchases`, PostgreSQL), checked against the graph
(:mod:`graph.recommend`), scored and explained here by pure functions.

Bounded work, whatever the customer or the shop: one PostgreSQL statement reads the
customer's :data:`RECENT_ORDERS` most recent orders, and at most :data:`SEED_PRODUCTS` of
their products (half the most recently bought, half the most often bought) lead to
neighbours; the candidates are ranked by what PostgreSQL knows of them and only the best
:data:`GRAPH_POOL` are checked in the graph (the next as many when its filters leave fewer
than asked for); each store read has a timeout (``LOFT_RECOMMEND_TIMEOUT_S``, on the server
and in ``wait_for``). A read that
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from neo4j.exceptions import Neo4jError

from graph import recommend as graph_recommend
from graph.facts import Preference
from graph.recommend import Candidate, CoPurchase, CustomerBasis, GraphCheck, Match
from loft_memory.models import PathNode, Recommendation, RecommendationReason, RecommendationsResponse
from service.errors import Conflict
from service.outages import is_outage
from service.postgres import co_purchases, graph_snapshots, queue
from vectors.pg import Conn

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
GRAPH_POOL = 50  # the best-ranked candidates the graph checks (the next as many if too few pass)
GRACE_S = 0.5  # the client's wait_for beyond the server's own timeout


@dataclass(frozen=True)
class Tuning:
    """How much one answer may look at. ``graph_pool``: the candidates the graph checks,
    best first by what PostgreSQL knows of them (co-purchase, repeat, popularity); ``None``
    sends every candidate (what ``bench.recommend --ab`` compares against)."""

    graph_pool: int | None = GRAPH_POOL


TUNING = Tuning()

_ATTRIBUTE_WORD = {
    "style": "style",
    "category": "category",
    "material": "material",
    "color": "colour",
    "brand": "brand",
}
# Neo4j status codes of a transaction ended by its timeout or its memory limit
LIMIT_CODES = ("TimedOut", "OutOfMemory", "MemoryLimit", "Transaction.Terminated")


# -- pure: repeats, scores, sentences ----------------------------------------------------------


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


def _strength(m: Match) -> float:
    return m.strength if m.strength is not None else 0.5


def score(candidate: Candidate, *, best_co: float, best_buyers: int, cold: bool) -> float:
    """The blended score of one candidate (see the module docstring)."""
    co = candidate.co_weight / best_co if best_co > 0 else 0.0
    pref = min(sum(_strength(m) for m in candidate.matched), PREF_CAP) / PREF_CAP
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


def stated_via(candidate: Candidate, min_crowd: int) -> list[CoPurchase]:
    """The co-purchase evidence that may be said: crowds of at least ``min_crowd``."""
    return [v for v in candidate.via if v.customers >= min_crowd and v.name]


def _reason(kind: str, text: str, **data: object) -> RecommendationReason:
    return RecommendationReason(kind=kind, text=text, **data)


def reasons(candidate: Candidate, *, cold: bool, min_crowd: int) -> list[RecommendationReason]:
    """Why this product: as data and as a sentence each, strongest first."""
    out: list[RecommendationReason] = []
    if candidate.repeat > 0:
        times = "once" if candidate.orders == 1 else f"{candidate.orders} times"
        text = f"you buy it again and again (in your recent orders {times})"
        out.append(_reason("repeat", text, orders=candidate.orders))
    for via in stated_via(candidate, min_crowd)[:2]:
        text = f"bought by {_customers(via.customers)} who also bought the {via.name}"
        out.append(_reason("co_purchase", text, customers=via.customers, sku=via.sku, name=via.name))
    out.extend(
        _reason("preference", preference_text(m.attribute, m.name), attribute=m.attribute, value=m.name)
        for m in sorted(candidate.matched, key=lambda m: -(m.strength or 0.0))
    )
    budget, price = candidate.budget, candidate.price
    if budget is not None and price is not None and price <= budget:
        out.append(_reason("budget", f"within your ${budget:,.0f} budget", budget=budget, price=price))
    if candidate.buyers >= min_crowd and not candidate.repeat:
        crowd = _customers(candidate.buyers)
        if candidate.best_in and not out:
            text = f"a best seller in {candidate.best_in} (bought by {crowd})"
            out.append(_reason("popular", text, customers=candidate.buyers, category=candidate.best_in))
        elif cold or not out:
            out.append(_reason("popular", f"popular in the shop (bought by {crowd})", customers=candidate.buyers))
    return out


# the graph's vocabulary a preference points at: (label, the product's relationship to it)
_PREFERENCE_NODE = {
    "style": ("Style", "HAS_STYLE"),
    "category": ("Category", "IN_CATEGORY"),
    "material": ("Material", "MADE_OF"),
    "color": ("Color", "HAS_COLOR"),
    "brand": ("Brand", "MADE_BY"),
}


def path(candidate: Candidate, user: str, name: str | None, *, min_crowd: int) -> tuple[list[PathNode], str]:
    """The graph path behind the strongest reason, as nodes and as Cypher-like text. Other
    customers appear only as a count, and only when at least ``min_crowd`` of them."""
    me = PathNode(label="Customer", key=user, name=name or user)
    target = PathNode(label="Product", key=candidate.sku, name=candidate.name)
    if candidate.repeat > 0:
        return [me, target], f"(you)-[:PURCHASED ×{candidate.orders}]->({candidate.name})"
    via_list = stated_via(candidate, min_crowd)
    if via_list:
        via = via_list[0]
        crowd = _customers(via.customers)
        group = PathNode(label="Customer", key=f"co-buyers:{via.customers}", name=crowd)
        mine = PathNode(label="Product", key=via.sku, name=via.name or via.sku)
        text = f"(you)-[:PURCHASED]->({via.name})<-[:PURCHASED]-({crowd})-[:PURCHASED]->({candidate.name})"
        return [me, mine, group, target], text
    if candidate.matched:
        m = max(candidate.matched, key=lambda m: m.strength or 0.0)
        if m.attribute not in _PREFERENCE_NODE:
            return [me, target], f"(you)-[:PREFERS]->({candidate.name})"
        label, rel = _PREFERENCE_NODE[m.attribute]
        nodes = [me, PathNode(label=label, key=m.name, name=m.name), target]
        return nodes, f"(you)-[:PREFERS]->(:{label} {m.name})<-[:{rel}]-({candidate.name})"
    if candidate.best_in:
        return [target], f"({candidate.name})-[:IN_CATEGORY]->(:Category {candidate.best_in}) — a best seller"
    return [target], f"({candidate.name}) — bought by {_customers(candidate.buyers)} in the shop"


def explanation(basis: CustomerBasis, *, cold: bool, category: str | None) -> str:
    where = f" in {category}" if category else ""
    if cold:
        styles = [x.name for x in basis.likes if x.attribute == "style"]
        categories = [x.name for x in basis.likes if x.attribute == "category"]
        others = [x.name for x in basis.likes if x.attribute not in ("style", "category")]
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
) -> RecommendationsResponse:
    """The answer: scored, explained, best first (ties by SKU, so answers are stable)."""
    cold = basis.owned == 0
    if cold and any(c.matched for c in found):  # cold start: popular *in what they like*
        found = [c for c in found if c.matched]
    best_co = max((c.co_weight for c in found), default=0.0)
    best_buyers = max((c.buyers for c in found), default=0)
    scored = [(score(c, best_co=best_co, best_buyers=best_buyers, cold=cold), c) for c in found]
    scored.sort(key=lambda t: (-t[0], t[1].sku))
    items: list[Recommendation] = []
    for value, c in scored:
        why = reasons(c, cold=cold, min_crowd=min_crowd)
        if not why:  # nothing that may be said for it: not a recommendation
            continue
        if len(items) >= limit:
            break
        nodes, text = path(c, user, basis.name, min_crowd=min_crowd)
        items.append(
            Recommendation(
                sku=c.sku,
                name=c.name,
                category=c.category,
                price=c.price,
                score=round(value, 4),
                reasons=why,
                path=nodes,
                path_text=text,
            )
        )
    return RecommendationsResponse(
        user_identifier=user,
        cold_start=cold,
        explanation=explanation(basis, cold=cold, category=category),
        items=items,
    )


def graph_pool(pg: co_purchases.Candidates, *, max_price: float | None) -> list[str]:
    """Every PostgreSQL candidate worth the graph's check, best first by what PostgreSQL
    knows (``W_CO·co + W_REPEAT·repeat + W_POP·pop``, the score without the preferences
    only the graph knows): the neighbours, the consumables bought again, the best sellers
    of their categories (the shop's without any). Products the customer owns and does not
    buy again, and ones whose last known price is over ``max_price``, are left out."""
    owned = {m.sku for m in pg.mine}
    again = {m.sku: repeat_score(m.orders, pg.of_orders, m.ago) for m in repeats(pg)}
    buyers = {p.sku: p.customers for p in (*pg.popular, *pg.best, *pg.consumables.values())}
    buyers |= {n.sku: n.buyers for n in pg.neighbours}
    co = {n.sku: n.score for n in pg.neighbours}
    price = {p.sku: p.price for p in (*pg.popular, *pg.best, *pg.consumables.values())}
    best_co = max(co.values(), default=0.0)
    best_buyers = max(buyers.values(), default=0)
    skus = [*co, *again, *(p.sku for p in (pg.best or pg.popular))]
    if max_price is not None:
        skus = [s for s in skus if (price.get(s) or 0.0) <= max_price]

    def prescore(sku: str) -> float:
        pop = math.log1p(buyers.get(sku, 0)) / math.log1p(best_buyers) if best_buyers > 0 else 0.0
        return W_CO * (co.get(sku, 0.0) / best_co if best_co else 0.0) + W_REPEAT * again.get(sku, 0.0) + W_POP * pop

    kept = {s: prescore(s) for s in skus if s not in owned or s in again}
    return sorted(kept, key=lambda s: (-kept[s], s))


def repeats(pg: co_purchases.Candidates) -> list[co_purchases.OwnProduct]:
    """The consumables among the customer's products, most regular first (at most :data:`REPEAT_POOL`)."""
    found = [m for m in pg.mine if m.sku in pg.consumables]
    found.sort(key=lambda m: (-repeat_score(m.orders, pg.of_orders, m.ago), m.sku))
    return found[:REPEAT_POOL]


def candidates(pg: co_purchases.Candidates, graph: GraphCheck, buyers: Mapping[str, int]) -> list[Candidate]:
    """The products the graph let through, with their evidence; owned ones only when the
    customer buys them again."""
    owned = {m.sku for m in pg.mine}
    again = {m.sku: m for m in repeats(pg)}
    co = {n.sku: n for n in pg.neighbours}
    best_in = {b.sku: b.category for b in pg.best}
    found: list[Candidate] = []
    for sku, item in graph.items.items():
        bought = again.get(sku) if item.consumable else None
        if (sku in owned or item.owned) and bought is None:
            continue  # owned, and not something one buys again
        n = co.get(sku)
        via = [CoPurchase(v.sku, graph.names.get(v.sku), v.customers) for v in n.via] if n else []
        found.append(
            Candidate(
                sku=sku,
                name=item.name,
                category=item.category,
                price=item.price,
                buyers=buyers.get(sku, 0),
                co_weight=n.score if n else 0.0,
                via=via,
                matched=list(item.matched),
                budget=graph.budget,
                consumable=item.consumable,
                repeat=repeat_score(bought.orders, pg.of_orders, bought.ago) if bought else 0.0,
                orders=bought.orders if bought else 0,
                best_in=best_in.get(sku),
            )
        )
    return found


# -- reading the stores --------------------------------------------------------------------------


async def from_orders(
    conn: Conn | asyncpg.Pool, user: str, *, min_crowd: int, timeout: float
) -> co_purchases.Candidates:
    """Whether the customer's erasure is pending, their recent products and every PostgreSQL
    candidate: one bounded statement."""
    return await co_purchases.for_customer(
        conn,
        user,
        recent_orders=RECENT_ORDERS,
        seeds=SEED_PRODUCTS,
        min_customers=min_crowd,
        neighbours=CO_POOL,
        categories=CATEGORIES,
        per_category=PER_CATEGORY,
        popular=POPULAR_POOL,
        timeout=timeout,
    )


async def recommend(
    rt: Runtime,
    user: str,
    *,
    limit: int = 10,
    category: str | None = None,
    max_price: float | None = None,
    tuning: Tuning = TUNING,
) -> dict[str, Any]:
    """Recommendations for ``user`` (a customer LOFT does not know yet gets the cold-start
    answer), as :class:`RecommendationsResponse`'s JSON. Raises Conflict while the
    customer's erasure is pending."""
    settings = rt.settings
    timeout = settings.recommend_timeout_s
    pg, pg_failed = await _from_orders(rt, user)
    try:
        answer = await asyncio.wait_for(
            _checked(rt, user, pg, limit=limit, category=category, max_price=max_price, tuning=tuning),
            graph_recommend.first_call_timeout(timeout) + GRACE_S,
        )
    except Exception as exc:
        if not (is_limit_error(exc) or is_outage(exc)):
            raise
        reason = _degraded_reason(exc)
        log.warning("recommendations degraded: %s (%s)", reason, type(exc).__name__)
        if isinstance(exc, TimeoutError) or "TimedOut" in (getattr(exc, "code", None) or ""):
            # planning may be what ran out of time (a restarted server has no plan)
            graph_recommend.plan_again(rt.graph, database=settings.neo4j_database)
        answer = await degraded(rt, user, pg, reason, limit=limit, category=category, max_price=max_price)
    else:
        if pg_failed:
            answer.degraded = True
            answer.degraded_reason = "the co-purchase statistics did not answer in time: no co-purchase suggestions"
    return answer.model_dump()


async def _from_orders(rt: Runtime, user: str) -> tuple[co_purchases.Candidates, bool]:
    """PostgreSQL's part, and whether it ran out of time (then: nothing from it). Raises
    Conflict while the customer's erasure is pending."""
    timeout = rt.settings.recommend_timeout_s
    async with rt.pool.acquire() as conn:
        try:
            found = await asyncio.wait_for(
                from_orders(conn, user, min_crowd=rt.settings.min_crowd, timeout=timeout), timeout + GRACE_S
            )
        except Exception as exc:
            if not is_limit_error(exc):
                raise
            log.warning("recommendations: the order statistics did not answer in time (%s)", type(exc).__name__)
            found, failed = co_purchases.Candidates(erasing=await queue.erasure_pending(conn, user)), True
        else:
            failed = False
    if found.erasing:
        raise Conflict(f"customer '{user}' is being erased; nothing is recommended to them")
    return found, failed


def _degraded_reason(exc: BaseException) -> str:
    if is_outage(exc):
        return "the knowledge graph is unavailable"
    if isinstance(exc, Neo4jError) and "Memory" in (exc.code or ""):
        return "the graph query reached its memory limit"
    return "the graph query did not finish in time"


async def _checked(
    rt: Runtime,
    user: str,
    pg: co_purchases.Candidates,
    *,
    limit: int,
    category: str | None,
    max_price: float | None,
    tuning: Tuning,
) -> RecommendationsResponse:
    """The graph's check of the best :attr:`Tuning.graph_pool` candidates (of all of them
    under a ``category``: the statistics do not know the catalog's sub-categories), and of
    the next as many when fewer than ``limit`` pass; then the answer."""
    pool = graph_pool(pg, max_price=max_price)
    size = tuning.graph_pool if tuning.graph_pool and not category else len(pool)
    graph = await _check(rt, user, pg, pool[:size], category=category, max_price=max_price)
    found = candidates(pg, graph, {})
    if len(found) < limit and len(pool) > size:  # filters took too many: the next slice
        more = await _check(rt, user, pg, pool[size : 2 * size], category=category, max_price=max_price)
        graph.items |= more.items
        graph.names |= more.names
        found = candidates(pg, graph, {})
    buyers = await _buyers(rt, pg, [c.sku for c in found])
    for c in found:
        c.buyers = buyers.get(c.sku, 0)
    if pg.mine and graph.basis.owned == 0:  # orders the worker has not filed in the graph yet
        graph.basis.owned = len(pg.mine)
    return rank(graph.basis, found, user, limit=limit, category=category, min_crowd=rt.settings.min_crowd)


async def _check(
    rt: Runtime,
    user: str,
    pg: co_purchases.Candidates,
    skus: list[str],
    *,
    category: str | None,
    max_price: float | None,
) -> GraphCheck:
    sent = set(skus)
    named = sorted({v.sku for n in pg.neighbours if n.sku in sent for v in n.via[:2]})
    return await graph_recommend.check(
        rt.graph,
        user,
        skus,
        named=named,
        database=rt.settings.neo4j_database,
        timeout=graph_recommend.first_call_timeout(rt.settings.recommend_timeout_s),
        category=category,
        max_price=max_price,
    )


async def _buyers(rt: Runtime, pg: co_purchases.Candidates, skus: list[str]) -> dict[str, int]:
    """Distinct customers per product: known for PostgreSQL's candidates, read for the
    products only the customer's preferences led to."""
    buyers = {p.sku: p.customers for p in (*pg.popular, *pg.best, *pg.consumables.values())}
    buyers |= {n.sku: n.buyers for n in pg.neighbours}
    unknown = [s for s in skus if s not in buyers]
    if unknown:
        async with rt.pool.acquire() as conn:
            extra = await co_purchases.stats_of(conn, unknown, timeout=rt.settings.recommend_timeout_s)
        buyers |= {s: x.customers for s, x in extra.items()}
    return buyers


# -- the cheaper answer --------------------------------------------------------------------------


@dataclass
class Limits:
    """What the customer's graph snapshot says limits their suggestions: ``facets``
    (``"attribute:value"``, ``"product:SKU"``) they dislike, and their budget."""

    disliked: set[str] = field(default_factory=set)
    budget: float | None = None


def snapshot_limits(preferences: Sequence[Preference]) -> Limits:
    """The current dislikes and the first budget among a snapshot's preferences."""
    out = Limits()
    for p in preferences:
        if p.valid_to is not None:
            continue
        if p.rel == "DISLIKES":
            out.disliked.add(f"{p.attribute}:{p.value}")
            if p.sku:
                out.disliked.add(f"product:{p.sku}")
        elif p.attribute == "budget" and out.budget is None:
            try:
                out.budget = float(p.value) if p.value is not None else None
            except (TypeError, ValueError):
                out.budget = None
    return out


def best_sellers_left(
    pool: list[co_purchases.ProductStats],
    *,
    owned: set[str],
    limits: Limits,
    cap: float | None,
    under: set[str] | None,
    best_in: bool,
) -> list[Candidate]:
    """The best sellers a degraded answer may offer: not owned, not disliked, within the
    price cap, in the category (``under``: it and its sub-categories)."""
    found: list[Candidate] = []
    for p in pool:
        facets = set(p.facets) | {f"category:{p.category}", f"product:{p.sku}"}
        if p.sku in owned or facets & limits.disliked:
            continue
        if cap is not None and (p.price is None or p.price > cap):
            continue
        if under is not None and p.category not in under:
            continue
        name = p.name or p.sku
        best = p.category if best_in else None
        found.append(
            Candidate(sku=p.sku, name=name, category=p.category, price=p.price, buyers=p.customers, best_in=best)
        )
    return found


async def degraded(
    rt: Runtime,
    user: str,
    pg: co_purchases.Candidates,
    reason: str,
    *,
    limit: int,
    category: str | None,
    max_price: float | None,
) -> RecommendationsResponse:
    """The cheaper answer, from PostgreSQL only: the best sellers of the customer's
    categories (of the shop, without purchases), not owned, without what the customer's
    graph snapshot says they dislike, within the price cap, flagged ``degraded``. Stock is
    not checked: the catalog's stock lives in the graph."""
    owned = {m.sku for m in pg.mine}
    async with rt.pool.acquire() as conn:
        snapshot = (await graph_snapshots.state(conn, user, None)).snapshot
        pool = pg.best or pg.popular
        if not pool:
            pool = await co_purchases.best_sellers(conn, limit=POPULAR_POOL, timeout=rt.settings.recommend_timeout_s)
    limits = snapshot_limits(snapshot.customer.preferences if snapshot and snapshot.customer else [])
    found = best_sellers_left(
        pool,
        owned=owned,
        limits=limits,
        cap=max_price if max_price is not None else limits.budget,
        under=rt.catalog.descendants(category) if category else None,
        best_in=bool(pg.best),
    )
    basis = CustomerBasis(known=bool(pg.mine), name=None, owned=len(owned), likes=[])
    answer = rank(basis, found, user, limit=limit, category=category, min_crowd=rt.settings.min_crowd)
    answer.degraded = True
    answer.degraded_reason = f"{reason}: the best sellers of your categories instead (stock not re-checked)"
    if not owned:
        answer.explanation = "The shop's best sellers (a cheaper answer: the full recommendation was not available)"
    else:
        answer.explanation = "Best sellers in the categories you buy in (the full recommendation was not available)"
    return answer
