"""The order feed: orders land in PostgreSQL and as PURCHASED in the graph, idempotently;
unknown SKUs are refused whole; a purchase said in chat and sent by the feed counts once."""

from __future__ import annotations

import uuid

SOFA, TABLE = "LOFT-SOF-0001", "LOFT-ARM-0001"  # TABLE: any second product (sorts first)


def _order(order_id: str, *lines: tuple[str, int, float], at: str = "2024-05-02T10:00:00Z") -> dict:
    return {
        "order_id": order_id,
        "placed_at": at,
        "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in lines],
    }


def _purchases(stack, user):
    return stack.cypher(
        "MATCH (:Customer {user_id: $u})-[r:PURCHASED]->(p) "
        "RETURN coalesce(p.sku, p.key) AS sku, r.order_id AS order_id, r.qty AS qty, r.price AS price, "
        "r.source AS source, r.source_message_ids AS messages, r.mentioned_in_chat AS said ORDER BY sku",
        u=user,
    )


def test_an_order_lands_in_both_stores_and_a_retry_changes_nothing(service, api, stack, user):
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    body = _order(oid, (SOFA, 1, 1099.0), (TABLE, 2, 300.0), (TABLE, 1, 330.0))
    r = api.post(f"/v1/customers/{user}/orders", json=body)
    assert r.status_code == 201, r.text
    assert r.json() == {"order_id": oid, "user_identifier": user, "created": True, "lines": 3, "total": 2029.0}
    again = api.post(f"/v1/customers/{user}/orders", json=body)
    assert again.status_code == 200 and again.json()["created"] is False
    service.wait_idle()

    assert stack.sql("SELECT count(*) AS n FROM orders WHERE order_id = $1", oid)[0]["n"] == 1
    assert stack.sql("SELECT count(*) AS n FROM order_lines WHERE order_id = $1", oid)[0]["n"] == 3
    # one relationship per product of the order; two lines of one SKU are one purchase of 3
    assert _purchases(stack, user) == [
        {"sku": TABLE, "order_id": oid, "qty": 3, "price": 310.0, "source": "order", "messages": [], "said": False},
        {"sku": SOFA, "order_id": oid, "qty": 1, "price": 1099.0, "source": "order", "messages": [], "said": False},
    ]
    listed = api.get(f"/v1/customers/{user}/orders").json()
    assert [o["order_id"] for o in listed["orders"]] == [oid]
    assert listed["orders"][0]["lines"][1] == {"sku": TABLE, "qty": 2, "unit_price": 300.0}
    # the owned sofa is never recommended back
    recs = api.get(f"/memory/user/{user}/recommendations", params={"limit": 50}).json()
    assert recs["cold_start"] is False and SOFA not in [i["sku"] for i in recs["items"]]


def test_unknown_skus_are_named_and_nothing_is_written(service, api, stack, user):
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    r = api.post(
        f"/v1/customers/{user}/orders", json=_order(oid, (SOFA, 1, 1.0), ("NOPE-1", 1, 1.0), ("NOPE-2", 1, 1.0))
    )
    assert r.status_code == 422
    assert "NOPE-1" in r.json()["detail"] and "NOPE-2" in r.json()["detail"]
    assert stack.sql("SELECT count(*) AS n FROM orders WHERE order_id = $1", oid)[0]["n"] == 0
    assert stack.sql("SELECT count(*) AS n FROM users WHERE user_identifier = $1", user)[0]["n"] == 0


def test_same_id_other_content_is_a_conflict_and_bad_bodies_are_422(service, api, user):
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    assert api.post(f"/v1/customers/{user}/orders", json=_order(oid, (SOFA, 1, 1.0))).status_code == 201
    changed = api.post(f"/v1/customers/{user}/orders", json=_order(oid, (SOFA, 2, 1.0)))
    assert changed.status_code == 409 and oid in changed.json()["detail"]
    elsewhere = api.post(f"/v1/customers/x{user}/orders", json=_order(oid, (SOFA, 1, 1.0)))
    assert elsewhere.status_code == 409
    for bad in (
        _order("x", (SOFA, 0, 1.0)),
        _order("x", (SOFA, 1, -1.0)),
        _order("x", (SOFA, 1, 1.0), at="2024-05-02T10:00:00"),  # no timezone
        {"order_id": "x", "placed_at": "2024-05-02T10:00:00Z", "lines": []},
        _order("has space", (SOFA, 1, 1.0)),
    ):
        r = api.post(f"/v1/customers/{user}/orders", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"] == "validation_error"


def test_a_purchase_said_in_chat_and_sent_by_the_feed_counts_once(service, api, stack, user):
    # said first, ordered later: the order absorbs the chat purchase
    api.post("/v1/chat", json={"user_identifier": user, "message": "I bought the Noor Tuxedo Sofa last week."})
    service.wait_idle()
    said = _purchases(stack, user)
    assert [(p["sku"], p["source"]) for p in said] == [(SOFA, "chat")]
    oid = f"ord-{uuid.uuid4().hex[:8]}"
    assert api.post(f"/v1/customers/{user}/orders", json=_order(oid, (SOFA, 1, 1129.0))).status_code == 201
    service.wait_idle()
    after = _purchases(stack, user)
    assert len(after) == 1
    assert after[0]["source"] == "order" and after[0]["order_id"] == oid and after[0]["said"] is True
    assert after[0]["messages"] == said[0]["messages"]  # provenance kept

    # ordered first, said later: the mention joins the order
    api.post("/v1/chat", json={"user_identifier": user, "message": "By the way, I bought the Noor Tuxedo Sofa."})
    service.wait_idle()
    final = _purchases(stack, user)
    assert len(final) == 1 and final[0]["order_id"] == oid and len(final[0]["messages"]) == 2
    summary = api.get(f"/memory/user/{user}/summary").json()
    assert [p["sku"] for p in summary["purchases"]] == [SOFA]
