"""The write path: turn stored messages into all three tiers.

For a batch of claimed ``ingest_message`` jobs, :func:`prepare` reads and computes
without writing anything:

1. embed every message in one batch, and each passage past the head its embedding covers
   of a long message (``vectors.passages``);
2. extract typed facts per message (rules by default, the LLM when configured; an LLM
   failure falls back to the rules so nothing is lost; one message failing fails only
   its own job);
3. embed the memory candidates and entities in one batch.

:func:`commit` then writes, each store under a *fence*: a PostgreSQL transaction that
locks the customers' rows and the messages' rows and keeps only the messages that still
exist, so a batch that was mid-flight when a customer was erased writes nothing for them
(an erasure waits for the fence, and the fence finds nothing after an erasure; message
ids are never reused, so a customer created again under the same identifier is never
handed the old customer's facts):

4. PostgreSQL, one transaction: message and passage embeddings, long-term memories (dedupe,
   supersession, history);
5. Neo4j, one transaction inside the second fence: customer, preferences, purchases,
   interests, entities; then the customers' graph versions move on and their graph
   snapshots (what the retriever reads, ``service.postgres.graph_snapshots``) are read back at them.

Both store writes are idempotent per message, so a job retried after a store outage
(step 5 failing after step 4 committed) re-runs harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from graph import writes as graph_writes
from graph.schema import entity_key, fact_key
from service.core import consent
from service.extraction import Entity, Extraction, Preference
from service.postgres import co_purchases, graph_snapshots, history, orders, users
from service.runtime import Runtime
from vectors import memories as ltm
from vectors import passages
from vectors.embedder import DIM
from vectors.pg import Conn

log = logging.getLogger("loft.pipeline")

LLM_CONCURRENCY = 8
GRAPH_WRITE_TIMEOUT_S = 60.0


@dataclass
class MessageResult:
    message_id: int
    ok: bool
    error: str | None = None
    retry: bool = False


@dataclass
class Planned:
    """One message, ready to write."""

    row: history.QueuedMessage
    vector: np.ndarray
    extraction: Extraction | None  # None: extraction failed (reported in the results)
    split: passages.Split = field(default_factory=passages.Split)  # a long message's passages
    passage_vectors: np.ndarray | None = None  # those past the head's (``Split.to_embed``)
    memories: list[ltm.NewMemory] = field(default_factory=list)
    facts: graph_writes.MessageFacts | None = None


@dataclass
class Plan:
    items: list[Planned]
    results: dict[int, MessageResult]


async def extract(rt: Runtime, message: history.QueuedMessage) -> tuple[Extraction, str]:
    """Facts of one message: (extraction, which extractor produced it). The rules run in the
    process's CPU pool (``Runtime.cpu``): a long message never holds the worker's event loop,
    so its other lanes (and the leases' heartbeats) keep going."""
    at, speaker, role = message.created_at, message.speaker, message.role
    if rt.llm is not None and rt.settings.extractor == "llm" and role == "user":
        from service.extraction.llm import LLMExtractor

        try:
            return await LLMExtractor(rt.llm, rt.settings.llm_model, rt.catalog).extract(
                message.content, at=at, speaker=speaker, role=role
            ), "llm"
        except Exception as exc:  # any LLM failure: fall back to the rules, keep going
            log.warning("LLM extraction failed for message %s (%s); using the rule-based extractor", message.id, exc)
            kind = "rules-fallback"
    else:
        kind = "rules"
    return await rt.cpu_long(rt.rules.extract, message.content, at=at, speaker=speaker, role=role), kind


async def ingest_messages(
    rt: Runtime,
    message_ids: list[int],
    *,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    refresh_snapshots: bool = True,
) -> dict[int, MessageResult]:
    """Process messages into every tier. Store outages raise (the caller retries the batch);
    a message whose extraction fails is reported in the result and skipped.
    ``before_commit`` is awaited between the preparation and the writes (the worker waits
    there for the previous batch's writes, so batches prepare side by side but commit in
    order). ``refresh_snapshots``: read the customers' graph snapshots back after the graph
    write (chat turns: the customer is about to ask; an import leaves it to the first
    context, which reads the graph once and writes the snapshot back)."""
    plan = await prepare(rt, message_ids)
    if before_commit is not None:
        await before_commit()
    await commit(rt, plan, refresh_snapshots=refresh_snapshots)
    return plan.results


async def prepare(rt: Runtime, message_ids: list[int]) -> Plan:
    """Read, embed and extract a batch; writes nothing."""
    async with rt.pool.acquire() as conn:
        rows = await history.messages_by_id(conn, message_ids)
    results = {mid: MessageResult(mid, True) for mid in message_ids}  # erased messages: nothing to do
    if not rows:
        return Plan([], results)
    items = await _embedded(rt, rows)
    await _extract_all(rt, items, results)
    await _derive(rt, items)
    return Plan(items, results)


async def _embedded(rt: Runtime, rows: list[history.QueuedMessage]) -> list[Planned]:
    """The batch's messages with their vectors and, for a long one, its passages'.

    A message its embedding does not see whole is split into passages; those past the
    covered head are embedded in the same batch (the head ones are stored without a vector:
    the message's own stands for them). What was said is embedded, not who said it: a turn
    without its speaker's name, and a question without the names of the history's speakers
    (see service.retrieval.retriever)."""
    to_embed = [r.content for r in rows]
    split = [passages.for_message(r.content, rt.embedder.covered(r.content)) for r in rows]
    for r, sp in zip(rows, split, strict=True):
        to_embed += [passages.embedding_text(r.content, p) for p in sp.to_embed]
    embedded = await _embed_distinct(rt, to_embed)
    vectors, passage_vectors = embedded[: len(rows)], embedded[len(rows) :]
    items: list[Planned] = []
    offset = 0
    for row, vector, sp in zip(rows, vectors, split, strict=False):
        own = passage_vectors[offset : offset + len(sp.to_embed)]
        offset += len(sp.to_embed)
        items.append(Planned(row, vector, None, sp, own))
    return items


async def _extract_all(rt: Runtime, items: list[Planned], results: dict[int, MessageResult]) -> None:
    """Each item's extraction; a failed one is reported in ``results`` (and left None).

    LLM calls overlap, a few at a time; the rules take a millisecond for a chat-sized message,
    and a batch mines one message at a time (in the CPU pool: a batch of long messages holds one
    thread, and the other lane's batches find theirs)."""
    llm = rt.llm is not None and rt.settings.extractor == "llm"
    limit = asyncio.Semaphore(LLM_CONCURRENCY if llm else 1)

    async def extract_one(row: history.QueuedMessage) -> tuple[Extraction, str]:
        async with limit:
            return await extract(rt, row)

    outcomes = await asyncio.gather(*(extract_one(i.row) for i in items), return_exceptions=True)
    for item, outcome in zip(items, outcomes, strict=False):
        row = item.row
        if isinstance(outcome, BaseException):
            log.error("extraction failed for message %s: %r", row.id, outcome)
            results[row.id] = MessageResult(
                row.id, False, f"extraction failed: {outcome.__class__.__name__}: {outcome}"
            )
            continue
        item.extraction = outcome[0]


async def _derive(rt: Runtime, items: list[Planned]) -> None:
    """Each extraction's memories and graph facts, with one embedding batch for every memory
    candidate and entity of the batch."""
    texts: list[str] = []
    for item in items:
        if item.extraction is not None:
            texts += [m.text for m in item.extraction.memories]
            texts += [_entity_text(e) for e in item.extraction.entities]
    side = await _embed_distinct(rt, texts)
    cursor = 0
    for item in items:
        ex = item.extraction
        if ex is None:
            continue
        mem_vecs = side[cursor : cursor + len(ex.memories)]
        cursor += len(ex.memories)
        ent_vecs = side[cursor : cursor + len(ex.entities)]
        cursor += len(ex.entities)
        item.memories = _memories(item.row, ex, mem_vecs)
        item.facts = _facts(rt, item.row, ex, ent_vecs)


async def commit(rt: Runtime, plan: Plan, *, refresh_snapshots: bool = True) -> None:
    """Write a prepared batch, each store inside a fence (see the module docstring)."""
    if not plan.items:
        return
    async with rt.pool.acquire() as conn:
        async with conn.transaction():
            live = await _fence(rt, conn, plan.items)
            await history.store_embeddings(conn, [(i.row.id, i.vector) for i in live])
            for item in live:
                if item.split.passages and item.passage_vectors is not None:
                    row = item.row
                    await passages.store(
                        conn, row.user_identifier, row.id, row.content, item.split, item.passage_vectors
                    )
            # the batch's memories in message order, filed as one by one, written in one statement
            await ltm.add_memories(
                conn, [(i.row.user_identifier, m) for i in live if i.extraction is not None for m in i.memories]
            )
            await _rearm_summaries(rt, conn, live)

        if not any(i.facts for i in plan.items) and not any(_named(i) for i in plan.items):
            return
        async with conn.transaction():
            live = await _fence(rt, conn, plan.items)
            facts = [i.facts for i in live if i.facts is not None]
            # a preference the customer asked to forget (deleted its memory) after saying it
            forgotten = await ltm.forgotten_facts(conn, [f.user_id for f in facts]) if facts else {}
            facts = [graph_writes.without_forgotten(f, forgotten.get(f.user_id, {})) for f in facts]
            if facts:
                async with rt.graph_store.session() as session:
                    await asyncio.wait_for(
                        session.execute_write(graph_writes.write_facts, facts), GRAPH_WRITE_TIMEOUT_S
                    )
            # the name the customer gave commits with the graph version that names them: no
            # door shows it before every door can (service.facts)
            for item in live:
                if name := _named(item):
                    await users.set_display_name(conn, item.row.user_identifier, name)
            if facts:
                # after the graph commit: API processes holding an older copy will re-read it,
                # from the snapshot written here (still inside the fence)
                versions = await users.bump_graph_version(conn, [f.user_id for f in facts])
                if refresh_snapshots and rt.settings.graph_snapshots:
                    await graph_snapshots.refresh(conn, rt.graph_store, versions)


def _named(item: Planned) -> str | None:
    """The name a customer gave for themselves in this turn, if any."""
    if item.extraction is None or item.row.role != "user":
        return None
    return item.extraction.customer_name or None


async def _rearm_summaries(rt: Runtime, conn: Conn, items: list[Planned]) -> None:
    """A summary that ran while these messages were still being ingested skipped them (or
    waited for them): arm it again now that they are in."""
    latest: dict[tuple[str, uuid.UUID], datetime] = {}
    for item in items:
        key = (item.row.user_identifier, item.row.session_id)
        latest[key] = max(latest.get(key, item.row.created_at), item.row.created_at)
    await history.arm_summaries(conn, latest, rt.settings.summary_idle_s)


async def _fence(rt: Runtime, conn: Conn, items: list[Planned]) -> list[Planned]:
    """Lock the customers and messages of a batch; the items whose message still exists
    and whose customer is remembered in full (memory mode: :mod:`service.core.consent`)."""
    alive_users = await consent.lock_remembered(conn, rt.erasure_key, [i.row.user_identifier for i in items])
    alive_ids = await history.lock_live_messages(conn, [i.row.id for i in items])
    return [i for i in items if i.row.id in alive_ids and i.row.user_identifier in alive_users]


async def _embed_distinct(rt: Runtime, texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts``, each distinct text computed once: a batch repeats many of
    them (the same entity in several turns, the same fact said again; in the benchmark's
    populations half the memory candidates and entities of a batch). Only within the batch:
    a cache across batches would keep a customer's words in the worker after an erasure."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    index: dict[str, int] = {}
    rows = [index.setdefault(t, len(index)) for t in texts]
    vectors: np.ndarray = await rt.embedder.aembed(list(index))
    return vectors[rows]


def _entity_text(entity: Entity) -> str:
    relation = f", {entity.relation}" if entity.relation else ""
    return f"{entity.name} ({entity.type}{relation})"


def _preference(rt: Runtime, pref: Preference) -> graph_writes.PreferenceFact:
    """A preference for the graph: a value the catalog knows points at its shared node
    (under the catalog's own name); any other value stays the customer's own."""
    canonical = rt.catalog.canonical(pref.attribute, pref.value)
    return graph_writes.PreferenceFact(
        attribute=pref.attribute,
        value=canonical if canonical is not None else pref.value,
        polarity=pref.polarity,
        strength=pref.strength,
        confidence=pref.confidence,
        replaces=pref.replaces,
        shared=canonical is not None,
    )


def _memories(row: history.QueuedMessage, ex: Extraction, vectors: np.ndarray) -> list[ltm.NewMemory]:
    out = []
    for candidate, vector in zip(ex.memories, vectors, strict=False):
        subject, replaces, fact_keys = None, False, []
        if candidate.kind == "preference":
            text = candidate.text.lower()
            for pref in ex.preferences:
                if pref.value.lower() in text:
                    fact_keys.append(fact_key(pref.polarity, pref.attribute, pref.value))
                    if subject is None:
                        subject = f"preference:{pref.attribute}"
                        replaces = pref.replaces
        out.append(
            ltm.NewMemory(
                kind=candidate.kind,
                content=candidate.text,
                embedding=vector,
                importance=candidate.importance,
                valid_from=candidate.at or row.created_at,
                source_message_ids=[row.id],
                subject=subject,
                replaces=replaces,
                metadata={"fact_keys": fact_keys, "session_id": str(row.session_id)},
            )
        )
    return out


def _facts(
    rt: Runtime, row: history.QueuedMessage, ex: Extraction, entity_vectors: np.ndarray
) -> graph_writes.MessageFacts:
    entities = []
    keys_by_name: dict[str, str] = {}
    for entity, vector in zip(ex.entities, entity_vectors, strict=False):
        key = entity_key(entity.type, entity.name)
        keys_by_name[entity.name.lower()] = key
        summary = f"{entity.name} — {entity.relation}" if entity.relation else None
        entities.append(
            graph_writes.EntityFact(
                key=key,
                type=entity.type,
                name=entity.name,
                relation=entity.relation,
                summary=summary,
                at=entity.at,
                embedding=vector.tolist(),
            )
        )
    relations = []
    for rel in ex.relations:
        source = keys_by_name.get(rel.source.lower())
        target = keys_by_name.get(rel.target.lower())
        if source and target and source != target:
            relations.append(graph_writes.RelationFact(source_key=source, target_key=target, type=rel.type))
    return graph_writes.MessageFacts(
        user_id=row.user_identifier,
        message_id=row.id,
        at=row.created_at,
        customer_name=ex.customer_name if row.role == "user" else None,
        preferences=[_preference(rt, p) for p in ex.preferences],
        purchases=[
            graph_writes.PurchaseFact(
                product_name=p.product_name,
                sku=p.sku,
                category=p.category,
                quantity=p.quantity,
                price=p.price,
                order_id=p.order_id,
                at=p.at,
            )
            for p in ex.purchases
        ],
        interests=[graph_writes.InterestFact(sku=i.sku, category=i.category, kind=i.kind) for i in ex.interests],
        entities=entities,
        relations=relations,
    )


# -- orders from the order feed ---------------------------------------------------------------


@dataclass
class _Bought:
    """One SKU of one order: its lines' quantities and what was paid for them, summed."""

    user_id: str
    order_id: str
    sku: str
    at: datetime
    qty: int = 0
    paid: float = 0.0

    def for_graph(self) -> graph_writes.OrderLineRow:
        """The row :func:`graph.writes.write_orders` takes (the mean unit price)."""
        return graph_writes.OrderLineRow(
            user_id=self.user_id,
            order_id=self.order_id,
            sku=self.sku,
            qty=self.qty,
            at=self.at,
            price=round(self.paid / self.qty, 2),
        )


async def ingest_orders(rt: Runtime, order_ids: list[str]) -> None:
    """Write stored orders to the graph as PURCHASED (``source: 'order'``), under the same
    fence as messages: the customers' and the orders' rows are locked, so an order erased
    meanwhile writes nothing. Idempotent per (order, SKU); several lines of one SKU in an
    order are one relationship with their quantities summed. The co-purchase statistics
    (``service.postgres.co_purchases``) are added in the same transaction, as idempotently."""
    async with rt.pool.acquire() as conn, conn.transaction():
        lines = await orders.lines_of(conn, order_ids)
        if not lines:
            return
        alive_users = await users.lock_live(conn, [x["user_identifier"] for x in lines])
        alive_orders = await orders.lock_live(conn, [x["order_id"] for x in lines])
        rows: dict[tuple[str, str], _Bought] = {}
        for x in lines:
            if x["user_identifier"] not in alive_users or x["order_id"] not in alive_orders:
                continue
            row = rows.setdefault(
                (x["order_id"], x["sku"]), _Bought(x["user_identifier"], x["order_id"], x["sku"], x["placed_at"])
            )
            row.qty += x["qty"]
            row.paid += float(x["unit_price"]) * x["qty"]
        if not rows:
            return
        batch = [r.for_graph() for r in rows.values()]
        async with rt.graph_store.session() as session:
            facts = await asyncio.wait_for(
                session.execute_write(graph_writes.write_orders, batch), GRAPH_WRITE_TIMEOUT_S
            )
        # the co-purchase statistics, in the same fence and transaction (idempotent per order and SKU)
        counted = [x for x in lines if x["user_identifier"] in alive_users and x["order_id"] in alive_orders]
        await co_purchases.count_orders(conn, counted, facts)
        versions = await users.bump_graph_version(conn, sorted({r.user_id for r in rows.values()}))
        if rt.settings.graph_snapshots:
            await graph_snapshots.refresh(conn, rt.graph_store, versions)
