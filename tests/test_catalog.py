"""The sample catalog and matching chat text against it (pure Python, no stores)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from service.catalog import DEFAULT_PATH, Catalog

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def _product_in(catalog: Catalog, category: str):
    return next(p for p in catalog.products if p.category == category)


# -- the data -------------------------------------------------------------------------------


def test_catalog_has_about_300_consistent_products(catalog):
    assert 250 <= len(catalog.products) <= 350
    skus = [p.sku for p in catalog.products]
    assert len(set(skus)) == len(skus)
    assert len({p.name for p in catalog.products}) == len(catalog.products)
    assert len(catalog.categories) >= 25
    assert 10 <= len(catalog.brands) <= 14
    for p in catalog.products:
        assert p.category in catalog.categories
        assert set(p.styles) <= set(catalog.styles)
        assert set(p.materials) <= set(catalog.materials)
        assert set(p.colors) <= set(catalog.colors)
        assert p.brand in catalog.brands
        assert p.price > 0 and p.width_cm > 0 and p.depth_cm > 0 and p.height_cm > 0
        assert p.description


def test_prices_are_plausible_per_category(catalog):
    def mean(category):
        prices = [p.price for p in catalog.products if p.category == category]
        return sum(prices) / len(prices)

    assert mean("sectional") > mean("sofa") > mean("armchair") > mean("side table")
    assert mean("dining table") > mean("dining chair")
    assert all(p.price < 6000 for p in catalog.products)


def test_generator_is_deterministic_and_matches_the_committed_json():
    spec = importlib.util.spec_from_file_location("make_catalog", ROOT / "scripts" / "make_catalog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.make() == module.make()
    assert module.make() == json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


def test_load_is_cached_and_lookup_by_sku(catalog):
    assert Catalog.load() is catalog
    p = catalog.products[0]
    assert catalog.product(p.sku) == p
    assert catalog.product("LOFT-NOPE-0000") is None


# -- matching vocabulary ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I need a new couch", ["sofa"]),
        ("show me sectionals", ["sectional"]),
        ("any corner sofas or L-shaped couches?", ["sectional"]),
        ("two night stands and a bedside table", ["nightstand"]),
        ("BOOKSHELVES and benches", ["bookshelf", "bench"]),
        ("a Dining Table and six dining chairs", ["dining table", "dining chair"]),
        ("a sofa bed for the guest room", ["sleeper sofa"]),
        ("we need barstools", ["bar stool"]),
        ("a chest of drawers", ["dresser"]),
        ("patio sets", ["outdoor dining set"]),
        ("glass tables", ["table"]),
        ("my sofabed", ["sleeper sofa"]),  # spaces and hyphens inside a synonym are optional
        ("a tabletop in the bedrooms", []),  # no half-word matches
        ("tablespoon of sofas-ish", ["sofa"]),
    ],
)
def test_match_categories(catalog, text, expected):
    assert catalog.match_categories(text) == expected


def test_match_styles_prefers_the_longest_synonym(catalog):
    assert catalog.match_styles("I love mid-century modern and Scandi stuff") == ["mid-century modern", "scandinavian"]
    assert catalog.match_styles("midcentury vibes, boho touches") == ["mid-century modern", "bohemian"]
    assert catalog.match_styles("MODERN") == ["modern"]


def test_match_materials_colors_and_brands(catalog):
    assert catalog.match_materials("walnut or oak, navy velvet and Bouclé") == ["walnut", "oak", "velvet", "boucle"]
    assert catalog.match_materials("Oakridge") == []  # word boundaries
    assert catalog.match_materials("wicker and faux leather") == ["rattan", "faux leather"]
    assert catalog.match_colors("navy blue, off-white or gray") == ["navy", "cream", "grey"]
    assert catalog.match_brands("anything from Marlowe or Oakridge and Co?") == ["Marlowe House", "Oakridge & Co"]


def test_match_products_by_full_name_and_by_first_word_plus_category(catalog):
    sectional = _product_in(catalog, "sectional")
    first = sectional.name.split()[0]
    assert catalog.match_products(f"I love the {sectional.name}!") == [sectional]
    assert catalog.match_products(f"do you have the {first} sectional?") == [sectional]
    assert catalog.match_products(f"the {first.lower()} corner sofa") == [sectional]
    assert catalog.match_products(f"{first} is my cousin") == []  # first word alone is not enough
    chair = _product_in(catalog, "dining chair")
    assert catalog.match_products(f"two {chair.name}s") == [chair]  # plural of a product name


def test_matching_is_unicode_safe_and_never_raises(catalog):
    for text in ["", "🛋️" * 1000, "naïve café — sofa™", "\x00\uffff", "MATCH (n) DETACH DELETE n"]:
        catalog.match_categories(text)
        catalog.match_products(text)
    assert catalog.match_categories("café sofa 🛋️") == ["sofa"]


def test_matching_is_fast(catalog):
    text = "I really love the look of a navy velvet sofa with walnut legs for our living room"
    start = time.perf_counter()
    for _ in range(200):
        catalog.match_categories(text), catalog.match_styles(text), catalog.match_materials(text)
        catalog.match_colors(text), catalog.match_brands(text), catalog.match_products(text)
    per_message_ms = (time.perf_counter() - start) / 200 * 1000
    assert per_message_ms < 1.0


# -- ranking ------------------------------------------------------------------------------------------------


def test_find_includes_subcategories_and_ranks_by_preferences(catalog):
    results = catalog.find(category="sofa", prefer={"material": ["walnut"], "style": ["modern"]}, limit=50)
    categories = {p.category for p, _, _ in results}
    assert categories <= catalog.descendants("sofa") and len(categories) > 1
    top, _score, reasons = results[0]
    assert "walnut" in top.materials and "modern" in top.styles
    assert reasons[:2] == ["modern style", "walnut"] or set(reasons[:2]) == {"modern style", "walnut"}
    scores = [s for _, s, _ in results]
    assert scores == sorted(scores, reverse=True)


def test_find_avoids_disliked_values_and_respects_budget(catalog):
    results = catalog.find(category="coffee table", avoid={"material": ["glass"]}, max_price=800, limit=100)
    assert results and all(p.price <= 800 for p, _, _ in results)
    glass = [i for i, (p, _, _) in enumerate(results) if "glass" in p.materials]
    clean = [i for i, (p, _, _) in enumerate(results) if "glass" not in p.materials]
    assert not glass or min(glass) > max(clean)


def test_find_generic_material_kind_and_text_wishes(catalog):
    results = catalog.find(category="dining table", prefer={"material": ["wood"]}, limit=100)
    assert all(catalog.material_kind(m) == "wood" for m in results[0][0].materials[:1])
    from_text = catalog.find(text="navy velvet sofa", limit=3)
    assert from_text and all(p.category in catalog.descendants("sofa") for p, _, _ in from_text)
    assert "velvet" in from_text[0][0].materials or "navy" in from_text[0][0].colors


def test_find_ties_break_by_sku_and_limit_applies(catalog):
    results = catalog.find(category="rug", limit=4)
    assert len(results) == 4
    assert [p.sku for p, _, _ in results] == sorted(p.sku for p, _, _ in results)
    assert catalog.find(category="rug", limit=4) == results
