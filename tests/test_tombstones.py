"""An erasure sticks: a replay of what an erased customer's clients had sent (a chat retry
with the same Idempotency-Key, an order the feed sends again, an import run again) is
refused with 410 and stores nothing; new messages and orders start a fresh customer."""

from __future__ import annotations

import json
import uuid

import pytest

WORDS = ["Quillibrand", "Marrowvale"]  # only this customer says these


def _erased_customer(api, user: str) -> dict:
    """A customer with a keyed chat turn, an import with external ids and its own session
    id, and an order; erased. Returns what their clients had sent."""
    sent = {
        "key": f"turn-{uuid.uuid4().hex}",
        "session": str(uuid.uuid4()),
        "external_ids": [f"crm-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)],
        "order": f"ord-{uuid.uuid4().hex[:10]}",
    }
    turn = api.post(
        "/v1/chat",
        json={"user_identifier": user, "message": f"Hi, I'm {WORDS[0]} and I love walnut."},
        headers={"Idempotency-Key": sent["key"]},
    )
    assert turn.status_code == 200, turn.text
    sent["chat_session"] = turn.json()["session_id"]
    sent["import"] = {
        "session_id": sent["session"],
        "messages": [
            {"role": "user", "content": f"{WORDS[1]} is my town.", "external_id": sent["external_ids"][0]},
            {"role": "assistant", "content": "Noted!", "external_id": sent["external_ids"][1]},
            {"role": "user", "content": "I like oak too.", "external_id": sent["external_ids"][2]},
        ],
    }
    assert api.post(f"/v1/sessions/{user}/messages", json=sent["import"]).status_code == 201
    sent["order_body"] = {
        "order_id": sent["order"],
        "placed_at": "2026-11-01T10:00:00Z",
        "lines": [{"sku": "LOFT-SOF-0001", "qty": 1, "unit_price": 1999}],
    }
    assert api.post(f"/v1/customers/{user}/orders", json=sent["order_body"]).status_code == 201
    erased = api.delete(f"/memory/user/{user}")
    assert erased.status_code == 200 and erased.json()["status"] == "complete", erased.text
    # the turn, the reply, three imported messages, two sessions, one order
    assert erased.json()["counts"]["tombstones"] == 8, erased.json()["counts"]
    return sent


def _subject(stack, user: str) -> str:
    from service.keys import erasure_key
    from service.postgres.tombstones import subject_hash

    return subject_hash(erasure_key(stack.settings), user)


def _nothing_of(stack, user: str) -> None:
    """No row names the customer (no customer row was created) and the queue is clean."""
    assert stack.scan_postgres([user]) == []
    assert stack.sql("SELECT count(*) AS n FROM users WHERE user_identifier = $1", user)[0]["n"] == 0


def test_replays_of_an_erased_customer_are_gone_and_store_nothing(service, api, stack, user):
    sent = _erased_customer(api, user)
    service.wait_idle()

    # a chat client retrying the turn with the same Idempotency-Key (or message_id)
    retried = api.post(
        "/v1/chat",
        json={"user_identifier": user, "message": f"Hi, I'm {WORDS[0]} and I love walnut."},
        headers={"Idempotency-Key": sent["key"]},
    )
    assert retried.status_code == 410, retried.text
    assert retried.json()["error"] == "gone" and "erased" in retried.json()["detail"]
    also = api.post("/v1/chat", json={"user_identifier": user, "message": "hello?", "message_id": sent["key"]})
    assert also.status_code == 410
    # the order feed sending the erased order again
    order = api.post(f"/v1/customers/{user}/orders", json=sent["order_body"])
    assert order.status_code == 410 and sent["order"] in order.json()["detail"], order.text
    # an import run again, whole or with one erased message among new ones
    again = api.post(f"/v1/sessions/{user}/messages", json=sent["import"])
    assert again.status_code == 410, again.text
    mixed = {
        "messages": [
            {"role": "user", "content": "brand new", "external_id": f"new-{uuid.uuid4().hex}"},
            sent["import"]["messages"][2],
        ]
    }
    assert api.post(f"/v1/sessions/{user}/messages", json=mixed).status_code == 410
    # the erased sessions, with messages that carry no id of their own
    into = api.post(
        f"/v1/sessions/{user}/messages",
        json={"session_id": sent["session"], "messages": [{"role": "user", "content": "more"}]},
    )
    assert into.status_code == 410, into.text
    chat_in = api.post("/v1/chat", json={"user_identifier": user, "message": "hi", "session_id": sent["chat_session"]})
    assert chat_in.status_code == 410, chat_in.text

    _nothing_of(stack, user)
    service.wait_idle()
    assert stack.scan_neo4j([user, *WORDS]) == []


def test_a_customer_who_comes_back_with_new_messages_starts_fresh_and_old_ids_stay_gone(service, api, stack, user):
    sent = _erased_customer(api, user)
    fresh = api.post(
        "/v1/chat",
        json={"user_identifier": user, "message": "Hello, I'm new here and I like rattan."},
        headers={"Idempotency-Key": f"turn-{uuid.uuid4().hex}"},
    )
    assert fresh.status_code == 200, fresh.text
    assert api.post("/v1/chat", json={"user_identifier": user, "message": "and no key"}).status_code == 200
    new_order = sent["order_body"] | {"order_id": f"ord-{uuid.uuid4().hex[:10]}"}
    assert api.post(f"/v1/customers/{user}/orders", json=new_order).status_code == 201
    new_import = {"messages": [{"role": "user", "content": "a new import", "external_id": f"n-{uuid.uuid4().hex}"}]}
    assert api.post(f"/v1/sessions/{user}/messages", json=new_import).status_code == 201
    service.wait_idle()
    summary = api.get(f"/memory/user/{user}/summary").json()
    assert summary["stats"]["messages"] == 5 and WORDS[0] not in json.dumps(summary)

    # the customer is back, but what was erased stays erased: old ids are still refused
    assert api.post(f"/v1/customers/{user}/orders", json=sent["order_body"]).status_code == 410
    assert api.post(f"/v1/sessions/{user}/messages", json=sent["import"]).status_code == 410
    retried = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "again"}, headers={"Idempotency-Key": sent["key"]}
    )
    assert retried.status_code == 410
    assert api.get(f"/memory/user/{user}/summary").json()["stats"]["messages"] == 5


def test_tombstones_name_nobody_and_bind_only_the_erased_customer(service, api, stack, user):
    sent = _erased_customer(api, user)
    # no identifier, no client id, no word of the customer anywhere in PostgreSQL
    needles = [user, sent["key"], sent["order"], sent["session"], *sent["external_ids"], *WORDS]
    assert stack.scan_postgres(needles) == []
    rows = stack.sql(
        "SELECT cardinality(client_ids) AS n, expires_at - erased_at AS kept FROM erasure_tombstones "
        "WHERE subject_hash = $1",
        _subject(stack, user),
    )
    assert [(r["n"], r["kept"].days) for r in rows] == [(8, 400)]  # LOFT_TOMBSTONE_DAYS's default
    # another customer may use the same ids: the tombstone is of (customer, id)
    other = f"t-{uuid.uuid4().hex[:10]}"
    other_order = sent["order_body"] | {"order_id": sent["order"]}
    assert api.post(f"/v1/customers/{other}/orders", json=other_order).status_code == 201
    other_import = {"messages": sent["import"]["messages"]}
    assert api.post(f"/v1/sessions/{other}/messages", json=other_import).status_code == 201


def test_a_replay_after_the_tombstones_expire_is_stored_again(service, api, stack, user):
    sent = _erased_customer(api, user)
    assert api.post(f"/v1/customers/{user}/orders", json=sent["order_body"]).status_code == 410
    stack.sql(
        "UPDATE erasure_tombstones SET expires_at = now() - interval '1 second' WHERE subject_hash = $1",
        _subject(stack, user),
    )
    assert api.post(f"/v1/customers/{user}/orders", json=sent["order_body"]).status_code == 201


@pytest.mark.parametrize("path", ["/v1/chat", "/v1/customers/{u}/orders", "/v1/sessions/{u}/messages"])
def test_the_api_documents_410(api, path):
    spec = api.get("/openapi.json").json()
    method = spec["paths"][path.replace("{u}", "{user_identifier}")]["post"]
    assert "410" in method["responses"], method["responses"].keys()
