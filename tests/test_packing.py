"""Packing and rendering (pure functions, no stores): each fact once across tiers, a turn
covered by its memory skipped, the budget never exceeded, the session's newest turns
kept, turns grouped by day, sections in a fixed order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from graph.schema import POLARITY_OF, fact_key
from service.retrieval import DEFAULT
from service.retrieval.candidates import Candidate, day, message_key, without_closing_questions, without_small_talk
from service.retrieval.candidates import message as from_row
from service.retrieval.config import CHARS_PER_TOKEN
from service.retrieval.packing import (
    SECTION_ORDER,
    SECTION_TITLES,
    excluding,
    pack,
    packing_order,
    render,
    shortened,
)

UTC = UTC
T0 = datetime(2023, 5, 2, 10, 0, tzinfo=UTC)
SECTION_OF = {
    "profile": "profile",
    "preference": "preferences",
    "purchase": "purchases",
    "interest": "interests",
    "entity": "entities",
    "memory": "memories",
    "summary": "summaries",
    "message": "conversation",
    "turn": "session",
}


def cand(
    kind: str,
    key: str,
    score: float,
    *,
    text: str | None = None,
    at: datetime | None = T0,
    ids: list[int] = (),
    facts: tuple[str, ...] = (),
) -> Candidate:
    return Candidate(
        key=key,
        kind=kind,
        section=SECTION_OF[kind],
        text=text or f"{kind} {key}",
        timestamp=at,
        message_ids=list(ids),
        fact_keys=facts,
        score=score,
        pinned=kind in ("profile", "turn"),
        group=day(at) if kind == "message" else None,
    )


def message(mid: int, score: float, at: datetime = T0, text: str | None = None) -> Candidate:
    return cand("message", message_key(mid), score, text=text, at=at, ids=[mid])


def keys(packed: list[Candidate]) -> list[str]:
    return [c.key for c in packed]


# -- saying each thing once ----------------------------------------------------------------------


def test_a_fact_from_two_tiers_is_packed_once():
    walnut = fact_key("prefers", "material", "Walnut")
    memory = cand("memory", "memory:a", 0.05, text="She prefers walnut now.", ids=[4], facts=(walnut,))
    graph = cand(
        "preference",
        "pref:PREFERS:material:walnut",
        0.04,
        ids=[4],
        facts=(fact_key(POLARITY_OF["PREFERS"], "material", "walnut"),),
    )
    other = cand("preference", "pref:DISLIKES:material:oak", 0.03, facts=(fact_key("dislikes", "material", "oak"),))
    assert keys(pack([graph, memory, other], 1000, DEFAULT)) == ["memory:a", "pref:DISLIKES:material:oak"]


def test_a_turn_covered_by_its_memory_is_skipped():
    memory = cand("memory", "memory:a", 0.05, text="[2 May 2023] Ana bought a walnut sideboard.", ids=[5])
    turn = message(5, 0.05, text="Ana: I bought a walnut sideboard!")
    packed = pack([turn, memory, message(6, 0.01)], 1000, DEFAULT)
    # equal scores: the compact form first, and then the turn adds nothing
    assert keys(packed) == ["memory:a", "message:6"]


def test_a_memory_that_says_only_part_of_its_turn_does_not_replace_it():
    memory = cand("memory", "memory:a", 0.05, text="[2 May 2023] Ana bought a walnut sideboard.", ids=[5])
    turn = message(5, 0.05, text="Ana: I bought a walnut sideboard, and my sister Wilhelmina is allergic to wool.")
    assert keys(pack([turn, memory], 1000, DEFAULT)) == ["memory:a", "message:5"]


def test_a_memory_whose_turn_is_already_in_is_skipped_but_a_graph_fact_is_not():
    packed = pack(
        [
            message(5, 0.09),
            cand("memory", "memory:a", 0.05, ids=[5]),
            cand("purchase", "purchase:sku1:5", 0.04, ids=[5]),
        ],
        1000,
        DEFAULT,
    )
    assert keys(packed) == ["message:5", "purchase:sku1:5"]


def test_the_turn_being_answered_is_left_out_but_not_what_was_derived_from_it():
    kept = excluding(
        [message(5, 0.1), cand("turn", "message:6", 0, ids=[6]), cand("memory", "memory:a", 0.1, ids=[6])],
        frozenset({6}),
    )
    assert keys(kept) == ["message:5", "memory:a"]


# -- the budget ----------------------------------------------------------------------------------

KINDS = list(SECTION_OF)
candidate_sets = st.lists(
    st.builds(
        lambda kind, n, score, chars, days, ids, fact: cand(
            kind,
            f"{kind}:{n}",
            score,
            text="x" * chars,
            at=None if days is None else T0 + timedelta(days=days, minutes=n),
            ids=ids,
            facts=(fact_key("prefers", "style", fact),) if fact else (),
        ),
        kind=st.sampled_from(KINDS),
        n=st.integers(0, 10_000),
        score=st.floats(0, 1, allow_nan=False),
        chars=st.integers(0, 700),
        days=st.none() | st.integers(0, 400),
        ids=st.lists(st.integers(1, 30), max_size=4),
        fact=st.none() | st.sampled_from(["modern", "japandi", "boho"]),
    ),
    max_size=60,
    unique_by=lambda c: c.key,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(candidates=candidate_sets, budget=st.integers(1, 3000), share=st.floats(0, 1))
def test_the_budget_is_never_exceeded(candidates, budget, share):
    config = DEFAULT.model_copy(update={"session_share": share})
    packed = pack(candidates, budget, config)
    text, sections = render(packed)
    assert len(text) <= budget * CHARS_PER_TOKEN
    session = "\n".join(f"- {line}" for line in sections.get("session", []))
    assert len(session) <= budget * CHARS_PER_TOKEN * share
    assert sum(len(lines) for lines in sections.values()) == len(packed)
    assert len(set(keys(packed))) == len(packed)


def test_an_item_too_long_for_the_budget_makes_room_for_smaller_ones():
    packed = pack([message(1, 0.9, text="x" * 500), message(2, 0.1, text="short")], 50, DEFAULT)
    assert keys(packed) == ["message:2"]


# -- order and rendering ---------------------------------------------------------------------------


def test_pinned_session_turns_are_kept_newest_first_and_shown_in_order():
    turns = [
        cand("turn", message_key(i), 0, text=f"turn {i} " + "y" * 80, at=T0 + timedelta(minutes=i), ids=[i])
        for i in range(10)
    ]
    budget = 300  # 30% of 1200 characters: three turns of ~90
    packed = pack([*list(reversed(turns)), message(50, 0.9)], budget, DEFAULT)
    assert keys(packed)[:3] == ["message:9", "message:8", "message:7"]
    _, sections = render(packed)
    assert [line.split()[1] for line in sections["session"]] == ["7", "8", "9"]


def test_the_profile_comes_first_whatever_its_score():
    packed = pack([message(1, 0.9), cand("profile", "profile:name", 0.0, text="Name: Harriet")], 1000, DEFAULT)
    assert keys(packed) == ["profile:name", "message:1"]


def test_conversation_turns_are_grouped_by_day_in_order():
    may2, may20 = T0, T0 + timedelta(days=18)
    packed = pack(
        [
            message(3, 0.9, may20, "Harriet: the sideboard"),
            message(1, 0.5, may2, "Harriet: japandi"),
            message(2, 0.4, may2 + timedelta(hours=1), "Harriet: the armchair"),
        ],
        1000,
        DEFAULT,
    )
    text, sections = render(packed)
    assert text == (
        "## From past conversations\n"
        "### 2 May 2023\n- Harriet: japandi\n- Harriet: the armchair\n"
        "### 20 May 2023\n- Harriet: the sideboard"
    )
    assert sections == {
        "conversation": [
            "[2 May 2023] Harriet: japandi",
            "[2 May 2023] Harriet: the armchair",
            "[20 May 2023] Harriet: the sideboard",
        ]
    }


def test_sections_follow_a_fixed_order_and_titles():
    packed = pack(
        [
            message(1, 0.9),
            cand("memory", "memory:a", 0.5),
            cand("preference", "pref:x", 0.1),
            cand("profile", "profile:name", 0.0),
        ],
        1000,
        DEFAULT,
    )
    text, sections = render(packed)
    assert (
        list(sections)
        == [s for s in SECTION_ORDER if s in sections]
        == ["profile", "preferences", "memories", "conversation"]
    )
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        f"## {SECTION_TITLES[s]}" for s in sections
    ]


def test_nothing_packed_renders_nothing():
    assert render(pack([], 1000, DEFAULT)) == ("", {})


def test_diversity_lets_a_second_piece_of_evidence_past_near_duplicates():
    import numpy as np

    def unit(*xs: float) -> np.ndarray:
        v = np.zeros(384, dtype=np.float32)
        v[: len(xs)] = xs
        return v / np.linalg.norm(v)

    same, twin, other = (
        cand("message", "message:1", 0.9, ids=[1], text="m: we painted a sunset"),
        cand("message", "message:2", 0.8, ids=[2], text="m: our sunset painting again"),
        cand("message", "message:3", 0.7, ids=[3], text="m: we went camping"),
    )
    same.embedding, twin.embedding, other.embedding = unit(1, 0), unit(0.99, 0.14), unit(0, 1)
    room = (len(same.text) + len(twin.text) + 3 * 3 + len(SECTION_TITLES["conversation"]) + 5 + len(day(T0)) + 5) // 4
    plain = pack([same, twin, other], room, DEFAULT)
    assert [c.key for c in plain] == ["message:1", "message:2"]
    diverse = pack([same, twin, other], room, DEFAULT.model_copy(update={"mmr_weight": 0.5, "mmr_threshold": 0.5}))
    assert [c.key for c in diverse] == ["message:1", "message:3"]


def test_equal_scores_are_ordered_by_time_and_text_never_by_a_random_id():
    # a memory's key holds a random UUID: re-ingesting the same history must not reorder
    # equally scored memories (and so change what fits the budget)
    older = cand("memory", "memory:ffffffff", 0.5, text="Tim read Dune.", at=T0)
    newer = cand("memory", "memory:00000000", 0.5, text="Tim read Emma.", at=T0 + timedelta(days=1))
    same_day = cand("memory", "memory:11111111", 0.5, text="Tim read Beowulf.", at=T0)
    room = len(SECTION_TITLES["memories"]) + 5 + len(same_day.text) + 3 + len(older.text) + 3  # two of the three fit
    for order in ([older, newer, same_day], [newer, same_day, older]):
        packed = pack(order, -(-room // CHARS_PER_TOKEN), DEFAULT)
        assert [c.text for c in packed] == ["Tim read Beowulf.", "Tim read Dune."]


def test_a_turn_is_listed_without_the_small_talk_it_opens_with():
    row = {"id": 7, "speaker": "Melanie", "role": "user", "created_at": T0, "passage_start": None}
    text = "Wow, Caroline! That's great! I just signed up for a pottery class yesterday."
    assert (
        from_row(row | {"content": text}, 320, set()).text == "Melanie: I just signed up for a pottery class yesterday."
    )
    for text, listed in [
        ("The Minnesota Wolves! I can't wait to play with them!", None),  # an answer, not a greeting
        ("Thanks! How are you? I won.", "How are you? I won."),  # a question is never dropped
        ("Rome! It was lovely.", None),
        ("Thanks, Maria!", None),  # all small talk: kept as it is
        ("Wow! Cool!", None),
        ("I paint. Cool!", None),  # only what a turn opens with
        ("Hey John, long time no see! Thanks so much. I went to Rome.", "I went to Rome."),
        ("Hi there! I'm looking for a sofa for my new flat.", "I'm looking for a sofa for my new flat."),
    ]:
        assert without_small_talk(text) == (listed or text), text


def test_a_dialogue_turn_is_listed_without_the_questions_it_closes_with():
    row = {"id": 7, "speaker": "Joanna", "role": "user", "created_at": T0, "passage_start": None}
    text = "Wow, Nate! I wrapped up my second script last week. How's the new job going? Any news?"
    assert from_row(row | {"content": text}, 320, set()).text == "Joanna: I wrapped up my second script last week."
    # the customer's own closing question is what they want; the assistant's only asks
    customer = {"id": 8, "speaker": None, "role": "user", "created_at": T0, "passage_start": None}
    asked = "I bought the Oslo sofa last month. Does it come in blue?"
    assert from_row(customer | {"content": asked}, 320, set()).text == f"user: {asked}"
    offer = "The Oslo sofa comes in blue and grey. Shall I reserve one for you?"
    assistant = customer | {"id": 9, "role": "assistant", "content": offer}
    assert from_row(assistant, 320, set()).text == "assistant: The Oslo sofa comes in blue and grey."
    for text, listed in [
        ("What do you think?", None),  # the whole turn: kept
        ("Wow! Did you see that band?", None),  # after small talk only: kept
        ("I read it. Is it good? I think so.", None),  # not at the end
        ("I love it. What about you? Any plans?", "I love it."),  # every closing question
        ("Look at this! [shares a photo: a cat on a sofa] Isn't it cute?", None),  # never cuts a photo's caption
        ("I moved in May... Guess where?", "I moved in May..."),
        ("I moved in May… Guess where?", "I moved in May…"),  # the sentence ends the passages know
        ("We went camping! How about you?  ", "We went camping!"),
    ]:
        assert without_closing_questions(text) == (listed or text), text


@given(st.lists(st.sampled_from(["I", "paint.", "Wow!", "you?", "How", "[photo]", "?", " ", "..."]), max_size=12))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_closing_questions_are_only_ever_cut_from_the_end(words):
    text = " ".join(words)
    out = without_closing_questions(text)
    assert out == text or (text.startswith(out) and out[-1] in ".!" and text.rstrip().endswith("?"))


@given(
    st.lists(
        st.sampled_from(["Wow,", "Caroline!", "Thanks.", "I", "paint", "the", "Wolves!", "?", " ", "  "]), max_size=12
    )
)
@settings(max_examples=300, deadline=None)
def test_small_talk_is_only_ever_cut_from_the_front(words):
    text = " ".join(words)
    out = without_small_talk(text)
    assert text.endswith(out) and (out.strip() or not text.strip() or out == text)


def test_past_half_the_budget_a_turn_is_listed_by_its_opening():
    said = "Melanie: I signed up for a pottery class. " + "It is like therapy for me, letting me be creative. " * 6
    turns = [message(i, 1 - i / 100, at=T0 + timedelta(minutes=i), text=said) for i in range(12)]
    packed = pack(turns, 300, DEFAULT)  # 1,200 characters: two whole turns take half of them
    assert keys(packed) == [message_key(i) for i in range(len(packed))]  # best first, none skipped
    assert [c.text for c in packed[:2]] == [said, said]
    assert len(packed) > 4 and all(
        c.text.startswith("Melanie: I signed up for a pottery class.") and c.text.endswith(" …") and len(c.text) <= 142
        for c in packed[2:]
    )
    assert all(t.text == said for t in turns)  # the candidates themselves are left whole
    assert len(render(packed)[0]) <= 1200
    whole = pack(turns, 300, DEFAULT.model_copy(update={"short_item_chars": 0}))
    assert [c.text for c in whole] == [said] * 3
    photo = "Melanie: I'm lucky to have my husband and kids; they keep me motivated. [shares a photo: a man and a girl]"
    assert shortened(photo, 90) == "Melanie: I'm lucky to have my husband and kids; they keep me motivated. …"
    camping = "Melanie: We went camping with the kids [shares a photo: a man and a little girl in front of a waterfall]"
    assert shortened(camping, 90) == "Melanie: We went camping with the kids …"  # never into the photo's brackets
    windows = [replace(t, clipped=True) for t in turns]  # long turns, each a window around what matched
    assert [c.text for c in pack(windows, 300, DEFAULT)] == [said] * 3  # not cut again


@given(text=st.text(max_size=400), limit=st.integers(20, 300))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_a_shortened_turn_is_an_opening_of_it_within_the_limit(text, limit):
    out = shortened(text, limit)
    if len(text) <= limit:
        assert out == text
    else:
        assert out.endswith(" …") and text.startswith(out[:-2]) and len(out) <= limit + 2
    assert text.endswith(without_small_talk(text))  # any text: small talk only ever cut from the front


# -- texts made on first read ----------------------------------------------------------------------


class Made:
    """Lazy texts that remember which were made."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def text(self, key: str, text: str):
        def make() -> str:
            self.keys.append(key)
            return text

        return make


def test_a_text_is_made_only_when_packing_may_need_it():
    """Once the budget is spent, a candidate that cannot fit whatever its text says is
    passed over unread: a long turn's text (its clip) is never made. The context is the one
    the same candidates give with their texts made beforehand."""
    made = Made()
    first, second = "user: " + "a" * 300, "user: " + "b" * 200
    cost = len(SECTION_TITLES["conversation"]) + 5 + len(day(T0)) + 5 + len(first) + 3 + len(second) + 3
    budget = (cost + 5) // CHARS_PER_TOKEN  # room for the first two and at most a few characters
    texts = [first, second] + [f"user: turn {i} " + "c" * 300 for i in range(2, 8)]
    turns = [replace(message(i, 1.0 - i / 100), least=len("user: "), clipped=True) for i in range(8)]
    eager = [replace(t, text=text) for t, text in zip(turns, texts, strict=True)]
    for t, text in zip(turns, texts, strict=True):
        t.text = made.text(t.key, text)
    packed = pack(turns, budget, DEFAULT)
    assert keys(packed) == [message_key(0), message_key(1)]
    assert made.keys == [message_key(0), message_key(1)], "texts of turns that could not fit were made"
    assert [(c.key, c.text) for c in pack(eager, budget, DEFAULT)] == [(c.key, c.text) for c in packed]


def test_the_packing_order_reads_texts_only_to_break_ties():
    made = Made()
    turns = [message(i, 0.5 if i in (3, 5) else 1.0 - i / 100) for i in range(8)]
    for t in turns:
        t.text = made.text(t.key, f"user: turn {8 - int(t.key.split(':')[1])}")
    order = packing_order(turns)
    assert sorted(made.keys) == [message_key(3), message_key(5)]
    assert order == sorted(turns, key=_full_key)


def _full_key(c: Candidate) -> tuple[bool, float, bool, datetime, str, str]:
    """The packing order's definition: by pin, score, form, age, then text and key."""
    return (not c.pinned, -c.score, c.kind == "message", c.timestamp or T0 - timedelta(days=10**5), c.text, c.key)


_KINDS = ("message", "memory", "interest", "turn")


@st.composite
def _candidates(draw) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(_KINDS))
        at = T0 + timedelta(days=draw(st.integers(0, 2)))
        mid = draw(st.integers(0, 5))
        text = draw(st.sampled_from(["", "I like oak.", "I like oak a lot, and walnut too."]) | st.text(max_size=60))
        prefix = "user: " if kind in ("message", "turn") else ""
        c = cand(kind, f"{kind}:{i}", draw(st.sampled_from([0.1, 0.2, 0.3])), text=prefix + text, at=at, ids=[mid])
        c.text, c.least, c.clipped = prefix + text, len(prefix), draw(st.booleans())
        out.append(c)
    return out


@given(candidates=_candidates(), budget=st.integers(5, 120))
@settings(max_examples=400, deadline=None, derandomize=True)
def test_texts_made_on_first_read_pack_as_texts_made_beforehand(candidates, budget):
    """The order is the definition's; what is packed, and how, is what the same candidates
    give with every text made beforehand."""
    lazy = [replace(c, text=(lambda t: lambda: t)(c.text)) for c in candidates]
    assert [c.key for c in packing_order(lazy)] == [c.key for c in sorted(candidates, key=_full_key_turns)]
    lazy = [replace(c, text=(lambda t: lambda: t)(c.text)) for c in candidates]
    assert [(c.key, c.text) for c in pack(lazy, budget, DEFAULT)] == [
        (c.key, c.text) for c in pack(candidates, budget, DEFAULT)
    ]


def _full_key_turns(c: Candidate) -> tuple[int, object]:
    """:func:`packing_order` by its definition: pinned first, the session's turns newest
    first, then :func:`_full_key`."""
    if c.kind == "turn":
        return (1, (-(c.timestamp or T0).timestamp(), _full_key(c)))
    return (0 if c.pinned else 2, _full_key(c))
