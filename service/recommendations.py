"""Recommendations for one customer: candidates from the graph (:mod:`graph.recommend`),
scored and explained here by pure functions.

The score blends three normalised signals (each 0..1 within one answer):

- ``co``: recency-weighted co-purchase pairs (customers who bought what you bought also
  bought it, recent purchases counting more), divided by the best candidate's;
- ``pref``: the strengths of the current preferences the product meets (style, category,
  material, colour, brand, a liked product), capped at two preferences' worth;
- ``pop``: how often the shop sold it (log scale), so ties go to proven products.

``score = 0.6·co + 0.3·pref + 0.1·pop`` for a customer with purchases; a customer without
any (cold start) has no co-purchase signal, so ``score = 0.6·pref + 0.4·pop`` over the
products that meet a preference (all products when none does): popular in their
preferred categories and styles, and said to be that. Dislikes, stock, ownership,
price caps and the budget are filters in the query, not score terms.
"""

from __future__ import annotations

import math
from typing import Any

from neo4j import AsyncDriver

from graph import recommend as graph_recommend
from graph.recommend import Candidate, CustomerBasis

W_CO, W_PREF, W_POP = 0.6, 0.3, 0.1
COLD_PREF, COLD_POP = 0.6, 0.4
PREF_CAP = 2.0

_ATTRIBUTE_WORD = {
    "style": "style",
    "category": "category",
    "material": "material",
    "color": "colour",
    "brand": "brand",
}


def score(candidate: Candidate, *, best_co: float, best_buyers: int, cold: bool) -> float:
    """The blended score of one candidate (see the module docstring)."""
    co = candidate.co_weight / best_co if best_co > 0 else 0.0
    pref = min(sum(float(m.get("strength") or 0.5) for m in candidate.matched), PREF_CAP) / PREF_CAP
    pop = math.log1p(candidate.buyers) / math.log1p(best_buyers) if best_buyers > 0 else 0.0
    if cold:
        return COLD_PREF * pref + COLD_POP * pop
    return W_CO * co + W_PREF * pref + W_POP * pop


def preference_text(attribute: str, name: str) -> str:
    if attribute == "category":
        return f"in a category you like ({name})"
    if attribute == "product":
        return f"a product you said you like ({name})"
    if attribute == "style":
        return f"matches your preference for {name} style"
    return f"matches your preference for {name}"


def reasons(candidate: Candidate, *, cold: bool) -> list[dict[str, Any]]:
    """Why this product: as data and as a sentence each, strongest first."""
    out: list[dict[str, Any]] = []
    for via in candidate.via[:2]:
        n = int(via["buyers"])
        who = "1 customer who also bought" if n == 1 else f"{n} customers who also bought"
        out.append(
            {
                "kind": "co_purchase",
                "text": f"bought by {who} the {via['name']}",
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
    if (cold or not candidate.via) and candidate.buyers > 0:
        times = "once" if candidate.buyers == 1 else f"{candidate.buyers} times"
        out.append({"kind": "popular", "text": f"popular in the shop (bought {times})", "purchases": candidate.buyers})
    return out


def path(candidate: Candidate, user: str, name: str | None) -> tuple[list[dict[str, str]], str]:
    """The graph path behind the strongest reason, as nodes and as Cypher-like text. Other
    customers appear only as a count."""
    me = {"label": "Customer", "key": user, "name": name or user}
    target = {"label": "Product", "key": candidate.sku, "name": candidate.name}
    if candidate.via:
        via = candidate.via[0]
        n = int(via["buyers"])
        group = {"label": "Customer", "key": f"co-buyers:{n}", "name": f"{n} customer{'s' if n != 1 else ''}"}
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
    return [target], f"({candidate.name}) — bought {candidate.buyers} times in the shop"


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
    basis: CustomerBasis, found: list[Candidate], user: str, *, limit: int, category: str | None = None
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
        why = reasons(c, cold=cold)
        if not why:  # nothing to say for it (never bought, no preference met): not a recommendation
            continue
        if len(items) >= limit:
            break
        nodes, text = path(c, user, basis.name)
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
        "items": items,
    }


async def recommend(
    driver: AsyncDriver,
    user: str,
    *,
    database: str,
    limit: int = 10,
    category: str | None = None,
    max_price: float | None = None,
) -> dict[str, Any]:
    """Recommendations for ``user`` (a customer LOFT does not know yet gets the cold-start answer)."""
    basis, found = await graph_recommend.candidates(
        driver, user, database=database, category=category, max_price=max_price
    )
    return rank(basis, found, user, limit=limit, category=category)
