"""Deleting a session's transcript, or one turn of it (what chat frameworks need to clear or
rewind their history): the turns go with everything made only from them; what the
customer's memory learned from them stays."""

from __future__ import annotations

import uuid

import pytest

from loft_memory import ApiError
from tests.conftest import paused

# only the session that is deleted ever says these words (and no other test file: the
# erasure tests scan every table for their own made-up words)
ONLY_HERE = ["Xyphandrine", "Quintessarix"]
LONG = " ".join(
    f"Sentence {i} of a long pasted note about the Xyphandrine cabinet and its {i % 5} drawers." for i in range(60)
)


def _import(loft, user: str, texts: list[str], session_id: uuid.UUID | None = None) -> tuple[uuid.UUID, list[int]]:
    done = loft.import_messages(
        user, [{"role": "user", "content": t} for t in texts], session_id=session_id, channel="test"
    )
    return done.session_id, done.message_ids


def _terms(stack, user: str, *lexemes: str) -> dict[str, int]:
    rows = stack.sql(
        "SELECT lexeme, ndoc FROM user_terms WHERE user_identifier = $1 AND lexeme = ANY($2::text[])",
        user,
        list(lexemes),
    )
    return {r["lexeme"]: r["ndoc"] for r in rows}


def test_deleting_a_session_forgets_its_transcript_and_keeps_what_was_learned(service, loft, stack, user):
    kept, _ = _import(loft, user, ["I love walnut sideboards."])
    session, ids = _import(
        loft,
        user,
        [
            "Hi, my name is Mira and I love velvet sofas.",
            f"My cousin {ONLY_HERE[1]} recommended the {ONLY_HERE[0]} cabinet.",
            LONG,
        ],
    )
    service.wait_idle()
    assert stack.sql("SELECT count(*) AS n FROM message_passages WHERE message_id = $1", ids[2])[0]["n"] > 0
    assert stack.sql("SELECT count(*) AS n FROM conversation_summaries WHERE session_id = $1", session)[0]["n"] == 1
    before = _terms(stack, user, "xyphandrin", "love")
    assert before["xyphandrin"] == 2 and before["love"] == 2
    memories = {m.id for m in loft.memories(user).memories}
    assert memories, "the session taught the memory something"

    gone = loft.delete_session(user, session)
    assert (gone.session_id, gone.deleted, gone.messages, gone.summaries) == (session, True, 3, 1)
    assert gone.passages > 0

    with pytest.raises(ApiError) as missing:
        loft.session_messages(user, session)
    assert missing.value.status == 404
    assert [s.id for s in loft.sessions(user).sessions] == [kept]
    for table in ("messages", "message_passages"):
        assert stack.sql(f"SELECT count(*) AS n FROM {table} WHERE user_identifier = $1", user)[0]["n"] == (
            1 if table == "messages" else 0
        )
    assert stack.sql("SELECT count(*) AS n FROM conversation_summaries WHERE session_id = $1", session)[0]["n"] == 0
    keys = [f"ingest:{i}" for i in ids] + [f"summary:{session}"]
    assert stack.sql("SELECT count(*) AS n FROM jobs WHERE dedupe_key = ANY($1::text[])", keys)[0]["n"] == 0
    # a word only the session said leaves the term statistics; a shared one counts it no more
    assert _terms(stack, user, "xyphandrin", "love") == {"love": 1}
    # nothing of the transcript is quoted by the context any more; the memory learned stays
    ctx = loft.context(user, f"What did my cousin {ONLY_HERE[1]} recommend?", budget=2000)
    assert not any(set(i.provenance.message_ids) & set(ids) for i in ctx.items if i.kind in ("turn", "message"))
    assert not any(i.kind == "summary" for i in ctx.items)
    assert {m.id for m in loft.memories(user).memories} == memories
    assert loft.summary(user).name == "Mira"

    # the session's id may be used again: it starts empty
    again, _ = _import(loft, user, ["A new start."], session_id=session)
    assert again == session
    assert [m.content for m in loft.session_messages(user, session).messages] == ["A new start."]


def test_a_session_is_deleted_only_for_its_own_customer(service, loft, user):
    session, _ = _import(loft, user, ["Mine alone."])
    other = f"{user}-other"
    for who, sid in ((other, session), (user, uuid.uuid4())):
        with pytest.raises(ApiError) as refused:
            loft.delete_session(who, sid)
        assert (refused.value.status, refused.value.error) == (404, "not_found")
    assert [m.content for m in loft.session_messages(user, session).messages] == ["Mine alone."]


def test_turns_deleted_before_the_worker_files_them_are_never_learned(service, loft, stack, user):
    with paused(service):
        session, ids = _import(loft, user, ["Hi, my name is Orla and I love rattan chairs."])
        queued = stack.sql("SELECT count(*) AS n FROM jobs WHERE dedupe_key = $1", f"ingest:{ids[0]}")[0]["n"]
        assert queued == 1
        gone = loft.delete_session(user, session)
        assert gone.jobs >= 1 and gone.messages == 1
    service.wait_idle()
    assert loft.memories(user).memories == []
    assert stack.sql("SELECT count(*) AS n FROM jobs WHERE user_identifier = $1", user)[0]["n"] == 0


def test_deleting_the_last_turn_returns_it_and_the_summary_is_written_without_it(service, loft, stack, user):
    session, ids = _import(
        loft, user, ["I am looking for a dining table.", f"It should seat {ONLY_HERE[1]} and five others."]
    )
    service.wait_idle()
    newest = loft.session_messages(user, session, limit=1).messages
    assert [m.id for m in newest] == [ids[1]]

    popped = loft.delete_message(user, session, ids[1])
    assert popped.message.id == ids[1] and ONLY_HERE[1] in popped.message.content
    assert popped.message.role == "user"
    assert popped.summaries == 1  # the summary was written from it
    assert [m.id for m in loft.session_messages(user, session).messages] == [ids[0]]
    (row,) = stack.sql("SELECT last_message_at FROM sessions WHERE id = $1", session)
    assert row["last_message_at"] == loft.session_messages(user, session).messages[0].created_at

    service.wait_idle()  # the summary, re-armed, is written again from the turns left
    (summary,) = stack.sql(
        "SELECT summary, source_message_ids FROM conversation_summaries WHERE session_id = $1", session
    )
    assert ONLY_HERE[1] not in summary["summary"] and summary["source_message_ids"] == [ids[0]]

    with pytest.raises(ApiError) as twice:
        loft.delete_message(user, session, ids[1])
    assert twice.value.status == 404
    with pytest.raises(ApiError) as elsewhere:  # a turn is addressed through its own session
        loft.delete_message(user, uuid.uuid4(), ids[0])
    assert elsewhere.value.status == 404
