"""A bug in the rule extractor is a crash, not an empty result (pure Python, no stores).

An empty ``Extraction`` would silently lose a message's facts; an exception fails only that
message's ingestion job, which the pipeline reports and retries.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.catalog import Catalog
from service.extraction import Extraction, RuleExtractor

THURSDAY = datetime(2024, 5, 16, 15, 30, tzinfo=UTC)


class RuleBug(Exception):
    """Stands in for any bug in one of the rules."""


def broken(*args, **kwargs):
    raise RuleBug("a rule crashed")


@pytest.fixture(scope="module")
def extractor() -> RuleExtractor:
    return RuleExtractor(Catalog.load())


def test_a_crash_in_the_rules_reaches_the_caller(extractor, monkeypatch):
    monkeypatch.setattr(RuleExtractor, "_sentence", broken)
    with pytest.raises(RuleBug):
        extractor.extract("I love walnut", at=THURSDAY)


@pytest.mark.parametrize("text, role", [("", "user"), ("   ", "user"), ("I love walnut", "assistant"),
                                        ("I love walnut", "system")])
def test_the_input_guards_answer_before_any_rule_runs(extractor, monkeypatch, text, role):
    monkeypatch.setattr(RuleExtractor, "_sentence", broken)
    assert extractor.extract(text, at=THURSDAY, role=role) == Extraction()
