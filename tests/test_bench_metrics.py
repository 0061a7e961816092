"""The LoCoMo benchmark's answer-in-context and answer-items rules (pure Python, no stores)."""

from __future__ import annotations

import pytest

from bench.locomo import (
    answer_eligibility,
    answer_items,
    contains_answer,
    is_generic,
    is_short,
    items_found,
    normalise_answer,
    normalise_text,
    turn_text,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Turtles.", "turtles"),
        ('"Inception"', "inception"),
        ("\u201cBecoming Nicole\u201d", "becoming nicole"),
        ("  Cyberpunk   2077 ", "cyberpunk 2077"),
        ("hard work\u2019s paying off", "hard work's paying off"),
        ("Spider-Man", "spider-man"),
        ("30\u201360 seconds", "30-60 seconds"),
        (7, "7"),
        (2022, "2022"),
        ("line\nbreak", "line break"),
    ],
)
def test_normalise_answer(raw, normalised):
    assert normalise_answer(raw) == normalised


def test_normalise_text_keeps_lines_and_collapses_spaces():
    assert (
        normalise_text("[8 May 2023] Caroline:  I  LOVE\tit\n- Mel:   ok")
        == "[8 may 2023] caroline: i love it\n- mel: ok"
    )


def test_short_is_five_words_and_forty_characters():
    assert is_short("a dance with dragons")
    assert is_short("one two three four five")
    assert not is_short("one two three four five six")
    assert is_short("x" * 40)
    assert not is_short("x" * 41)
    assert not is_short("responsibility, compassion and understanding")  # 4 words, 44 characters


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "jo",
        "uk",
        "7",
        "yes",
        "no",
        "that",
        "three",
        "twice",
        "2022",
        "may 2023",
        "7 may 2023",
        "february, 2023",
        "in 2013",
        "the one",
    ],
)
def test_generic_answers(answer):
    assert is_generic(answer)


@pytest.mark.parametrize(
    "answer", ["sage", "woodhaven", "40 points", "10 years", "cyberpunk 2077", "the alchemist", "max"]
)
def test_specific_answers(answer):
    assert not is_generic(answer)


def test_contains_answer_is_whole_words_case_insensitive_within_a_line():
    assert contains_answer("John: I added some SAGE to it.", "sage")
    assert not contains_answer("John: that message was long", "sage")  # inside a word
    assert not contains_answer("scored 140 points", "40 points")
    assert contains_answer("John: \u201cInception\u201d blew my mind", "inception")
    assert contains_answer("Nate: I  got\tthree turtles", "got three turtles")
    assert not contains_answer("Nate: I got\nthree turtles", "got three turtles")  # across two lines
    assert not contains_answer("anything", "")


EVIDENCE = ["Nate: My turtles are so chill. [shares a photo: a turtle on a rock]"]


def test_eligible_answer_is_found_in_evidence_and_normalised():
    assert answer_eligibility("Turtles.", EVIDENCE, EVIDENCE) == ("turtles", "eligible")


def test_caption_counts_as_evidence():
    turn = {"speaker": "Nate", "dia_id": "D1:1", "text": "Look at this!", "blip_caption": "a turtle on a rock"}
    text = turn_text(turn)
    assert answer_eligibility("a rock", [text], [text]) == ("a rock", "eligible")
    assert answer_eligibility("a rock", ["Look at this!"], ["Look at this!"]) == (None, "not_in_evidence")


def test_answer_not_verbatim_in_evidence_is_not_eligible():
    # a paraphrase, or an answer found only in some other turn of the conversation
    assert answer_eligibility("pet turtles", EVIDENCE, EVIDENCE) == (None, "not_in_evidence")
    assert answer_eligibility("hamster", EVIDENCE, [*EVIDENCE, "Joanna: my hamster"]) == (None, "not_in_evidence")


def test_rules_in_order():
    assert answer_eligibility(None, EVIDENCE, EVIDENCE) == (None, "no_answer")
    assert answer_eligibility("  ", EVIDENCE, EVIDENCE) == (None, "no_answer")
    long = "my turtles are so chill and calm"
    assert answer_eligibility(long, [long], [long]) == (None, "long")
    assert answer_eligibility("Yes", ["Yes, I do."], ["Yes, I do."]) == (None, "generic")
    assert answer_eligibility(3, ["I have 3 turtles"], ["I have 3 turtles"]) == (None, "generic")


def test_numbers_become_text_but_a_bare_number_is_generic():
    # an int answer is compared as its digits; alone it is no evidence (dates stamp every line)
    assert normalise_answer(140) == "140"
    assert answer_eligibility(140, ["John: I scored 140 in the game"], ["John: I scored 140 in the game"]) == (
        None,
        "generic",
    )
    text = "John: I scored 40 points!"
    assert answer_eligibility("40 points", [text], [text]) == ("40 points", "eligible")


def test_answer_said_in_many_turns_is_not_specific():
    turns = [f"Tim: the turtles again, day {i}" for i in range(6)]
    assert answer_eligibility("turtles", turns[:1], turns) == (None, "frequent")
    assert answer_eligibility("turtles", turns[:1], turns[:5]) == ("turtles", "eligible")


# -- answer items ---------------------------------------------------------------------------------

LIST_EVIDENCE = [
    "Caroline: I went to the pride parade last week!",
    "Caroline: I gave a school speech about my journey.",
    "Caroline: The support group & the mentoring program keep me going.",
]


def test_a_list_answer_is_scored_by_its_eligible_items():
    answer = "Pride parade, school speech, support group and a conference"
    # "a conference" was never said in a gold turn: it cannot be looked for
    items = answer_items(answer, LIST_EVIDENCE, LIST_EVIDENCE)
    assert items == ["pride parade", "school speech", "support group"]
    assert answer_eligibility(answer, LIST_EVIDENCE, LIST_EVIDENCE) == (None, "long")  # whole, it is no use
    context = "## From past conversations\n- Caroline: I went to the pride parade\n- Caroline: a support group"
    assert items_found(context, items) == 2 / 3


def test_items_split_at_commas_semicolons_ampersands_and_the_word_and():
    evidence = ["Nate: dogs; cats & fish and a SANDwich"]
    assert answer_items("dogs; cats & fish AND sandwich", evidence, evidence) == ["dogs", "cats", "fish", "sandwich"]
    # "and" inside a word is no separator, and an item said twice counts once
    assert answer_items("sandwich, Sandwich.", evidence, evidence) == ["sandwich"]


def test_items_follow_the_answer_rules():
    turns = [f"Tim: the turtles again, day {i}" for i in range(6)] + ["Tim: and my iguana"]
    # generic, frequent and unsaid items are left out; an answer without eligible items has none
    assert answer_items("yes, turtles, iguana, two", turns[-1:] + turns[:1], turns) == ["iguana"]
    assert answer_items("Yes", turns, turns) == []
    assert answer_items(None, turns, turns) == [] and answer_items(True, turns, turns) == []
    assert answer_items(7, ["Tim: 7 iguanas"], ["Tim: 7 iguanas"]) == []
