"""A customer's graph neighbourhood shaped as nodes and edges (the chat page draws it).

Pure: it takes the rows of :func:`graph.reads.customer_graph` and names every node by a
stable id (``customer``, ``<Label>:<key>``), so the same product or style is one node
however many relationships reach it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.facts import CatalogLink, EntityLink, GraphRows, ViewEntity, ViewFact
from loft_memory.models import CustomerGraph, GraphEdge, GraphNode

if TYPE_CHECKING:
    from service.facts import Known

CUSTOMER_ID = "customer"


def at_version(rows: GraphRows, known: Known) -> GraphRows:
    """The graph read's rows cut to what the customer's versioned facts name
    (:mod:`service.facts`): the name they hold, the facts among theirs (a closed preference,
    asked for with ``include_history``, is history and stays), the entities among theirs.
    Neo4j can hold a turn's facts a moment before the version names them; the view shows
    them when every other door does."""
    return rows.model_copy(
        update={
            "name": known.name,
            "facts": [f for f in rows.facts if not f.current or known.knows_fact(f.type, f.key)],
            "entities": [e for e in rows.entities if known.knows_entity(e.key)],
        }
    )


def node_id(label: str, key: object) -> str:
    return f"{label}:{key}"


class _Drawing:
    """The nodes (one per id, first name wins) and edges drawn so far."""

    def __init__(self, customer: str) -> None:
        self.nodes: dict[str, GraphNode] = {
            CUSTOMER_ID: GraphNode(id=CUSTOMER_ID, label="Customer", name=customer, kind="customer")
        }
        self.edges: list[GraphEdge] = []

    def node(self, label: str, key: object, name: object, kind: str | None = None) -> str:
        nid = node_id(label, key)
        if nid not in self.nodes:
            self.nodes[nid] = GraphNode.model_validate(
                {"id": nid, "label": label, "name": str(name or key), "kind": kind or label.lower()}
            )
        return nid

    def facts(self, facts: list[ViewFact]) -> None:
        for fact in facts:
            if not fact.label or fact.key is None:
                continue  # a node outside the allow-listed labels is not drawn
            target = self.node(fact.label, fact.key, fact.name)
            self.edges.append(
                GraphEdge(
                    source=CUSTOMER_ID,
                    target=target,
                    type=fact.type,
                    attribute=fact.attribute,
                    current=fact.current,
                    at=fact.at,
                )
            )

    def catalog(self, links: list[CatalogLink]) -> None:
        for link in links:
            product = node_id("Product", link.sku)
            if product not in self.nodes or not link.label or not link.name:
                continue
            target = self.node(link.label, link.name, link.name)
            self.edges.append(GraphEdge(source=product, target=target, type=link.type, current=True))

    def entities(self, entities: list[ViewEntity]) -> None:
        for entity in entities:
            target = self.node("Entity", entity.key, entity.name, entity.type or "entity")
            self.edges.append(
                GraphEdge(
                    source=CUSTOMER_ID,
                    target=target,
                    type="MENTIONED",
                    attribute=entity.relation,
                    current=True,
                    at=entity.at,
                )
            )

    def related(self, links: list[EntityLink]) -> None:
        for rel in links:
            source, target = node_id("Entity", rel.source), node_id("Entity", rel.target)
            if source in self.nodes and target in self.nodes:
                self.edges.append(
                    GraphEdge(source=source, target=target, type=rel.type or "RELATED_TO", current=rel.current)
                )


def shape(user: str, rows: GraphRows) -> CustomerGraph:
    """The graph read's rows as nodes and edges."""
    drawing = _Drawing(rows.name or user)
    drawing.facts(rows.facts)
    drawing.catalog(rows.catalog)
    drawing.entities(rows.entities)
    drawing.related(rows.related)
    return CustomerGraph(user_identifier=user, name=rows.name, nodes=list(drawing.nodes.values()), edges=drawing.edges)
