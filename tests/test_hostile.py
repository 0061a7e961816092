"""No request can stall a process: hostile chat messages are stored and answered while the API
keeps answering everyone else, and the worker keeps filing other customers' turns while it
mines hostile ones.

Every hostile message here made a pattern of the rule extractor backtrack for seconds (one of
them for hours) on the event loop that serves every request (bench/hostile.py measures it;
tests/test_regex_linear.py bounds the patterns' work). The assertions are orders of events,
never durations: what is asked while hostile messages are being answered is answered before
they are, and nothing hostile is lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.hostile import hostile_messages

MESSAGES = hostile_messages()
# each twice at once: so many that what is asked after them finds them all still being answered
AT_ONCE = 2


def _erase(api: httpx.Client, users: list[str]) -> None:
    """Their turns' ingestion is not what these tests are about: it leaves the suite's worker."""
    for user in users:
        assert api.delete(f"/memory/user/{user}").status_code in (200, 202)


@pytest.fixture
def asker(service, api, user):
    """Another customer, with a little history to ask about."""
    turns = ["I love walnut and mid-century furniture.", "Our budget for the living room is about $3,000."]
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": [{"role": "user", "content": t} for t in turns]})
    assert r.status_code == 201, r.text
    return user


def test_hostile_chat_messages_never_hold_up_other_requests(service, api, asker):
    """Every hostile message twice, at once, each from a customer of its own; then a status
    request and another customer's context. Those two are answered while most of the hostile
    messages are still being answered: their work runs in the API's CPU pool (a message's mining and catalog
    matching, a few at a time), the event loop keeps serving everyone else."""
    burst = [(f"t-hostile-{uuid.uuid4().hex[:8]}", name) for name in sorted(MESSAGES) for _ in range(AT_ONCE)]
    question = {"query": "what is my budget?"}
    assert api.get(f"/memory/context/{asker}", params=question).status_code == 200  # its embedding is cached
    finished: list[str] = []  # what finished, in order
    lock = threading.Lock()

    def send(what: str, method: str, path: str, **kwargs) -> httpx.Response:
        with httpx.Client(base_url=service.base, timeout=600) as client:
            response = client.request(method, path, **kwargs)
        with lock:
            finished.append(what)
        return response

    with ThreadPoolExecutor(len(burst) + 2) as pool:
        hostile = [
            pool.submit(send, name, "POST", "/v1/chat", json={"user_identifier": u, "message": MESSAGES[name]})
            for u, name in burst
        ]
        time.sleep(0.3)  # they are in: stored, being answered
        status = pool.submit(send, "status", "GET", "/memory/status")
        context = pool.submit(send, "context", "GET", f"/memory/context/{asker}", params=question)
        # answered; a 503 is an answer too: a store (not this process) was slow to answer the
        # status's own checks, as it may be on a machine this busy
        assert status.result().status_code in (200, 503), status.result().text
        assert context.result().status_code == 200 and "3,000" in context.result().json()["text"]
        answers = [f.result() for f in hostile]

    # the probes are not queued behind the burst: each finishes while most hostile messages are
    # still being answered (a message that collapses to little, a run of blanks, may be answered
    # first on a busy machine; on an event loop held by the patterns they finished last)
    for probe in ("status", "context"):
        assert finished.index(probe) < len(burst) // 2, (finished, status.result().text)
    # stored and answered: nothing lost
    for (user, name), answer in zip(burst, answers, strict=True):
        assert answer.status_code == 200, f"{name}: {answer.text[:300]}"
        body = answer.json()
        assert body["reply"] and body["reply_message_id"] > body["message_id"]
        stored = api.get(f"/v1/sessions/{user}").json()["sessions"][0]["messages"]
        assert [(m["role"], m["content"]) for m in stored] == [("user", MESSAGES[name]), ("assistant", body["reply"])]
    _erase(api, [user for user, _ in burst])


def _import_hostile(api: httpx.Client, user: str, count: int) -> list[str]:
    """``count`` hostile messages of about a thousand characters (each shape in turn; short
    enough to need no passages of their own), in one import: a bulk job for each."""
    from bench.hostile import SHAPES

    texts = []
    for i in range(count):
        head, unit, tail = list(SHAPES.values())[i % len(SHAPES)]
        # blanks after "order": four quantifiers over one run, a short one is the hostile one
        size = 430 if unit == " " and "order" in head else 1000
        texts.append(head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail)
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": [{"role": "user", "content": t} for t in texts]})
    assert r.status_code == 201, r.text
    return texts


def test_the_worker_files_other_turns_while_it_mines_hostile_ones(service, api, user, stack):
    """A bulk import of hostile messages, and right after it another customer's chat turn: the
    turn is filed (embedded, its facts in the graph: searchable) while the hostile import is
    still being filed, and then every hostile message is filed too. The import is large (300
    messages: a few batches of mining, embedding and writing) so that the order is certain."""
    hostile_user = f"t-hostile-{uuid.uuid4().hex[:8]}"
    texts = _import_hostile(api, hostile_user, 300)
    turn = api.post("/v1/chat", json={"user_identifier": user, "message": "I love walnut coffee tables"})
    assert turn.status_code == 200, turn.text
    turn_id = turn.json()["message_id"]

    def embedded(sql: str, arg) -> tuple[int, int]:
        row = stack.sql(
            f"SELECT count(*) FILTER (WHERE embedding IS NOT NULL) AS e, count(*) AS n FROM messages WHERE {sql}", arg
        )[0]
        return row["e"], row["n"]

    deadline = time.monotonic() + 600
    while embedded("id = $1", turn_id) != (1, 1):
        assert time.monotonic() < deadline, f"the turn was never filed\n{service.log_tail()}"
        time.sleep(0.1)
    hostile_then = embedded("user_identifier = $1", hostile_user)
    assert hostile_then[0] < hostile_then[1] == len(texts), (
        f"the hostile import ({hostile_then}) was filed before the turn that came after it"
    )
    walnut = "MATCH (:Customer {user_id: $u})-[:PREFERS]->(m:Material {name: 'walnut'}) RETURN count(m) AS n"
    while stack.cypher(walnut, u=user) != [{"n": 1}]:  # the graph is written right after the embeddings
        assert time.monotonic() < deadline, f"the turn's facts never reached the graph\n{service.log_tail()}"
        time.sleep(0.1)

    service.wait_idle(timeout=900)
    rows = stack.sql("SELECT content FROM messages WHERE user_identifier = $1 ORDER BY id", hostile_user)
    assert [r["content"] for r in rows] == texts
    assert embedded("user_identifier = $1", hostile_user) == (len(texts), len(texts))
    _erase(api, [hostile_user])
