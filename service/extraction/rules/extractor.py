"""``RuleExtractor``: one message in, one ``Extraction`` out (see the package docstring)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from service.catalog import Catalog, Product
from service.extraction.dates import DateMention, find_dates, format_day
from service.extraction.models import (
    MAX_AMOUNT,
    Entity,
    Extraction,
    MemoryCandidate,
    Preference,
    ProductInterest,
    Purchase,
    Relation,
)
from service.extraction.rules.entities import customer_name, find_entities
from service.extraction.rules.interests import find_interests
from service.extraction.rules.purchases import find_purchases
from service.extraction.rules.preferences import find_preferences, names_value
from service.extraction.rules.clauses import Clause, clause_at, is_question, split_clauses, split_sentences, subject_owner
from service.extraction.rules.lexicon import (
    AND_BEFORE,
    AND_SEP,
    ARTICLES,
    ATTENDED,
    BUDGET_AFTER,
    BUDGET_LIMIT,
    CLAUSE_SPLIT,
    CLAUSE_VERB,
    COMPOUND_HEAD,
    COORD_VERB,
    CUES,
    CUE_PARTS,
    CUE_RE,
    EMOJI,
    EVENT_RE,
    EVENT_STOP,
    FAMILY_RE,
    FAVOURITE,
    FILLER,
    FIRST_PERSON,
    FUTURE_HINT,
    HAVE_KIDS,
    HOME_TYPES,
    HOSTING,
    INTEREST_CUE,
    INVERSE,
    IRREGULAR_3RD,
    KEEP_VERB,
    LEAD_FILLER,
    LEAD_SUBJ,
    LIKES,
    MODIFIER_KIND,
    NAMED_RE,
    NAME_IS_RE,
    NAME_PATTERNS,
    NOT_NAMES,
    NOT_PLACES,
    NOT_SUBJECT,
    OPINION_ONLY,
    ORDER_ID,
    OTHER_PRONOUNS,
    OTHER_STANCE,
    PAST_VERB,
    PHRASE_BREAK,
    PLACE_CUES,
    PRICE,
    PRONOUN_OBJECT,
    PRONOUN_RE,
    PURCHASE,
    PURCHASE_END,
    QTY_WORDS,
    QUANTITY,
    QUESTION_START,
    REL_TYPE,
    REPLACES,
    REQUEST_BARE,
    ROOM_RE,
    SENTENCE_SPLIT,
    SIZE,
    SIZE_CANON,
    SMALL_TALK,
    SOFT_WISH_BEFORE,
    SOMETHING,
    SPAN_END,
    STANCE_WORD,
    SUBJ_CUT,
    THE_MOVE,
    VAGUE,
    VERBISH,
    VIEWED_CUE,
    WORDS,
    WORK_RE,
    is_catalog_word,
)

MAX_CHARS = 20_000      # longer messages are mined on their first 20k characters

def _third_person_verb(verb: str) -> str:
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


def third_person(text: str, subject: str, coordinate: bool = False) -> str:
    """Rewrite first-person text about ``subject``: "I love my oak table" -> "Sarah loves Sarah's oak table"."""
    possessive = subject + ("'" if subject.endswith("s") else "'s")
    named = False  # after the first mention, "my"/"me" read better as "their"/"them"
    conjugated = False  # "I <verb>" became "<subject> <verb>s": verbs sharing that subject follow suit

    def repl(m: re.Match[str]) -> str:
        nonlocal named, conjugated
        if m.group("i") or m.group("we"):
            named = True
        if m.group("i"):
            contr = (m.group("contr") or "").lower()
            neg = m.group("neg") or ""
            advs = m.group("advs") or ""
            verb = m.group("verb") or ""
            if contr == "'m":
                head = f"{subject} is"
            elif contr == "'ve":
                head = f"{subject} has"
            elif contr == "'d":
                head = f"{subject} " + ("had" if verb.lower() in ("been", "never", "already", "just", "gone") or verb.lower().endswith("ed") else "would")
            elif contr == "'ll":
                head = f"{subject} will"
            else:
                head = subject
            if neg:
                n = re.sub(r"\s+", " ", neg.strip().lower())
                conjugated = conjugated or (not contr and n in ("don't", "do not"))
                neg = " " + {"don't": "doesn't", "do not": "does not", "haven't": "hasn't", "have not": "has not",
                             "am not": "is not"}.get(n, n)
                return f"{head}{neg}{advs}" + (f" {verb}" if verb else "")
            if verb and not contr:
                if AND_BEFORE.search(text, 0, m.start()):
                    return f"{head}{advs} {verb}"  # "Emma and I love" -> "Emma and Sarah love"
                conjugated = True
                return f"{head}{advs} {_third_person_verb(verb)}"
            return f"{head}{advs}" + (f" {verb}" if verb else "")
        if m.group("we"):
            contr = (m.group("wecontr") or "").lower()
            return f"{subject} and family" + {"'re": " are", "'ve": " have", "'d": " would", "'ll": " will"}.get(contr, "")
        word = m.group("other").lower()
        if named and word in ("my", "me", "mine"):
            return {"my": "their", "me": "them", "mine": "theirs"}[word]
        named = True
        if word in ("my", "mine", "our", "ours"):
            return possessive
        if word in ("us", "ourselves"):
            return f"{possessive} family"
        if word == "myself":
            return "themself"
        return subject

    out = PRONOUN_RE.sub(repl, text)
    if conjugated and coordinate:
        out = COORD_VERB.sub(lambda m: f"{m.group('conj')}{m.group('advs')} "
                              + ("does not" if m.group("verb").lower().startswith("do ") else _third_person_verb(m.group("verb"))),
                              out)
    return out


class RuleExtractor:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # -- public ------------------------------------------------------------------------------------
    def extract(self, text: str, *, at: datetime, speaker: str | None = None, role: str = "user") -> Extraction:
        if role != "user" or not isinstance(text, str) or not text.strip():
            return Extraction()
        if not isinstance(at, datetime):
            at = datetime.now(UTC)
        return self._extract(text[:MAX_CHARS], at, speaker.strip() if isinstance(speaker, str) and speaker.strip() else None)

    # -- pipeline ------------------------------------------------------------------------------------
    def _extract(self, text: str, at: datetime, speaker: str | None) -> Extraction:
        text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
        out = Extraction()
        name = customer_name(text, self.catalog)
        out.customer_name = name
        subject = speaker or name or "The customer"
        known_people = {n.lower() for n in (speaker, name) if n}
        if name:
            out.memories.append(MemoryCandidate(kind="fact", text=f"The customer's name is {name}.", importance=0.9))

        for sentence in split_sentences(text):
            self._sentence(sentence, at, subject, known_people, out)
        self._dedupe(out)
        return out

    def _sentence(self, sentence: str, at: datetime, subject: str, known_people: set[str], out: Extraction) -> None:
        dates = find_dates(sentence, at)
        date_value = dates[0].value if dates else None
        question = is_question(sentence)

        clauses = split_clauses(sentence, known_people, self.catalog)
        stances = find_preferences(sentence, clauses, known_people, self.catalog)
        prefs, others, dislike_spans = stances.customer, stances.others, stances.disliked
        purchases, purchase_span = ([], None) if question else find_purchases(sentence, at, date_value, self.catalog)
        interests = find_interests(sentence, question, dislike_spans, purchase_span, self.catalog)
        entities, relations = find_entities(sentence, at, date_value, known_people, self.catalog)

        out.preferences.extend(prefs)
        out.purchases.extend(purchases)
        out.interests.extend(interests)
        out.entities.extend(entities)
        out.relations.extend(relations)
        self._memories(sentence, at, subject, dates, clauses, prefs, others, purchases, entities, out)

    # -- memories -----------------------------------------------------------------------------------------------------
    def _memories(self, sentence: str, at: datetime, subject: str, dates: list[DateMention], clauses: list[Clause],
                  prefs: list[Preference], others: list[Preference], purchases: list[Purchase],
                  entities: list[Entity], out: Extraction) -> None:
        possessive = subject + ("'" if subject.endswith("s") else "'s")
        if subject == "The customer":
            possessive = "the customer's"
        for e in entities:
            # named people and pets get a plain statement of who they are
            if e.type in ("person", "pet") and e.relation and e.name.lower() != e.relation:
                out.memories.append(MemoryCandidate(
                    kind="fact", text=f"{e.name} is {possessive} {e.relation}.", importance=0.8))
        today = datetime(at.year, at.month, at.day, tzinfo=at.tzinfo)
        for span in clauses:
            clause = sentence[span.start:span.end].strip()
            stripped = LEAD_FILLER.sub("", clause).strip()
            stripped = EMOJI.sub("", stripped).strip(" ,-")
            if not stripped:
                continue
            if stripped.endswith("?") or QUESTION_START.match(stripped):
                continue
            if any(p.search(stripped) for p in NAME_PATTERNS) and len(WORDS.findall(stripped)) <= 6:
                continue  # the name itself is already a fact
            words = WORDS.findall(stripped)
            if len(words) < 3 or FILLER.match(stripped) and len(words) < 6:
                continue
            if span.owner == "self":
                clause_prefs = [p for p in prefs if names_value(self.catalog, stripped, p)]
            else:  # someone else's stance: remembered about them, never the customer's preference
                clause_prefs = [p for p in others if names_value(self.catalog, stripped, p)]
            # a named someone's stance ("Tom likes leather", "Gina loves dancing") is worth remembering about them
            other_stance = span.owner == "other" and span.named and bool(clause_prefs or OTHER_STANCE.match(stripped))
            about_named_other = other_stance
            if not (FIRST_PERSON.search(stripped) or about_named_other) or not CLAUSE_VERB.search(stripped):
                continue  # not about the speaker, or a fragment ("my wife Emma and our dog Max")
            clause_purchases = [p for p in purchases if p.product_name.lower() in stripped.lower()
                                or (p.category and self.catalog.match_categories(stripped).count(p.category))]
            clause_entities = [e for e in entities if e.name.lower() in stripped.lower()]
            structured = bool(clause_prefs or clause_purchases or clause_entities)
            if not structured:
                if SMALL_TALK.search(stripped) or OPINION_ONLY.match(stripped):
                    continue
                if len(words) < 6 and VAGUE.search(stripped):
                    continue
                if len(words) < 4 and not (span.owner == "self" and LIKES.match(stripped)):
                    continue  # "I love reading" is short but still says something about the speaker

            clause_dates = find_dates(stripped, at)
            rewritten = stripped
            for d in sorted(clause_dates, key=lambda d: d.start, reverse=True):
                rewritten = rewritten[: d.start] + d.phrase + rewritten[d.end:]
            rewritten = third_person(rewritten, subject, coordinate=bool(clause_prefs))
            if subject == "The customer":
                rewritten = re.sub(r"(?<=\S\s)The customer", "the customer", rewritten)
            rewritten = rewritten.rstrip(" ,;:-")
            rewritten = re.sub(r"[!?.]+$", "", rewritten)
            past = bool(PAST_VERB.search(stripped))

            when = clause_dates[0].value if clause_dates else None
            if clause_purchases:
                kind, importance, when = "event", 0.8, clause_purchases[0].at or when or today
            elif clause_dates and not clause_prefs:
                # a dated happening, however much else it mentions
                kind = "event"
                importance = 0.7 if any(e.type in ("person", "pet") for e in clause_entities) else 0.6
            elif clause_prefs:
                kind = "preference"
                base = 0.5 if span.owner == "self" else 0.45
                importance = min(1.0, base + 0.3 * max(p.strength for p in clause_prefs))
            elif any(e.type in ("person", "pet") for e in clause_entities):
                # "My wife and I hosted a get-together": something that happened, with someone
                kind, importance = ("event", 0.7) if past and not clause_prefs else ("fact", 0.8)
            elif any(e.type in ("place", "organization") for e in clause_entities):
                kind, importance = "fact", 0.7
            elif clause_dates or any(e.type == "event" for e in clause_entities):
                kind, importance = "event", 0.6
            elif past:
                kind, importance = "event", 0.5
            elif FAVOURITE.search(stripped):
                kind, importance = "preference", 0.6
            elif span.owner == "self" and LIKES.match(stripped) or other_stance:
                kind, importance = "preference", 0.55
            else:
                kind, importance = "fact", 0.45 if len(words) >= 6 else 0.35
            if kind == "event" and not clause_dates:
                when = when or today
                if not clause_purchases or not dates:
                    rewritten += f" (mentioned on {format_day(today)})"
            if kind == "event" and clause_dates and not when:
                when = clause_dates[0].value
            text = rewritten[:1].upper() + rewritten[1:] + "."
            out.memories.append(MemoryCandidate(kind=kind, text=text, importance=round(importance, 2), at=when))

    # -- tidy -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _dedupe(out: Extraction) -> None:
        prefs: dict[tuple[str, str, str], Preference] = {}
        for p in out.preferences:
            key = (p.attribute, p.value, p.polarity)
            if key not in prefs or p.strength > prefs[key].strength:
                prefs[key] = p if key not in prefs else p.model_copy(update={"replaces": p.replaces or prefs[key].replaces})
        # the same value both preferred and disliked in one message: keep the stronger, explicit one
        final: list[Preference] = []
        for p in prefs.values():
            other = prefs.get((p.attribute, p.value, "dislikes" if p.polarity == "prefers" else "prefers"))
            if other and (other.strength, other.confidence) > (p.strength, p.confidence):
                continue
            final.append(p)
        out.preferences = final
        seen_i: set[tuple] = set()
        out.interests = [i for i in out.interests
                         if (k := (i.sku, i.category, i.kind)) not in seen_i and not seen_i.add(k)]
        seen_e: set[tuple] = set()
        out.entities = [e for e in out.entities
                        if (k := (e.type, e.name.lower(), e.relation)) not in seen_e and not seen_e.add(k)]
        seen_r: set[tuple] = set()
        out.relations = [r for r in out.relations
                         if (k := (r.source.lower(), r.target.lower(), r.type)) not in seen_r and not seen_r.add(k)]
        seen_m: set[str] = set()
        out.memories = [m for m in out.memories if (k := m.text.lower()) not in seen_m and not seen_m.add(k)]
