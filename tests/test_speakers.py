"""The names of the people who speak in a customer's history: found in a question with one
pattern, kept to the most recent ``LOFT_MAX_SPEAKERS``, forgotten with the customer.

Every context matches its question against the customer's speakers (a question that names
one is embedded without the name and weighs what that person said). An import can bring any
number of names, so they are capped, and matched by one pattern built once per customer
instead of one per name per question.
"""

from __future__ import annotations

import asyncio
import time

from service.settings import DEFAULT_MAX_SPEAKERS
from service.text import SpeakerCache, SpeakerNames


def test_names_are_found_whole_in_any_case_also_inside_longer_names():
    names = SpeakerNames(["Anna", "Anna Lee", "Lee", "Caroline", "Jo-Anne", "O'Brien"])
    assert names.named("did anna lee and CAROLINE meet?") == {"anna lee", "anna", "lee", "caroline"}
    assert names.named("What is Jo-Anne's job? And o'brien's?") == {"jo-anne", "o'brien"}
    assert names.named("Annabel and Carolines") == frozenset()  # whole words only
    assert names.without("Did Anna Lee meet Caroline , then?") == "Did meet, then?"
    assert names.without("Caroline?") == "Caroline?"  # nothing else to ask
    assert SpeakerNames([]).named("anything") == frozenset()
    assert SpeakerNames([]).without("anything  at all") == "anything at all"


def test_a_thousand_names_are_one_pattern():
    many = [f"speaker{i}x" for i in range(1000)]
    names = SpeakerNames(many)
    assert names.pattern is not None and names.pattern.pattern.count("speaker") == 1  # a trie: one shared prefix
    assert names.named("what did SPEAKER417X say to speaker4x, not speaker4?") == {"speaker417x", "speaker4x"}


def test_the_matcher_cache_is_per_customer_and_forgets_one():
    cache = SpeakerCache(size=2)
    first = cache.get("a", ["Anna"])
    assert cache.get("a", ["Anna"]) is first  # built once
    assert cache.get("a", ["Anna", "Tom"]) is not first  # built again when the names change
    cache.get("b", ["Bo"])
    cache.get("c", ["Cy"])  # over the size: the least recently asked about goes
    assert "a" not in cache and "c" in cache
    assert cache.forget("a") == 0 and cache.forget("c") == 1 and "c" not in cache
    assert cache.clear() == 1


def test_names_read_before_an_erasure_are_not_kept_after_it():
    cache = SpeakerCache()
    ticket = cache.ticket()  # a context reads its customer's names…
    cache.forget("erased")  # …the customer is erased meanwhile…
    matcher = cache.get("erased", ["Anna"], ticket)  # …the context still gets its matcher
    assert matcher.named("anna?") == {"anna"} and "erased" not in cache
    cache.get("someone", ["Bo"], cache.ticket())
    assert "someone" in cache


def _speakers(stack, user: str) -> list[str]:
    return stack.sql("SELECT speakers FROM users WHERE user_identifier = $1", user)[0]["speakers"]


def _say(api, user: str, speakers: list[str]) -> None:
    messages = [{"role": "user", "speaker": s, "content": f"hi, {s} here"} for s in speakers]
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": messages})
    assert r.status_code == 201, r.text


def test_a_customer_keeps_the_most_recently_introduced_speakers(service, api, user, stack):
    cap = DEFAULT_MAX_SPEAKERS  # the suite's API runs with the default
    first = [f"Early{i:03d}" for i in range(cap)]
    later = [f"Late{i:03d}" for i in range(cap // 2)]
    _say(api, user, first)
    assert _speakers(stack, user) == first  # in the order they last spoke
    _say(api, user, [*later, "Early000"])  # Early000 is known already: not introduced again
    kept = _speakers(stack, user)
    assert len(kept) == cap and kept == first[cap // 2 :] + later
    # an import of thousands of names keeps the last of them
    _say(api, user, [f"Mass{i:04d}" for i in range(1000)])
    assert _speakers(stack, user) == [f"Mass{i:04d}" for i in range(1000 - cap, 1000)]
    # and a question that names a kept speaker is still read as one
    r = api.get(f"/memory/context/{user}", params={"query": "What did Mass0999 say?", "explain": True})
    assert r.status_code == 200, r.text


def test_an_erased_customer_leaves_no_speaker_matcher_in_any_process(stack):
    from service.core.erasure import CHANNEL, ErasureListener
    from service.runtime import Runtime

    async def scenario():
        rt = await Runtime.open(stack.settings, pool_size=2)
        listener = ErasureListener(rt)
        await listener.start()
        try:
            rt.speaker_names.get("speaks-a", ["Anna"])
            rt.speaker_names.get("speaks-b", ["Bo"])
            assert "speaks-a" in rt.speaker_names and rt.forget_cached("nobody")["speaker_names"] == 0
            await rt.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, "speaks-a")
            deadline = time.monotonic() + 5
            while "speaks-a" in rt.speaker_names:
                assert time.monotonic() < deadline, "the notification never arrived"
                await asyncio.sleep(0.05)
            assert "speaks-b" in rt.speaker_names  # another customer's stayed
        finally:
            await listener.stop()
            await rt.close()

    asyncio.run(scenario())
