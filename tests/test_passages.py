"""Long texts as pure functions (no stores): how a message is split into passages, and
how a long text is clipped around what matched instead of to its head."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from service.retrieval import candidates
from service.retrieval.candidates import clip, stem, stems
from vectors.passages import PASSAGE_CHARS, for_message, split

SENTENCES = [f"Sentence number {i} talks about topic {i % 7} at some length." for i in range(200)]
TEXT = " ".join(SENTENCES)


# -- split ---------------------------------------------------------------------------------------


def test_a_message_its_embedding_covers_has_no_passages():
    text = "A short turn about oak shelves."
    assert for_message(text, covered=len(text)).passages == []
    assert for_message(TEXT, covered=len(TEXT)).passages == []
    assert for_message(text + "  \n", covered=len(text)).passages == []  # trailing blanks are nothing to see


def test_only_the_passages_past_the_covered_head_are_embedded():
    covered = 1_000
    sp = for_message(TEXT, covered=covered)
    assert sp.passages == split(TEXT)  # full-text ranking per passage still covers the whole message
    assert 0 < sp.head < len(sp.passages)
    assert all(p.end <= covered for p in sp.passages[: sp.head])
    assert sp.to_embed == sp.passages[sp.head :]
    assert sp.to_embed[0].end > covered  # the passage the head's cut runs into is embedded
    assert len(for_message(TEXT, covered=0).to_embed) == len(sp.passages)


def test_passages_are_whole_sentences_of_about_the_passage_size():
    passages = split(TEXT)
    assert len(passages) >= len(TEXT) // PASSAGE_CHARS
    for p in passages:
        body = TEXT[p.start : p.end]
        assert len(body) <= PASSAGE_CHARS
        assert body.startswith("Sentence") and body.endswith(".")
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    assert passages[-1].end == len(TEXT)


def test_a_sentence_longer_than_a_passage_is_cut_at_spaces():
    text = " ".join(f"word{i}" for i in range(1000))  # no sentence end at all
    passages = split(text)
    assert all(len(text[p.start : p.end]) <= PASSAGE_CHARS for p in passages)
    assert all(text[p.start] != " " and text[p.end - 1] != " " for p in passages)
    assert " ".join(text[p.start : p.end] for p in passages) == text  # nothing lost


@given(st.text(alphabet=st.sampled_from("ab .!?\n"), min_size=0, max_size=3000))
def test_passages_cover_the_text_in_order_without_overlap(text):
    passages = split(text, size=50)
    ends = [0]
    for p in passages:
        assert ends[-1] <= p.start < p.end <= len(text)
        assert len(text[p.start : p.end]) <= 50
        # only whitespace between passages
        assert not text[ends[-1] : p.start].strip()
        ends.append(p.end)
    if passages:
        assert not text[ends[-1] :].strip()


# -- clip ----------------------------------------------------------------------------------------


def test_a_short_text_is_not_clipped():
    assert clip("  Oak   shelves,\nplease. ", 100, {"oak"}) == "Oak shelves, please."


def test_clip_keeps_one_window_around_the_best_matching_sentence():
    text = TEXT + " The parking code for the loading bay is 7781-Q. " + TEXT
    out = clip(text, 300, {"parking", "code", "loading"})
    assert "The parking code for the loading bay is 7781-Q." in out
    assert len(out) <= 300
    assert out.startswith("…") and out.endswith("…")
    assert " … " not in out  # one contiguous window, not fragments


def test_clip_follows_the_matched_passage():
    text = TEXT + " Wilhelmina is allergic to wool."
    at = text.index("Wilhelmina")
    out = clip(text, 200, set(), focus=(at - 60, len(text)))
    assert out.endswith("Wilhelmina is allergic to wool.") and out.startswith("…")


def test_clip_matches_words_by_their_stem():
    text = TEXT + " She is researching adoption agencies. " + TEXT
    assert "researching adoption" in clip(text, 200, {"research"})
    assert stem("researching") == stem("research") and stem("dogs") == stem("dog")


_STEMMED = [
    "paint",
    "painting",
    "paints",
    "painted",
    "painter",
    "Paintings",
    "care",
    "cares",
    "cared",
    "car",
    "cars",
    "shelves",
    "shelved",
    "shelf",
    "dresses",
    "dress",
    "use",
    "uses",
    "user",
    "the",
    "a",
    "x1",
]


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(st.tuples(st.sampled_from(_STEMMED), st.sampled_from([" ", ", ", ". ", "! ", "\n"])), max_size=60),
    st.sets(st.sampled_from(_STEMMED), max_size=5),
)
def test_the_words_matched_per_sentence_are_those_whose_stem_is_a_query_term(words, query):
    text = "".join(w + sep for w, sep in words)
    terms = frozenset(stem(t) for t in query)
    spans = candidates._sentences(text)
    # what clip ranks sentences by: found term by term instead of stemming every word
    assert candidates._overlaps(text, spans, terms) == [len(terms & stems(text[a:b])) for a, b in spans]


@settings(max_examples=500, derandomize=True)
@given(st.text(alphabet="abdegilnsy", max_size=9))
def test_a_stem_is_the_word_less_the_first_suffix_it_ends_with(word):
    first = next((s for s in candidates._SUFFIXES if word.endswith(s) and len(word) - len(s) >= 3), "")
    assert stem(word) == word[: len(word) - len(first)]


@settings(max_examples=500, derandomize=True)
@given(st.text(alphabet=st.sampled_from("ab .!?…\n\t\u00a0"), max_size=40))
def test_sentences_are_the_text_between_sentence_ends(text):
    # a sentence end: blanks after ".", "!", "?" or "…", or a line break and the blanks after it
    ends = list(re.finditer(r"(?<=[.!?…])\s+|\n\s*", text))
    between = zip([0] + [m.end() for m in ends], [m.start() for m in ends] + [len(text)], strict=True)
    expected = [(a, b) for a, b in between if text[a:b].strip()] or [(0, len(text))]
    assert candidates._sentences(text) == expected


def test_words_are_counted_in_their_own_sentence_after_a_letter_whose_lower_case_is_longer():
    text = "İİİİİ. A. Paris"  # "İ".lower() is two characters: offsets into the lower-cased text shift
    spans = candidates._sentences(text)
    assert [text[a:b] for a, b in spans] == ["İİİİİ.", "A.", "Paris"]
    assert candidates._overlaps(text, spans, frozenset({stem("paris")})) == [0, 0, 1]


def test_with_nothing_matched_clip_keeps_the_head():
    out = clip(TEXT, 120, {"zebra"})
    assert out.startswith("Sentence number 0") and out.endswith("…") and len(out) <= 120


def test_one_sentence_longer_than_the_limit_is_cut_around_the_query_word():
    words = [f"w{i}" for i in range(400)]
    words[300] = "walnut"
    out = clip(" ".join(words), 100, {"walnut"})
    assert "walnut" in out and len(out) <= 100 and out.startswith("…")


@given(st.text(min_size=0, max_size=2000), st.integers(min_value=40, max_value=600))
def test_clip_never_exceeds_its_limit(text, limit):
    assert len(clip(text, limit, {"a", "b"})) <= limit


_PIECES = st.lists(
    st.one_of(
        st.sampled_from(["oak", "table", "delivery", "120", "cm", "Walnut", "the", "week"]),
        # long runs of whitespace: the window counts them as one space, as the clip does
        st.sampled_from([". ", "! ", "? ", "… ", ".\n", "\n", "\n\n", "  ", "\t", ".  ", " " * 40, "\n" * 6, "."]),
    ),
    min_size=50,
    max_size=1500,
)


@settings(max_examples=300, deadline=None)
@given(_PIECES, st.integers(min_value=40, max_value=400), st.floats(0, 1), st.integers(1, 1500))
def test_a_focused_clip_reads_only_around_the_focus_and_says_the_same(pieces, limit, where, size):
    # a long text is read only within ``limit`` of its focus: the window must be exactly the
    # one the whole text would give (with its "…" marks)
    text = " ".join(pieces)
    start = int(where * (len(text) - 1))
    focus = (start, min(len(text), start + size))
    windowed = clip(text, limit, {"oak", "delivery"}, focus)
    windowed_from = candidates._WINDOWED
    candidates._WINDOWED = 10**9  # never windowed: the whole text is split and scanned
    try:
        whole = clip(text, limit, {"oak", "delivery"}, focus)
    finally:
        candidates._WINDOWED = windowed_from
    assert windowed == whole
