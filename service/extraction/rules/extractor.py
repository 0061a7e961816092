"""``RuleExtractor``: one message in, one ``Extraction`` out (see the package docstring).

The message is mined sentence by sentence: its clauses first (whose stance each states),
then preferences, purchases, interests and entities, and last the memories, which are
written from what the others found. Duplicates across sentences are merged at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import TypeVar

from service.catalog import Catalog
from service.extraction.dates import find_dates
from service.extraction.models import Extraction, MemoryCandidate, Preference
from service.extraction.rules.clauses import is_question, split_clauses, split_sentences
from service.extraction.rules.entities import customer_name, find_entities
from service.extraction.rules.interests import find_interests
from service.extraction.rules.memories import CUSTOMER, SentenceFacts, sentence_memories
from service.extraction.rules.preferences import find_preferences
from service.extraction.rules.purchases import find_purchases

MAX_CHARS = 20_000  # longer messages are mined on their first 20k characters

# typographic quotes as people type them on phones: the rules are written for straight ones
_STRAIGHT_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})

T = TypeVar("T")


class RuleExtractor:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def extract(self, text: str, *, at: datetime, speaker: str | None = None, role: str = "user") -> Extraction:
        """The facts of one message. Only the customer's own turns are mined; a bug in the rules
        raises (the caller fails that one message) rather than losing its facts silently."""
        if role != "user" or not isinstance(text, str) or not text.strip():
            return Extraction()
        speaker = speaker.strip() if isinstance(speaker, str) and speaker.strip() else None
        return self._extract(text[:MAX_CHARS].translate(_STRAIGHT_QUOTES), at, speaker)

    def _extract(self, text: str, at: datetime, speaker: str | None) -> Extraction:
        out = Extraction()
        name = customer_name(text, self.catalog)
        out.customer_name = name
        subject = speaker or name or CUSTOMER
        known_people = {n.lower() for n in (speaker, name) if n}
        if name:
            out.memories.append(MemoryCandidate(kind="fact", text=f"The customer's name is {name}.", importance=0.9))
        for sentence in split_sentences(text):
            self._sentence(sentence, at, subject, known_people, out)
        _dedupe(out)
        return out

    def _sentence(self, sentence: str, at: datetime, subject: str, known_people: set[str], out: Extraction) -> None:
        """Mine one sentence into ``out``."""
        dates = find_dates(sentence, at)
        date_value = dates[0].value if dates else None
        question = is_question(sentence)
        clauses = split_clauses(sentence, known_people, self.catalog)
        stances = find_preferences(sentence, clauses, known_people, self.catalog)
        purchases, purchase_span = ([], None) if question else find_purchases(sentence, at, date_value, self.catalog)
        entities, relations = find_entities(sentence, at, date_value, known_people, self.catalog)

        out.preferences.extend(stances.customer)
        out.purchases.extend(purchases)
        out.interests.extend(find_interests(sentence, question, stances.disliked, purchase_span, self.catalog))
        out.entities.extend(entities)
        out.relations.extend(relations)
        facts = SentenceFacts(
            sentence=sentence,
            at=at,
            subject=subject,
            dates=dates,
            clauses=clauses,
            prefs=stances.customer,
            others=stances.others,
            purchases=purchases,
            entities=entities,
        )
        out.memories.extend(sentence_memories(facts, self.catalog))


def _dedupe(out: Extraction) -> None:
    """One of each fact per message, first mention first."""
    out.preferences = _strongest(out.preferences)
    out.interests = _unique(out.interests, lambda i: (i.sku, i.category, i.kind))
    out.entities = _unique(out.entities, lambda e: (e.type, e.name.lower(), e.relation))
    out.relations = _unique(out.relations, lambda r: (r.source.lower(), r.target.lower(), r.type))
    out.memories = _unique(out.memories, lambda m: m.text.lower())


def _strongest(prefs: list[Preference]) -> list[Preference]:
    """One preference per (attribute, value, polarity), the strongest, marked as replacing if any
    mention was; the same value both preferred and disliked keeps the stronger, explicit one."""
    best: dict[tuple[str, str, str], Preference] = {}
    for p in prefs:
        key = (p.attribute, p.value, p.polarity)
        if key not in best:
            best[key] = p
        elif p.strength > best[key].strength:
            best[key] = p.model_copy(update={"replaces": p.replaces or best[key].replaces})
    kept: list[Preference] = []
    for p in best.values():
        other = best.get((p.attribute, p.value, "dislikes" if p.polarity == "prefers" else "prefers"))
        if other and (other.strength, other.confidence) > (p.strength, p.confidence):
            continue
        kept.append(p)
    return kept


def _unique(items: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    seen: set[Hashable] = set()
    kept: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            kept.append(item)
    return kept
