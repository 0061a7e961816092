"""The hybrid retriever: graph neighbourhood + vector + full-text, fused into a budgeted context.

One request reads the customer's graph version (with the snapshot when this process's copy
is older, and the names of the people who speak in the history), reads the question (the
period it names, its words, the speakers it names: in the process's CPU pool, off the event
loop, as its cost grows with the question's length), embeds the query once (cached; without
the speakers' names it holds: who said what is weighed apart, below), then runs every
enabled source concurrently
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from loft_memory.models import MAX_QUERY_CHARS
from service import facts, metrics
from service.errors import StoreUnavailable
from service.postgres import db, users
from service.postgres.graph_snapshots import GraphState
from service.retrieval import fusion, packing, sources
from service.retrieval.candidates import Candidate, Context
from service.retrieval.config import DEFAULT, RetrievalConfig
from service.runtime import Runtime
from service.text import SpeakerCache, content_terms
from vectors import memories as ltm

log = logging.getLogger("loft.retriever")


class Stopwatch:
    """A context's stage timings in milliseconds, in the order the stages ran."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        mark = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = (time.perf_counter() - mark) * 1000


@dataclass(frozen=True)
class Question:
    """What a context reads from its question before it embeds it."""

    period: fusion.Period | None  # the [start, end) it names ("last May")
    now: bool  # it asks how things are now ("do I still…")
    terms: set[str]  # its content words
    named: frozenset[str]  # the speakers it names (case-folded): who said what is weighed
    what: str  # it without the speakers' names: what is embedded


def read_question(
    query: str, asked: datetime, user: str, speakers: tuple[str, ...], matchers: SpeakerCache, ticket: int
) -> Question:
    """Read a (clipped) question: its cost grows with its length and with the number of
    speakers (at most ``LOFT_MAX_SPEAKERS``), so it runs in the CPU pool (``Runtime.cpu``).
    ``ticket``: the matchers' (``SpeakerCache.ticket``) from before the speakers were read."""
    names = matchers.get(user, speakers, ticket)
    return Question(
        fusion.period_of(query, asked) if query else None,
        fusion.asks_now(query),
        content_terms(query),
        names.named(query),
        names.without(query),
    )


@dataclass(frozen=True)
class Chosen:
    """What a context says: the candidates packed, the prompt text and its sections, the
    items, and the milliseconds of scoring and packing."""

    packed: list[Candidate]
    text: str
    sections: dict[str, list[str]]
    items: list[dict[str, Any]]
    ms: dict[str, float]


def choose(
    candidates: dict[str, Candidate],
    req: sources.Request,
    question: Question,
    reference: datetime,
    exclude: frozenset[int],
) -> Chosen:
    """The candidates scored (``reference``: "now" for recency), the best packed into the
    budget and rendered. In the CPU pool (``Runtime.cpu``): scoring and
    packing read candidates' texts, and a long turn's is clipped when first read."""
    watch = Stopwatch()
    with watch.step("score"):
        fusion.score(candidates, req.config, reference, req.period, question.now, question.named)
    with watch.step("pack"):
        packed = packing.pack(packing.excluding(candidates.values(), exclude), req.budget, req.config)
        text, sections = packing.render(packed)
    return Chosen(packed, text, sections, [c.as_item() for c in packed], watch.ms)


class Retriever:
    """Builds the context for a chat turn; one per process (it holds the runtime)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # memories served since the last flush: (customer, memory) -> times
        self._served: dict[tuple[str, uuid.UUID], int] = {}
        self._flusher: asyncio.Task[None] | None = None

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
        replica: bool = False,
    ) -> Context:
        """The context for ``query`` asked at ``as_of`` (default now): the time periods and
        relative dates the question names ("last May", "two weeks ago") are resolved against.
        ``replica``: read the replica once it has every earlier write (``db.read_pool``)."""
        started = time.perf_counter()
        query = query.strip()[:MAX_QUERY_CHARS]  # the same clip on every route
        asked = as_of or datetime.now(UTC)
        watch = Stopwatch()
        graph_state, question, req = await self._read(user, query, asked, session_id, config, budget, watch, replica)
        found = await sources.gather(self.rt, req, graph_state)
        watch.ms |= found.timings
        candidates, fuse_ms = await self._ranked(req, found, watch)
        # recency counts from the time asked, or for a question with no time from the customer's newest turn
        reference = as_of or found.latest or asked
        chosen = await self.rt.cpu(choose, candidates, req, question, reference, exclude_message_ids)
        watch.ms |= {"fuse": fuse_ms + chosen.ms["score"], "pack": chosen.ms["pack"]}
        if track_access:
            self._track_access(user, chosen.packed)
        took = (time.perf_counter() - started) * 1000
        metrics.observe_context(watch.ms, found.tiers)
        timings = {k: round(v, 2) for k, v in watch.ms.items()}
        known = facts.Known(graph_state.version, found.graph, found.errors.get("graph"))
        return Context(
            chosen.text, chosen.sections, chosen.items, found.tiers, took, budget, preset, found.errors, timings, known
        )

    async def _read(
        self,
        user: str,
        query: str,
        asked: datetime,
        session_id: uuid.UUID | None,
        config: RetrievalConfig,
        budget: int,
        watch: Stopwatch,
        replica: bool,
    ) -> tuple[GraphState, Question, sources.Request]:
        """The customer's graph state and speakers, the question read, its embedding: what
        the sources are asked with."""
        with watch.step("state"):
            ticket = self.rt.speaker_names.ticket()  # an erasure from here on: its names are not kept
            graph_state, pool = await self._graph_state(user, replica)
        # the most recently introduced, however many an older history kept
        speakers = graph_state.speakers[-self.rt.settings.max_speakers :]
        with watch.step("read"):
            # who a question is about is weighed by who said what (``other_speaker_weight``); its
            # embedding asks what was said: a speaker's name would pull in all their small talk
            question = await self.rt.cpu(read_question, query, asked, user, speakers, self.rt.speaker_names, ticket)
        with watch.step("embed"):
            embedding = await self.rt.embedder.aembed_query(question.what, user=user) if query else None
        req = sources.Request(
            user, query, question.terms, embedding, session_id, config, budget, question.period, speakers, pool
        )
        return graph_state, question, req

    async def _ranked(
        self, req: sources.Request, found: sources.Found, watch: Stopwatch
    ) -> tuple[dict[str, Candidate], float]:
        """The sources' candidates fused and expanded, and the milliseconds fusing took."""
        mark = time.perf_counter()
        candidates = fusion.fuse(found.ranked, req.config)
        fuse_ms = (time.perf_counter() - mark) * 1000
        with watch.step("expand"):
            await self._expand(req, candidates, found.mentioned)
        return candidates, fuse_ms

    async def _graph_state(self, user: str, replica: bool) -> tuple[GraphState, asyncpg.Pool]:
        """The customer's graph version, snapshot and speakers (read before the query is
        embedded: the speakers' names are taken out of it), and the pool the read went to."""
        try:
            pool = await db.read_pool(self.rt.pool, self.rt.replica) if replica else self.rt.pool
            return await facts.state(self.rt, user, pool), pool
        except Exception as exc:  # PostgreSQL is down: the context cannot be built
            if facts.unreachable(exc):
                raise StoreUnavailable("postgres", sources.POSTGRES_DOWN) from exc
            raise

    async def _expand(self, req: sources.Request, candidates: dict[str, Candidate], mentioned: list[list[int]]) -> None:
        """Neighbouring turns of the best message hits, turns that mention matched entities,
        and turns that share an entity with the best hits (``mentioned``: the customer's
        entities as the turns that mention them)."""
        plan = fusion.plan_expansion(candidates, req.config, mentioned)
        if plan is not None:
            fetched = await sources.expand(self.rt, req, plan, candidates)
            fusion.apply_expansion(candidates, plan, fetched, req.config)

    def _track_access(self, user: str, packed: list[Candidate]) -> None:
        """Count the memories served, off the hot path: counted in memory and written at most
        once every ``LOFT_ACCESS_FLUSH_S`` for every customer served meanwhile (one
        transaction, not one per request: an update that cannot be HOT also writes an entry
        in each of the table's indexes)."""
        for c in packed:
            if c.memory_id:
                key = (user, uuid.UUID(c.memory_id))
                self._served[key] = self._served.get(key, 0) + 1
        if self._served and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.rt.settings.access_flush_s)
        await self.flush_access()

    async def flush_access(self) -> None:
        """Write the access counts gathered so far (also on shutdown)."""
        served, self._served = self._served, {}
        if not served:
            return
        try:
            async with self.rt.pool.acquire() as conn, conn.transaction():
                # an erasure waits rather than deadlocks; an erased customer's rows are simply gone
                await users.lock_shared_many(conn, [u for u, _ in served])
                await ltm.touch(conn, served)
        except Exception as exc:
            log.warning("could not record access to %d memories: %s", len(served), exc)
