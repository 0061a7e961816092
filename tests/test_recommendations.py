"""Recommendations: explained by co-purchase paths, preferences and budget; never what the
customer owns, dislikes, or what is out of stock; a cold start said to be one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from graph.recommend import Candidate, CustomerBasis
from service import recommendations as rec

# -- pure scoring and wording -------------------------------------------------------------------


def _cand(sku: str, **kw) -> Candidate:
    base = dict(sku=sku, name=f"Product {sku}", category="sofa", price=1000.0, buyers=5, co_weight=0.0)
    return Candidate(**(base | kw))


def test_co_purchase_outranks_popularity_and_is_explained():
    basis = CustomerBasis(known=True, name="Sarah", owned=1, likes=[])
    found = [
        _cand("A", buyers=90),
        _cand("B", buyers=3, co_weight=4.0, via=[{"sku": "S", "name": "Arlo Sofa", "buyers": 12}]),
    ]
    out = rec.rank(basis, found, "sarah", limit=10)
    assert [i["sku"] for i in out["items"]] == ["B", "A"]
    assert out["cold_start"] is False
    first = out["items"][0]
    assert first["reasons"][0] == {
        "kind": "co_purchase",
        "text": "bought by 12 customers who also bought the Arlo Sofa",
        "customers": 12,
        "sku": "S",
        "name": "Arlo Sofa",
    }
    assert [n["key"] for n in first["path"]] == ["sarah", "S", "co-buyers:12", "B"]
    assert "(Arlo Sofa)<-[:PURCHASED]-(12 customers)" in first["path_text"]


def test_preferences_and_budget_become_sentences():
    c = _cand(
        "W",
        price=2400.0,
        budget=3000.0,
        matched=[{"attribute": "material", "name": "walnut", "strength": 0.8}],
    )
    texts = [r["text"] for r in rec.reasons(c, cold=False)]
    assert "matches your preference for walnut" in texts
    assert "within your $3,000 budget" in texts


def test_cold_start_is_said_to_be_one():
    basis = CustomerBasis(known=True, name=None, owned=0, likes=[{"attribute": "style", "name": "modern"}])
    out = rec.rank(
        basis, [_cand("A", matched=[{"attribute": "style", "name": "modern", "strength": 0.7}])], "x", limit=5
    )
    assert out["cold_start"] is True
    assert out["explanation"] == "No purchases yet: popular in your preferred styles (modern)"
    kinds = {r["kind"] for r in out["items"][0]["reasons"]}
    assert kinds == {"preference", "popular"}


# -- on the real graph ----------------------------------------------------------------------------

SEED = """
MATCH (sofa:Category {name: 'sofa'}), (table:Category {name: 'coffee table'}), (modern:Style {name: 'modern'}),
      (oak:Material {name: 'oak'}), (velvet:Material {name: 'velvet'})
UNWIND $products AS p
CREATE (x:Product {sku: p.sku, name: p.name, price: p.price, category: p.category, in_stock: p.in_stock})
MERGE (x)-[:HAS_STYLE]->(modern)
FOREACH (_ IN CASE WHEN p.category = 'sofa' THEN [1] ELSE [] END | MERGE (x)-[:IN_CATEGORY]->(sofa))
FOREACH (_ IN CASE WHEN p.category = 'coffee table' THEN [1] ELSE [] END | MERGE (x)-[:IN_CATEGORY]->(table))
FOREACH (_ IN CASE WHEN p.material = 'velvet' THEN [1] ELSE [] END | MERGE (x)-[:MADE_OF]->(velvet))
FOREACH (_ IN CASE WHEN p.material = 'oak' THEN [1] ELSE [] END | MERGE (x)-[:MADE_OF]->(oak))
"""
BUY = """
UNWIND $rows AS row
MERGE (c:Customer {user_id: row.user})
WITH c, row MATCH (p:Product {sku: row.sku})
CREATE (c)-[:PURCHASED {order_id: row.order_id, at: datetime(row.at), qty: 1, price: p.price, source: 'order'}]->(p)
"""


@pytest.fixture
def shop(stack):
    """Five products of this test only; five customers who bought the sofa bought the
    table too, three of them the velvet table, four the out-of-stock one."""
    tag = uuid.uuid4().hex[:6].upper()
    sku = {k: f"T{tag}-{k}" for k in ("SOFA", "OAK", "VELVET", "GONE", "LONE")}
    products = [
        {"sku": sku["SOFA"], "name": f"Arlo {tag} Sofa", "price": 2100.0, "category": "sofa", "in_stock": True},
        {
            "sku": sku["OAK"],
            "name": f"Brio {tag} Table",
            "price": 600.0,
            "category": "coffee table",
            "in_stock": True,
            "material": "oak",
        },
        {
            "sku": sku["VELVET"],
            "name": f"Cleo {tag} Table",
            "price": 650.0,
            "category": "coffee table",
            "in_stock": True,
            "material": "velvet",
        },
        {
            "sku": sku["GONE"],
            "name": f"Dune {tag} Table",
            "price": 640.0,
            "category": "coffee table",
            "in_stock": False,
        },
        {"sku": sku["LONE"], "name": f"Echo {tag} Sofa", "price": 9000.0, "category": "sofa", "in_stock": True},
    ]
    stack.cypher(SEED, products=products)
    now = datetime.now(UTC)
    rows = []
    for i in range(5):
        other = f"co-{tag}-{i}"
        at = (now - timedelta(days=10 + i)).isoformat()
        rows += [
            {"user": other, "sku": sku["SOFA"], "order_id": f"o{i}a", "at": at},
            {"user": other, "sku": sku["OAK"], "order_id": f"o{i}b", "at": at},
        ]
        if i < 3:
            rows.append({"user": other, "sku": sku["VELVET"], "order_id": f"o{i}c", "at": at})
        if i < 4:
            rows.append({"user": other, "sku": sku["GONE"], "order_id": f"o{i}d", "at": at})
    stack.cypher(BUY, rows=rows)
    yield tag, sku
    stack.cypher("MATCH (c:Customer) WHERE c.user_id STARTS WITH $p DETACH DELETE c", p=f"co-{tag}-")
    stack.cypher("MATCH (p:Product) WHERE p.sku STARTS WITH $p DETACH DELETE p", p=f"T{tag}-")


def test_co_purchases_explained_excluding_owned_disliked_and_out_of_stock(service, api, user, stack, shop):
    tag, sku = shop
    api.post("/v1/chat", json={"user_identifier": user, "message": "I really dislike velvet."})
    service.wait_idle()
    stack.cypher(
        BUY, rows=[{"user": user, "sku": sku["SOFA"], "order_id": "mine", "at": datetime.now(UTC).isoformat()}]
    )

    r = api.get(f"/memory/user/{user}/recommendations", params={"limit": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_identifier"] == user and body["cold_start"] is False
    skus = [i["sku"] for i in body["items"]]
    assert sku["OAK"] in skus
    assert sku["SOFA"] not in skus  # owned
    assert sku["VELVET"] not in skus  # disliked material
    assert sku["GONE"] not in skus  # out of stock
    oak = body["items"][skus.index(sku["OAK"])]
    assert skus.index(sku["OAK"]) == 0  # the strongest co-purchase path of the shop for this sofa
    assert oak["reasons"][0]["kind"] == "co_purchase"
    assert oak["reasons"][0]["text"] == f"bought by 5 customers who also bought the Arlo {tag} Sofa"
    assert [n["key"] for n in oak["path"]] == [user, sku["SOFA"], "co-buyers:5", sku["OAK"]]
    for item in body["items"]:
        assert item["reasons"] and item["path"] and item["path_text"]

    # filters: a category and a price cap
    tables = api.get(f"/memory/user/{user}/recommendations", params={"category": "coffee tables", "max_price": 620})
    assert tables.status_code == 200
    assert {i["category"] for i in tables.json()["items"]} <= {"coffee table"}
    assert all(i["price"] <= 620 for i in tables.json()["items"])
    assert sku["OAK"] in [i["sku"] for i in tables.json()["items"]]


def test_cold_start_popular_in_preferred_style(service, api, user):
    api.post("/v1/chat", json={"user_identifier": user, "message": "Hi, I love modern furniture"})
    service.wait_idle()
    body = api.get(f"/memory/user/{user}/recommendations", params={"limit": 5}).json()
    assert body["cold_start"] is True
    assert body["explanation"].startswith("No purchases yet: popular in your preferred styles (modern)")
    assert len(body["items"]) == 5
    for item in body["items"]:
        prefs = [r for r in item["reasons"] if r["kind"] == "preference"]
        assert {"attribute": "style", "value": "modern"}.items() <= prefs[0].items()


def test_unknown_customer_and_bad_filters(api):
    fresh = f"never-{uuid.uuid4().hex[:8]}"
    body = api.get(f"/memory/user/{fresh}/recommendations").json()
    assert body["cold_start"] is True and body["explanation"].startswith("No purchases yet and no known preferences")
    bad = api.get(f"/memory/user/{fresh}/recommendations", params={"category": "spaceships"})
    assert bad.status_code == 422 and "spaceships" in bad.json()["detail"]
    assert api.get(f"/memory/user/{fresh}/recommendations", params={"max_price": -1}).status_code == 422
    assert api.get(f"/memory/user/{fresh}/recommendations", params={"limit": 0}).status_code == 422


def test_the_offline_assistant_suggests_with_reasons(service, api, user):
    api.post("/v1/chat", json={"user_identifier": user, "message": "Hi, I love modern furniture"})
    service.wait_idle()
    reply = api.post("/v1/chat", json={"user_identifier": user, "message": "Can you recommend something?"}).json()
    text = reply["reply"]
    assert "Some ideas for you" in text and "no purchases yet: popular in your preferred styles (modern)" in text
    assert "matches your preference for modern style" in text
    sofas = api.post("/v1/chat", json={"user_identifier": user, "message": "Could you suggest a sofa?"}).json()
    assert "in sofa" in sofas["reply"]  # the explanation names the category asked for
