"""What LOFT knows about one customer, gathered from every tier (for the summary endpoint
and the offline responder)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from graph import reads as graph_reads
from graph.schema import POLARITY_OF
from service import history, users
from service.retrieval import sources
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import summaries as vector_summaries

log = logging.getLogger("loft.profile")


async def customer_profile(rt: Runtime, user: str, *, include_history: bool = False) -> dict[str, Any] | None:
    async with rt.pool.acquire() as conn:
        row = await users.get(conn, user)
        if row is None:
            return None
        counts = await history.counts_for_user(conn, user) | await ltm.counts_for_user(conn, user)
        counts["summaries"] = await vector_summaries.count_for_user(conn, user)
        memories = await ltm.list_for_user(conn, user, include_superseded=include_history, limit=50)
        summaries = await vector_summaries.recent_for_user(conn, user, 3)
        recent = await history.recent_user_messages(conn, user, 10)
    graph: dict[str, Any] | None = None
    graph_error = None
    try:
        graph = await asyncio.wait_for(graph_reads.neighbourhood(rt.graph, user, include_closed=include_history), 2.0)
    except Exception as exc:  # the graph tier is reported missing, as the retriever reports it
        if not sources.unreachable(exc):
            log.error("graph read failed for a summary (%s)", type(exc).__name__)
        graph_error = sources.describe(exc)
    graph = graph or {}
    topics: list[str] = [i["name"] for i in graph.get("interests") or []]
    for r in recent:
        topics.extend(rt.catalog.match_categories(r["content"]))
    topics = list({t.lower(): t for t in reversed(topics)}.values())[::-1][:8]  # first spelling of each, in order
    return {
        "user_identifier": user,
        "name": graph.get("name") or row["display_name"],
        "customer_since": row["created_at"],
        "preferences": [
            {
                k: p.get(k)
                for k in (
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
            }
            | {"polarity": POLARITY_OF[p["rel"]]}
            for p in sorted(graph.get("preferences") or [], key=lambda p: (-(p.get("strength") or 0), str(p["value"])))
        ],
        "purchases": graph.get("purchases") or [],
        "interests": graph.get("interests") or [],
        "entities": graph.get("entities") or [],
        "recent_topics": topics,
        "memories": [
            {
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
            for m in memories
        ],
        "summaries": [
            {
                "session_id": str(s["session_id"]),
                "summary": s["summary"],
                "key_entities": list(s["key_entities"]),
                "last_message_at": s["last_message_at"],
            }
            for s in summaries
        ],
        "stats": counts,
        "tiers": {"postgres": True, "neo4j": graph_error is None},
        "errors": {"neo4j": graph_error} if graph_error else {},
    }
