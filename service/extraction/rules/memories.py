"""Memories: each clause worth keeping, rewritten to stand on its own later.

"I went to a support group yesterday" from Caroline on 8 May 2023 becomes "Caroline went
to a support group on 7 May 2023." (an event, dated 7 May): first person -> the speaker's
name, relative dates -> absolute ones. Named people and pets also get a plain statement
("Emma is Dana's wife."). Questions, greetings, small talk and fragments give nothing.
The kind and importance come from what the other rules found in the clause: a purchase,
a date, a preference, a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from service.catalog import Catalog
from service.extraction.dates import DateMention, find_dates, format_day, midnight
from service.extraction.models import Entity, MemoryCandidate, MemoryKind, Preference, Purchase
from service.extraction.rules.clauses import Clause, Owner
from service.extraction.rules.lexicon import (
    AND_BEFORE,
    CLAUSE_VERB,
    COORD_VERB,
    EMOJI,
    FAVOURITE,
    FILLER,
    FIRST_PERSON,
    HAD_AFTER_D,
    IRREGULAR_3RD,
    KEEP_VERB,
    LATER_MENTION,
    LEAD_FILLER,
    LIKES,
    NAME_PATTERNS,
    NEGATION_3RD,
    OPINION_ONLY,
    OTHER_STANCE,
    PAST_VERB,
    PRONOUN_RE,
    QUESTION_START,
    SMALL_TALK,
    TO_YOU,
    VAGUE,
    WE_VERB,
    WORDS,
)
from service.extraction.rules.preferences import NamedValues

CUSTOMER = "The customer"
# the marks a statement ends with, as one run (entered only at its start: from inside the run,
# each mark would scan to the run's end again)
_CLOSING_MARKS = re.compile(
    r"(?<![!?.])[!?.]++$"
)  # the subject when neither the speaker nor the customer's name is known


@dataclass(frozen=True, slots=True)
class SentenceFacts:
    """One sentence and what the other rules found in it: what its memories are written from."""

    sentence: str
    at: datetime  # when the message was sent: "yesterday" is the day before
    subject: str  # who "I" is: the speaker's name, the customer's name, or CUSTOMER
    dates: list[DateMention]
    clauses: list[Clause]
    prefs: list[Preference]  # the customer's
    others: list[Preference]  # other people's stances
    purchases: list[Purchase]
    entities: list[Entity]


@dataclass(frozen=True, slots=True)
class _Statement:
    """A clause worth remembering and the facts it names."""

    text: str  # as said, without lead filler or emoji
    words: list[str]
    owner: Owner
    prefs: list[Preference]
    purchases: list[Purchase]
    entities: list[Entity]
    dates: list[DateMention]
    other_stance: bool  # a named someone's stance ("Tom likes leather"): remembered about them


def sentence_memories(facts: SentenceFacts, catalog: Catalog) -> list[MemoryCandidate]:
    memories = _who_is_who(facts.entities, facts.subject)
    # a statement asks only whether its clause names a value and how strongly the strongest is
    # held: each value once, at its strongest (a sentence saying "I love oak" a thousand times
    # is not a thousand checks of every clause)
    facts = replace(facts, prefs=_strongest_each(facts.prefs), others=_strongest_each(facts.others))
    for clause in facts.clauses:
        statement = _statement(facts, clause, catalog)
        if statement is not None:
            memories.append(_memory(statement, facts))
    return memories


def _strongest_each(prefs: list[Preference]) -> list[Preference]:
    strongest: dict[tuple[str, str], Preference] = {}
    for p in prefs:
        key = (p.attribute, p.value)
        if key not in strongest or p.strength > strongest[key].strength:
            strongest[key] = p
    return list(strongest.values())


def _who_is_who(entities: list[Entity], subject: str) -> list[MemoryCandidate]:
    """Named people and pets get a plain statement of who they are: "Emma is Dana's wife."."""
    possessive = "the customer's" if subject == CUSTOMER else subject + ("'" if subject.endswith("s") else "'s")
    return [
        MemoryCandidate(kind="fact", text=f"{e.name} is {possessive} {e.relation}.", importance=0.8)
        for e in entities
        if e.type in ("person", "pet") and e.relation and e.name.lower() != e.relation
    ]


def _statement(facts: SentenceFacts, clause: Clause, catalog: Catalog) -> _Statement | None:
    """The clause as a statement about the speaker (or a named someone's stance), or None when it is
    a question, a bare name, filler, small talk or a fragment."""
    found = _said(facts.sentence[clause.start : clause.end])
    if found is None:
        return None
    text, words = found
    stances = facts.prefs if clause.owner == "self" else facts.others  # someone else's: never the customer's
    named = NamedValues(catalog, text)
    prefs = [p for p in stances if p in named]
    other_stance = clause.owner == "other" and clause.named and bool(prefs or OTHER_STANCE.match(text))
    if not (FIRST_PERSON.search(text) or other_stance) or not CLAUSE_VERB.search(text):
        return None  # not about the speaker, or a fragment ("my wife Emma and our dog Max")
    low = text.lower()
    purchases = [
        p
        for p in facts.purchases
        if p.product_name.lower() in low or (p.category and catalog.match_categories(text).count(p.category))
    ]
    entities = [e for e in facts.entities if e.name.lower() in low]
    if not (prefs or purchases or entities) and _says_nothing(text, words, clause.owner):
        return None
    return _Statement(text, words, clause.owner, prefs, purchases, entities, find_dates(text, facts.at), other_stance)


def _said(clause: str) -> tuple[str, list[str]] | None:
    """The clause without lead filler and emoji, and its words; None for questions, a name given
    (already a fact) and short filler."""
    text = EMOJI.sub("", LEAD_FILLER.sub("", clause.strip()).strip()).strip(" ,-")
    if not text or text.endswith("?") or QUESTION_START.match(text):
        return None
    words = WORDS.findall(text)
    if len(words) <= 6 and any(p.search(text) for p in NAME_PATTERNS):
        return None  # the name itself is already a fact
    if len(words) < 3 or (FILLER.match(text) and len(words) < 6):
        return None
    return text, words


def _says_nothing(text: str, words: list[str], owner: Owner) -> bool:
    """Small talk ("I'm so proud of you"), a bare opinion ("I think so"), or too short and vague
    to stand alone ("I did it")."""
    if is_small_talk(text) or OPINION_ONLY.match(text):
        return True
    if len(words) < 6 and VAGUE.search(text):
        return True
    # "I love reading" is short but still says something about the speaker
    return len(words) < 4 and not (owner == "self" and LIKES.match(text))


def is_small_talk(text: str) -> bool:
    """A stance about the other person ("I'm so proud of you", "we hope you like it"): a
    ``SMALL_TALK`` stance with "you" after it in the same sentence (no "." between them)."""
    for sentence in text.split("."):
        yous = [m.start() for m in TO_YOU.finditer(sentence)]
        # a stance ending before the last "you": the character before "you" is no letter, so a
        # stance ends before that character at the latest, and reading the sentence as if it
        # ended there (``endpos``) changes nothing about what ends before it
        if yous and SMALL_TALK.search(sentence, 0, max(0, yous[-1] - 1)):
            return True
    return False


def _kind_and_importance(s: _Statement) -> tuple[MemoryKind, float]:
    people = any(e.type in ("person", "pet") for e in s.entities)
    if s.purchases:
        return "event", 0.8
    if s.dates and not s.prefs:
        return "event", 0.7 if people else 0.6  # a dated happening, however much else it mentions
    if s.prefs:
        return "preference", min(1.0, (0.5 if s.owner == "self" else 0.45) + 0.3 * max(p.strength for p in s.prefs))
    past = bool(PAST_VERB.search(s.text))
    # from here on the statement names no purchase, date or preference
    if people:  # "My wife and I hosted a get-together": something that happened, with someone
        return ("event", 0.7) if past else ("fact", 0.8)
    if any(e.type in ("place", "organization") for e in s.entities):
        return "fact", 0.7
    if any(e.type == "event" for e in s.entities):
        return "event", 0.6
    if past:
        return "event", 0.5
    if FAVOURITE.search(s.text):
        return "preference", 0.6
    if (s.owner == "self" and LIKES.match(s.text)) or s.other_stance:
        return "preference", 0.55
    return "fact", 0.45 if len(s.words) >= 6 else 0.35


def _memory(s: _Statement, facts: SentenceFacts) -> MemoryCandidate:
    """The statement in the third person with absolute dates, its kind, importance and date."""
    kind, importance = _kind_and_importance(s)
    today = midnight(facts.at)
    text = _standalone(s.text, s.dates, facts.subject, coordinate=bool(s.prefs))
    when = s.dates[0].value if s.dates else None
    if s.purchases:
        when = s.purchases[0].at or when or today
    if kind == "event" and not s.dates:
        when = when or today
        if not s.purchases or not facts.dates:
            text += f" (mentioned on {format_day(today)})"
    return MemoryCandidate(kind=kind, text=text[:1].upper() + text[1:] + ".", importance=round(importance, 2), at=when)


def _standalone(text: str, dates: list[DateMention], subject: str, coordinate: bool) -> str:
    """Relative dates made absolute, the speaker named, no closing punctuation."""
    for d in sorted(dates, key=lambda d: d.start, reverse=True):
        text = text[: d.start] + d.phrase + text[d.end :]
    text = third_person(text, subject, coordinate=coordinate)
    if subject == CUSTOMER:
        text = re.sub(r"(?<=\S\s)The customer", "the customer", text)
    return _CLOSING_MARKS.sub("", text.rstrip(" ,;:-"))


# -- the third person ----------------------------------------------------------------------------------------


def third_person(text: str, subject: str, coordinate: bool = False) -> str:
    """Rewrite first-person text about ``subject``: "I love my oak table" -> "Sarah loves Sarah's oak table".
    With ``coordinate``, verbs sharing the "I" follow: "I love walnut and hate glass" -> "... and hates glass"."""
    rewrite = _ThirdPerson(text, subject)
    out = PRONOUN_RE.sub(rewrite, text)
    if rewrite.conjugated and coordinate:
        out = COORD_VERB.sub(_coordinated_verb, out)
    return out


def third_person_verb(verb: str) -> str:
    """love -> loves, go -> goes, carry -> carries; past tenses, modals and contractions stay."""
    low = verb.lower()
    if low in IRREGULAR_3RD:
        return IRREGULAR_3RD[low]
    if low in KEEP_VERB or low.endswith(("ed", "n't", "'d", "ing")) or not low.isalpha():
        return verb
    if low.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _coordinated_verb(m: re.Match[str]) -> str:
    verb = m.group("verb")
    return f"{m.group('conj')}{m.group('advs')} " + (
        "does not" if verb.lower().startswith("do ") else third_person_verb(verb)
    )


class _ThirdPerson:
    """One rewrite: the replacement for each first-person match, in order (it keeps state)."""

    def __init__(self, text: str, subject: str) -> None:
        self.text = text
        self.subject = subject
        self.possessive = subject + ("'" if subject.endswith("s") else "'s")
        self.named = False  # after the first mention, "my"/"me" read better as "their"/"them"
        self.conjugated = False  # "I <verb>" became "<subject> <verb>s": verbs sharing that subject follow suit

    def __call__(self, m: re.Match[str]) -> str:
        if m.group("i") or m.group("we"):
            self.named = True
        if m.group("i"):
            return self._i(m)
        if m.group("we"):
            return f"{self.subject} and family" + WE_VERB.get((m.group("wecontr") or "").lower(), "")
        return self._other(m.group("other").lower())

    def _i(self, m: re.Match[str]) -> str:
        contr = (m.group("contr") or "").lower()
        neg = m.group("neg") or ""
        advs = m.group("advs") or ""
        verb = m.group("verb") or ""
        head = self._head(contr, verb)
        tail = f" {verb}" if verb else ""
        if neg:
            n = re.sub(r"\s+", " ", neg.strip().lower())
            self.conjugated = self.conjugated or (not contr and n in ("don't", "do not"))
            return f"{head} {NEGATION_3RD.get(n, n)}{advs}{tail}"
        if verb and not contr:
            if self._after_and(m.start()):
                return f"{head}{advs} {verb}"  # "Emma and I love" -> "Emma and Sarah love"
            self.conjugated = True
            return f"{head}{advs} {third_person_verb(verb)}"
        return f"{head}{advs}{tail}"

    def _after_and(self, at: int) -> bool:
        """Whether "and" and blanks come right before ``at`` ("Emma and I"): only the blanks
        before it are read (not the text from its start again at every "I")."""
        start = at
        while start > 0 and self.text[start - 1].isspace():
            start -= 1
        return bool(AND_BEFORE.search(self.text, max(0, start - 3), at))

    def _head(self, contr: str, verb: str) -> str:
        """The subject with its verb's contraction: "I'm" -> "Sarah is", "I'd been" -> "Sarah had been"."""
        if contr == "'m":
            return f"{self.subject} is"
        if contr == "'ve":
            return f"{self.subject} has"
        if contr == "'d":
            return f"{self.subject} " + (
                "had" if verb.lower() in HAD_AFTER_D or verb.lower().endswith("ed") else "would"
            )
        if contr == "'ll":
            return f"{self.subject} will"
        return self.subject

    def _other(self, word: str) -> str:
        """my, mine, me, myself, us, our, ours, ourselves."""
        if self.named and word in LATER_MENTION:
            return LATER_MENTION[word]
        self.named = True
        if word in ("my", "mine", "our", "ours"):
            return self.possessive
        if word in ("us", "ourselves"):
            return f"{self.possessive} family"
        if word == "myself":
            return "themself"
        return self.subject
