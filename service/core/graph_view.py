"""A customer's graph neighbourhood shaped as nodes and edges (the chat page draws it).

Pure: it takes the rows of :func:`graph.reads.customer_graph` and names every node by a
stable id (``customer``, ``<Label>:<key>``), so the same product or style is one node
however many relationships reach it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.facts import Known

CUSTOMER_ID = "customer"


def at_version(rows: dict[str, Any], known: Known) -> dict[str, Any]:
    """The graph read's rows cut to what the customer's versioned facts name
    (:mod:`service.facts`): the name they hold, the facts among theirs (a closed preference,
    asked for with ``include_history``, is history and stays), the entities among theirs.
    Neo4j can hold a turn's facts a moment before the version names them; the view shows
    them when every other door does."""
    return rows | {
        "name": known.name,
        "facts": [
            f
            for f in rows.get("facts") or []
            if not f.get("current", True) or known.knows_fact(f["type"], f.get("key"))
        ],
        "entities": [e for e in rows.get("entities") or [] if known.knows_entity(e.get("key"))],
    }


def node_id(label: str, key: object) -> str:
    return f"{label}:{key}"


def shape(user: str, rows: dict[str, Any]) -> dict[str, Any]:
    """``{user_identifier, name, nodes, edges}`` from the graph read's rows."""
    nodes: dict[str, dict[str, Any]] = {
        CUSTOMER_ID: {"id": CUSTOMER_ID, "label": "Customer", "name": rows.get("name") or user, "kind": "customer"}
    }
    edges: list[dict[str, Any]] = []

    def add_node(label: str, key: object, name: object, kind: str | None = None) -> str:
        nid = node_id(label, key)
        nodes.setdefault(nid, {"id": nid, "label": label, "name": str(name or key), "kind": kind or label.lower()})
        return nid

    for fact in rows.get("facts") or []:
        if not fact.get("label") or fact.get("key") is None:
            continue  # a node outside the allow-listed labels is not drawn
        target = add_node(fact["label"], fact["key"], fact.get("name"))
        edges.append(
            {
                "source": CUSTOMER_ID,
                "target": target,
                "type": fact["type"],
                "attribute": fact.get("attribute"),
                "current": bool(fact.get("current", True)),
                "at": fact.get("at"),
            }
        )
    for link in rows.get("catalog") or []:
        product = node_id("Product", link["sku"])
        if product not in nodes or not link.get("label") or not link.get("name"):
            continue
        target = add_node(link["label"], link["name"], link["name"])
        edges.append({"source": product, "target": target, "type": link["type"], "current": True})
    for entity in rows.get("entities") or []:
        target = add_node("Entity", entity["key"], entity.get("name"), entity.get("type") or "entity")
        edges.append(
            {
                "source": CUSTOMER_ID,
                "target": target,
                "type": "MENTIONED",
                "attribute": entity.get("relation"),
                "current": True,
                "at": entity.get("at"),
            }
        )
    for rel in rows.get("related") or []:
        source, target = node_id("Entity", rel["source"]), node_id("Entity", rel["target"])
        if source in nodes and target in nodes:
            edges.append(
                {
                    "source": source,
                    "target": target,
                    "type": rel.get("type") or "RELATED_TO",
                    "current": bool(rel.get("current", True)),
                }
            )
    return {
        "user_identifier": user,
        "name": rows.get("name"),
        "nodes": list(nodes.values()),
        "edges": edges,
    }
