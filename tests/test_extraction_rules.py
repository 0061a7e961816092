"""The deterministic rule-based extractor (pure Python, no stores)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.catalog import Catalog
from service.extraction import Extraction, RuleExtractor, resolve_dates

THURSDAY = datetime(2024, 5, 16, 15, 30, tzinfo=UTC)  # 16 May 2024 is a Thursday
LOCOMO_DAY = datetime(2023, 5, 8, 13, 56)  # naive, as imported conversations are


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="module")
def extractor(catalog) -> RuleExtractor:
    return RuleExtractor(catalog)


def prefs_of(result: Extraction) -> dict[tuple[str, str], object]:
    return {(p.attribute, p.value): p for p in result.preferences}


# -- name and preferences -----------------------------------------------------------------------------


def test_name_and_style_preference_with_a_memory_naming_the_customer(extractor):
    r = extractor.extract("Hi, my name is Sarah and I love modern furniture", at=THURSDAY)
    assert r.customer_name == "Sarah"
    modern = prefs_of(r)[("style", "modern")]
    assert modern.polarity == "prefers" and modern.strength == pytest.approx(0.9) and not modern.replaces
    preference_memories = [m for m in r.memories if m.kind == "preference"]
    assert [m.text for m in preference_memories] == ["Sarah loves modern furniture."]
    assert any(m.kind == "fact" and "Sarah" in m.text and m.importance >= 0.8 for m in r.memories)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("I'm Sarah", "Sarah"),
        ("Hello! I am Sarah Connor.", "Sarah Connor"),
        ("call me Sam, please", "Sam"),
        ("Hi, this is Priya from Leeds", "Priya"),
        ("my name's marco", "Marco"),
        ("I'm looking for a sofa", None),
        ("I'm so happy with the chair", None),
        ("I'm Looking for a couch", None),
        ("I'm Scandinavian at heart", None),
    ],
)
def test_customer_name_needs_a_real_name(extractor, text, name):
    assert extractor.extract(text, at=THURSDAY).customer_name == name


def test_change_of_mind_replaces_the_old_preference(extractor):
    r = extractor.extract("actually I prefer walnut now", at=THURSDAY)
    walnut = prefs_of(r)[("material", "walnut")]
    assert walnut.polarity == "prefers" and walnut.replaces is True
    r = extractor.extract("I've gone off oak, I'd rather have walnut instead", at=THURSDAY)
    p = prefs_of(r)
    assert p[("material", "oak")].polarity == "dislikes" and p[("material", "oak")].replaces
    assert p[("material", "walnut")].polarity == "prefers"


def test_dislikes_are_about_the_modifier_not_the_furniture(extractor):
    r = extractor.extract("I hate glass tables", at=THURSDAY)
    assert [(p.attribute, p.value, p.polarity, p.strength) for p in r.preferences] == [
        ("material", "glass", "dislikes", 0.9)
    ]
    r = extractor.extract("I don't like recliners", at=THURSDAY)
    assert prefs_of(r)[("category", "recliner")].polarity == "dislikes"


def test_budget_size_colour_and_category_wishes(extractor):
    r = extractor.extract("We want a sofa under $2,000", at=THURSDAY)
    p = prefs_of(r)
    assert p[("budget", "2000")].polarity == "prefers"
    assert p[("category", "sofa")].polarity == "prefers" and p[("category", "sofa")].strength == pytest.approx(0.7)
    r = extractor.extract("I'm after a compact sectional in navy, budget is $1.5k", at=THURSDAY)
    p = prefs_of(r)
    assert ("size", "small") in p and ("color", "navy") in p and ("budget", "1500") in p
    r = extractor.extract("The desk is 120 cm wide, under 200 cm would fit", at=THURSDAY)
    assert not [p for p in r.preferences if p.attribute == "budget"]


def test_preferring_one_thing_over_another(extractor):
    p = prefs_of(extractor.extract("I prefer walnut over oak", at=THURSDAY))
    assert p[("material", "walnut")].polarity == "prefers"
    assert p[("material", "oak")].polarity == "dislikes"


# -- purchases and interests ----------------------------------------------------------------------------------


def test_purchase_of_a_catalog_product_last_tuesday(extractor, catalog):
    product = next(p for p in catalog.products if p.category == "sectional")
    r = extractor.extract(f"I bought the {product.name} last Tuesday", at=THURSDAY)
    assert len(r.purchases) == 1
    purchase = r.purchases[0]
    assert purchase.sku == product.sku and purchase.category == "sectional"
    assert purchase.at.date() == datetime(2024, 5, 14).date()
    assert purchase.price == product.price
    event = [m for m in r.memories if m.kind == "event"]
    assert event and "14 May 2024" in event[0].text and product.name in event[0].text


def test_generic_purchase_with_order_id_price_and_quantity(extractor):
    r = extractor.extract("I bought a new couch last week (order #A123) for $2,499.", at=THURSDAY)
    (purchase,) = r.purchases
    assert purchase.category == "sofa" and purchase.sku is None
    assert purchase.order_id == "A123" and purchase.price == 2499.0
    assert purchase.at.date() == datetime(2024, 5, 9).date()
    r = extractor.extract("We just ordered four bar stools", at=THURSDAY)
    assert r.purchases[0].quantity == 4 and r.purchases[0].category == "bar stool"


def test_buying_something_that_is_not_furniture_is_not_a_purchase(extractor):
    r = extractor.extract("I bought a new car last month", at=THURSDAY)
    assert r.purchases == []
    assert r.memories and "April 2024" in r.memories[0].text


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("show me sectionals", "sectional"),
        ("Do you have oak dining tables?", "dining table"),
        ("I'm looking for a desk", "desk"),
        ("any bar stools in stock?", "bar stool"),
    ],
)
def test_interests_from_requests_and_questions(extractor, text, category):
    r = extractor.extract(text, at=THURSDAY)
    assert [(i.category, i.kind) for i in r.interests] == [(category, "asked_about")]


def test_interest_in_a_named_product(extractor, catalog):
    product = next(p for p in catalog.products if p.category == "dining table")
    first = product.name.split()[0]
    r = extractor.extract(f"tell me about the {first} dining table", at=THURSDAY)
    assert [(i.sku, i.category) for i in r.interests] == [(product.sku, "dining table")]
    r = extractor.extract(f"I saw the {product.name} on your site", at=THURSDAY)
    assert [(i.sku, i.kind) for i in r.interests] == [(product.sku, "viewed")]


def test_a_dislike_is_not_an_interest(extractor):
    r = extractor.extract("I don't want a sectional, just a loveseat", at=THURSDAY)
    assert [i.category for i in r.interests] == ["loveseat"]
    assert prefs_of(r)[("category", "sectional")].polarity == "dislikes"


# -- entities, relations, dates -------------------------------------------------------------------------------------


def test_family_and_pets(extractor):
    r = extractor.extract("my wife Emma and our dog Max", at=THURSDAY)
    entities = {(e.type, e.name, e.relation) for e in r.entities}
    assert ("person", "Emma", "wife") in entities and ("pet", "Max", "dog") in entities
    relations = {(x.source, x.target, x.type) for x in r.relations}
    assert ("Emma", "customer", "PARTNER_OF") in relations and ("Max", "customer", "PET_OF") in relations
    assert {"Emma is the customer's wife.", "Max is the customer's dog."} <= {m.text for m in r.memories}


def test_unnamed_relatives_rooms_places_and_work(extractor):
    r = extractor.extract(
        "My sister is helping me furnish the living room. We live in Seattle and I work at Microsoft.", at=THURSDAY
    )
    entities = {(e.type, e.name, e.relation) for e in r.entities}
    assert ("person", "sister", "sister") in entities
    assert ("room", "living room", "room") in entities
    assert ("place", "Seattle", "lives in") in entities
    assert ("organization", "Microsoft", "works at") in entities
    relations = {(x.source, x.target, x.type) for x in r.relations}
    assert ("customer", "Seattle", "LIVES_IN") in relations and ("customer", "Microsoft", "WORKS_AT") in relations


def test_events_are_dated(extractor):
    r = extractor.extract(
        "We're hosting a housewarming party next Saturday! We're moving to Denver in March.", at=THURSDAY
    )
    party = next(e for e in r.entities if e.type == "event")
    assert party.name == "housewarming party" and party.at.date() == datetime(2024, 5, 18).date()
    assert ("place", "Denver", "moving to") in {(e.type, e.name, e.relation) for e in r.entities}
    assert any("March 2025" in m.text for m in r.memories)


def test_locomo_style_line_becomes_a_dated_event_memory(extractor):
    r = extractor.extract(
        "I went to a LGBTQ support group yesterday and it was so powerful.", at=LOCOMO_DAY, speaker="Caroline"
    )
    events = [m for m in r.memories if m.kind == "event"]
    assert len(events) == 1
    assert events[0].text == "Caroline went to a LGBTQ support group on 7 May 2023 and it was so powerful."
    assert events[0].at == datetime(2023, 5, 7, tzinfo=UTC)  # a naive time is read as UTC, never kept naive
    assert r.customer_name is None and r.preferences == [] and r.purchases == []
    assert ("customer", "LGBTQ support group", "ATTENDED") in {(x.source, x.target, x.type) for x in r.relations}


def test_general_self_disclosures_become_third_person_memories(extractor):
    r = extractor.extract(
        "I have two kids and a cat named Luna. My favourite book is Dune. "
        "I'm planning to paint the nursery next month.",
        at=LOCOMO_DAY,
        speaker="Melanie",
    )
    texts = [m.text for m in r.memories]
    assert "Melanie has two kids and a cat named Luna." in texts
    assert "Melanie's favourite book is Dune." in texts
    assert "Melanie is planning to paint the nursery in June 2023." in texts
    assert all("I " not in t and " my " not in t for t in texts)


@pytest.mark.parametrize(
    "text",
    [
        "What do you think about velvet?",
        "Do you have anything in navy?",
        "How was your weekend?",
        "Thanks!",
        "Wow, that's great",
        "I'm so happy for you! I'm so proud of you.",
        "ok",
    ],
)
def test_questions_greetings_and_filler_produce_no_memories(extractor, text):
    assert extractor.extract(text, at=THURSDAY, speaker="Caroline").memories == []


def test_importance_ranks_facts_above_small_talk(extractor):
    family = extractor.extract("My sister Anna is moving in with us.", at=THURSDAY).memories
    chat = extractor.extract(
        "I watched a movie and it was fine, pretty relaxing evening overall.", at=THURSDAY
    ).memories
    assert family and chat
    assert max(m.importance for m in family) > max(m.importance for m in chat)


def test_only_user_turns_are_mined(extractor):
    text = "My name is Sarah and I love walnut. I bought the sofa last week."
    for role in ("assistant", "system"):
        assert extractor.extract(text, at=THURSDAY, role=role) == Extraction()
    assert extractor.extract(text, at=THURSDAY, role="user").preferences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", "2024-05-16"),
        ("yesterday", "2024-05-15"),
        ("last night", "2024-05-15"),
        ("last week", "2024-05-09"),
        ("last Tuesday", "2024-05-14"),
        ("next Saturday", "2024-05-18"),
        ("two weeks ago", "2024-05-02"),
        ("last month", "2024-04-01"),
        ("last year", "2023-01-01"),
        ("we went in March", "2024-03-01"),
        ("we're moving in March", "2025-03-01"),
        ("on 5 May", "2024-05-05"),
        ("May 2023", "2023-05-01"),
        ("back in 2022", "2022-01-01"),
        ("on May 7th, 2023", "2023-05-07"),
    ],
)
def test_resolve_dates(text, expected):
    resolved = resolve_dates(text, THURSDAY)
    assert len(resolved) == 1
    assert resolved[0][1].date().isoformat() == expected
    assert resolved[0][1].tzinfo is THURSDAY.tzinfo


def test_resolve_dates_ignores_numbers_that_are_not_dates():
    assert resolve_dates("order #2022 for $2022, you may 5 things", THURSDAY) == []


# -- robustness -------------------------------------------------------------------------------------------------------

NOTHING = Extraction()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", NOTHING),
        ("   ", NOTHING),
        ("'; DROP TABLE users; --", NOTHING),
        ("MATCH (n) DETACH DELETE n", NOTHING),
        # query text is only text: the stance at its end is still read
        (
            "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DETACH DELETE n', {}) // I love oak",
            {("material", "oak", "prefers")},
        ),
        ("🛋️💥" * 20_000, NOTHING),
        ("\x00\x01\ufffd" * 100, NOTHING),
        ("I love " * 6000, set()),
        ("a" * 40_000, NOTHING),
    ],
)
def test_hostile_or_huge_input_returns_without_raising(extractor, text, expected):
    """What hostile text reads as (its cost is bounded by tests/test_regex_linear.py, which
    counts work rather than timing it)."""
    result = extractor.extract(text, at=THURSDAY)
    assert isinstance(result, Extraction)
    if isinstance(expected, Extraction):
        assert result == expected
    else:
        assert triples(result) == expected
        assert result.purchases == [] and result.entities == [] and result.customer_name is None


# what hostile text used to make the patterns backtrack over (a subject then a run of fillers,
# runs of blanks inside a cue, an order number or a price) is read as any other text: the same
# facts, found in one pass (tests/test_regex_linear.py bounds the work)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i " + "just " * 4000 + "x", set()),  # 20 KB, the review's message: no cue after the fillers
        ("I " + "really " * 8 + "love oak", {("material", "oak", "prefers")}),  # as many fillers as anyone writes
        ("I really do still love oak", {("material", "oak", "prefers")}),
        ("I do not like glass", {("material", "glass", "dislikes")}),  # "do" is a filler, "do not" a negation
        ("I would rather have walnut", {("material", "walnut", "prefers")}),
        ("I'm allergic to wool", {("material", "wool", "dislikes")}),  # "all" is a filler, "allergic" no
        ("We're really into rattan", {("material", "rattan", "prefers")}),  # "really into" is a cue
        ("Honestly, really loving the velvet", {("material", "velvet", "prefers")}),
        ("My wife is into velvet but I love oak", {("material", "oak", "prefers")}),  # "is into": hers
        ("Thanks" + " " * 5000 + ",   I love      walnut   and" + " " * 5000 + "hate glass",
         {("material", "walnut", "prefers"), ("material", "glass", "dislikes")}),
        ("I love oak" + "\n" * 5000 + "but hate glass",
         {("material", "oak", "prefers"), ("material", "glass", "dislikes")}),
        ("Our budget is $3000" + " " * 5000 + ", please", {("budget", "3000", "prefers")}),
        ("I'm so proud of you" + " i glad" * 2000 + ". I love oak", {("material", "oak", "prefers")}),
    ],
)  # fmt: skip
def test_hostile_runs_keep_their_meaning(extractor, text, expected):
    assert triples(extractor.extract(text, at=THURSDAY)) == expected


def test_an_order_number_after_a_run_of_blanks_is_still_read(extractor):
    r = extractor.extract("I bought the Arlo sofa, order" + " " * 5000 + "#A1234 for $2,499", at=THURSDAY)
    assert [(p.product_name, p.order_id, p.price) for p in r.purchases] == [("Arlo sofa", "A1234", 2499.0)]


def test_a_long_message_is_mined_on_its_first_characters(extractor):
    from service.extraction.rules.extractor import MAX_CHARS

    early, late = "I love walnut. ", " and I hate glass."
    r = extractor.extract(early + "a" * (MAX_CHARS - len(early) - 10) + late, at=THURSDAY)
    assert triples(r) == {("material", "walnut", "prefers")}
    r = extractor.extract(early + "a" * 100 + late, at=THURSDAY)  # the same words within the limit are read
    assert triples(r) == {("material", "walnut", "prefers"), ("material", "glass", "dislikes")}


def test_extraction_round_trips_through_json(extractor):
    r = extractor.extract("My name is Sarah. I bought the sofa last week and my dog Max loves it.", at=THURSDAY)
    assert Extraction.model_validate_json(r.model_dump_json()) == r


# -- whose preference is it: clauses, subjects, polarity ----------------------------------------------------------


def triples(result: Extraction) -> set[tuple[str, str, str]]:
    return {(p.attribute, p.value, p.polarity) for p in result.preferences}


def test_someone_elses_dislike_is_remembered_about_them_not_the_customer(extractor):
    r = extractor.extract("My name is Dana. I love walnut and my wife Emma hates glass tables.", at=THURSDAY)
    assert triples(r) == {("material", "walnut", "prefers")}
    assert ("person", "Emma", "wife") in {(e.type, e.name, e.relation) for e in r.entities}
    assert ("Emma", "customer", "PARTNER_OF") in {(x.source, x.target, x.type) for x in r.relations}
    texts = {m.text: m.kind for m in r.memories}
    assert texts.get("Dana loves walnut.") == "preference"
    assert texts.get("Dana's wife Emma hates glass tables.") in ("preference", "fact")
    assert "Emma is Dana's wife." in texts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I love oak but he prefers metal", {("material", "oak", "prefers")}),
        ("I like velvet, while Tom likes leather", {("material", "velvet", "prefers")}),
        ("I want walnut; she loves leather.", {("material", "walnut", "prefers")}),
        ("I love walnut but my wife hates glass", {("material", "walnut", "prefers")}),
        ("My husband loves leather but hates glass", set()),
        ("My dog Max loves the velvet sofa", set()),
        ("Dana's husband hates leather", set()),
        ("My sister's budget is under $500", set()),
    ],
)
def test_clauses_with_another_subject_give_no_customer_preference(extractor, text, expected):
    assert triples(extractor.extract(text, at=THURSDAY)) == expected


def test_a_named_persons_stance_becomes_a_memory_about_them(extractor):
    r = extractor.extract("I like velvet, while Tom likes leather", at=THURSDAY, speaker="Caroline")
    texts = {m.text: m.kind for m in r.memories}
    assert texts.get("Caroline likes velvet.") == "preference"
    assert texts.get("Tom likes leather.") == "preference"
    # a bare pronoun ("she") cannot stand on its own later: no memory for it
    r = extractor.extract("I want walnut; she loves leather.", at=THURSDAY)
    assert not any("leather" in m.text for m in r.memories)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I love walnut and hate glass", {("material", "walnut", "prefers"), ("material", "glass", "dislikes")}),
        ("I hate glass but love walnut", {("material", "walnut", "prefers"), ("material", "glass", "dislikes")}),
        ("I love walnut and I hate glass", {("material", "walnut", "prefers"), ("material", "glass", "dislikes")}),
        (
            "Not a fan of velvet but I love leather",
            {("material", "velvet", "dislikes"), ("material", "leather", "prefers")},
        ),
    ],
)
def test_a_polarity_cue_holds_only_within_its_own_clause(extractor, text, expected):
    assert triples(extractor.extract(text, at=THURSDAY)) == expected


def test_coordinated_verbs_are_rewritten_for_the_speaker(extractor):
    r = extractor.extract("I love walnut and hate glass", at=THURSDAY, speaker="Dana")
    assert [m.text for m in r.memories if m.kind == "preference"] == ["Dana loves walnut and hates glass."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We're big fans of mid-century", {("style", "mid-century modern", "prefers")}),
        ("Our family loves walnut", {("material", "walnut", "prefers")}),
        ("My wife and I love walnut", {("material", "walnut", "prefers")}),
        ("Me and my husband hate glass", {("material", "glass", "dislikes")}),
        ("I'd like a walnut desk", {("material", "walnut", "prefers")}),
        ("For me, it's walnut all the way", {("material", "walnut", "prefers")}),
        ("show me oak tables", {("material", "oak", "prefers"), ("category", "table", "prefers")}),
        ("looking for a walnut desk", {("material", "walnut", "prefers"), ("category", "desk", "prefers")}),
        ("Honestly love walnut", {("material", "walnut", "prefers")}),
    ],
)
def test_the_speaker_and_subjectless_requests_are_the_customer(extractor, text, expected):
    assert triples(extractor.extract(text, at=THURSDAY)) == expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("I don't love glass", ("material", "glass")),
        ("I'm not a fan of oak", ("material", "oak")),
        ("never liked leather", ("material", "leather")),
        ("I've never liked leather", ("material", "leather")),
        ("We really don't want a sectional", ("category", "sectional")),
        ("I no longer like farmhouse", ("style", "farmhouse")),
    ],
)
def test_negation_within_a_clause_flips_to_dislikes(extractor, text, value):
    p = prefs_of(extractor.extract(text, at=THURSDAY))
    assert set(p) == {value}
    assert p[value].polarity == "dislikes" and p[value].strength == pytest.approx(0.6)


def test_a_negated_dislike_is_no_stance(extractor):
    assert extractor.extract("We don't hate oak", at=THURSDAY).preferences == []


def test_a_capitalised_word_is_only_a_subject_when_it_is_a_name(extractor):
    # "Our", "Walnut" and "Like" start sentences without being someone else
    assert triples(extractor.extract("Our budget is $3000 and my wife loves navy", at=THURSDAY)) == {
        ("budget", "3000", "prefers")
    }
    assert triples(extractor.extract("Walnut is what I love", at=THURSDAY)) == set()
    assert triples(extractor.extract("Like I said, oak is nice", at=THURSDAY)) == set()


def test_locomo_lines_with_other_people_stay_third_person(extractor):
    r = extractor.extract(
        "Anyway, Melanie, I love painting sunsets and my kids love the beach.", at=LOCOMO_DAY, speaker="Caroline"
    )
    texts = [m.text for m in r.memories]
    assert "Caroline loves painting sunsets." in texts
    assert "Caroline's kids love the beach." in texts
    assert r.preferences == []
    r = extractor.extract("My friend Tom hates leather but I love it.", at=LOCOMO_DAY, speaker="Caroline")
    assert r.preferences == []
    assert {"Tom is Caroline's friend.", "Caroline's friend Tom hates leather."} <= {m.text for m in r.memories}
    r = extractor.extract(
        "My wife and I hosted a small get-together with friends yesterday.", at=LOCOMO_DAY, speaker="John"
    )
    assert [m.text for m in r.memories if m.kind == "event"] == [
        "John's wife and John hosted a small get-together with friends on 7 May 2023."
    ]


def test_clause_handling_stays_fast_and_total(extractor):
    text = (
        "My name is Dana. I love walnut and my wife Emma hates glass tables, while Tom likes leather; "
        "she's not a fan of oak but we never liked chrome."
    )
    assert extractor.extract(text, at=THURSDAY) == extractor.extract(text, at=THURSDAY)  # deterministic
    for nasty in ("and and and but ; ; , while", "Tom's wife's sister's husband hates", ", while Tom likes"):
        result = extractor.extract(nasty, at=THURSDAY)
        assert isinstance(result, Extraction)
        assert result == Extraction()  # conjunctions and subjects without a stance say nothing
    r = extractor.extract("My wife Emma " * 500, at=THURSDAY)
    assert {(e.type, e.name, e.relation) for e in r.entities} == {("person", "Emma", "wife")}
    assert {(x.source, x.target, x.type) for x in r.relations} == {("Emma", "customer", "PARTNER_OF")}
    assert r.preferences == [] and [m.text for m in r.memories] == ["Emma is the customer's wife."]
    for stance_without_object in ("I love and hate and " * 300, "I don't not never hate"):
        r = extractor.extract(stance_without_object, at=THURSDAY)
        assert isinstance(r, Extraction)
        assert r.preferences == [] and r.entities == [] and r.purchases == []


@pytest.mark.parametrize(
    ("text", "sku"),
    [
        ("Just bought the Winslow Armchair for the guest room, my sister Anna visits in May.", "LOFT-ARM-0001"),
        ("Finally ordered the Kira U-Shaped Sectional!", "LOFT-SEC-0002"),
    ],
)
def test_a_purchase_without_a_subject_is_still_a_purchase(extractor, text, sku):
    r = extractor.extract(text, at=THURSDAY)
    assert [p.sku for p in r.purchases] == [sku]
