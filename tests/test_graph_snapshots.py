"""Graph snapshots: the retriever's graph facts kept in PostgreSQL at the graph version they
were read at, so a context needs no Neo4j read when its process has no copy of the customer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np

from graph.cache import CustomerGraph
from graph.facts import FactsRead
from service.postgres import graph_snapshots


def _version(stack, user: str) -> int:
    return stack.sql("SELECT graph_version FROM users WHERE user_identifier = $1", user)[0]["graph_version"]


def _snapshot(stack, user: str):
    rows = stack.sql(
        "SELECT version, facts::text AS facts, entities FROM graph_snapshots WHERE user_identifier = $1", user
    )
    return rows[0] if rows else None


def _profile_name(api, user: str) -> str:
    ctx = api.get(f"/memory/context/{user}", params={"query": "who am I?", "explain": True}).json()
    names = [i["text"] for i in ctx["items"] if i["kind"] == "profile"]
    assert names, ctx["items"]
    return names[0]


def _bump(stack, user: str) -> int:
    """A graph version no process has cached (as after a write by another process)."""
    return stack.sql(
        "UPDATE users SET graph_version = nextval('graph_version_seq') WHERE user_identifier = $1 RETURNING graph_version",
        user,
    )[0]["graph_version"]


def test_the_worker_writes_the_snapshot_at_the_version_it_moves_to(service, api, user, stack):
    api.post(
        "/v1/chat",
        json={"user_identifier": user, "message": "My name is Odile. I love coastal furniture and my dog Biscuit."},
    )
    service.wait_idle()
    snap = _snapshot(stack, user)
    assert snap is not None and snap["version"] == _version(stack, user) > 0
    decoded = graph_snapshots.decode(snap["version"], snap["facts"], snap["entities"])
    facts = decoded.customer
    assert facts is not None and facts.name == "Odile"
    assert any(str(p.value).lower() == "coastal" for p in facts.preferences), facts
    assert isinstance(facts.first_seen, datetime) and facts.first_seen.tzinfo is not None
    # one normalised embedding per entity, in the facts' order, equal to the graph's
    names = [e.name for e in decoded.entities]
    assert "Biscuit" in names, names
    assert decoded.matrix.shape == (len(names), 384)
    stored = stack.cypher("MATCH (e:Entity {user_id: $user, name: 'Biscuit'}) RETURN e.embedding AS v", user=user)[0][
        "v"
    ]
    row = decoded.matrix[names.index("Biscuit")]
    assert float(row @ (np.asarray(stored) / np.linalg.norm(stored))) > 0.9999


def test_a_cold_process_reads_the_snapshot_and_not_the_graph(service, api, user, stack):
    """The graph is changed behind the service's back (no version moves): a context built
    from the snapshot still says what the snapshot says, so Neo4j was not read."""
    api.post("/v1/chat", json={"user_identifier": user, "message": "My name is Odile."})
    service.wait_idle()
    assert "Odile" in _profile_name(api, user)  # cached in the API process at this version
    stack.cypher("MATCH (c:Customer {user_id: $user}) SET c.name = 'Graphonly'", user=user)
    version = _bump(stack, user)  # the process's copy is now old; the snapshot is moved along
    stack.sql("UPDATE graph_snapshots SET version = $2 WHERE user_identifier = $1", user, version)
    assert "Odile" in _profile_name(api, user)


def test_without_a_snapshot_at_the_version_the_graph_is_read_and_written_back(service, api, user, stack):
    api.post("/v1/chat", json={"user_identifier": user, "message": "My name is Odile."})
    service.wait_idle()
    stack.cypher("MATCH (c:Customer {user_id: $user}) SET c.name = 'Graphonly'", user=user)
    version = _bump(stack, user)  # the snapshot stays at the old version: it must not be used
    assert "Graphonly" in _profile_name(api, user)
    deadline = time.monotonic() + 10
    while (snap := _snapshot(stack, user))["version"] != version and time.monotonic() < deadline:
        time.sleep(0.1)  # written back off the request's path
    assert snap["version"] == version and "Graphonly" in snap["facts"]


def test_snapshots_are_erased_with_the_customer(service, api, user, stack):
    api.post("/v1/chat", json={"user_identifier": user, "message": "My name is Odile. I love coastal furniture."})
    service.wait_idle()
    assert _snapshot(stack, user) is not None
    r = api.delete(f"/memory/user/{user}")
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["postgres"]["graph_snapshots"] == 1, r.json()
    assert _snapshot(stack, user) is None


def test_encoding_keeps_timestamps_entities_and_an_empty_graph():
    at = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    facts = {
        "name": "Odile",
        "first_seen": at,
        "last_seen": at,
        "preferences": [
            {"rel": "PREFERS", "attribute": "style", "value": "coastal", "valid_from": at, "valid_to": None}
        ],
        "purchases": [],
        "interests": [],
        "entities": [
            {
                "key": "pet:biscuit",
                "name": "Biscuit",
                "event_at": None,
                "last_seen": at,
                "embedding": [1.0] + [0.0] * 383,
            },
            {
                "key": "person:emma",
                "name": "Emma",
                "event_at": at,
                "last_seen": at,
                "embedding": [0.0, 2.0] + [0.0] * 382,
            },
        ],
    }
    graph = CustomerGraph.build(7, FactsRead.parse(facts))
    back = graph_snapshots.decode(7, *graph_snapshots.encode(graph))
    assert back.version == 7 and back.customer is not None and back.customer == graph.customer
    assert back.customer.first_seen == at and back.customer.preferences[0].valid_from == at
    assert back.customer.preferences[0].valid_to is None
    assert [e.name for e in back.entities] == ["Biscuit", "Emma"] and back.entities[1].event_at == at
    assert np.allclose(back.matrix, graph.matrix) and np.isclose(back.matrix[1, 1], 1.0)  # normalised
    query = np.zeros(384, dtype=np.float32)
    query[1] = 1.0
    assert back.nearest(query, 1) == graph.nearest(query, 1)
    assert [(e.name, round(score, 4)) for e, score in back.nearest(query, 2)] == [("Emma", 1.0), ("Biscuit", 0.0)]
    empty = graph_snapshots.decode(3, *graph_snapshots.encode(CustomerGraph.build(3, None)))
    assert empty.customer is None and empty.nearest(query, 5) == []


def _graph(version: int, entities: int) -> CustomerGraph:
    facts = {
        "name": "Ada",
        "preferences": [{"rel": "PREFERS", "attribute": "material", "value": "walnut", "source_message_ids": [1, 2]}],
        "entities": [
            {"key": f"thing:{i}", "name": f"thing {i}", "type": "thing", "embedding": [0.1] * 384}
            for i in range(entities)
        ],
    }
    return CustomerGraph.build(version, FactsRead.parse(facts))


def test_the_graph_cache_is_bounded_by_bytes_not_by_customers():
    """An entry holds its entities' embeddings (1.5 KB each): a bound on customers alone
    allowed ~10 GB. Bounded by bytes, big entries push out the least recently used ones and
    one that alone exceeds the bound is served but not kept."""
    from graph.cache import GraphCache, approximate_bytes

    big = _graph(1, 500)
    assert 500 * 384 * 4 <= approximate_bytes(big) < 2 * 500 * 384 * 4 + 500_000  # the matrix, plus the facts
    cache = GraphCache(max_bytes=3 * approximate_bytes(big))
    for i in range(10):
        cache.put_entry(f"c{i}", _graph(1, 500))
        cache.get("c0", 1)  # c0 stays the most recently used
    assert len(cache) == 3 and cache.bytes <= 3 * approximate_bytes(big)
    assert cache.get("c0", 1) is not None and cache.get("c9", 1) is not None and cache.get("c1", 1) is None
    # small customers: many more of them fit in the same bytes
    for i in range(100):
        cache.put_entry(f"s{i}", _graph(1, 2))
    assert len(cache) > 50 and cache.bytes <= 3 * approximate_bytes(big)
    huge = GraphCache(max_bytes=approximate_bytes(big) // 2)
    assert huge.put_entry("h", big) is big and huge.get("h", 1) is None and huge.bytes == 0


def test_the_graph_cache_refuses_an_erased_customers_copy_read_before_the_erasure():
    """``forget`` with the erasure's floor: a copy read before (a lower version) is not kept,
    a customer created again (a higher version) is."""
    from graph.cache import GraphCache

    cache = GraphCache()
    cache.put_entry("eve", _graph(41, 3))
    assert cache.forget("eve", floor=50) == 1
    cache.put_entry("eve", _graph(41, 3))  # a request in flight, storing what it read before
    assert cache.latest("eve") is None and cache.bytes == 0
    cache.put_entry("eve", _graph(51, 1))  # the identifier, a new customer
    assert cache.get("eve", 51) is not None
