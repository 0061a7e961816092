"""The hybrid retriever: graph neighbourhood + vector + full-text, fused into a budgeted context.

One request embeds the query once (cached), then runs every enabled source concurrently
(``sources``): PostgreSQL in one statement (pgvector and full-text over long-term
memories, turns and summaries; the current session's recent turns) and the customer's
graph facts (current preferences, purchases, interests, the entities nearest the query).

Candidates are fused with weighted reciprocal-rank fusion, the best message hits are
expanded with their neighbouring turns and a matched entity with the turns that mention
it, and every candidate is nudged by importance, recency, (when the query names a
period: "last May", "in 2022") by whether it falls in that period, and (when it names
someone who speaks in the history: "what does Melanie…") by whether that person said it
(``fusion``). Optionally (``co_mention_hits``) the turns that share an entity with the best
hits are followed too, and packing prefers diversity (``mmr_weight``). A memory
and a graph fact that state the same thing count once; a turn whose source messages are
already covered by a packed item is skipped. Items are packed greedily into the token
budget, and the prompt text never exceeds it (``packing``).

What runs, how many candidates each source returns and how they are weighted is a
:class:`RetrievalConfig`; named presets are copies of the default (``PRESETS``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

import numpy as np

# service.schemas re-exports this package's models: read it as a module, not a name, so either
# may be imported first
from service import metrics, schemas, users
from service.errors import StoreUnavailable
from service.retrieval import fusion, packing, sources
from service.retrieval.candidates import Candidate, Context
from service.retrieval.config import DEFAULT, RetrievalConfig
from service.runtime import Runtime
from service.text import content_terms
from vectors import memories as ltm

log = logging.getLogger("loft.retriever")


class Retriever:
    """Builds the context for a chat turn; one per process (it holds the runtime)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._touch_tasks: set[asyncio.Task[None]] = set()

    async def context(
        self,
        user: str,
        query: str,
        *,
        budget: int = 1000,
        session_id: uuid.UUID | None = None,
        config: RetrievalConfig = DEFAULT,
        preset: str = "default",
        exclude_message_ids: frozenset[int] = frozenset(),
        track_access: bool = True,
        as_of: datetime | None = None,
    ) -> Context:
        """The context for ``query`` asked at ``as_of`` (default now): the time periods and
        relative dates the question names ("last May", "two weeks ago") are resolved against."""
        started = time.perf_counter()
        query = query.strip()[: schemas.MAX_QUERY_CHARS]  # the same clip on every route
        asked = as_of or datetime.now(UTC)
        period = fusion.period_of(query, asked) if query else None
        embedding, version, embed_ms = await self._embed(user, query)
        timings = {"embed": embed_ms}
        req = sources.Request(user, query, content_terms(query), embedding, session_id, config, budget, period)

        found = await sources.gather(self.rt, req, version)
        timings |= found.timings
        mark = time.perf_counter()
        candidates = fusion.fuse(found.ranked, config)
        fuse_ms = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        await self._expand(req, candidates, found.mentioned)
        timings["expand"] = (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        # recency counts from the time asked, or for a question with no time from the customer's newest turn
        reference = as_of or found.latest or asked
        fusion.score(candidates, config, reference, period, fusion.asks_now(query), found.speakers)
        timings["fuse"] = fuse_ms + (time.perf_counter() - mark) * 1000

        mark = time.perf_counter()
        packed = packing.pack(packing.excluding(candidates.values(), exclude_message_ids), budget, config)
        text, sections = packing.render(packed)
        timings["pack"] = (time.perf_counter() - mark) * 1000
        items = [c.as_item() for c in packed]
        if track_access:
            self._track_access(user, packed)
        took = (time.perf_counter() - started) * 1000
        metrics.observe_context(timings, found.tiers)
        timings = {k: round(v, 2) for k, v in timings.items()}
        return Context(text, sections, items, found.tiers, took, budget, preset, found.errors, timings)

    async def _embed(self, user: str, query: str) -> tuple[np.ndarray | None, int | None, float]:
        """The query's embedding, the customer's graph version (read meanwhile) and the
        milliseconds the embedding took."""
        started = time.perf_counter()
        version_task = asyncio.create_task(sources.graph_version(self.rt, user))
        embedding = await self.rt.embedder.aembed_query(query, user=user) if query else None
        embed_ms = (time.perf_counter() - started) * 1000
        try:
            version = await version_task
        except Exception as exc:  # PostgreSQL is down: the context cannot be built
            if sources.unreachable(exc):
                raise StoreUnavailable("postgres", sources.POSTGRES_DOWN) from exc
            raise
        return embedding, version, embed_ms

    async def _expand(self, req: sources.Request, candidates: dict[str, Candidate], mentioned: list[list[int]]) -> None:
        """Neighbouring turns of the best message hits, turns that mention matched entities,
        and turns that share an entity with the best hits (``mentioned``: the customer's
        entities as the turns that mention them)."""
        plan = fusion.plan_expansion(candidates, req.config, mentioned)
        if plan is not None:
            fetched = await sources.expand(self.rt, req, plan)
            fusion.apply_expansion(candidates, plan, fetched, req.config)

    def _track_access(self, user: str, packed: list[Candidate]) -> None:
        """Count the memories served, off the hot path."""
        served = [uuid.UUID(c.memory_id) for c in packed if c.memory_id]
        if served:
            task = asyncio.create_task(self._touch(user, served))
            self._touch_tasks.add(task)
            task.add_done_callback(self._touch_tasks.discard)

    async def _touch(self, user: str, ids: list[uuid.UUID]) -> None:
        try:
            async with self.rt.pool.acquire() as conn, conn.transaction():
                await users.lock_shared(conn, user)  # an erasure waits rather than deadlocks
                await ltm.touch(conn, user, ids)
        except Exception as exc:
            log.warning("could not record memory access: %s", exc)
