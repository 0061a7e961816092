"""Long messages are retrievable in full: a pasted e-mail or product sheet of 5,000 to
30,000 characters is split into passages, each embedded and full-text indexed; a question
about its last lines finds the message, and the context shows those lines (with the date
and the speaker), not the message's head."""

from __future__ import annotations

import random

import pytest

from vectors.passages import PASSAGE_CHARS

FILLER = [
    "The delivery team will call the day before to agree on a two-hour window.",
    "Our showroom on Harbour Street is open from nine to six on weekdays.",
    "Please keep the original packaging until the return period has ended.",
    "Assembly instructions are included in the box and online in our help centre.",
    "Gift cards can be used in store and online and never expire.",
    "We plant a tree for every order placed during the spring campaign.",
    "The loyalty programme gives members early access to seasonal collections.",
    "Customer service answers within one working day, often sooner.",
]


def _long_text(chars: int, ending: str, seed: int) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars - len(ending):
        parts.append(rng.choice(FILLER))
    return " ".join(parts) + " " + ending


CASES = [
    # (length, the closing lines that hold the answer, the question, the answer)
    (
        5_000,
        "P.S. my sister Wilhelmina is allergic to wool, so the throw for the guest room must be cotton.",
        "Who is allergic to wool?",
        "Wilhelmina",
    ),
    (
        12_000,
        "Finally, the order number for the Fjordline bookcase replacement is ZX-48213.",
        "What is the order number for the bookcase replacement?",
        "ZX-48213",
    ),
    (
        30_000,
        "One last thing: the parking code for our building's loading bay is 7781-Q.",
        "What is the parking code for the loading bay?",
        "7781-Q",
    ),
]


@pytest.fixture
def long_history(service, api, user):
    messages = [
        {
            "role": "user",
            "speaker": "Maren",
            "content": _long_text(n, ending, seed),
            "created_at": f"2024-03-0{seed}T10:00:00Z",
        }
        for seed, (n, ending, _, _) in enumerate(CASES, start=1)
    ]
    # longer than the old 600-character threshold, inside the model's window: no passages
    messages.append({"role": "user", "content": _long_text(900, "Thanks!", 7), "created_at": "2024-03-08T10:00:00Z"})
    messages.append({"role": "user", "content": "I like oak shelves.", "created_at": "2024-03-09T10:00:00Z"})
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": messages})
    assert r.status_code == 201, r.text
    service.wait_idle()
    return r.json()["message_ids"]


def test_long_messages_are_stored_as_passages(stack, user, long_history):
    rows = stack.sql(
        "SELECT m.id, length(m.content) AS len, count(p.*) AS n, max(p.end_char) AS last_end, "
        "bool_or(p.embedding IS NOT NULL) AS embedded "
        "FROM messages m LEFT JOIN message_passages p ON p.message_id = m.id "
        "WHERE m.user_identifier = $1 GROUP BY m.id ORDER BY m.id",
        user,
    )
    by_id = {r["id"]: r for r in rows}
    for mid, (n, *_rest) in zip(long_history, CASES, strict=False):
        row = by_id[mid]
        assert row["n"] >= n // (PASSAGE_CHARS + 100), row  # passages of a few hundred characters
        assert row["last_end"] == row["len"], row  # the end of the message is covered
        assert row["embedded"]  # the passages past the head
    assert by_id[long_history[-2]]["n"] == 0  # a message its embedding sees whole is its own passage
    assert by_id[long_history[-1]]["n"] == 0


def test_only_passages_past_the_embedded_head_get_their_own_embedding(stack, user, long_history):
    rows = stack.sql(
        "SELECT p.message_id, p.start_char, p.end_char, p.embedding IS NULL AS head, "
        "coalesce(p.embedding = m.embedding, false) AS copy "
        "FROM message_passages p JOIN messages m ON m.id = p.message_id "
        "WHERE p.user_identifier = $1 ORDER BY p.message_id, p.ordinal",
        user,
    )
    for mid in long_history[: len(CASES)]:
        mine = [r for r in rows if r["message_id"] == mid]
        heads = [r for r in mine if r["head"]]
        # the head (~1,000 characters the model reads of the message): the message's vector
        # stands for it, so its passages store none
        assert heads and heads == mine[: len(heads)], mine[:5]
        assert 500 < heads[-1]["end_char"] <= 1_100, heads[-1]
        assert not any(r["head"] or r["copy"] for r in mine[len(heads) :])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_answer_at_the_end_of_a_long_message_is_in_the_context(api, user, long_history, case):
    _, _, question, answer = CASES[case]
    ctx = api.get(f"/memory/context/{user}", params={"query": question, "budget": 1000}).json()
    assert answer in ctx["text"], ctx["text"]
    cited = [i for i in ctx["items"] if answer in i["text"]]
    assert cited and cited[0]["provenance"]["message_ids"] == [long_history[case]], [
        (i["kind"], i["text"][:150], i["provenance"]["message_ids"]) for i in ctx["items"]
    ]
    assert cited[0]["text"].startswith("Maren: …")  # the speaker, and a clip that is not the head
    assert len(ctx["text"]) <= 1000 * 4


def test_passages_go_with_their_customer(api, stack, user, long_history):
    assert stack.sql("SELECT count(*) FROM message_passages WHERE user_identifier = $1", user)[0][0] > 0
    r = api.delete(f"/memory/user/{user}")
    assert r.status_code in (200, 202), r.text
    assert stack.sql("SELECT count(*) FROM message_passages WHERE user_identifier = $1", user)[0][0] == 0


def test_a_long_message_is_clipped_off_the_event_loop(stack, user, long_history, monkeypatch):
    """A turn's text is made when fusion or packing first reads it, and clipping it grows
    with its length: it happens in the CPU pool, never on the event loop, and the context
    still shows the lines that answer."""
    import asyncio
    import threading

    from service.retrieval import Retriever
    from service.retrieval import candidates as made
    from service.runtime import Runtime

    threads: list[int] = []
    clip = made.clip

    def recorded(*args, **kwargs):
        threads.append(threading.get_ident())
        return clip(*args, **kwargs)

    monkeypatch.setattr(made, "clip", recorded)
    _, _, question, answer = CASES[0]

    async def scenario() -> tuple[str, int]:
        rt = await Runtime.open(stack.settings, pool_size=2)
        try:
            ctx = await Retriever(rt).context(user, question, budget=1000, track_access=False)
            return ctx.text, threading.get_ident()
        finally:
            await rt.close()

    text, loop_thread = asyncio.run(scenario())
    assert answer in text, text
    assert threads, "no text was clipped"
    assert loop_thread not in threads, "a text was clipped on the event loop"


# the tables a context searches, and the columns it ranks their rows on
SEARCHED = ("messages", "message_passages", "long_term_memories", "conversation_summaries")
RANKED_ON = ("embedding", "tsv")


def test_the_columns_a_search_ranks_on_are_stored_in_the_row(stack):
    rows = stack.sql(
        "SELECT c.relname, a.attname, a.attstorage::text AS attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relkind = 'r' AND a.attname = ANY($2::text[]) "
        "AND NOT a.attisdropped",
        list(SEARCHED),
        list(RANKED_ON),
    )
    # 'm' (MAIN): compressed or moved out of line only when the row would not fit in a page
    assert {(r["relname"], r["attname"]): r["attstorage"] for r in rows} == {
        (table, column): "m" for table in SEARCHED for column in RANKED_ON
    }


def test_a_long_turn_keeps_its_embedding_and_terms_in_its_row(stack, user, long_history):
    """A turn over the TOAST threshold moves its text out of line, not what it is ranked on."""
    turns = stack.sql(
        "SELECT id, length(content) AS len, pg_column_size(m.*) AS row_bytes, "
        "pg_column_toast_chunk_id(embedding) AS embedding, pg_column_toast_chunk_id(tsv) AS tsv "
        "FROM messages m WHERE user_identifier = $1 ORDER BY id",
        user,
    )
    passages = stack.sql(
        "SELECT message_id, ordinal, pg_column_toast_chunk_id(embedding) AS embedding, "
        "pg_column_toast_chunk_id(tsv) AS tsv FROM message_passages WHERE user_identifier = $1",
        user,
    )
    by_id = {r["id"]: r for r in turns}
    assert set(by_id) == set(long_history)
    # the 900-character turn: its text, terms and embedding together are over the ~2 kB threshold
    wide = by_id[long_history[-2]]
    assert wide["len"] > 900 and wide["row_bytes"] > 2_032, wide
    assert [r for r in turns if r["embedding"] is not None] == []
    assert wide["tsv"] is None, wide
    assert len(passages) > 20
    assert [r for r in passages if r["embedding"] is not None or r["tsv"] is not None] == []
