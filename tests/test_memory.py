"""Long-term memories, entities, relations, summaries and statistics on real stores
(spoken to through the typed client, ``loft_memory``)."""

from __future__ import annotations

import asyncio
import json

from loft_memory import LoftClient
from service.core.summaries import key_entities


def test_preference_change_closes_the_old_one_and_keeps_history(service, loft: LoftClient, user, stack):
    loft.chat(user, "I prefer oak for the dining table.")
    service.wait_idle()
    loft.chat(user, "Actually I prefer walnut now.")
    service.wait_idle()

    # graph: the oak preference is closed, not deleted; walnut is current
    rels = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PREFERS]->(m:Material) RETURN m.name AS m, r.valid_to IS NULL AS current ORDER BY m",
        u=user,
    )
    assert rels == [{"m": "oak", "current": False}, {"m": "walnut", "current": True}]

    # long-term: the oak memory is superseded by the walnut one; both visible in history
    rows = stack.sql(
        "SELECT id, content, valid_to, superseded_by FROM long_term_memories WHERE user_identifier = $1 AND kind = 'preference' ORDER BY created_at",
        user,
    )
    oak = next(r for r in rows if "oak" in r["content"])
    walnut = next(r for r in rows if "walnut" in r["content"])
    assert oak["valid_to"] is not None and oak["superseded_by"] == walnut["id"]
    assert walnut["valid_to"] is None
    history = loft.memory_history(user, oak["id"])
    assert [e.event for e in history.history] == ["add", "supersede"]
    assert "walnut" in (history.history[1].new_content or "")
    assert history.memory is not None and str(history.memory.superseded_by) == str(walnut["id"])

    # what the customer likes *now*
    summary = loft.summary(user)
    current = {(p.attribute, p.value) for p in summary.preferences if p.polarity == "prefers"}
    assert ("material", "walnut") in current and ("material", "oak") not in current
    full = loft.summary(user, include_history=True)
    assert any(p.value == "oak" and p.valid_to for p in full.preferences)


def test_the_same_fact_twice_is_one_memory(service, loft: LoftClient, user, stack):
    loft.chat(user, "I love velvet.")
    loft.chat(user, "I love velvet.")
    service.wait_idle()
    rows = stack.sql(
        "SELECT content, source_message_ids FROM long_term_memories WHERE user_identifier = $1 AND content ILIKE '%velvet%'",
        user,
    )
    assert len(rows) == 1
    assert len(rows[0]["source_message_ids"]) == 2  # the second mention was absorbed, with its source


def test_entity_search_finds_people_with_relationships(service, loft: LoftClient, user):
    loft.chat(user, "My sister Anna is visiting next month with her dog Biscuit.")
    loft.chat(user, "We live in Portland and I'm redoing the home office.")
    service.wait_idle()
    entities = loft.search_entities(user, "family member", limit=5).entities
    names = [e.name for e in entities]
    assert "Anna" in names
    anna = next(e for e in entities if e.name == "Anna")
    assert anna.relation == "sister" and anna.source_message_ids
    # scoped to this customer: another customer's search finds nothing of this one
    assert loft.search_entities(user + "x", "Anna", limit=5).entities == []


def test_session_summary_is_written_with_key_entities_and_embedding(service, loft: LoftClient, user, stack):
    s = loft.chat(user, "Hi, I'm Marco and I'm furnishing a new flat in Berlin.").session_id
    loft.chat(user, "I need a dining table for six people, ideally oak.", session_id=s)
    loft.chat(user, "And some Scandinavian dining chairs to match.", session_id=s)
    service.wait_idle()
    rows = stack.sql(
        "SELECT summary, key_entities, method, message_count, embedding IS NOT NULL AS embedded, source_message_ids "
        "FROM conversation_summaries WHERE user_identifier = $1",
        user,
    )
    assert len(rows) == 1
    summary = rows[0]
    assert summary["method"] == "extractive" and summary["embedded"]
    assert summary["message_count"] == 6  # three turns and three replies
    assert "Marco" in summary["key_entities"] or "Berlin" in summary["key_entities"]
    assert summary["source_message_ids"]


def test_statistics_count_every_tier(service, loft: LoftClient, user):
    before = loft.status().stats
    loft.chat(user, "My name is Ines and I love rattan.")
    service.wait_idle()
    after = loft.status().stats
    assert before is not None and after is not None
    assert after["postgres"]["messages"] == before["postgres"]["messages"] + 2
    assert after["postgres"]["users"] == before["postgres"]["users"] + 1
    assert after["postgres"]["memories_current"] > before["postgres"]["memories_current"]
    assert after["neo4j"]["customers"] == before["neo4j"]["customers"] + 1
    assert after["neo4j"]["preferences"] == before["neo4j"]["preferences"] + 1


def test_context_endpoint_returns_sections_items_and_provenance(service, loft: LoftClient, user):
    first = loft.chat(user, "My name is Lena and I love mid-century modern design.")
    service.wait_idle()
    ctx = loft.context(user, "what style does she like?", budget=300, explain=True)
    assert ctx.tokens <= 300 and len(ctx.text) <= 300 * 4
    assert ctx.tiers == {"postgres": True, "neo4j": True, "vectors": True}
    # the fact is stated once: as a memory or as a graph preference, not both
    stating = [i for i in ctx.items if "mid-century modern" in i.text and i.kind in ("memory", "preference")]
    assert len(stating) == 1, stating
    item = stating[0]
    assert item.provenance.message_ids == [first.message_id]
    assert item.provenance.memory_id or (item.provenance.graph_path or "").startswith("(:Customer)-[:PREFERS]")
    assert item.score_parts and item.timestamp
    # the raw turn it came from is repeated next to it only because it says more than the fact
    # (her name; retrieval v2: a turn is covered only by items holding 80% of its words)
    from service.retrieval.candidates import says_most_of, stems

    for turn in (i for i in ctx.items if i.kind == "message" and i.provenance.message_ids == [first.message_id]):
        assert not says_most_of(stems(item.text), turn.text), (item, turn)
    # the customer's name comes from the graph profile
    assert any(i.kind == "profile" and "Lena" in i.text for i in ctx.items)


def test_populate_sample_data_builds_a_history(service, api, loft: LoftClient, user):
    r = api.post("/memory/test/populate-sample-data", json={"user_identifier": user})
    assert r.status_code == 200, r.text
    assert r.json()["messages_created"] >= 8
    service.wait_idle()
    summary = loft.summary(user)
    assert summary.name == "Sarah"
    prefs = {(p.attribute, p.value) for p in summary.preferences if p.polarity == "prefers"}
    assert ("style", "modern") in prefs and ("material", "walnut") in prefs and ("material", "oak") not in prefs
    assert any(e["name"] == "Tom" for e in summary.entities)


def test_a_summary_due_before_its_messages_are_ingested_waits_for_them(stack, user):
    """A summary that comes due while the session's messages still wait for ingestion (a
    busy worker, an import) writes nothing yet; ingesting them re-arms it, and then it
    covers every message. (It used to summarise the embedded half and never again.)"""
    import asyncio
    from datetime import UTC, datetime

    from service import pipeline
    from service.core import summaries
    from service.postgres import history
    from service.runtime import Runtime

    texts = ["Hi, I'm Marco and I'm furnishing a new flat in Berlin.", "I need an oak dining table for six."]

    async def scenario() -> tuple[int, bool, int]:
        rt = await Runtime.open(stack.settings, pool_size=4)
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                session = await history.ensure_session(conn, user, None, at=datetime.now(UTC))
                stored = await history.add_messages(
                    conn, user, session, [history.NewMessage("user", t) for t in texts], summary_idle_s=0
                )
                # this test is the worker: hold the jobs so the suite's worker leaves them alone
                await conn.execute(
                    "UPDATE jobs SET status = 'running', locked_by = 'test', locked_until = now() + interval '1 hour' "
                    "WHERE user_identifier = $1",
                    user,
                )
            count = "SELECT count(*) FROM conversation_summaries WHERE session_id = $1"
            assert await summaries.summarize_session(rt, str(session))
            early = await rt.pool.fetchval(count, session)
            await pipeline.ingest_messages(rt, [s.id for s in stored])
            rearmed = await rt.pool.fetchval("SELECT rearmed FROM jobs WHERE dedupe_key = $1", f"summary:{session}")
            await rt.pool.execute("DELETE FROM jobs WHERE user_identifier = $1", user)
            assert await summaries.summarize_session(rt, str(session))
            covered = await rt.pool.fetchval(
                "SELECT message_count FROM conversation_summaries WHERE session_id = $1", session
            )
            return early, rearmed, covered
        finally:
            await rt.close()

    early, rearmed, covered = asyncio.run(scenario())
    assert early == 0, "the summary was written before its messages were ingested"
    assert rearmed, "ingesting the messages did not re-arm the session's summary"
    assert covered == 2


def test_a_memory_joins_its_duplicate_or_near_duplicate_and_every_change_is_in_its_history(stack, user):
    """``add_memory`` on its own: the same words join the memory ("duplicate"), a nearly
    identical vector joins it too ("near_duplicate"), a replacing memory never merges by
    similarity, and a retried message changes nothing. Each change is one history event."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from service.postgres import users
    from service.runtime import Runtime
    from vectors import memories

    base = np.zeros(384, dtype=np.float32)
    base[0] = 1.0
    near = base.copy()
    near[1] = 0.2  # cosine 0.98 to base
    near /= np.linalg.norm(near)
    far = np.zeros(384, dtype=np.float32)
    far[2] = 1.0
    at = datetime.now(UTC) - timedelta(days=1)

    def memory(
        content: str, vector: np.ndarray, message_id: int, subject: str | None = None, replaces: bool = False
    ) -> memories.NewMemory:
        return memories.NewMemory("fact", content, vector, 0.5, at, [message_id], subject, replaces)

    async def scenario() -> tuple[list[str], list[tuple[str, str | None]], int]:
        history = """
        SELECT e.event, e.detail->>'reason' AS reason FROM memory_events e
        WHERE e.memory_id = $1 AND e.user_identifier = $2 ORDER BY e.id
        """
        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                await users.ensure(conn, user)
                first, added = await memories.add_memory(conn, user, memory("The customer has a dog.", base, 1))
                outcomes = [added]
                for new in (
                    memory("The customer has a dog!", far, 2),  # same words (hash ignores punctuation)
                    memory("The customer owns a dog.", near, 3),  # other words, near-identical vector
                    memory("The customer owns a dog.", near, 3),  # a retried message
                    memory("The customer now owns a cat.", near, 4, subject="pet", replaces=True),
                ):
                    memory_id, outcome = await memories.add_memory(conn, user, new)
                    outcomes.append(outcome if memory_id == first else f"new:{outcome}")
                events = [(e["event"], e["reason"]) for e in await conn.fetch(history, first, user)]
                rows = await conn.fetchval("SELECT count(*) FROM long_term_memories WHERE user_identifier = $1", user)
            return outcomes, events, rows
        finally:
            await rt.close()

    outcomes, events, rows = asyncio.run(scenario())
    assert outcomes == ["added", "updated", "updated", "unchanged", "new:added"]
    assert events == [("add", None), ("update", "duplicate"), ("update", "near_duplicate")]
    assert rows == 2


def test_an_entity_named_in_several_messages_of_a_batch_keeps_its_last_embedding_and_every_mention(stack, user):
    """The graph write of a batch sets an entity's embedding once, from its last mention
    (what writing the messages one by one leaves), and still counts every mention."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from graph import writes
    from service.runtime import Runtime

    at = datetime.now(UTC) - timedelta(hours=1)

    def facts(message_id: int, relation: str, vector: list[float]) -> writes.MessageFacts:
        entity = {"key": "person:anna", "type": "person", "name": "Anna", "relation": relation, "embedding": vector}
        return writes.MessageFacts(user, message_id, at + timedelta(minutes=message_id), entities=[entity])

    first, last = [1.0] + [0.0] * 383, [0.0, 1.0] + [0.0] * 382

    async def scenario() -> None:
        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            async with rt.graph.session(database=rt.settings.neo4j_database) as session:
                await session.execute_write(writes.write_facts, [facts(1, "sister", first), facts(2, "cousin", last)])
        finally:
            await rt.close()

    asyncio.run(scenario())
    (row,) = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[m:MENTIONED]->(e:Entity {user_id: $u, key: 'person:anna'}) "
        "RETURN e.embedding AS embedding, m.mentions AS mentions, m.relation AS relation",
        u=user,
    )
    assert row["mentions"] == 2 and row["relation"] == "cousin"
    assert [round(x, 3) for x in row["embedding"][:2]] == [0.0, 1.0]


def test_the_graph_write_is_planned_once_whatever_the_sizes_of_a_batch_sections(stack, user):
    """Neo4j keys a cached plan by the parameters' types, and a list's type says its size's
    order of magnitude: batches whose sections differ in size (empty, 1, 2-9, 10-99, 100+
    rows) must still share one plan of the write statement (it costs a second or more of the
    server's CPU to plan). Counted by what clearing the query caches removes."""
    import asyncio
    from datetime import UTC, datetime

    from graph import writes
    from service.runtime import Runtime

    def facts(i: int, preferences: int, relations: int) -> writes.MessageFacts:
        pref = writes.PreferenceFact(attribute="style", value="modern", polarity="prefers", shared=True)
        rel = writes.RelationFact(source_key="person:a", target_key="person:b", type="FRIEND_OF")
        return writes.MessageFacts(
            f"{user}-{i}", i, datetime.now(UTC), preferences=[pref] * preferences, relations=[rel] * relations
        )

    async def cached_after(batches: list[list[writes.MessageFacts]]) -> str:
        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            async with rt.graph.session(database=rt.settings.neo4j_database) as session:
                await (await session.run("CALL db.clearQueryCaches()")).consume()
                for batch in batches:
                    await session.execute_write(writes.write_facts, batch)
                record = await (await session.run("CALL db.clearQueryCaches()")).single(strict=True)
                return str(record["value"])
        finally:
            await rt.close()

    one = asyncio.run(cached_after([[facts(1, 1, 1)]]))
    mixed = asyncio.run(
        cached_after(
            [
                [facts(1, 1, 1)],
                [facts(i, 3, 0) for i in range(12)],
                [facts(2, 0, 2)],
                [facts(i, 2, 0) for i in range(150)],
            ]
        )
    )
    assert "of 1 queries" in one
    assert mixed == one


def test_a_summary_mentions_what_is_capitalised_inside_a_sentence():
    # a capital at a sentence's start is grammar, not a name: "Yep!", "Congrats", "Awesome"
    found = key_entities(
        [
            "Yep! I went to Galway last Friday.",
            "Congrats, Tim! Awesome, Galway looks amazing.",
            "Something awesome happened. Harry Potter is great, I love Harry Potter.",
        ]
    )
    assert found[:2] == ["Galway", "Harry Potter"], found
    assert not {"Yep", "Congrats", "Awesome", "Something"} & set(found), found
    assert {"Tim", "Friday"} <= set(found)


def _walnut_items(ctx) -> list:
    """What a context states about walnut as a fact: the memory and the graph preference
    (the turn it was said in is history, and stays)."""
    return [i for i in ctx.items if i.kind in ("memory", "preference") and "walnut" in i.text.lower()]


def test_deleting_a_memory_forgets_the_preference_it_states_and_a_retry_does_not_bring_it_back(
    service, loft: LoftClient, api, user, stack
):
    """N15: the memory goes, the graph preference is closed (history), the very next
    context, summary and graph view no longer state it; the message's ingest job run again
    writes neither back; a new message that says it again is remembered again."""
    said = loft.chat(user, "I love walnut.")
    service.wait_idle()
    before = loft.context(user, "which wood do I like?", budget=2000)
    assert _walnut_items(before), before.items
    (memory,) = [m for m in loft.memories(user).memories if "walnut" in m.content.lower()]

    deleted = loft.delete_memory(user, memory.id)
    assert deleted.deleted and deleted.graph_facts_closed == 1

    after = loft.context(user, "which wood do I like?", budget=2000)
    assert _walnut_items(after) == [], after.items
    current = {(p.attribute, p.value) for p in loft.summary(user).preferences}
    assert ("material", "walnut") not in current
    graph = api.get(f"/memory/user/{user}/graph").json()
    assert "walnut" not in json.dumps(graph).lower(), graph
    rels = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PREFERS]->(m:Material {name: 'walnut'}) "
        "RETURN r.valid_to IS NULL AS current, r.forgotten_at IS NOT NULL AS forgotten",
        u=user,
    )
    assert rels == [{"current": False, "forgotten": True}]
    # the turn stays in the history
    turns = api.get(f"/v1/sessions/{user}").json()["sessions"][0]["messages"]
    assert any(t["content"] == "I love walnut." for t in turns)

    # the message's job again (a retry after a failed graph write): nothing comes back
    stack.sql(
        "INSERT INTO jobs (kind, user_identifier, dedupe_key, payload) VALUES ('ingest_message', $1, $2, $3::jsonb)",
        user,
        f"ingest:{said.message_id}:again",
        json.dumps({"message_id": said.message_id}),
    )
    service.wait_idle()
    assert not any("walnut" in m.content.lower() for m in loft.memories(user).memories)
    rels = stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PREFERS]->(:Material {name: 'walnut'}) RETURN r.valid_to IS NULL AS current",
        u=user,
    )
    assert rels == [{"current": False}]
    assert _walnut_items(loft.context(user, "which wood do I like?", budget=2000)) == []

    # said again, later: remembered again
    loft.chat(user, "I love walnut.")
    service.wait_idle()
    assert any("walnut" in m.content.lower() for m in loft.memories(user).memories)
    current = {(p.attribute, p.value) for p in loft.summary(user).preferences}
    assert ("material", "walnut") in current


def test_the_delete_memory_tool_says_what_is_forgotten_and_what_stays():
    from service.api.mcp_server import build_server

    server = build_server(lambda: (None, None))  # type: ignore[arg-type, return-value]
    (tool,) = [t for t in asyncio.run(server.list_tools()) if t.name == "delete_memory"]
    assert "knowledge graph" in tool.description and "What stays" in tool.description
    assert "conversation turns" in tool.description
