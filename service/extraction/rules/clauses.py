"""Sentences and clauses, and whose stance each clause states.

"I love walnut and my wife Emma hates glass" is two clauses: the first is the speaker's
("self"), the second someone else's ("other", and named). Only the speaker's clauses give
the customer's preferences; other people's stances become memories about them.
"""

from __future__ import annotations

import re
from bisect import bisect_right, insort
from dataclasses import dataclass
from typing import Literal

from service.catalog import Catalog
from service.extraction.rules.lexicon import (
    AND_SEP,
    CLAUSE_SPLIT,
    CLAUSE_VERB,
    COMPOUND_HEAD,
    LEAD_FILLER,
    LEAD_SUBJ,
    NOT_SUBJECT,
    OTHER_PRONOUNS,
    POSSESSIVE_HEADS,
    PRONOUN_OBJECT,
    QUESTION_START,
    SENTENCE_SPLIT,
    STANCE_WORD,
    SUBJ_CUT,
    VERBISH,
    is_catalog_word,
)

MAX_SENTENCES = 300  # a message is mined on its first 300 sentences
# how far before a separator a CLAUSE_VERB match that runs past it can start: "they'll" and the
# blanks after it ("they'll  and" is a verb, "and" its word)
VERB_REACH = 8

Owner = Literal["self", "other"]


@dataclass(frozen=True, slots=True)
class Clause:
    """A stretch of a sentence with one subject: whose stance it states, and whether that
    someone else is named ("my wife Emma", "Tom") rather than a bare pronoun ("she")."""

    start: int
    end: int
    owner: Owner = "self"
    named: bool = False


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT.split(text) if s and s.strip()][:MAX_SENTENCES]


def is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith("?") or bool(QUESTION_START.match(LEAD_FILLER.sub("", sentence)))


def subject_owner(phrase: str, known_people: set[str], catalog: Catalog) -> Owner | None:
    """ "other" for someone else ("my wife Emma", "he", "Tom"), "self" for the speaker's own name,
    None when the phrase is no subject at all ("Honestly", "Walnut", a lone "Our")."""
    words = phrase.split()
    if not words:
        return None
    first = words[0].lower()
    if first in OTHER_PRONOUNS:
        return "other"
    if first in POSSESSIVE_HEADS:
        return "other" if len(words) > 1 else None
    name = re.split(r"'s\b", phrase)[0].strip()
    if name.lower() in NOT_SUBJECT or is_catalog_word(catalog, name) or catalog.match_brands(name):
        return None
    if name.lower() in known_people and "'s" not in phrase:
        return "self"
    return "other"


def split_clauses(sentence: str, known_people: set[str], catalog: Catalog) -> list[Clause]:
    """Split a sentence where a new subject starts; each clause knows whose stance it states."""
    cuts = _cuts(sentence, known_people, catalog)
    return _with_owners(sentence, _between(cuts, len(sentence)), known_people, catalog)


def clause_at(clauses: list[Clause], pos: int) -> Clause | None:
    """The clause holding ``pos`` (``clauses`` are in order and never overlap)."""
    i = bisect_right(clauses, pos, key=lambda c: c.start) - 1
    return clauses[i] if i >= 0 and pos < clauses[i].end else None


def _cuts(sentence: str, known_people: set[str], catalog: Catalog) -> list[tuple[int, int]]:
    """The separators between clauses, as (start, end), sorted."""
    cuts: list[tuple[int, int]] = []
    ends: list[int] = []  # the cuts' ends, sorted: where the clause before a separator starts
    for m in CLAUSE_SPLIT.finditer(sentence):
        if m.end() > m.start() and not _compound(sentence, _clause_start(ends, m.start()), m.group(), m.start()):
            cuts.append((m.start(), m.end()))
            insort(ends, m.end())
    # whether the clause since the last cut has a verb, read up to ``read``: a later separator
    # reads on from there, not from the clause's start again
    start, has_verb, read = -1, False, 0
    for m in SUBJ_CUT.finditer(sentence):
        if m.group("other") and not _starts_someone_elses_clause(sentence, m, known_people, catalog):
            continue
        prev = _clause_start(ends, m.start())
        if prev != start:
            start, has_verb, read = prev, False, prev
        if not has_verb:
            # a verb this search finds and the last one did not ends past ``read``, a separator
            # (never inside a word or a run of blanks): it starts at most VERB_REACH before it
            has_verb = CLAUSE_VERB.search(sentence, max(prev, read - VERB_REACH), m.start()) is not None
            read = m.start()
        if not has_verb or _compound(sentence, prev, m.group(), m.start()):
            continue  # "Me and Emma": no clause before the conjunction yet
        cuts.append((m.start(), m.end()))
        insort(ends, m.end())
    cuts.sort()
    return cuts


def _clause_start(ends: list[int], pos: int) -> int:
    """Where the clause holding ``pos`` starts: the last cut's end at or before it."""
    i = bisect_right(ends, pos)
    return ends[i - 1] if i else 0


def _compound(sentence: str, clause_start: int, separator: str, start: int) -> bool:
    """ "Me and my husband", "My wife and I": one compound subject, not two clauses."""
    if not AND_SEP.match(separator):
        return False
    head = sentence[clause_start:start]
    return bool(COMPOUND_HEAD.match(head) and not CLAUSE_VERB.search(head))


def _starts_someone_elses_clause(sentence: str, m: re.Match[str], known_people: set[str], catalog: Catalog) -> bool:
    """Whether the subject after a conjunction or comma ("but he prefers", "and Emma hates") opens a clause."""
    if subject_owner(m.group("other"), known_people, catalog) is None:
        return False
    first = m.group("other").split()[0].lower()
    following = m.group("next") or ""
    if first in OTHER_PRONOUNS:
        # "..., they really make me keep going", "and they loved it" stay; "but he prefers oak" splits
        return bool(STANCE_WORD.match(following)) and not PRONOUN_OBJECT.match(sentence, m.end())
    # "and Emma last week": a name, not a new subject
    return first in POSSESSIVE_HEADS or bool(VERBISH.match(following))


def _between(cuts: list[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """The stretches of text between the cuts (overlapping cuts merged)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for s, e in cuts:
        if s < pos:
            pos = max(pos, e)
            continue
        if s > pos:
            spans.append((pos, s))
        pos = e
    if pos < length:
        spans.append((pos, length))
    return spans


def _with_owners(sentence: str, spans: list[tuple[int, int]], known_people: set[str], catalog: Catalog) -> list[Clause]:
    """Each clause is its leading subject's; a clause without one keeps the previous clause's owner."""
    clauses: list[Clause] = []
    owner: Owner = "self"  # a subjectless first clause is the speaker's: "show me oak tables", "never liked leather"
    for start, end in spans:
        text = sentence[start:end]
        lead = LEAD_FILLER.match(text)
        m = LEAD_SUBJ.match(text, lead.end() if lead else 0)
        named = False
        if m and (m.group("self") or m.group("forme")):
            owner = "self"
        elif m and m.group("other"):
            who = subject_owner(m.group("other"), known_people, catalog)
            if who is not None:
                owner = who
                named = who == "other" and m.group("other").split()[0].lower() not in OTHER_PRONOUNS
        clauses.append(Clause(start, end, owner, named))
    return clauses
