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
from graph.schema import POLARITY_OF
from service import facts
from service.facts import Known
from service.postgres import history, users
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import summaries as vector_summaries

log = logging.getLogger("loft.profile")

ENTITIES = 50  # the most recently mentioned people and things a profile lists
DETAILS_TIMEOUT_S = 2.0


async def customer_profile(
    rt: Runtime, user: str, *, include_history: bool = False, details: bool = False, known: Known | None = None
) -> dict[str, Any] | None:
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
    entities = [dict(e) for e in known.entities[:ENTITIES]]
    preferences = list(graph.get("preferences") or [])
    graph_error = known.error
    if details and known.error is None:
        graph_error = await _details(rt, user, known, entities, preferences, include_history=include_history)
    topics: list[str] = [i["name"] for i in graph.get("interests") or []]
    for r in recent:
        topics.extend(rt.catalog.match_categories(r["content"]))
    topics = list({t.lower(): t for t in reversed(topics)}.values())[::-1][:8]  # first spelling of each, in order
    return {
        "user_identifier": user,
        "name": known.name or row["display_name"],
        "customer_since": row["created_at"],
        "preferences": [
            _preference(p) for p in sorted(preferences, key=lambda p: (-(p.get("strength") or 0), str(p["value"])))
        ],
        "purchases": graph.get("purchases") or [],
        "interests": graph.get("interests") or [],
        "entities": entities,
        "recent_topics": topics,
        "memories": [_memory(m) for m in memories],
        "summaries": [_summary(x) for x in summaries],
        "stats": counts,
        "tiers": {"postgres": True, "neo4j": graph_error is None},
        "errors": {"neo4j": graph_error} if graph_error else {},
    }


async def _details(
    rt: Runtime,
    user: str,
    known: Known,
    entities: list[dict[str, Any]],
    preferences: list[dict[str, Any]],
    *,
    include_history: bool,
) -> str | None:
    """Add what only Neo4j holds to the versioned facts (in place): the entities'
    relationships and (``include_history``) closed preferences. Returns why the graph tier
    could not answer, if it could not."""
    try:
        extra = await asyncio.wait_for(
            graph_reads.neighbourhood(rt.graph, user, include_closed=include_history), DETAILS_TIMEOUT_S
        )
    except Exception as exc:  # the versioned facts stand; the tier is reported missing
        if not facts.unreachable(exc):
            log.error("graph read failed for a summary (%s)", type(exc).__name__)
        return facts.describe(exc)
    preferences += _closed(extra or {}, preferences) if include_history else []
    _relate(entities, extra or {}, {e.get("name") for e in known.entities})
    return None


def _closed(extra: dict[str, Any], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The closed preferences of a Neo4j read, but for one the versioned facts still hold
    as current (closed in Neo4j ahead of the version)."""
    held = {(p["rel"], p.get("value"), p.get("valid_from")) for p in current}
    return [
        p
        for p in extra.get("preferences") or []
        if p.get("valid_to") is not None and (p["rel"], p.get("value"), p.get("valid_from")) not in held
    ]


def _relate(entities: list[dict[str, Any]], extra: dict[str, Any], names: set[Any]) -> None:
    """Give each entity its relationships (and first mention) from a Neo4j read, keeping
    only relationships to the entities the versioned facts name (``names``)."""
    read = {e["key"]: e for e in extra.get("entities") or []}
    for e in entities:
        found = read.get(e.get("key"), {})
        e["first_seen"] = found.get("first_seen")
        e["related"] = [r for r in found.get("related") or [] if r.get("other") in names]


PREFERENCE_KEYS = (
    "rel",
    "attribute",
    "value",
    "strength",
    "confidence",
    "mentions",
    "valid_from",
    "valid_to",
    "source_message_ids",
)


def _preference(p: dict[str, Any]) -> dict[str, Any]:
    return {k: p.get(k) for k in PREFERENCE_KEYS} | {"polarity": POLARITY_OF[p["rel"]]}


def _memory(m: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(m["id"]),
        "kind": m["kind"],
        "content": m["content"],
        "importance": m["importance"],
        "created_at": m["created_at"],
        "valid_from": m["valid_from"],
        "valid_to": m["valid_to"],
        "superseded_by": str(m["superseded_by"]) if m["superseded_by"] else None,
        "source_message_ids": list(m["source_message_ids"]),
    }


def _summary(x: Mapping[str, Any] | asyncpg.Record) -> dict[str, Any]:
    return {
        "session_id": str(x["session_id"]),
        "summary": x["summary"],
        "key_entities": list(x["key_entities"]),
        "last_message_at": x["last_message_at"],
    }
