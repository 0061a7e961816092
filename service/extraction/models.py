"""What extraction produces from one chat message: typed, JSON-schema friendly facts.

Both extractors (the deterministic ``RuleExtractor`` and the LLM one) return an
``Extraction``; the LLM is asked for exactly this schema (``Extraction.model_json_schema()``),
so nothing here uses custom types. Values are canonical catalog names where one matches
("modern", "walnut", "sectional"); a product preference's value is its SKU.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from graph.schema import RELATION_TYPES

# a price or budget above this is not a furniture store's (and "$" followed by hundreds of
# digits must not become an infinite number in the graph)
MAX_AMOUNT = 10_000_000


def _utc_if_naive(value: datetime) -> datetime:
    """A date without a zone (an LLM's "2024-05-01") is read as UTC, never stored naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


When = Annotated[datetime, AfterValidator(_utc_if_naive)]

Attribute = Literal["style", "category", "material", "color", "brand", "size", "budget", "product", "other"]
EntityType = Literal["person", "pet", "place", "room", "event", "organization", "thing"]
MemoryKind = Literal["fact", "preference", "event", "insight", "pattern"]

# Relationship types that may reach the graph come from the graph's allow-list, never
# from text (Relation.type maps anything else to RELATED_TO).


class Preference(BaseModel):
    attribute: Attribute
    value: str = Field(
        description="canonical catalog name (style/material/colour/category/brand), "
        "product SKU, budget amount as digits ('2000'), or a short phrase ('large')"
    )
    polarity: Literal["prefers", "dislikes"]
    strength: float = Field(ge=0, le=1, description="love/hate 0.9, prefer/want 0.7, like/don't like 0.6")
    confidence: float = Field(ge=0, le=1)
    replaces: bool = Field(
        default=False, description="an explicit change of mind: 'actually', 'now', 'no longer', 'instead'"
    )


class Purchase(BaseModel):
    product_name: str = Field(min_length=1, max_length=200)
    sku: str | None = None
    category: str | None = None
    quantity: int = Field(default=1, ge=1, le=1000)
    price: float | None = Field(default=None, ge=0, le=MAX_AMOUNT, allow_inf_nan=False)
    order_id: str | None = Field(default=None, max_length=200)
    at: When | None = None


class ProductInterest(BaseModel):
    sku: str | None = None
    category: str | None = None
    kind: Literal["asked_about", "viewed"] = "asked_about"


class Entity(BaseModel):
    type: EntityType
    name: str = Field(description="as written: 'my sister Anna' -> 'Anna', 'the living room' -> 'living room'")
    relation: str | None = Field(
        default=None, description="relation to the customer: 'sister', 'dog', 'lives in', 'room'"
    )
    at: When | None = None


class Relation(BaseModel):
    source: str = Field(description="an extracted entity name, or 'customer'")
    target: str = Field(description="an extracted entity name, or 'customer'")
    type: str = Field(description="one of " + ", ".join(RELATION_TYPES))

    @field_validator("type", mode="before")
    @classmethod
    def _allowed(cls, value: object) -> object:
        """Upper-snake the type; anything off the allow-list becomes RELATED_TO."""
        if isinstance(value, str):
            value = re.sub(r"[^A-Z0-9]+", "_", value.strip().upper()).strip("_")
            return value if value in RELATION_TYPES else "RELATED_TO"
        return value


class MemoryCandidate(BaseModel):
    kind: MemoryKind
    text: str = Field(description="standalone third-person statement naming the speaker and absolute dates")
    importance: float = Field(ge=0, le=1)
    at: When | None = None


class Extraction(BaseModel):
    customer_name: str | None = None
    preferences: list[Preference] = []
    purchases: list[Purchase] = []
    interests: list[ProductInterest] = []
    entities: list[Entity] = []
    relations: list[Relation] = []
    memories: list[MemoryCandidate] = []

    def is_empty(self) -> bool:
        return not (
            self.customer_name
            or self.preferences
            or self.purchases
            or self.interests
            or self.entities
            or self.relations
            or self.memories
        )
