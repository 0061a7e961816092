"""The deterministic rule-based extractor: the offline default and the LLM's cheap pre-pass.

One user message in, one ``Extraction`` out, in well under a millisecond for a chat-sized
message. Every regex is compiled at import; catalog vocabulary comes from ``Catalog``'s
own precompiled matchers. The message is split into sentences and clauses; each clause
yields

- preferences: a subject + cue ("I love", "we don't want", "I've gone off") governs the
  catalog words that follow it until the clause ends or another cue starts;
- purchases: "I/we bought|ordered|purchased|got ..." followed by a catalog product or
  category, with price, quantity, order id and the date the sentence names;
- interests: requests and questions naming products or categories;
- entities and relations: family, partners, friends, pets, rooms, places, workplaces,
  events (dated from the sentence);
- memories: the clause rewritten in the third person ("I" -> the speaker's name) with
  relative dates replaced by absolute ones, so it stands on its own later.

Where things are: ``lexicon`` (every word list and pattern), ``clauses`` (sentences,
clauses, whose stance each states), ``preferences``, ``purchases``, ``interests``,
``entities`` (the customer's name, people, pets, places, rooms, events), ``memories``
(the standalone third-person sentences), ``amounts`` (money in text) and ``extractor``
(``RuleExtractor``: the input guards, the sentence loop, the dedupe). Dates are resolved
by ``service.extraction.dates``.

Only the customer's own turns ("user") are mined: assistant and system turns return an
empty ``Extraction``. A bug in the rules raises: an empty result would silently lose the
message's facts, while an exception fails only that message's ingestion job (the pipeline
reports it and retries it; the other messages go on).
"""

from service.extraction.rules.extractor import RuleExtractor

__all__ = ["RuleExtractor"]
