"""Who and what a message mentions: the customer's name, people and pets with their relation
to the customer, rooms and homes, places, workplaces and events (dated from the sentence).

"my wife Emma and our dog Max" -> Emma (person, wife, PARTNER_OF) and Max (pet, dog,
PET_OF); "We live in Seattle" -> Seattle (place, LIVES_IN); "hosting a housewarming party
next Saturday" -> the event, planned, on that Saturday.
"""

from __future__ import annotations

import re
from datetime import datetime

from service.catalog import Catalog
from service.extraction.dates import midnight
from service.extraction.models import Entity, Relation
from service.extraction.rules.lexicon import (
    ATTENDED,
    EVENT_RE,
    EVENT_STOP,
    EVENTS_NEEDING_CONTEXT,
    FAMILY_RE,
    FUTURE_HINT,
    HAVE_KIDS,
    HOME_TYPES,
    HOSTING,
    NAME_IS_RE,
    NAME_PATTERNS,
    NAMED_RE,
    NOT_NAMES,
    NOT_PLACES,
    OFFICE_OWNERS,
    PLACE_CUES,
    REL_TYPE,
    RELATION_NAMES,
    ROOM_RE,
    ROOMS_NEEDING_A_DETERMINER,
    THE_MOVE,
    WORDS,
    WORK_RE,
    is_catalog_word,
)

Found = tuple[list[Entity], list[Relation]]


def customer_name(text: str, catalog: Catalog) -> str | None:
    """The name the customer gives ("my name is Sarah", "I'm Sarah Connor", "call me Sam"),
    capitalised; never a word that only looks like one ("I'm Looking", "I'm Scandinavian")."""
    for pattern in NAME_PATTERNS:
        m = pattern.search(text)
        if m:
            name = _clean_name(m.group("name"))
            if name and not is_catalog_word(catalog, name):
                return name
    return None


def find_entities(
    sentence: str, at: datetime, date_value: datetime | None, known_people: set[str], catalog: Catalog
) -> Found:
    """Everything a sentence mentions, and each thing's relation to the customer."""
    people, people_relations, named = _people(sentence, catalog)
    rooms = _rooms(sentence, people)
    places, place_relations = _places(sentence, known_people | named, catalog)
    workplaces, work_relations = _workplaces(sentence)
    events, event_relations = _events(sentence, at, date_value)
    return (
        [*people, *rooms, *places, *workplaces, *events],
        [*people_relations, *place_relations, *work_relations, *event_relations],
    )


def _clean_name(name: str) -> str | None:
    kept: list[str] = []
    for w in name.split():
        if w.lower() in NOT_NAMES:
            break
        kept.append(w[:1].upper() + w[1:])
    if not kept or len(kept[0]) < 2:
        return None
    return " ".join(kept)


def _people(sentence: str, catalog: Catalog) -> tuple[list[Entity], list[Relation], set[str]]:
    """Family, partners, friends and pets, named or not, and the (lower-cased) names given."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    named: set[str] = set()

    def add(rel_word: str, name: str | None) -> None:
        entity, relation, kept = _person(rel_word, name, catalog)
        entities.append(entity)
        relations.append(relation)
        if kept:
            named.add(kept.lower())

    for m in NAME_IS_RE.finditer(sentence):  # "my sister's name is Anna"
        add(m.group("rel"), m.group("name"))
    for m in NAMED_RE.finditer(sentence):  # "a cat named Luna"
        if m.group("name").lower() not in named:
            add(m.group("rel"), m.group("name"))
    for m in FAMILY_RE.finditer(sentence):  # "my wife Emma", "my sister", "my sister's ..." (no name)
        name = None if m.group("poss") else m.group("name")
        if name and name.lower() in named:
            continue
        if not name and any(e.relation == m.group("rel").lower() for e in entities):
            continue
        add(m.group("rel"), name)
    for m in HAVE_KIDS.finditer(sentence):  # "we have two kids"
        rel = m.group("rel").lower()
        if not any(e.relation == rel or e.name.lower() == rel for e in entities):
            add(rel, None)
    return entities, relations, named


def _person(rel_word: str, name: str | None, catalog: Catalog) -> tuple[Entity, Relation, str | None]:
    """A person or pet, its relation to the customer, and its name if it is one."""
    rel_word = rel_word.lower()
    rtype = REL_TYPE.get(rel_word, "RELATED_TO")
    if name and (name.lower() in NOT_NAMES or name.lower() in NOT_PLACES or is_catalog_word(catalog, name)):
        name = None
    entity_name = name or rel_word
    entity = Entity(
        type="pet" if rtype == "PET_OF" else "person", name=entity_name, relation=RELATION_NAMES.get(rel_word, rel_word)
    )
    return entity, Relation(source=entity_name, target="customer", type=rtype), name


def _rooms(sentence: str, people: list[Entity]) -> list[Entity]:
    """Rooms ("the living room") and homes ("our new apartment")."""
    rooms: list[Entity] = []
    for m in ROOM_RE.finditer(sentence):
        room = m.group("room").lower()
        det = (m.group("det") or "").lower()
        if room in ROOMS_NEEDING_A_DETERMINER and not det:
            continue  # "study" / "house" as verbs or in passing
        if room == "office" and det not in OFFICE_OWNERS:
            continue
        if any(e.name == room for e in [*people, *rooms]):
            continue
        home = room in HOME_TYPES
        rooms.append(Entity(type="place" if home else "room", name=room, relation="home" if home else "room"))
    return rooms


def _places(sentence: str, people: set[str], catalog: Catalog) -> Found:
    """Places after a cue ("live in", "moving to", "visited", a bare "in"), each once; ``people``
    are the lower-cased names that are people, not places."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    seen: set[str] = set()
    for pattern, relation, rtype in PLACE_CUES:
        for m in pattern.finditer(sentence):
            place = m.group("place").strip()
            if place.lower() in people or place.lower() in seen or not _is_place(sentence, m, place, catalog):
                continue
            seen.add(place.lower())
            entities.append(Entity(type="place", name=place, relation=None if relation == "mentioned" else relation))
            if rtype:
                relations.append(Relation(source="customer", target=place, type=rtype))
    return entities, relations


def _is_place(sentence: str, m: re.Match[str], place: str, catalog: Catalog) -> bool:
    if place.split()[0].lower() in NOT_PLACES or m.start("place") == 0:
        return False
    if is_catalog_word(catalog, place) or catalog.match_brands(place) or catalog.product_spans(place + " sofa"):
        return False  # "in Walnut", "from Arlo": the catalog's words
    return sentence[m.end("place") : m.end("place") + 2] != "'s"  # "at Anna's" is a person


def _workplaces(sentence: str) -> Found:
    entities: list[Entity] = []
    relations: list[Relation] = []
    for m in WORK_RE.finditer(sentence):
        org = m.group("org").strip().rstrip(".'-")
        if org.split()[0].lower() in NOT_PLACES:
            continue
        entities.append(Entity(type="organization", name=org, relation="works at"))
        relations.append(Relation(source="customer", target=org, type="WORKS_AT"))
    return entities, relations


def _events(sentence: str, at: datetime, date_value: datetime | None) -> Found:
    """Events, each once, dated by the sentence's first date; attended ones are related to the customer."""
    entities: list[Entity] = []
    relations: list[Relation] = []
    for m in EVENT_RE.finditer(sentence):
        if not _is_event(sentence, m, date_value):
            continue
        name = _event_name(sentence, m.start("event"), m.group("event"))
        if any(e.name.lower() == name.lower() for e in entities):
            continue
        relation = _event_relation(sentence, m, at, date_value)
        entities.append(Entity(type="event", name=name, relation=relation, at=date_value))
        if relation == "attended":
            relations.append(Relation(source="customer", target=name, type="ATTENDED"))
    return entities, relations


def _is_event(sentence: str, m: re.Match[str], date_value: datetime | None) -> bool:
    event = re.sub(r"\s+", " ", m.group("event").lower())
    if event == "move" and not THE_MOVE.search(sentence):
        return False
    return event not in EVENTS_NEEDING_CONTEXT or bool(
        date_value or ATTENDED.search(sentence) or HOSTING.search(sentence)
    )


def _event_relation(sentence: str, m: re.Match[str], at: datetime, when: datetime | None) -> str:
    """attended (before today, or "went to" before it), hosting, planned (dated or "next"), or mentioned."""
    if ATTENDED.search(sentence[: m.start()]) or (when is not None and when < midnight(at)):
        return "attended"
    if HOSTING.search(sentence):
        return "hosting"
    if when is not None or FUTURE_HINT.search(sentence):
        return "planned"
    return "mentioned"


def _event_name(sentence: str, start: int, word: str) -> str:
    """The event word with up to two modifiers before it: "housewarming party", "LGBTQ support group"."""
    before = WORDS.findall(sentence[max(0, start - 40) : start])
    mods: list[str] = []
    for w in reversed(before[-2:] if before else []):
        if w.lower() in EVENT_STOP or (w.lower() in NOT_NAMES and not w.isupper()):
            break
        mods.insert(0, w)
    return " ".join([*mods, re.sub(r"\s+", " ", word)]).strip()
