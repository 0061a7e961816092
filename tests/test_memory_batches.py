"""A batch of memory candidates is filed as if one by one, in two round trips.

The worker files a batch's memories with one read and one write (``add_memories``); what it
leaves (memories, outcomes, history) must be what filing the candidates one at a time
leaves, including what one candidate of the batch does to the next: a repeat of a memory
added earlier in the batch, a near-duplicate of it, a retried message, a change of mind
closing memories old and new, a late replay that a newer change of mind had already
superseded, a repeat that re-opens a closed memory, and a memory the customer deleted.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _vector(*weights: tuple[int, float]) -> np.ndarray:
    v = np.zeros(384, dtype=np.float32)
    for i, w in weights:
        v[i] = w
    return v / np.linalg.norm(v)


def _candidates():
    from vectors.memories import NewMemory

    def m(content, vector, message_id, minutes, subject=None, replaces=False, importance=0.5, facts=()):
        return NewMemory(
            "preference" if subject else "fact",
            content,
            vector,
            importance,
            T0 + timedelta(minutes=minutes),
            [message_id],
            subject,
            replaces,
            {"fact_keys": list(facts), "session_id": "s"},
        )

    oak, walnut, teak = _vector((0, 1.0)), _vector((1, 1.0)), _vector((2, 1.0))
    dog, dog_near, cat = _vector((3, 1.0)), _vector((3, 1.0), (4, 0.2)), _vector((5, 1.0))
    return [
        m("The customer has a dog.", dog, 10, 10),
        m("The customer has a dog!", cat, 11, 11, importance=0.9),  # same words as the one before
        m("The customer owns a dog.", dog_near, 12, 12),  # a near-duplicate of a memory of this batch
        m("The customer owns a dog.", dog_near, 12, 12),  # a retried message
        m("The customer loves oak.", oak, 13, 13, subject="preference:material"),
        m("The customer now prefers walnut.", walnut, 14, 14, subject="preference:material", replaces=True),
        m("The customer likes teak.", teak, 9, 9, subject="preference:material"),  # said before the change
        m("The customer loves oak.", oak, 15, 15, subject="preference:material"),  # re-opens what walnut closed
        m("The customer likes pine.", _vector((6, 1.0)), 16, 16, facts=["prefers:material:pine"]),  # deleted earlier
        m("The customer now prefers linen.", _vector((7, 1.0)), 17, 17, subject="preference:fabric", replaces=True),
    ]


async def _prior(conn, user: str) -> None:
    """The same history for both customers: a memory of each subject, one of them deleted."""
    from service.postgres import users
    from vectors import memories

    await users.ensure(conn, user)
    for content, vector, subject, minutes in (
        ("The customer likes velvet.", _vector((8, 1.0)), "preference:fabric", 1),
        ("The customer likes pine.", _vector((6, 1.0)), None, 2),
        ("The customer likes birch.", _vector((9, 1.0)), "preference:material", 3),
    ):
        facts = ["prefers:material:pine"] if "pine" in content else []
        new = memories.NewMemory(
            "fact",
            content,
            vector,
            0.5,
            T0 + timedelta(minutes=minutes),
            [minutes],
            subject,
            False,
            {"fact_keys": facts},
        )
        await memories.add_memory(conn, user, new)
    (pine,) = [r["id"] for r in await memories.list_for_user(conn, user) if "pine" in r["content"]]
    await memories.delete(conn, user, pine, through_message_id=100)


async def _state(conn, user: str) -> tuple[list, list]:
    """Memories and history, with ids replaced by the memory's content."""
    rows = await conn.fetch(
        "SELECT id, content, valid_to, superseded_by, source_message_ids, importance, metadata "
        "FROM long_term_memories WHERE user_identifier = $1 ORDER BY content",
        user,
    )
    content = {r["id"]: r["content"] for r in rows}
    memories = [
        (
            r["content"],
            r["valid_to"],
            content.get(r["superseded_by"]),
            list(r["source_message_ids"]),
            round(r["importance"], 3),
            r["metadata"],
        )
        for r in rows
    ]
    events = await conn.fetch(
        "SELECT memory_id, event, old_content, new_content, detail - 'superseded_by' AS detail, "
        "detail->>'superseded_by' AS by FROM memory_events WHERE user_identifier = $1 ORDER BY id",
        user,
    )
    history = [
        (
            content.get(e["memory_id"], "(deleted)"),
            e["event"],
            e["old_content"],
            e["new_content"],
            e["detail"],
            content.get(uuid.UUID(e["by"])) if e["by"] else None,
        )
        for e in events
    ]
    return memories, history


def test_a_batch_of_memories_is_filed_as_its_candidates_one_at_a_time(stack):
    from service.runtime import Runtime
    from vectors import memories

    one_by_one, batched = f"t-{uuid.uuid4().hex[:10]}", f"t-{uuid.uuid4().hex[:10]}"

    async def scenario():
        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            async with rt.pool.acquire() as conn:
                async with conn.transaction():
                    await _prior(conn, one_by_one)
                    await _prior(conn, batched)
                async with conn.transaction():
                    singles = [await memories.add_memory(conn, one_by_one, c) for c in _candidates()]
                async with conn.transaction():
                    together = await memories.add_memories(conn, [(batched, c) for c in _candidates()])
                return singles, together, await _state(conn, one_by_one), await _state(conn, batched)
        finally:
            await rt.close()

    singles, together, alone_state, batch_state = asyncio.run(scenario())
    assert [o for _, o in together] == [o for _, o in singles]
    assert [o for _, o in together] == [
        "added",
        "updated",
        "updated",
        "unchanged",
        "added",
        "superseded",
        "added_superseded",
        "updated",
        "forgotten",
        "superseded",
    ]
    # the same candidates land on the same memories
    first_id = together[0][0]
    assert [mid == first_id for mid, _ in together[:4]] == [True] * 4
    assert together[7][0] == together[4][0], "the repeat of oak did not join the oak memory"
    assert batch_state == alone_state
    memories_left, history = batch_state
    by_content = {m[0]: m for m in memories_left}
    assert by_content["The customer loves oak."][1] is None, "a later repeat did not re-open oak"
    assert by_content["The customer likes teak."][2] == "The customer now prefers walnut."
    assert by_content["The customer likes velvet."][2] == "The customer now prefers linen."
    assert by_content["The customer has a dog."][3] == [10, 11, 12]
    assert by_content["The customer has a dog."][4] == 0.9
    assert "The customer likes pine." not in by_content
    assert len(history) == len(alone_state[1]) >= 12
