"""`GET /memory/user/{user}/graph`: the customer's neighbourhood as nodes and edges (the chat
page's graph view), read from Neo4j."""

from __future__ import annotations

from graph.facts import GraphRows
from service.core.graph_view import shape


def test_the_graph_shows_preferences_purchases_people_and_catalog_links(service, api, user):
    for text in (
        "Hi, my name is Sarah and I love modern furniture. My sister Emma lives in Boston.",
        "I bought the Sloane Chaise Sectional last month.",
    ):
        assert api.post("/v1/chat", json={"user_identifier": user, "message": text}).status_code == 200
    service.wait_idle()
    r = api.get(f"/memory/user/{user}/graph")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Sarah"
    nodes = {n["id"]: n for n in body["nodes"]}
    edges = {(e["source"], e["type"], e["target"]) for e in body["edges"]}
    assert nodes["customer"]["name"] == "Sarah"
    assert ("customer", "PREFERS", "Style:modern") in edges
    purchased = [t for s, kind, t in edges if kind == "PURCHASED"]
    assert len(purchased) == 1 and nodes[purchased[0]]["name"] == "Sloane Chaise Sectional"
    assert any(s == purchased[0] and kind == "IN_CATEGORY" for s, kind, _ in edges)  # the catalog link
    people = [n for n in body["nodes"] if n["label"] == "Entity" and n["name"] == "Emma"]
    assert people and ("customer", "MENTIONED", people[0]["id"]) in edges
    # every edge joins two nodes of the answer
    assert all(e["source"] in nodes and e["target"] in nodes for e in body["edges"])


def test_a_superseded_preference_shows_only_with_history(service, api, user):
    for text in ("I love oak.", "Actually I prefer walnut now, not oak."):
        api.post("/v1/chat", json={"user_identifier": user, "message": text})
        service.wait_idle()
    now = api.get(f"/memory/user/{user}/graph").json()
    targets = {e["target"]: e["current"] for e in now["edges"] if e["type"] == "PREFERS"}
    assert targets.get("Material:walnut") is True and "Material:oak" not in targets
    past = api.get(f"/memory/user/{user}/graph", params={"include_history": "true"}).json()
    targets = {e["target"]: e["current"] for e in past["edges"] if e["type"] == "PREFERS"}
    assert targets == {"Material:walnut": True, "Material:oak": False}


def test_an_unknown_customer_is_404_and_bad_limits_are_422(api, user):
    assert api.get(f"/memory/user/{user}/graph").status_code == 404
    r = api.get(f"/memory/user/{user}/graph", params={"limit": 0})
    assert r.status_code == 422 and "limit" in r.json()["detail"]


def test_shape_names_each_node_once_and_drops_dangling_links():
    rows = {
        "name": None,
        "facts": [
            {"type": "PURCHASED", "label": "Product", "key": "P-1", "name": "Arlo Sofa", "current": True},
            {"type": "ASKED_ABOUT", "label": "Product", "key": "P-1", "name": "Arlo Sofa", "current": True},
            {"type": "PREFERS", "label": None, "key": "x", "name": "x"},  # not an allow-listed label
        ],
        "catalog": [
            {"sku": "P-1", "type": "IN_CATEGORY", "label": "Category", "name": "sofa"},
            {"sku": "P-9", "type": "IN_CATEGORY", "label": "Category", "name": "bed"},  # product not shown
        ],
        "entities": [{"key": "person:emma", "name": "Emma", "type": "person", "relation": "sister"}],
        "related": [{"source": "person:emma", "target": "place:boston", "type": "LIVES_IN"}],  # Boston not shown
    }
    out = shape("u1", GraphRows.model_validate(rows)).model_dump()
    assert [n["id"] for n in out["nodes"]] == ["customer", "Product:P-1", "Category:sofa", "Entity:person:emma"]
    assert out["nodes"][0]["name"] == "u1" and out["nodes"][3]["kind"] == "person"
    assert [(e["source"], e["type"], e["target"]) for e in out["edges"]] == [
        ("customer", "PURCHASED", "Product:P-1"),
        ("customer", "ASKED_ABOUT", "Product:P-1"),
        ("Product:P-1", "IN_CATEGORY", "Category:sofa"),
        ("customer", "MENTIONED", "Entity:person:emma"),
    ]
