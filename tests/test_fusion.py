"""Fusion and boosts (pure functions, no stores): reciprocal-rank arithmetic, one candidate
per key, the expansion's share, importance, recency, the assistant's weight, the period a
query names (up to the calendar's edge), a memory ranking with its source turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.retrieval import DEFAULT, PRESETS
from service.retrieval.candidates import Candidate, message_key
from service.retrieval.fusion import (
    apply_expansion,
    asks_now,
    boost,
    fuse,
    lift_memories,
    period_of,
    plan_expansion,
    score,
)
from service.text import named_speakers, without_names

UTC = UTC
NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def msg(mid: int, *, at: datetime = NOW, role: str = "user", raw: dict[str, float] | None = None) -> Candidate:
    return Candidate(
        key=message_key(mid),
        kind="message",
        section="conversation",
        text=f"turn {mid}",
        timestamp=at,
        message_ids=[mid],
        role=role,
        group="15 Jan 2024",
        raw=dict(raw or {}),
    )


def mem(key: str, *, ids: list[int] = (), importance: float = 0.5, at: datetime = NOW) -> Candidate:
    return Candidate(
        key=f"memory:{key}",
        kind="memory",
        section="memories",
        text=f"memory {key}",
        timestamp=at,
        message_ids=list(ids),
        memory_id=key,
        importance=importance,
    )


# -- reciprocal-rank fusion ------------------------------------------------------------------------


def test_each_source_adds_its_weight_over_k_plus_rank():
    k = DEFAULT.rrf_k
    fused = fuse(
        {
            "messages_vector": [msg(1, raw={"messages_vector": 0.9}), msg(2, raw={"messages_vector": 0.8})],
            "messages_text": [msg(2, raw={"messages_text": 7.5})],
        },
        DEFAULT,
    )
    assert fused["message:1"].parts == {"messages_vector": pytest.approx(1.0 / (k + 1))}
    assert fused["message:2"].parts == {
        "messages_vector": pytest.approx(1.0 / (k + 2)),
        "messages_text": pytest.approx(DEFAULT.messages_text.weight / (k + 1)),
    }
    # found twice: one candidate, both raw scores, in the order the sources were read
    assert list(fused) == ["message:1", "message:2"]
    assert fused["message:2"].raw == {"messages_vector": 0.8, "messages_text": 7.5}


def test_a_lower_weight_ranks_the_same_position_lower():
    fused = fuse({"memories_vector": [mem("a")], "memories_text": [mem("b")]}, DEFAULT)
    assert fused["memory:a"].fused > fused["memory:b"].fused
    assert fused["memory:b"].fused == pytest.approx(DEFAULT.memories_text.weight / (DEFAULT.rrf_k + 1))


def test_a_candidate_found_twice_keeps_its_first_form():
    first, second = mem("a"), mem("a")
    second.text = "another rendering"
    fused = fuse({"memories_vector": [first], "memories_text": [second]}, DEFAULT)
    assert fused["memory:a"] is first and set(first.parts) == {"memories_vector", "memories_text"}


def test_the_sessions_own_turn_replaces_a_search_hit_of_it_and_keeps_both_shares():
    hit = msg(7, raw={"messages_vector": 0.5})
    turn = msg(7)
    turn.kind, turn.section, turn.pinned = "turn", "session", True
    fused = fuse({"messages_vector": [hit], "recent_turns": [turn]}, DEFAULT)
    assert fused["message:7"] is turn
    assert set(turn.parts) == {"messages_vector", "recent_turns"}


def test_sources_are_collected_in_a_fixed_order_whatever_order_they_finished_in():
    a = fuse({"graph_entities": [mem("x")], "memories_vector": [mem("y")]}, DEFAULT)
    assert list(a) == ["memory:y", "memory:x"]


# -- expansion ---------------------------------------------------------------------------------------


def test_the_best_hits_are_expanded_with_a_decayed_share():
    fused = fuse({"messages_vector": [msg(i) for i in range(1, 20)]}, DEFAULT)
    plan = plan_expansion(fused, DEFAULT)
    assert plan is not None and plan.anchors == list(range(1, DEFAULT.neighbour_hits + 1))
    neighbour = msg(100)
    apply_expansion(fused, plan, [(neighbour, 1), (msg(2), 1)], DEFAULT)
    assert fused["message:100"] is neighbour
    assert plan.seed_score[1] == fused["message:1"].fused
    assert neighbour.parts == {"neighbour": pytest.approx(plan.seed_score[1] * DEFAULT.neighbour_decay)}
    # a turn that is already a candidate keeps its form and gains the larger share only
    assert fused["message:2"].parts["neighbour"] == pytest.approx(plan.seed_score[1] * DEFAULT.neighbour_decay)


def test_a_matched_entity_pulls_in_its_latest_mentions():
    entity = Candidate(
        key="entity:pet:pixel",
        kind="entity",
        section="entities",
        text="Pixel (pet)",
        timestamp=NOW,
        mention_ids=[3, 4, 5, 6],
    )
    fused = fuse({"graph_entities": [entity], "messages_vector": [msg(6)]}, DEFAULT)
    plan = plan_expansion(fused, DEFAULT.model_copy(update={"neighbour_width": 0}))
    assert plan is not None and plan.anchors == []
    assert set(plan.mentions) == {4, 5, 6}  # the last entity_mentions (3) turns
    assert plan.fetch == [4, 5]  # turn 6 is a candidate already
    apply_expansion(fused, plan, [(msg(4), None), (msg(5), None)], DEFAULT)
    assert fused["message:4"].parts == {"entity_mention": pytest.approx(entity.fused * DEFAULT.neighbour_decay)}


def test_a_second_round_follows_the_best_hits_entities_to_their_other_mentions():
    config = DEFAULT.model_copy(update={"neighbour_width": 0, "co_mention_hits": 2, "co_mention_decay": 0.5})
    fused = fuse({"messages_vector": [msg(1), msg(2), msg(9)]}, config)
    # entities as the turns that mention them: a rare one shared with hit 1, a common one with
    # hit 2, one only turn 9 (not a best hit) mentions, and one mentioned once
    mentioned = [[1, 30], [2, 40, 41, 42], [9, 50], [1]]
    plan = plan_expansion(fused, config, mentioned)
    assert plan is not None
    assert plan.co_mentions == {
        30: pytest.approx(fused["message:1"].fused * 0.5 / 2),
        40: pytest.approx(fused["message:2"].fused * 0.5 / 4),
        41: pytest.approx(fused["message:2"].fused * 0.5 / 4),
        42: pytest.approx(fused["message:2"].fused * 0.5 / 4),
    }
    assert plan.fetch == [30, 40, 41, 42]
    apply_expansion(fused, plan, [(msg(30), None)], config)
    assert fused["message:30"].parts == {"co_mention": pytest.approx(plan.co_mentions[30])}
    # an entity in more than co_mention_max turns is too common to follow
    common = config.model_copy(update={"co_mention_max": 3})
    assert set(plan_expansion(fused, common, mentioned).co_mentions) == {30}


def test_nothing_to_expand_is_no_plan():
    assert plan_expansion(fuse({"memories_vector": [mem("a")]}, DEFAULT), DEFAULT) is None
    assert plan_expansion(fuse({"messages_vector": [msg(1)]}, DEFAULT), PRESETS["fast"]) is None


# -- boosts --------------------------------------------------------------------------------------


def test_importance_recency_and_the_assistant_weight():
    config = DEFAULT
    important, minor = mem("i", importance=0.9), mem("m", importance=0.1)
    assert boost(important, config, NOW, None) > boost(minor, config, NOW, None)
    assert boost(important, config, NOW, None) == pytest.approx((1 + 0.3 * 0.4) * (1 + 0.1))
    old = msg(1, at=NOW - timedelta(days=config.recency_half_life_days))
    assert boost(old, config, NOW, None) == pytest.approx(1 + config.recency_weight * 0.5)
    assert boost(msg(2, role="assistant"), config, NOW, None) == pytest.approx(
        config.assistant_weight * (1 + config.recency_weight)
    )
    undated = msg(3)
    undated.timestamp = None
    assert boost(undated, config, NOW, None) == 1.0
    # a turn dated after the reference is not "newer than new"
    assert boost(msg(4, at=NOW + timedelta(days=3)), config, NOW, None) == boost(msg(5), config, NOW, None)


def test_a_question_naming_a_speaker_prefers_their_own_turns():
    config = DEFAULT
    hers, his, unnamed = msg(1), msg(2), msg(3)
    hers.speaker, his.speaker = "Melanie", "Caroline"
    named = frozenset({"melanie"})
    assert boost(hers, config, NOW, None, speakers=named) == boost(unnamed, config, NOW, None, speakers=named)
    assert boost(his, config, NOW, None, speakers=named) == pytest.approx(
        config.other_speaker_weight * boost(hers, config, NOW, None, speakers=named)
    )
    # naming both, or nobody, weighs no one down
    both = frozenset({"melanie", "caroline"})
    assert boost(his, config, NOW, None, speakers=both) == boost(hers, config, NOW, None, speakers=both)
    assert boost(his, config, NOW, None) == boost(hers, config, NOW, None)


def test_a_named_month_boosts_what_falls_in_it():
    period = period_of("what did I buy in May 2023?", NOW)
    assert period == (datetime(2023, 5, 1, tzinfo=UTC), datetime(2023, 6, 1, tzinfo=UTC))
    first, inside, end = (
        msg(1, at=period[0]),
        msg(2, at=datetime(2023, 5, 31, 23, 59, tzinfo=UTC)),
        msg(3, at=period[1]),
    )
    candidates = fuse({"messages_vector": [first, inside, end]}, DEFAULT)
    score(candidates, DEFAULT, NOW, period)
    assert "period" in first.parts and "period" in inside.parts and "period" not in end.parts  # [start, end)
    assert inside.score == pytest.approx(inside.fused * boost(inside, DEFAULT, NOW, None) * DEFAULT.period_boost)


@pytest.mark.parametrize(
    ("query", "start"),
    [
        ("what happened on 9999-12-31?", datetime(9999, 12, 31, tzinfo=UTC)),
        ("and on 0001-01-01?", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_period_at_the_calendars_edge_ends_at_the_edge(query, start):
    period = period_of(query, NOW)
    assert period is not None and period[0] == start and period[0] < period[1]
    assert period[1] <= datetime.max.replace(tzinfo=UTC)
    c = msg(1, at=start + timedelta(hours=12))
    assert boost(c, DEFAULT, NOW, period) == pytest.approx(boost(c, DEFAULT, NOW, None) * DEFAULT.period_boost)


def test_no_period_named_no_period():
    assert period_of("which sofa did I like?", NOW) is None


def test_a_memory_ranks_at_least_as_high_as_its_source_turn():
    turn, memory, unrelated = msg(9), mem("a", ids=[9]), mem("b", ids=[99])
    turn.text, memory.text = "Ana: I bought a walnut sideboard!", "[15 Jan 2024] Ana bought a walnut sideboard."
    candidates = fuse({"memories_vector": [unrelated, memory], "messages_vector": [turn]}, DEFAULT)
    score(candidates, DEFAULT, NOW, None)
    assert memory.score == turn.score and memory.parts["source_turn"] > 0
    assert "source_turn" not in unrelated.parts  # its turn is not a candidate


def test_a_memory_ranked_above_its_turn_keeps_its_score_unread():
    """Whether a memory says most of its turn matters only when the turn ranks higher: a
    memory above its turn is left as it is, and neither text (a long turn's clip) is made."""
    read: list[str] = []

    def unread(key: str):
        def make() -> str:
            read.append(key)
            return "Ana: I bought a walnut sideboard!"

        return make

    turn, memory = msg(9), mem("a", ids=[9])
    turn.text, memory.text = unread("turn"), unread("memory")
    candidates = fuse({"memories_vector": [memory], "messages_text": [turn]}, DEFAULT)
    score(candidates, DEFAULT, NOW, None)
    assert memory.score > turn.score and "source_turn" not in memory.parts
    assert read == []
    memory.score = turn.score / 2  # ranked below it: the texts are compared
    lift_memories(candidates)
    assert memory.score == turn.score and sorted(read) == ["memory", "turn"]


def test_a_memory_holding_part_of_its_turn_ranks_just_below_it():
    turn, memory = msg(9), mem("a", ids=[9])
    turn.text = "Ana: I bought a walnut sideboard, and my sister Wilhelmina is allergic to wool."
    memory.text = "[15 Jan 2024] Ana bought a walnut sideboard."
    candidates = fuse({"memories_vector": [memory], "messages_vector": [turn]}, DEFAULT)
    score(candidates, DEFAULT, NOW, None)
    assert turn.score > memory.score > 0.99 * turn.score


@pytest.mark.parametrize(
    ("query", "now"),
    [
        ("what is my current sofa?", True),
        ("where do we live now?", True),
        ("do I still like oak?", True),
        ("what did I like in May 2023?", False),
        ("which sofa did I buy?", False),
        ("what do I know about snow?", False),
    ],
)
def test_a_question_about_now_is_recognised(query, now):
    assert asks_now(query) is now


def test_a_question_about_now_weighs_recency_more():
    new, old = msg(1, at=NOW - timedelta(days=10)), msg(2, at=NOW - timedelta(days=400))
    plain = boost(new, DEFAULT, NOW, None) / boost(old, DEFAULT, NOW, None)
    current = boost(new, DEFAULT, NOW, None, now=True) / boost(old, DEFAULT, NOW, None, now=True)
    assert current > plain > 1
    # enough to put the newer of two equally matching facts clearly first
    assert current > 1.5


def test_a_memory_counts_as_said_by_the_speaker_of_its_turn():
    theirs, mine = msg(1), msg(2)
    theirs.speaker, mine.speaker = "Caroline", "Melanie"
    theirs.parts, mine.parts = {"messages_vector": 0.02}, {"messages_vector": 0.02}
    their_fact, my_fact = mem("a", ids=[1]), mem("b", ids=[2])
    their_fact.parts, my_fact.parts = {"memories_vector": 0.03}, {"memories_vector": 0.03}
    candidates = {c.key: c for c in (theirs, mine, their_fact, my_fact)}
    score(candidates, DEFAULT, NOW, None, speakers=frozenset({"melanie"}))
    assert their_fact.speaker == "Caroline"
    assert their_fact.score == pytest.approx(DEFAULT.other_speaker_weight * my_fact.score)
    assert theirs.score == pytest.approx(DEFAULT.other_speaker_weight * mine.score)


def test_the_speakers_a_question_names_are_found_and_taken_out_of_what_is_embedded():
    speakers = ["Caroline", "Melanie", "Anna Lee"]
    assert named_speakers("What is Caroline's identity?", speakers) == {"caroline"}
    assert named_speakers("did anna lee and MELANIE meet?", speakers) == {"anna lee", "melanie"}
    assert named_speakers("What do Carolines like?", speakers) == frozenset()  # whole words only
    assert without_names("What is Caroline's identity?", {"caroline"}) == "What is identity?"
    assert without_names("Did Anna Lee meet Melanie?", {"anna lee", "melanie"}) == "Did meet?"
    assert without_names("Did Mel meet Melanie, then?", {"melanie"}) == "Did Mel meet, then?"
    assert without_names("Caroline?", {"caroline"}) == "Caroline?"  # nothing else to ask
