"""What LOFT knows about one customer, gathered from every tier (for the summary endpoint,
the chat reply and the MCP tools).

The customer's graph facts come from the read model (:mod:`service.facts`), at the
customer's graph version, as every other door reads them. The summary asks for
``details``: the relationships between the people and things the customer mentioned and,
with ``include_history``, closed preferences, which only Neo4j holds; they are read there
and shown only for the entities the versioned facts name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from graph import reads as graph_reads
from graph.facts import CustomerFacts, Preference
from graph.schema import POLARITY_OF
from loft_memory.models import CustomerSummary, EntityFact, MemoryFact, PreferenceFact, SessionSummaryFact
from service import facts
from service.facts import NO_FACTS, Known
from service.postgres import history, users
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import summaries as vector_summaries

log = logging.getLogger("loft.profile")

ENTITIES = 50  # the most recently mentioned people and things a profile lists
DETAILS_TIMEOUT_S = 2.0


async def customer_profile(
    rt: Runtime, user: str, *, include_history: bool = False, details: bool = False, known: Known | None = None
) -> CustomerSummary | None:
    """``known``: the customer's facts already read for this request (a chat turn's context
    read them); ``details``: also what only Neo4j holds (see the module's docstring)."""
    async with rt.pool.acquire() as conn:
        row = await users.get(conn, user)
        if row is None:
            return None
        counts = await history.counts_for_user(conn, user) | await ltm.counts_for_user(conn, user)
        counts["summaries"] = await vector_summaries.count_for_user(conn, user)
        memories = await ltm.list_for_user(conn, user, include_superseded=include_history, limit=50)
        summaries = await vector_summaries.recent_for_user(conn, user, 3)
        recent = await history.recent_user_messages(conn, user, 10)
    if known is None:
        known = await facts.read(rt, user)
    graph = known.facts
    entities = known.entities[:ENTITIES]
    preferences = list(graph.preferences)
    graph_error = known.error
    if details and known.error is None:
        try:
            extra = await _details(rt, user, include_history=include_history)
        except Exception as exc:  # the versioned facts stand; the tier is reported missing
            graph_error = facts.describe(exc)
        else:
            preferences += _closed(extra, preferences) if include_history else []
            entities = _related(entities, extra, {e.name for e in known.entities})
    topics: list[str] = [i.name for i in graph.interests if i.name]
    for r in recent:
        topics.extend(rt.catalog.match_categories(r["content"]))
    topics = list({t.lower(): t for t in reversed(topics)}.values())[::-1][:8]  # first spelling of each, in order
    return CustomerSummary(
        user_identifier=user,
        name=known.name or row.display_name,
        customer_since=row.created_at,
        preferences=[_preference(p) for p in sorted(preferences, key=lambda p: (-(p.strength or 0), str(p.value)))],
        purchases=graph.purchases,
        interests=graph.interests,
        entities=entities,
        recent_topics=topics,
        memories=[_memory(m) for m in memories],
        summaries=[_summary(x) for x in summaries],
        stats=counts,
        tiers={"postgres": True, "neo4j": graph_error is None},
        errors={"neo4j": graph_error} if graph_error else {},
    )


async def _details(rt: Runtime, user: str, *, include_history: bool) -> CustomerFacts:
    """What only Neo4j holds: the entities' relationships and (``include_history``) closed
    preferences. Raises when the graph tier could not answer (logged unless it is away)."""
    try:
        extra = await asyncio.wait_for(
            graph_reads.neighbourhood(rt.graph_store, user, include_closed=include_history), DETAILS_TIMEOUT_S
        )
    except Exception as exc:
        if not facts.unreachable(exc):
            log.error("graph read failed for a summary (%s)", type(exc).__name__)
        raise
    return extra or NO_FACTS


def _closed(extra: CustomerFacts, current: list[Preference]) -> list[Preference]:
    """The closed preferences of a Neo4j read, but for one the versioned facts still hold
    as current (closed in Neo4j ahead of the version)."""
    held = {(p.rel, p.value, p.valid_from) for p in current}
    return [p for p in extra.preferences if p.valid_to is not None and (p.rel, p.value, p.valid_from) not in held]


def _related(entities: list[EntityFact], extra: CustomerFacts, names: set[str | None]) -> list[EntityFact]:
    """Each entity with its relationships (and first mention) from a Neo4j read, keeping
    only relationships to the entities the versioned facts name (``names``)."""
    read = {e.key: e for e in extra.entities}
    out = []
    for e in entities:
        found = read.get(e.key)
        related = [r for r in (found.related or []) if r.other in names] if found else []
        out.append(e.model_copy(update={"first_seen": found.first_seen if found else None, "related": related}))
    return out


def _preference(p: Preference) -> PreferenceFact:
    return PreferenceFact.model_validate(p.model_dump(include=PREFERENCE_KEYS) | {"polarity": POLARITY_OF[p.rel]})


PREFERENCE_KEYS = {
    "rel",
    "attribute",
    "value",
    "strength",
    "confidence",
    "mentions",
    "valid_from",
    "valid_to",
    "source_message_ids",
}


def _memory(m: Mapping[str, Any] | asyncpg.Record) -> MemoryFact:
    return MemoryFact(
        id=str(m["id"]),
        kind=m["kind"],
        content=m["content"],
        importance=m["importance"],
        created_at=m["created_at"],
        valid_from=m["valid_from"],
        valid_to=m["valid_to"],
        superseded_by=str(m["superseded_by"]) if m["superseded_by"] else None,
        source_message_ids=list(m["source_message_ids"]),
    )


def _summary(x: Mapping[str, Any] | asyncpg.Record) -> SessionSummaryFact:
    return SessionSummaryFact(
        session_id=str(x["session_id"]),
        summary=x["summary"],
        key_entities=list(x["key_entities"]),
        last_message_at=x["last_message_at"],
    )
