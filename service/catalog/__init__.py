"""The product catalog and cheap deterministic matching against it.

Runs for every chat message (before any LLM), so each vocabulary kind (categories,
styles, materials, colours, brands, product names) is compiled once into a single
trie-shaped regex: matching a message is one scan per kind, longest synonym first,
case-insensitive, on word boundaries. Category words also match their plural forms
("sectionals", "benches", "bookshelves"); spaces and hyphens inside a synonym are
interchangeable or optional ("night stand" = "nightstand" = "night-stand").

The catalog itself is ``service/catalog/data/catalog.json``, written by ``scripts/make_catalog.py``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "catalog.json"

ATTRIBUTES = ("style", "material", "color", "brand")

_SEP_CHARS = " -"
_SEP_RE = r"[\s\-]*"
_NORM_DROP = re.compile(r"[\s\-_.'’]+")
_WORD = re.compile(r"[\w'’-]+")

# a character (or "\0": a separator) -> the rest; "" marks a word's end
_Trie = dict[str, "_Trie"]


class Product(BaseModel):
    sku: str
    name: str
    category: str
    styles: list[str]
    materials: list[str]
    colors: list[str]
    brand: str
    price: float
    width_cm: int
    depth_cm: int
    height_cm: int
    description: str


class Category(BaseModel):
    name: str
    label: str
    synonyms: list[str]
    parent: str | None = None


class Vocab(BaseModel):
    """A style, material or colour; ``kind`` only for materials ("wood", "metal", …)."""

    name: str
    synonyms: list[str] = []
    kind: str | None = None


class Brand(BaseModel):
    name: str


class CatalogFile(BaseModel):
    """``data/catalog.json``: the shared vocabularies and the products."""

    categories: list[Category]
    styles: list[Vocab]
    materials: list[Vocab]
    colors: list[Vocab]
    brands: list[Brand]
    products: list[Product]


def _norm(text: str) -> str:
    """Lookup key for a matched span: lower case, separators and apostrophes dropped."""
    return _NORM_DROP.sub("", text.lower())


def _plural(word: str) -> str:
    if word.endswith(("ss", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("s"):
        return word
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith("shelf"):
        return word[:-1] + "ves"
    return word + "s"


def _plural_phrase(phrase: str) -> str:
    if " of " in phrase:  # "chest of drawers" -> "chests of drawers"
        head, _, tail = phrase.partition(" of ")
        return f"{_plural(head)} of {tail}"
    return _plural(phrase)


def _trie_regex(words: Iterable[str]) -> str:
    """One alternation shaped as a trie, so a scan costs a character walk, not N tries.

    Greedy: at each node the longer continuations are tried before stopping, so the
    longest synonym wins. Spaces/hyphens in a word become an optional separator class.
    """
    trie: _Trie = {}
    for word in words:
        node = trie
        word = word.lower()
        i = 0
        while i < len(word):
            ch = word[i]
            if ch in _SEP_CHARS:
                while i + 1 < len(word) and word[i + 1] in _SEP_CHARS:
                    i += 1
                ch = "\0"  # separator marker
            node = node.setdefault(ch, {})
            i += 1
        node[""] = {}

    def build(node: _Trie) -> str:
        ends = "" in node
        branches = []
        for ch in sorted(k for k in node if k):
            piece = _SEP_RE if ch == "\0" else re.escape(ch)
            branches.append(piece + build(node[ch]))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return build(trie)


def _compile(words: Iterable[str]) -> re.Pattern[str] | None:
    words = [w for w in words if w.strip()]
    if not words:
        return None
    return re.compile(r"(?<!\w)(" + _trie_regex(words) + r")(?!\w)", re.IGNORECASE)


class _Matcher:
    """Synonym -> canonical name, with one compiled pattern."""

    __slots__ = ("lookup", "pattern")

    def __init__(self, synonyms: dict[str, str]):
        self.lookup = {_norm(s): canon for s, canon in synonyms.items()}
        self.pattern = _compile(synonyms)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        if not text or self.pattern is None:
            return []
        out = []
        for m in self.pattern.finditer(text):
            canon = self.lookup.get(_norm(m.group(1)))
            if canon is not None:
                out.append((m.start(1), m.end(1), canon))
        return out

    def names(self, text: str) -> list[str]:
        return list(dict.fromkeys(canon for _, _, canon in self.spans(text)))


class Catalog:
    def __init__(self, data: CatalogFile) -> None:
        self.products: list[Product] = data.products
        self.category_info: dict[str, Category] = {c.name: c for c in data.categories}
        self.style_info = {s.name: s for s in data.styles}
        self.material_info = {m.name: m for m in data.materials}
        self.color_info = {c.name: c for c in data.colors}
        self.categories: list[str] = list(self.category_info)
        self.styles: list[str] = list(self.style_info)
        self.materials: list[str] = list(self.material_info)
        self.colors: list[str] = list(self.color_info)
        self.brands: list[str] = [b.name for b in data.brands]
        self._by_sku = {p.sku: p for p in self.products}
        self._brand_names = {b.lower(): b for b in self.brands}
        # parent -> all descendants (a "sofa" search includes sectionals and loveseats)
        self._descendants = self._category_tree()

        category_synonyms = self._category_synonyms()
        self._categories = _Matcher(category_synonyms)
        self._styles = _Matcher(self._synonyms(self.style_info.values()))
        self._materials = _Matcher(self._synonyms(self.material_info.values()))
        self._colors = _Matcher(self._synonyms(self.color_info.values()))
        self._brands = _Matcher(self._brand_synonyms())
        self._product_names = _Matcher(self._product_name_synonyms())

        self._by_first: dict[str, list[Product]] = {}
        for p in self.products:
            self._by_first.setdefault(p.name.split()[0].lower(), []).append(p)
        self._first_word_pattern = self._first_word_then_category(category_synonyms)

    def _category_tree(self) -> dict[str, set[str]]:
        """Each category with every category under it (a cycle in the file stops the walk)."""
        descendants: dict[str, set[str]] = {c: {c} for c in self.categories}
        for c in self.categories:
            parent = self.category_info[c].parent
            seen = set()
            while parent and parent in descendants and parent not in seen:
                seen.add(parent)
                descendants[parent].add(c)
                parent = self.category_info[parent].parent
        return descendants

    def _category_synonyms(self) -> dict[str, str]:
        """A category's name and synonyms, each also in the plural, -> the category."""
        found: dict[str, str] = {}
        for info in self.category_info.values():
            for s in [info.name, *info.synonyms]:
                s = s.lower()
                found.setdefault(s, info.name)
                found.setdefault(_plural_phrase(s), info.name)
        return found

    def _brand_synonyms(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for b in self.brands:
            found[b] = b
            found[b.replace("&", "and")] = b
            first = b.split()[0]
            if first.lower() not in ("casa", "atelier") and len(b.split()) > 1:
                found.setdefault(first, b)  # "Marlowe" for "Marlowe House"
        return found

    def _product_name_synonyms(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for p in self.products:
            found[p.name] = p.sku
            found.setdefault(_plural_phrase(p.name.lower()), p.sku)  # "two Noor Dining Armchairs"
        return found

    def _first_word_then_category(self, category_synonyms: dict[str, str]) -> re.Pattern[str]:
        """A product's first word followed (within two words) by a category word ("the
        Harlow sectional"); resolved against products of that first word in that category.

        Words are split by spaces and hyphens, and a word may hold a few hyphens of its own
        ("mid-century"): each blank and hyphen run is read once (possessive), so a run of
        hyphens is never split between words in every possible way."""
        return re.compile(
            r"(?<!\w)("
            + _trie_regex(self._by_first)
            + r")(?:[\s\-]++[\w'’]++(?:-[\w'’]++){0,3}?){0,2}?[\s\-]++("
            + _trie_regex(category_synonyms)
            + r")(?!\w)",
            re.IGNORECASE,
        )

    @staticmethod
    def _synonyms(items: Iterable[Vocab]) -> dict[str, str]:
        out: dict[str, str] = {}
        for v in items:
            for s in [v.name, *v.synonyms]:
                out.setdefault(s.lower(), v.name)
        return out

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        return _load(Path(path) if path is not None else DEFAULT_PATH)

    # -- lookups --------------------------------------------------------------------------
    def product(self, sku: str) -> Product | None:
        return self._by_sku.get(sku)

    def descendants(self, category: str) -> set[str]:
        """The category and every category under it."""
        return self._descendants.get(category, {category})

    def canonical(self, attribute: str, value: str) -> str | None:
        """The catalog's own name for a preference value (a node that exists in the shared
        graph), or None when the catalog has no such style, material, colour, category,
        brand or SKU: such a value is the customer's own words, kept per customer."""
        if attribute == "product":
            return value if value in self._by_sku else None
        if attribute == "brand":
            return self._brand_names.get(value.strip().lower())
        vocabularies: dict[str, Mapping[str, object]] = {
            "style": self.style_info,
            "material": self.material_info,
            "color": self.color_info,
            "category": self.category_info,
        }
        known = vocabularies.get(attribute)
        name = value.strip().lower()
        return name if known is not None and name in known else None

    def vocabulary(self) -> dict[str, list[str]]:
        """Every shared vocabulary node the catalog defines, by graph label."""
        return {
            "Style": self.styles,
            "Material": self.materials,
            "Color": self.colors,
            "Category": self.categories,
            "Brand": self.brands,
        }

    def material_kind(self, material: str) -> str | None:
        info = self.material_info.get(material)
        return info.kind if info else None

    # -- matching text ----------------------------------------------------------------------
    def category_spans(self, text: str) -> list[tuple[int, int, str]]:
        return self._categories.spans(text)

    def style_spans(self, text: str) -> list[tuple[int, int, str]]:
        return self._styles.spans(text)

    def material_spans(self, text: str) -> list[tuple[int, int, str]]:
        return self._materials.spans(text)

    def color_spans(self, text: str) -> list[tuple[int, int, str]]:
        return self._colors.spans(text)

    def brand_spans(self, text: str) -> list[tuple[int, int, str]]:
        return self._brands.spans(text)

    def match_categories(self, text: str) -> list[str]:
        return self._categories.names(text)

    def match_styles(self, text: str) -> list[str]:
        # "mid-century modern" must not also report "modern": the trie takes the longest
        return self._styles.names(text)

    def match_materials(self, text: str) -> list[str]:
        return self._materials.names(text)

    def match_colors(self, text: str) -> list[str]:
        return self._colors.names(text)

    def match_brands(self, text: str) -> list[str]:
        return self._brands.names(text)

    def product_spans(self, text: str) -> list[tuple[int, int, Product]]:
        """Products named in the text with their spans, in order of appearance."""
        if not text:
            return []
        found = [(s, e, self._by_sku[sku]) for s, e, sku in self._product_names.spans(text)]
        taken = [(s, e) for s, e, _ in found]
        for m in self._first_word_pattern.finditer(text):
            s, e = m.start(), m.end()
            if any(s < te and ts < e for ts, te in taken):
                continue
            category = self._categories.lookup.get(_norm(m.group(2)))
            candidates = self._by_first.get(m.group(1).lower(), [])
            exact = [p for p in candidates if p.category == category]
            if not exact and category:
                under = self.descendants(category)
                exact = [p for p in candidates if p.category in under]
            if len(exact) == 1:
                found.append((s, e, exact[0]))
                taken.append((s, e))
        found.sort(key=lambda t: t[0])
        return found

    def match_products(self, text: str) -> list[Product]:
        seen: dict[str, Product] = {}
        for _, _, p in self.product_spans(text):
            seen.setdefault(p.sku, p)
        return list(seen.values())

    # -- ranking -------------------------------------------------------------------------------
    def _has(self, product: Product, attribute: str, value: str) -> bool:
        value = value.lower()
        if attribute == "style":
            return value in product.styles
        if attribute == "material":
            # a generic kind ("wood", "metal") matches any material of that kind
            return value in product.materials or any(self.material_kind(m) == value for m in product.materials)
        if attribute == "color":
            return value in product.colors
        if attribute == "brand":
            return value == product.brand.lower()
        return False

    @staticmethod
    def _reason(attribute: str, value: str) -> str:
        return f"{value} style" if attribute == "style" else value

    def find(
        self,
        *,
        category: str | None = None,
        text: str | None = None,
        prefer: dict[str, list[str]] | None = None,
        avoid: dict[str, list[str]] | None = None,
        max_price: float | None = None,
        limit: int = 5,
    ) -> list[tuple[Product, float, list[str]]]:
        """Products of ``category`` (and its sub-categories), ranked for a customer.

        ``text`` adds what it names (category if none was given, styles, materials,
        colours, brands) as explicit wishes, weighted above remembered preferences, plus
        a small bonus for other words found in a product's name or description.
        ``prefer``/``avoid`` map "style"/"material"/"color"/"brand" to values. Scores:
        +2 per explicit wish met, +1 per preference met, -2 per avoided value present.
        Ties break by SKU so results are stable.
        """
        wishes: dict[str, list[str]] = {}
        keywords: set[str] = set()
        if text:
            if category is None:
                found = self.match_categories(text)
                category = found[0] if found else None
            wishes = self._wishes(text)
            keywords = {w.lower() for w in _WORD.findall(text) if len(w) > 3}
        pool = self.products
        if category is not None:
            under = self.descendants(category)
            pool = [p for p in pool if p.category in under]
        if max_price is not None:
            pool = [p for p in pool if p.price <= max_price]
        wanted = ((2.0, wishes), (1.0, prefer or {}))
        scored = [(p, *self._score(p, wanted, avoid or {}, keywords, max_price)) for p in pool]
        scored.sort(key=lambda t: (-t[1], t[0].sku))
        return scored[: max(limit, 0)]

    def _wishes(self, text: str) -> dict[str, list[str]]:
        """What a text asks for, by attribute."""
        return {
            "style": self.match_styles(text),
            "material": self.match_materials(text),
            "color": self.match_colors(text),
            "brand": [b.lower() for b in self.match_brands(text)],
        }

    def _score(
        self,
        p: Product,
        wanted: Iterable[tuple[float, dict[str, list[str]]]],
        avoid: dict[str, list[str]],
        keywords: set[str],
        max_price: float | None,
    ) -> tuple[float, list[str]]:
        """One product's score and the reasons for it (see :meth:`find`)."""
        score = 0.0
        reasons: list[str] = []
        for weight, spec in wanted:
            for attribute, values in spec.items():
                for v in values or []:
                    if attribute in ATTRIBUTES and self._has(p, attribute, v):
                        score += weight
                        reason = self._reason(attribute, v)
                        if reason not in reasons:
                            reasons.append(reason)
        for attribute, values in avoid.items():
            for v in values or []:
                if attribute in ATTRIBUTES and self._has(p, attribute, v):
                    score -= 2.0
                    reasons.append(f"has {self._reason(attribute, v)} (avoided)")
        if keywords:
            words = {w.lower() for w in _WORD.findall(f"{p.name} {p.description}")}
            hits = len(keywords & words)
            score += 0.1 * min(hits, 5)
        if max_price is not None:
            reasons.append(f"within budget (${p.price:,.0f})")
        return round(score, 3), reasons


@functools.cache
def _load(path: Path) -> Catalog:
    with open(path, encoding="utf-8") as f:
        return Catalog(CatalogFile.model_validate(json.load(f)))
