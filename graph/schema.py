"""The graph's vocabulary, defined once: labels, relationship types and the keys that name
a fact across tiers. Every module that writes or reads these imports them from here.

Labels and relationship types cannot be Cypher parameters, so the only ones that ever
reach query text are the members of these fixed allow-lists.
"""

from __future__ import annotations

from typing import Literal

Polarity = Literal["prefers", "dislikes"]

# a stance in extraction <-> its relationship type in the graph
PREFERENCE_TYPES: dict[str, str] = {"prefers": "PREFERS", "dislikes": "DISLIKES"}
POLARITY_OF: dict[str, str] = {rel: polarity for polarity, rel in PREFERENCE_TYPES.items()}

# preference attribute -> (node label, key property) of what the customer prefers
TARGET_LABELS: dict[str, tuple[str, str]] = {
    "style": ("Style", "name"),
    "category": ("Category", "name"),
    "material": ("Material", "name"),
    "color": ("Color", "name"),
    "brand": ("Brand", "name"),
    "product": ("Product", "sku"),
}

# shared vocabulary nodes the catalog defines (never created from what a customer says)
VOCABULARY_LABELS = ("Style", "Material", "Color", "Category", "Brand")

# relationships between a customer's entities; anything else an extractor says is RELATED_TO
RELATION_TYPES = (
    "FAMILY_OF",
    "PARTNER_OF",
    "FRIEND_OF",
    "PET_OF",
    "LIVES_IN",
    "WORKS_AT",
    "ATTENDED",
    "LOCATED_IN",
    "PART_OF",
    "RELATED_TO",
)


def fact_key(polarity: str, attribute: str, value: object) -> str:
    """The identity of a preference fact in every tier (a long-term memory records the keys
    it states; the retriever counts a fact once whichever tier it comes from)."""
    return f"{polarity}:{attribute}:{str(value).lower()}"


def entity_key(type_: str, name: str) -> str:
    """Stable per-customer key of an extracted entity: type + normalised name."""
    return f"{type_}:{' '.join(name.lower().split())}"
