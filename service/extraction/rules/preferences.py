"""Likes and dislikes: a subject and a cue govern the catalog words that follow.

"I love walnut but hate glass tables" -> walnut preferred, glass disliked (the dislike is
about the material, not about tables). A cue holds until its clause ends, a span-ending
word ("but", "though") or the next cue; a negation flips it ("I don't love glass"); in a
wish, what follows "rather than"/"over"/"not" is disliked. Budgets need no cue ("under
$2,000"), and a colour or material asked for "in navy" is a softer wish.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Literal

from service.catalog import Catalog
from service.extraction.models import Attribute, Preference
from service.extraction.rules.amounts import amount, format_amount
from service.extraction.rules.clauses import Clause, Owner, clause_at, subject_owner
from service.extraction.rules.lexicon import (
    APPROXIMATE,
    BARE_CUE_MEANINGS,
    BUDGET_AFTER,
    BUDGET_LIMIT,
    CUE_PARTS,
    CUE_RE,
    CUES,
    INVERSE,
    MODIFIER_KIND,
    REPLACES,
    REQUEST_BARE,
    SIZE,
    SIZE_CANON,
    SOFT_WISH_BEFORE,
    SOMETHING,
    SPAN_END,
)

Polarity = Literal["prefers", "dislikes"]
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Mention:
    """A catalog word found in a sentence."""

    start: int
    end: int
    attribute: Attribute
    value: str


@dataclass(frozen=True, slots=True)
class Stance:
    """What one cue says: "I don't love" is dislikes at 0.6, the speaker's."""

    polarity: Polarity | None  # None: a negated dislike ("I don't hate oak") is no stance either way
    strength: float
    intent: bool  # a wish to buy ("want", "looking for"): the category itself is wanted
    owner: Owner


@dataclass(slots=True)
class Stances:
    """What a sentence says about likes and dislikes."""

    customer: list[Preference] = field(default_factory=list)
    others: list[Preference] = field(default_factory=list)  # other people's, remembered about them
    disliked: list[Span] = field(default_factory=list)  # everything disliked: no product interest


def find_preferences(sentence: str, clauses: list[Clause], known_people: set[str], catalog: Catalog) -> Stances:
    """The customer's preferences, other people's stated likes and dislikes, and the spans of
    everything disliked."""
    cues = _cues(sentence)
    mentions = catalog_mentions(catalog, sentence) if cues or "$" in sentence or " in " in sentence.lower() else []
    starts = [m.start for m in mentions]
    replaces = bool(cues) and bool(REPLACES.search(sentence))
    found = Stances()
    covered: list[Span] = []  # what the customer's own cues govern
    current: dict[int, Owner] = {}  # clause start -> whose stance the latest subject in it stated
    for i, cue in enumerate(cues):
        clause = clause_at(clauses, cue.end() - 1)
        key = clause.start if clause else -1
        stance = _read_cue(cue, current.get(key, clause.owner if clause else "self"), known_people, catalog)
        current[key] = stance.owner
        if stance.polarity is None:
            continue
        span = _cue_span(sentence, cues, i, clause)
        inside = mentions[bisect_left(starts, span[0]) : bisect_left(starts, span[1])]
        prefs, inverted = _governed(sentence, span, stance, inside, replaces)
        if stance.polarity == "dislikes":
            found.disliked.append(span)
        found.disliked.extend(inverted)
        if stance.owner != "self":
            found.others.extend(prefs)
            continue
        covered.append(span)
        found.customer.extend(prefs)
        if stance.polarity == "prefers":
            found.customer.extend(_sizes(sentence[span[0] : span[1]], inside, stance.strength, replaces))
    found.customer.extend(_budgets(sentence, clauses, replaces))
    found.customer.extend(_soft_wishes(sentence, mentions, clauses, covered, found))
    return found


def catalog_mentions(catalog: Catalog, text: str) -> list[Mention]:
    """Every product, style, material, colour, brand and category named, in order; a product's
    name hides the words inside it."""
    found = [Mention(s, e, "product", p.sku) for s, e, p in catalog.product_spans(text)]
    # the spans taken so far, in order (they never overlap): a span is free when it overlaps
    # neither the one starting before it nor the one after
    taken = sorted((m.start, m.end) for m in found)

    def free(s: int, e: int) -> bool:
        i = bisect_right(taken, (s, e))
        return (i == 0 or taken[i - 1][1] <= s) and (i == len(taken) or taken[i][0] >= e)

    spans_of: tuple[tuple[Attribute, list[tuple[int, int, str]]], ...] = (
        ("style", catalog.style_spans(text)),
        ("material", catalog.material_spans(text)),
        ("color", catalog.color_spans(text)),
        ("brand", catalog.brand_spans(text)),
        ("category", catalog.category_spans(text)),
    )
    for attribute, spans in spans_of:
        for s, e, v in spans:
            if free(s, e):
                found.append(Mention(s, e, attribute, v))
                insort(taken, (s, e))
    found.sort(key=lambda m: m.start)
    return found


def cue_meaning(cue: str) -> tuple[Polarity, float, bool]:
    """(polarity, strength, intent) of a cue phrase: "can't stand" -> dislikes at 0.9."""
    cue = re.sub(r"\s+", " ", cue.strip())
    for (_, polarity, strength, intent), part in zip(CUES, CUE_PARTS, strict=True):
        if part.match(cue):
            return polarity, strength, intent
    return "prefers", 0.6, False


class NamedValues:
    """The values a clause names, read once per attribute however many preferences it is
    asked about: ``pref in NamedValues(catalog, clause)`` when the clause names the
    preference's value (its memory is that clause)."""

    def __init__(self, catalog: Catalog, clause: str) -> None:
        self.catalog = catalog
        self.clause = clause
        self._found: dict[str, frozenset[str] | str] = {}

    def __contains__(self, pref: Preference) -> bool:
        found = self._found.get(pref.attribute)
        if found is None:
            found = self._found[pref.attribute] = self._read(pref.attribute)
        if pref.attribute == "budget":
            return pref.value.split(".")[0][:2] in found
        return pref.value in found

    def _read(self, attribute: str) -> frozenset[str] | str:
        catalog, clause = self.catalog, self.clause
        match attribute:
            case "style":
                return frozenset(catalog.match_styles(clause))
            case "material":
                return frozenset(catalog.match_materials(clause))
            case "color":
                return frozenset(catalog.match_colors(clause))
            case "category":
                return frozenset(catalog.match_categories(clause))
            case "brand":
                return frozenset(catalog.match_brands(clause))
            case "product":
                return frozenset(p.sku for p in catalog.match_products(clause))
            case "budget":
                return _NOT_DIGITS.sub("", clause)
        return clause.lower()


_NOT_DIGITS = re.compile(r"\D+")


def _cues(sentence: str) -> list[re.Match[str]]:
    cues = []
    for cue in CUE_RE.finditer(sentence):
        bare = cue.group("bare")
        if (
            bare
            and bare.lower().startswith("like")
            and not cue.group("bneg")
            and (cue.group("conj") or "").lower() not in ("and", "but")
        ):
            continue  # "Like I said, ..."
        cues.append(cue)
    return cues


def _read_cue(cue: re.Match[str], owner: Owner, known_people: set[str], catalog: Catalog) -> Stance:
    """The stance a cue states; ``owner`` is whose it is unless the cue names its own subject."""
    negated = False
    polarity: Polarity
    if cue.group("free"):  # "my favourite is", "not a fan of", "for me, it's"
        word = re.sub(r"\s+", " ", cue.group("free").lower())
        polarity, strength, intent = (
            ("dislikes", 0.6, False)
            if word.startswith("not")
            else (("prefers", 0.9, False) if "fan" in word else ("prefers", 0.85, False))
        )
        if word.startswith(("my ", "our ", "for ", "as for ")):
            owner = "self"
    elif cue.group("ofav"):  # "her favourite is"
        polarity, strength, intent = "prefers", 0.85, False
        owner = "other"
    elif cue.group("bare"):  # no subject: "never liked leather", "show me oak tables"
        word = re.sub(r"\s+", " ", cue.group("bare").lower())
        polarity, strength, intent = BARE_CUE_MEANINGS.get(word) or cue_meaning(word)
        negated = bool(cue.group("bneg"))
        if REQUEST_BARE.match(word):
            owner = "self"  # a request is always the speaker's own
    else:
        polarity, strength, intent = cue_meaning(cue.group("cue"))
        negated = bool(cue.group("neg"))
        owner = "self" if cue.group("self") else subject_owner(cue.group("other"), known_people, catalog) or owner
    if negated:
        return (
            Stance(None, strength, intent, owner) if polarity == "dislikes" else Stance("dislikes", 0.6, intent, owner)
        )
    return Stance(polarity, strength, intent, owner)


def _cue_span(sentence: str, cues: list[re.Match[str]], i: int, clause: Clause | None) -> Span:
    """What cue ``i`` governs: up to the next cue, its clause's end or a span-ending word."""
    start = cues[i].end()
    limit = cues[i + 1].start() if i + 1 < len(cues) else len(sentence)
    if clause:
        limit = min(limit, clause.end)
    end = SPAN_END.search(sentence, start, limit) if start < limit else None
    return start, (end.start() if end else max(start, limit))


def _governed(
    sentence: str, span: Span, stance: Stance, inside: list[Mention], replaces: bool
) -> tuple[list[Preference], list[Span]]:
    """The preferences a cue gives for the catalog words in its span (``inside``), and the
    spans of the words it turns into dislikes ("walnut rather than oak")."""
    start, end = span
    inverse = INVERSE.search(sentence, start, end) if stance.polarity == "prefers" else None
    # the modifiers' ends, in order (mentions never overlap)
    modifier_ends = [m.end for m in inside if m.attribute in MODIFIER_KIND]
    prefs: list[Preference] = []
    inverted: list[Span] = []
    for m in inside:
        polarity, strength, confidence = stance.polarity, stance.strength, 0.8
        if inverse is not None and m.start > inverse.start():
            polarity, strength, confidence = "dislikes", 0.5, 0.6
            inverted.append((m.start, m.end))
        if (
            m.attribute == "category"
            and not (stance.intent and polarity == "prefers")
            and _modifies(modifier_ends, m.start)
        ):
            continue  # "I hate glass tables" is about glass, not about tables
        prefs.append(
            Preference(
                attribute=m.attribute,
                value=m.value,
                polarity=polarity,
                strength=strength,
                confidence=confidence,
                replaces=replaces and stance.owner == "self",
            )
        )
    return prefs, inverted


def _modifies(modifier_ends: list[int], pos: int) -> bool:
    """Whether a modifier ends at most 12 characters before ``pos`` ("glass tables")."""
    i = bisect_right(modifier_ends, pos)
    return i > 0 and pos - modifier_ends[i - 1] <= 12


def _sizes(segment: str, inside: list[Mention], strength: float, replaces: bool) -> list[Preference]:
    """Size words wished for with a category or "something" (``inside``: the mentions in the
    segment): "a compact sectional", "something smaller"."""
    has_category = any(m.attribute in ("category", "product") for m in inside)
    if not (has_category or SOMETHING.search(segment)):
        return []
    return [
        Preference(
            attribute="size",
            value=_size_value(m.group(1)),
            polarity="prefers",
            strength=strength,
            confidence=0.7,
            replaces=replaces,
        )
        for m in SIZE.finditer(segment)
    ]


def _size_value(word: str) -> str:
    word = re.sub(r"[-\s]+", "-", word.lower())
    value = SIZE_CANON.get(word, word.replace("-size", "").replace("-sized", ""))
    return "small" if value.startswith(("apartment", "space")) else value


def _budgets(sentence: str, clauses: list[Clause], replaces: bool) -> list[Preference]:
    """Budgets need no cue: "under $2,000", "$1.5k max", "our budget is 3000" (not someone else's)."""
    found: list[Preference] = []
    for m in BUDGET_LIMIT.finditer(sentence):
        if _someone_elses(clauses, m.start()):
            continue
        word = m.group("word").lower()
        has_currency = bool(m.group("cur") or m.group("mult") or m.group("curword")) or word.startswith(
            ("budget", "spend")
        )
        value = amount(m.group("num"), m.group("mult"))
        if has_currency and value and value >= 20:
            found.append(_budget(value, 0.6 if word in APPROXIMATE else 0.7, replaces))
    for m in BUDGET_AFTER.finditer(sentence):
        if _someone_elses(clauses, m.start()):
            continue
        value = amount(m.group("num"), m.group("mult"))
        if value and value >= 20:
            found.append(_budget(value, 0.7, replaces))
    return found


def _budget(value: float, strength: float, replaces: bool) -> Preference:
    return Preference(
        attribute="budget",
        value=format_amount(value),
        polarity="prefers",
        strength=strength,
        confidence=0.8,
        replaces=replaces,
    )


def _soft_wishes(
    sentence: str, mentions: list[Mention], clauses: list[Clause], covered: list[Span], found: Stances
) -> list[Preference]:
    """A colour or material asked for outside any cue's span: "in navy", "with a velvet ..."."""
    low = sentence.lower()
    wishes: list[Preference] = []
    governed, disliked = _Spans(covered), _Spans(found.disliked)
    theirs = {p.value for p in found.others}
    for m in mentions:
        if m.attribute not in ("color", "material") or m.start in governed:
            continue
        if _someone_elses(clauses, m.start) or m.start in disliked or m.value in theirs:
            continue
        if SOFT_WISH_BEFORE.search(low[max(0, m.start - 12) : m.start]):
            wishes.append(
                Preference(
                    attribute=m.attribute,
                    value=m.value,
                    polarity="prefers",
                    strength=0.6,
                    confidence=0.6,
                    replaces=False,
                )
            )
    return wishes


def _someone_elses(clauses: list[Clause], pos: int) -> bool:
    clause = clause_at(clauses, pos)
    return bool(clause and clause.owner != "self")


class _Spans:
    """Spans, merged and in order: ``pos in spans`` when a span holds it."""

    def __init__(self, spans: list[Span]) -> None:
        merged: list[list[int]] = []
        for s, e in sorted(spans):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            elif s < e:
                merged.append([s, e])
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def __contains__(self, pos: int) -> bool:
        i = bisect_right(self.starts, pos) - 1
        return i >= 0 and pos < self.ends[i]
