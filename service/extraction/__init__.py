"""Turning chat messages into typed facts: preferences, purchases, interests, entities,
relations and standalone memories.

``RuleExtractor`` is the deterministic default (no network, sub-millisecond); an LLM
extractor produces the same ``Extraction`` model when ``OPENAI_API_KEY`` is set.
"""

from graph.schema import RELATION_TYPES
from service.extraction.dates import DateMention, find_dates, format_day, resolve_dates
from service.extraction.models import (
    Attribute,
    Entity,
    Extraction,
    MemoryCandidate,
    Preference,
    ProductInterest,
    Purchase,
    Relation,
)
from service.extraction.rules import RuleExtractor

__all__ = [
    "RELATION_TYPES",
    "Attribute",
    "DateMention",
    "Entity",
    "Extraction",
    "MemoryCandidate",
    "Preference",
    "ProductInterest",
    "Purchase",
    "Relation",
    "RuleExtractor",
    "find_dates",
    "format_day",
    "resolve_dates",
]
