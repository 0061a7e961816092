"""Bad input gets a clear 4xx and loses nothing: each input that once crashed a request
(or a customer's later requests) is a regression test here."""

from __future__ import annotations

import json
import uuid

import pytest


def _error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "detail"}
    if code:
        assert body["error"] == code
    return body


@pytest.mark.parametrize(
    "text",
    [
        "What did I buy on 9999-12-31?",
        "What about 0001-01-01?",
        "in year 1 I bought a sofa",
        "in the year 9999 and 10000",
        "12/31/9999 at 23:59",
        "last May 9999",
    ],
)
def test_dates_at_the_calendars_edges_are_answered(service, api, user, text):
    r = api.post("/v1/chat", json={"user_identifier": user, "message": text})
    assert r.status_code == 200, r.text
    ctx = api.get(f"/memory/context/{user}", params={"query": text})
    assert ctx.status_code == 200, ctx.text
    service.wait_idle()
    assert api.get(f"/memory/user/{user}/summary").status_code == 200
    assert api.get(f"/memory/context/{user}", params={"query": text}).status_code == 200


@pytest.mark.parametrize(
    "created_at", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2999-01-01T00:00:00+00:00"]
)
def test_import_timestamps_outside_real_history_are_a_422(api, user, created_at):
    r = api.post(
        f"/v1/sessions/{user}/messages",
        json={"messages": [{"role": "user", "content": "hi", "created_at": created_at}]},
    )
    assert "between 1970-01-01 and tomorrow" in _error(r, 422, "validation_error")["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speaker", "Ann\u0000a"),
        ("external_id", "id\u0000"),
        ("content", "hello \ud800 world"),
        ("speaker", "\udfff"),
        ("external_id", "x\udc80"),
        ("metadata", {"note": "a\u0000b"}),
        ("metadata", {"k\ud800": 1}),
        ("metadata", {"deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
        ("metadata", {"blob": "x" * 9000}),
    ],
)
def test_text_no_store_can_hold_is_a_422(api, user, field, value):
    message = {"role": "user", "content": "hi", "created_at": "2024-01-01T10:00:00Z"} | {field: value}
    # serialised by hand: the JSON may carry escapes of lone surrogates, which are valid JSON
    body = json.dumps({"messages": [message]})
    r = api.post(f"/v1/sessions/{user}/messages", content=body, headers={"content-type": "application/json"})
    _error(r, 422, "validation_error")
    assert api.get(f"/v1/sessions/{user}").json()["sessions"] == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_metadata_are_a_422(api, user, literal):
    body = (
        '{"messages": [{"role": "user", "content": "hi", "created_at": "2024-01-01T10:00:00Z", '
        f'"metadata": {{"score": {literal}}}}}]}}'
    )
    r = api.post(f"/v1/sessions/{user}/messages", content=body, headers={"content-type": "application/json"})
    assert "finite" in _error(r, 422)["detail"]


def test_text_in_query_strings_is_checked_too(api, user):
    _error(api.get(f"/memory/context/{user}", params={"query": "sofa\u0000"}), 422, "validation_error")
    body = json.dumps({"query": "\ud83d", "user_identifier": user})  # ASCII JSON with an escaped lone surrogate
    r = api.post("/memory/search/entities", content=body, headers={"content-type": "application/json"})
    _error(r, 422, "validation_error")


def test_bodies_over_the_limit_are_refused_before_parsing(api, user):
    big = [{"role": "user", "content": "x" * 30_000} for _ in range(200)]  # ~6 MB
    r = api.post(f"/v1/sessions/{user}/messages", json={"messages": big})
    body = _error(r, 413, "payload_too_large")
    assert "1 MiB" in body["detail"] and body["request_id"] == r.headers["x-request-id"]
    chat = api.post("/v1/chat", json={"user_identifier": user, "message": "y" * 30_000, "pad": "z" * 70_000})
    assert "64 KB" in _error(chat, 413)["detail"]
    # no Content-Length (chunked): counted while reading
    chunks = (b'{"messages": [' + b",".join([b'{"role": "user", "content": "' + b"q" * 30_000 + b'"}'] * 60) + b"]}",)
    r = api.post(f"/v1/sessions/{user}/messages", content=iter(chunks), headers={"content-type": "application/json"})
    _error(r, 413)
    assert api.get(f"/v1/sessions/{user}").json()["sessions"] == []


def test_a_huge_number_in_a_message_never_becomes_an_infinite_price(service, api, user, stack):
    text = "I bought the Sloane Chaise Sectional for $" + "9" * 400 + " yesterday, my budget was $" + "8" * 350
    assert api.post("/v1/chat", json={"user_identifier": user, "message": text}).status_code == 200
    service.wait_idle()
    r = api.get(f"/memory/user/{user}/summary")
    assert r.status_code == 200, r.text
    prices = stack.cypher("MATCH (:Customer {user_id: $u})-[p:PURCHASED]->() RETURN p.price AS price", u=user)
    assert prices and all(p["price"] is None or p["price"] < 1e7 for p in prices)
    assert api.get(f"/memory/context/{user}", params={"query": "what did I buy?"}).status_code == 200


def test_retrieval_query_is_clipped_the_same_way_on_every_route(service, api, user):
    long_question = "Which sofa? " + "really " * 5000  # 35 KB of text, a valid chat message
    assert api.post("/v1/chat", json={"user_identifier": user, "message": long_question[:32_000]}).status_code == 200
    assert api.get(f"/memory/context/{user}", params={"query": long_question[:4000]}).status_code == 200
    too_long = api.get(f"/memory/context/{user}", params={"query": long_question[:4001]})
    _error(too_long, 422, "validation_error")


def test_a_retried_chat_turn_is_stored_once_and_answered_the_same(service, api, user, stack):
    key = f"turn-{uuid.uuid4().hex}"
    first = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "I love teak furniture"}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 200 and first.json()["replayed"] is False
    again = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "I love teak furniture"}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 200, again.text
    a, b = first.json(), again.json()
    assert b["replayed"] is True and (b["message_id"], b["reply"], b["reply_message_id"], b["session_id"]) == (
        a["message_id"],
        a["reply"],
        a["reply_message_id"],
        a["session_id"],
    )
    # the body's message_id is the same thing
    third = api.post("/v1/chat", json={"user_identifier": user, "message": "I love teak furniture", "message_id": key})
    assert third.json()["message_id"] == a["message_id"]
    rows = stack.sql("SELECT role FROM messages WHERE user_identifier = $1", user)
    assert sorted(r["role"] for r in rows) == ["assistant", "user"]
    # the same key for another message is a client bug, said plainly
    other = api.post(
        "/v1/chat", json={"user_identifier": user, "message": "something else"}, headers={"Idempotency-Key": key}
    )
    _error(other, 409, "conflict")
    _error(api.post("/v1/chat", json={"user_identifier": user, "message": "x", "message_id": "a b"}), 422)


def test_every_error_is_json_with_a_request_id(api, user):
    for r in (
        api.get("/nope"),
        api.get(f"/memory/context/{user}", params={"budget": 1}),
        api.post("/v1/chat", content=b"{not json", headers={"content-type": "application/json"}),
        api.delete("/v1/chat"),
    ):
        body = r.json()
        assert r.status_code in (404, 405, 422) and body["error"] and body["detail"]
        assert body["request_id"] == r.headers["x-request-id"]
    # a client's own request id is echoed back
    r = api.get("/memory/status", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"


def test_the_reply_uses_what_this_turn_said_without_waiting_for_the_worker(service, api, user):
    service.worker.send_signal(__import__("signal").SIGSTOP)  # the worker is busy elsewhere
    try:
        r = api.post(
            "/v1/chat", json={"user_identifier": user, "message": "Hi, my name is Wenonah and I love boho furniture"}
        )
        assert "Wenonah" in r.json()["reply"] and "bohemian" in r.json()["reply"]
        r = api.post(
            "/v1/chat", json={"user_identifier": user, "message": "What do you remember about me? My name is Wenonah"}
        )
        assert "Wenonah" in r.json()["reply"]
    finally:
        service.worker.send_signal(__import__("signal").SIGCONT)


# -- times, cursors and totals at the calendar's and the columns' edges -------------------------


@pytest.mark.parametrize(
    ("query", "as_of"),
    [
        ("what did I order for 9999-12-31?", "2024-05-01T10:00:00-04:00"),
        ("9999-12-31", "2024-05-01T23:30:00-11:00"),
        ("0001-01-01", "2024-05-01T10:00:00+05:30"),
        ("what about 0001-01-01?", "2024-05-01T00:30:00+14:00"),
        ("9999-12-31", "2024-05-01T10:00:00Z"),
    ],
)
def test_edge_dates_with_an_as_of_in_any_time_zone_are_answered(api, user, query, as_of):
    assert api.post("/v1/chat", json={"user_identifier": user, "message": "I love walnut"}).status_code == 200
    for who in (user, f"{user}-unknown"):  # the PostgreSQL source runs for an unknown customer too
        r = api.get(f"/memory/context/{who}", params={"query": query, "as_of": as_of})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("as_of", "reason"),
    [
        ("9999-12-31T23:00:00-05:00", "between 1970-01-01 and tomorrow"),
        ("0001-01-01T00:00:00+05:30", "between 1970-01-01 and tomorrow"),
        ("1969-12-31T23:59:59Z", "between 1970-01-01 and tomorrow"),
        ("2999-01-01T00:00:00+00:00", "between 1970-01-01 and tomorrow"),
        ("2024-05-01T10:00:00", "needs a time zone"),
        ("yesterday", "as_of"),
    ],
)
def test_an_as_of_outside_real_history_is_a_422(api, user, as_of, reason):
    r = api.get(f"/memory/context/{user}", params={"query": "what did I buy?", "as_of": as_of})
    assert reason in _error(r, 422, "validation_error")["detail"]


def _cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode()


def _import_sessions(api, user: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = api.post(
            f"/v1/sessions/{user}/messages",
            json={"messages": [{"role": "user", "content": f"note {i}", "created_at": f"2024-01-0{i + 1}T10:00:00Z"}]},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["session_id"])
    return ids


def test_cursors_the_api_did_not_hand_out_are_a_422_on_every_paginated_route(api, user):
    sessions = _import_sessions(api, user, 3)
    other = f"{user}-other"
    _import_sessions(api, other, 2)
    real = api.get(f"/v1/sessions/{user}", params={"limit": 1}).json()["next_cursor"]
    others = api.get(f"/v1/sessions/{other}", params={"limit": 1}).json()["next_cursor"]
    assert real and others
    # the pages a real cursor reads: every session once
    seen, cursor = [], None
    while True:
        page = api.get(f"/v1/sessions/{user}", params={"limit": 1} | ({"cursor": cursor} if cursor else {})).json()
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(sessions)

    payload = __import__("base64").urlsafe_b64decode(real).decode()
    at, row, signature = payload.split("|")
    crafted = [
        _cursor(f"9999-12-31T23:00:00-05:00|{uuid.uuid4()}"),  # unsigned, and overflows in UTC
        _cursor(f"0001-01-01T00:00:00+05:30|{uuid.uuid4()}"),
        _cursor(f"9999-12-31T23:00:00-05:00|{row}|{signature}"),  # a real signature on another time
        _cursor(f"{at}|{uuid.uuid4()}|{signature}"),
        others,  # another customer's list
        "not a cursor",
        "\u00e9t\u00e9",
    ]
    routes = [f"/v1/sessions/{user}", f"/memory/user/{user}/memories", f"/v1/sessions/{user}/{sessions[0]}/messages"]
    for route in routes:
        for cursor in crafted:
            r = api.get(route, params={"cursor": cursor})
            assert "cursor is not one this API returned" in _error(r, 422, "validation_error")["detail"], route
    # a real cursor of one list does not page another
    for route in routes[1:]:
        _error(api.get(route, params={"cursor": real}), 422, "validation_error")


def test_an_order_whose_total_overflows_is_a_422_and_records_nothing(api, user):
    line = {"sku": "LOFT-SOF-0001", "qty": 10_000, "unit_price": 10_000_000}
    order = {"order_id": f"ovf-{uuid.uuid4().hex}", "placed_at": "2026-01-01T00:00:00Z", "lines": [line] * 10}
    r = api.post(f"/v1/customers/{user}/orders", json=order)
    assert "total" in _error(r, 422, "validation_error")["detail"]
    just_over = order | {"lines": [{"sku": "LOFT-SOF-0001", "qty": 101, "unit_price": 10_000_000}]}
    assert "1,000,000,000" in _error(api.post(f"/v1/customers/{user}/orders", json=just_over), 422)["detail"]
    assert api.get(f"/v1/customers/{user}/orders").json()["orders"] == []
    at_cap = order | {"lines": [{"sku": "LOFT-SOF-0001", "qty": 100, "unit_price": 10_000_000}]}
    r = api.post(f"/v1/customers/{user}/orders", json=at_cap)
    assert r.status_code == 201 and r.json()["total"] == 1_000_000_000, r.text
