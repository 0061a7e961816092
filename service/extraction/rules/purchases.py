"""Purchases: "I bought the Arlo sofa last week (order #A123) for $2,499".

A purchase verb ("bought", "ordered", "splurged on") with or without a subject, followed by
a catalog product or category; the sentence gives the order id, the price, the quantity
("four bar stools") and the date (the sentence's first date, else the message's time).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import datetime

from service.catalog import Catalog
from service.extraction.models import Purchase
from service.extraction.rules.amounts import amount
from service.extraction.rules.lexicon import (
    ARTICLES,
    ORDER_ID,
    PHRASE_BREAK,
    PRICE,
    PURCHASE,
    PURCHASE_END,
    QTY_WORDS,
    QUANTITY,
)


def find_purchases(
    sentence: str, at: datetime, date_value: datetime | None, catalog: Catalog
) -> tuple[list[Purchase], tuple[int, int] | None]:
    """The purchases a sentence reports, and the span that names them (no product interest)."""
    m = PURCHASE.search(sentence)
    if not m:
        return [], None
    start = m.end()
    end_m = PURCHASE_END.search(sentence, start)
    end = end_m.start() if end_m else len(sentence)
    span = sentence[start:end]
    items = _items(span, _order_id(sentence), date_value or at, catalog)
    _set_prices(items, [p for p in (_price(pm) for pm in PRICE.finditer(span)) if p], catalog)
    return items, ((start, end) if items else None)


def _items(span: str, order_id: str | None, when: datetime, catalog: Catalog) -> list[Purchase]:
    """Catalog products first, then categories outside them ("a new couch" -> "new couch")."""
    products = catalog.product_spans(span)
    breaks = [m.end() for m in PHRASE_BREAK.finditer(span)]  # in order; they never overlap
    items = [
        Purchase(
            product_name=p.name,
            sku=p.sku,
            category=p.category,
            quantity=_quantity(span, s),
            price=None,
            order_id=order_id,
            at=when,
        )
        for s, _, p in products
    ]
    taken = [(s, e) for s, e, _ in products]
    for s, e, category in catalog.category_spans(span):
        if any(s < te and ts < e for ts, te in taken):
            continue
        items.append(
            Purchase(
                product_name=_noun_phrase(span, e, breaks, category),
                category=category,
                quantity=_quantity(span, s),
                order_id=order_id,
                at=when,
            )
        )
        taken.append((s, e))
    return items


def _noun_phrase(span: str, end: int, breaks: list[int], category: str) -> str:
    """The noun phrase ending in the category word at ``end``: "a sofa and a new couch" -> "new
    couch" (``breaks``: where each ``PHRASE_BREAK`` of the span ends)."""
    i = bisect_right(breaks, end)
    words = span[breaks[i - 1] if i else 0 : end].strip().split()[-5:]
    return ARTICLES.sub("", " ".join(words)).strip() or category


def _set_prices(items: list[Purchase], prices: list[float], catalog: Catalog) -> None:
    """One item takes the price the sentence names, else its catalog price; several items
    take their catalog prices (a stated price could be any one's, or the total)."""

    def listed(sku: str | None) -> float | None:
        product = catalog.product(sku) if sku else None
        return product.price if product else None

    if len(items) == 1:
        items[0].price = prices[0] if prices else listed(items[0].sku)
        return
    for item in items:
        if item.sku:
            item.price = listed(item.sku)


def _order_id(sentence: str) -> str | None:
    order = ORDER_ID.search(sentence)
    if not order:
        return None
    candidate = order.group("id") or order.group("id2")
    return candidate.upper() if candidate and any(ch.isdigit() for ch in candidate) else None


def _price(m: re.Match[str]) -> float | None:
    if m.group(1):
        value = amount(m.group(1) + (f".{m.group(2)}" if m.group(2) else ""), m.group(3))
    else:
        value = amount(m.group(4), None)
    return value if value and value > 0 else None


def _quantity(span: str, at: int) -> int:
    """The quantity just before the item at ``at``: "four bar stools", "a pair of", "a set of six"."""
    m = QUANTITY.search(span[max(0, at - 40) : at])
    if not m:
        return 1
    for w in reversed(m.group(1).lower().split()):
        if w.isdigit():
            return max(1, min(int(w), 99))
        if w in QTY_WORDS:
            return QTY_WORDS[w]
    return 1
