"""A bug in the rule extractor is a crash, not an empty result (pure Python, no stores).

An empty ``Extraction`` would silently lose a message's facts; an exception fails only that
message's ingestion job, which the pipeline reports and retries. The cheap input guards
(empty text, another role's turn) still answer with an empty ``Extraction``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.catalog import Catalog
from service.extraction import Extraction, RuleExtractor
from service.extraction.rules import clauses, entities, memories, preferences, purchases
from service.extraction.rules import extractor as extractor_module

THURSDAY = datetime(2024, 5, 16, 15, 30, tzinfo=UTC)
# one message that reaches every stage: a name, a clause split, a stance, a purchase, an event, memories
EVERYTHING = (
    "My name is Dana. I love walnut but my wife Emma hates glass, and we bought a sofa last week. "
    "We're hosting a housewarming party next Saturday."
)

# the stages the extractor runs, and a few helpers deep inside them
STAGES = [
    (extractor_module, "split_clauses"),
    (extractor_module, "find_preferences"),
    (extractor_module, "find_purchases"),
    (extractor_module, "find_interests"),
    (extractor_module, "find_entities"),
    (extractor_module, "sentence_memories"),
    (extractor_module, "customer_name"),
    (clauses, "_between"),
    (preferences, "_read_cue"),
    (purchases, "_items"),
    (entities, "_event_relation"),
    (memories, "_kind_and_importance"),
    (memories, "third_person"),
]


class RuleBug(Exception):
    """Stands in for any bug in one of the rules."""


def broken(*args, **kwargs):
    raise RuleBug("a rule crashed")


@pytest.fixture(scope="module")
def extractor() -> RuleExtractor:
    return RuleExtractor(Catalog.load())


def test_the_message_reaches_every_stage(extractor):
    r = extractor.extract(EVERYTHING, at=THURSDAY)
    assert r.customer_name == "Dana"
    assert {(p.attribute, p.value, p.polarity) for p in r.preferences} == {("material", "walnut", "prefers")}
    assert [p.category for p in r.purchases] == ["sofa"]
    party = next(e for e in r.entities if e.type == "event")
    assert party.name == "housewarming party" and party.at.date() == datetime(2024, 5, 18).date()
    assert "Emma is Dana's wife." in {m.text for m in r.memories}


@pytest.mark.parametrize(("module", "helper"), STAGES, ids=[f"{m.__name__.rsplit('.', 1)[1]}.{h}" for m, h in STAGES])
def test_a_crash_in_any_rule_reaches_the_caller(extractor, monkeypatch, module, helper):
    assert callable(getattr(module, helper))
    monkeypatch.setattr(module, helper, broken)
    with pytest.raises(RuleBug):
        extractor.extract(EVERYTHING, at=THURSDAY)


@pytest.mark.parametrize(
    ("text", "role"), [("", "user"), ("   ", "user"), (EVERYTHING, "assistant"), (EVERYTHING, "system")]
)
def test_the_input_guards_answer_before_any_rule_runs(extractor, monkeypatch, text, role):
    for module, helper in STAGES:
        monkeypatch.setattr(module, helper, broken)
    assert extractor.extract(text, at=THURSDAY, role=role) == Extraction()
