"""Product interest: products and categories a request or question names ("show me
sectionals", "do you have oak dining tables?"), or that the customer saw ("I saw the Arlo
sofa on your site"). What is disliked or already bought is no interest."""

from __future__ import annotations

from service.catalog import Catalog
from service.extraction.models import ProductInterest
from service.extraction.rules.lexicon import INTEREST_CUE, VIEWED_CUE


def find_interests(
    sentence: str,
    question: bool,
    disliked: list[tuple[int, int]],
    purchase_span: tuple[int, int] | None,
    catalog: Catalog,
) -> list[ProductInterest]:
    cue = INTEREST_CUE.search(sentence)
    viewed = VIEWED_CUE.search(sentence)
    if not (cue or viewed or question):
        return []
    kind = "viewed" if viewed and not cue else "asked_about"

    def excluded(s: int) -> bool:
        if purchase_span and purchase_span[0] <= s < purchase_span[1]:
            return True
        return any(ds <= s < de for ds, de in disliked)

    found: list[ProductInterest] = []
    products = catalog.product_spans(sentence)
    for s, _, p in products:
        if not excluded(s):
            found.append(ProductInterest(sku=p.sku, category=p.category, kind=kind))
    for s, e, category in catalog.category_spans(sentence):
        if any(s < pe and ps < e for ps, pe, _ in products) or excluded(s):
            continue
        found.append(ProductInterest(category=category, kind=kind))
    return found
