"""A customer's graph facts as types: what :mod:`graph.reads` returns and every door reads.

One shape from the Cypher read to the door: the retriever's hot path, the profile, the chat
reply, the graph view and the snapshots in PostgreSQL (JSON of :class:`CustomerFacts`) all
hold these models, never loose dicts. Purchases, interests and entities are shown to
clients as they are read, so their models are the wire contract's
(:mod:`loft_memory.models`); a preference carries more here (its product's sku, when it
was first and last said) than the summary shows of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from loft_memory.models import EntityFact, InterestFact, PurchaseFact

# a preference's target: a vocabulary node's name, or a product's name or sku
FactValue = str | int | float | None


class Preference(BaseModel):
    """A PREFERS or DISLIKES relationship: current (``valid_to`` None) or closed."""

    model_config = ConfigDict(frozen=True)

    rel: str  # PREFERS | DISLIKES
    attribute: str
    value: FactValue
    sku: str | None = None
    strength: float | None = None
    confidence: float | None = None
    mentions: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source_message_ids: list[int] | None = None


class CustomerFacts(BaseModel):
    """The Customer node and what hangs off it, each kind newest first and bounded
    (:data:`graph.reads.FACT_LIMIT`, :data:`graph.reads.ENTITY_LIMIT`)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    preferences: list[Preference] = Field(default_factory=list)
    purchases: list[PurchaseFact] = Field(default_factory=list)
    interests: list[InterestFact] = Field(default_factory=list)
    entities: list[EntityFact] = Field(default_factory=list)


@dataclass(frozen=True)
class FactsRead:
    """One customer's facts as read for the retriever, with each entity's embedding (in
    ``facts.entities``' order; kept apart: the cache holds them as one matrix)."""

    facts: CustomerFacts
    embeddings: list[list[float]]

    @classmethod
    def parse(cls, record: Mapping[str, Any]) -> FactsRead:
        """A read's record (temporal values already native, see :func:`graph.reads.native`)."""
        entities = [dict(e) for e in record.get("entities") or []]
        embeddings = [e.pop("embedding") for e in entities]
        return cls(CustomerFacts.model_validate({**record, "entities": entities}), embeddings)


# -- the graph view's read (graph.reads.customer_graph) ------------------------------------------


class ViewFact(BaseModel):
    """A relationship from the customer to a product or a vocabulary node."""

    type: str
    label: str | None = None  # None: a node outside the allow-listed labels (not drawn)
    key: FactValue = None
    name: FactValue = None
    attribute: str | None = None
    current: bool = True
    at: datetime | None = None
    order_id: str | int | None = None


class CatalogLink(BaseModel):
    """A product's category or style, for a product among the customer's facts."""

    sku: str
    type: str
    label: str | None = None
    name: str | None = None


class ViewEntity(BaseModel):
    key: str
    name: str | None = None
    type: str | None = None
    relation: str | None = None
    at: datetime | None = None


class EntityLink(BaseModel):
    """A RELATED_TO relationship between two entities the customer mentioned."""

    source: str
    target: str
    type: str | None = None
    current: bool = True


class GraphRows(BaseModel):
    """The customer's neighbourhood as the graph view reads it."""

    name: str | None = None
    facts: list[ViewFact] = Field(default_factory=list)
    catalog: list[CatalogLink] = Field(default_factory=list)
    entities: list[ViewEntity] = Field(default_factory=list)
    related: list[EntityLink] = Field(default_factory=list)
