"""Erasure benchmark: forget one large customer among many, with a naive delete beside it.

    python -m bench.erasure --json [--others 1000 --messages 10000 --memories 2000 --nodes 500 --repeat 3]

The population: ``--others`` customers with a modest history each (sessions, messages,
memories, memory events, user terms, a graph of entities), and ``--repeat`` pairs of
large customers ("victims") of the same shape: ``--messages`` messages in sessions of 20,
``--memories`` long-term memories (one in ten superseded by the next, with their events),
a summary per session, and ``--nodes`` graph entities linked to the Customer and to each
other, plus preferences and purchases against the catalog. Rows go in with COPY (random
unit vectors: erasure does not care what they mean), the graph with batched UNWIND.

For each pair, one victim is erased with the service's own ``erase`` (PostgreSQL in one
transaction, Neo4j in batches, both re-checked, receipt written) and the other with a
naive baseline in the same run: ``DELETE FROM users`` (the cascade) and ``DETACH DELETE``
of the customer's nodes, with no verification and no receipt. Reported: wall time
(median over the pairs, and the ratio to the baseline), rows and nodes left for each
victim, and the other customers' row and node counts before and after (must be equal).
Progress on stderr, one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from bench.common import bench_stack, log
from vectors.embedder import DIM

COUNT_ROWS = """
SELECT (SELECT count(*) FROM users WHERE NOT user_identifier = ANY($1)) AS users,
       (SELECT count(*) FROM sessions WHERE NOT user_identifier = ANY($1)) AS sessions,
       (SELECT count(*) FROM messages WHERE NOT user_identifier = ANY($1)) AS messages,
       (SELECT count(*) FROM long_term_memories WHERE NOT user_identifier = ANY($1)) AS memories,
       (SELECT count(*) FROM memory_events WHERE NOT user_identifier = ANY($1)) AS memory_events,
       (SELECT count(*) FROM conversation_summaries WHERE NOT user_identifier = ANY($1)) AS summaries,
       (SELECT count(*) FROM user_terms WHERE NOT user_identifier = ANY($1)) AS user_terms
"""
COUNT_NODES = """
MATCH (n) WHERE (n:Customer OR n:Entity) AND NOT n.user_id IN $victims
RETURN count(n) AS nodes
"""
LEFT_ROWS = """
SELECT (SELECT count(*) FROM users WHERE user_identifier = $1) + (SELECT count(*) FROM sessions WHERE user_identifier = $1)
     + (SELECT count(*) FROM messages WHERE user_identifier = $1)
     + (SELECT count(*) FROM long_term_memories WHERE user_identifier = $1)
     + (SELECT count(*) FROM memory_events WHERE user_identifier = $1)
     + (SELECT count(*) FROM conversation_summaries WHERE user_identifier = $1)
     + (SELECT count(*) FROM user_terms WHERE user_identifier = $1)
     + (SELECT count(*) FROM jobs WHERE user_identifier = $1 AND kind <> 'erase_user')
"""
LEFT_NODES = """
CALL () { MATCH (c:Customer {user_id: $u}) RETURN count(c) AS a }
CALL () { MATCH (e:Entity {user_id: $u}) RETURN count(e) AS b }
RETURN a + b AS nodes
"""
COUNT_TERMS = """
INSERT INTO user_terms (user_identifier, lexeme, ndoc)
SELECT m.user_identifier, t.lexeme, count(*)
FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
WHERE m.user_identifier = ANY($1::text[])
GROUP BY 1, 2
ON CONFLICT (user_identifier, lexeme) DO UPDATE SET ndoc = user_terms.ndoc + excluded.ndoc
"""
GRAPH = """
UNWIND $rows AS row
MERGE (c:Customer {user_id: row.user_id}) SET c.name = row.name, c.first_seen = datetime()
WITH c, row
CALL (c, row) {
  UNWIND row.entities AS e
  CREATE (n:Entity {user_id: row.user_id, key: e.key, name: e.name, type: e.type, summary: e.summary,
                    first_seen: datetime(), last_seen: datetime()})
  CREATE (c)-[:MENTIONED {mentions: 1, relation: e.type, first_seen: datetime(), last_seen: datetime(),
                          source_message_ids: e.sources}]->(n)
}
CALL (c, row) {
  UNWIND row.links AS l
  MATCH (a:Entity {user_id: row.user_id, key: l[0]}), (b:Entity {user_id: row.user_id, key: l[1]})
  CREATE (a)-[:RELATED_TO {type: 'RELATED_TO', strength: 0.5, source_message_ids: []}]->(b)
}
CALL (c, row) {
  UNWIND row.skus AS sku
  MATCH (p:Product {sku: sku})
  CREATE (c)-[:PURCHASED {at: datetime(), qty: 1, price: p.price, source_message_ids: []}]->(p)
}
CALL (c, row) {
  UNWIND row.styles AS s
  MATCH (t:Style {name: s})
  CREATE (c)-[:PREFERS {attribute: 'style', strength: 0.7, confidence: 0.8, mentions: 1, valid_from: datetime(),
                        first_seen: datetime(), last_seen: datetime(), source_message_ids: []}]->(t)
}
"""
NAIVE_NEO4J = [
    "MATCH (e:Entity {user_id: $u}) DETACH DELETE e",
    "MATCH (c:Customer {user_id: $u}) DETACH DELETE c",
]


class Builder:
    def __init__(self, rt, seed: int) -> None:
        self.rt = rt
        self.rng = np.random.default_rng(seed)
        self.now = datetime.now(UTC)
        self.skus = [p.sku for p in rt.catalog.products]
        self.styles = rt.catalog.styles

    def _vectors(self, n: int) -> np.ndarray:
        v = self.rng.normal(size=(n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    async def customers(self, users: list[str], *, messages: int, memories: int, nodes: int) -> None:
        """Load customers of one shape, in chunks that keep memory small."""
        for start in range(0, len(users), 50):
            await self._chunk(users[start : start + 50], messages, memories, nodes)

    async def _chunk(self, chunk: list[str], n_messages: int, n_memories: int, n_nodes: int) -> None:
        users, sessions, msgs, mems, events, summaries, graph = [], [], [], [], [], [], []
        msg_vecs = self._vectors(len(chunk) * n_messages)
        mem_vecs = self._vectors(len(chunk) * n_memories)
        n_sessions = max(1, n_messages // 20)
        sum_vecs = self._vectors(len(chunk) * n_sessions)
        for u, user in enumerate(chunk):
            users.append((user, f"Name {user}", self.now - timedelta(days=300)))
            for s in range(n_sessions):
                sid = uuid.uuid4()
                at = self.now - timedelta(days=n_sessions - s)
                sessions.append((sid, user, "chat", at, at + timedelta(minutes=20), "{}"))
                for k in range(20 if s < n_sessions - 1 else n_messages - 20 * s):
                    i = u * n_messages + s * 20 + k
                    msgs.append(
                        (
                            sid,
                            user,
                            "user" if k % 2 == 0 else "assistant",
                            None,
                            f"{user} says message {s}-{k} about oak sofas and the guest room",
                            None,
                            at + timedelta(minutes=k),
                            msg_vecs[i],
                            "{}",
                        )
                    )
                summaries.append(
                    (
                        uuid.uuid4(),
                        sid,
                        user,
                        f"Session {s} of {user}",
                        [],
                        sum_vecs[u * n_sessions + s],
                        20,
                        at,
                        at + timedelta(minutes=20),
                        [],
                        "extractive",
                    )
                )
            ids = [uuid.uuid4() for _ in range(n_memories)]
            for j, mid in enumerate(ids):
                superseded = ids[j + 1] if j % 10 == 0 and j + 1 < n_memories else None
                at = self.now - timedelta(days=j % 300)
                mems.append(
                    (
                        mid,
                        user,
                        "fact",
                        f"{user} memory {j}: prefers walnut",
                        None,
                        mem_vecs[u * n_memories + j],
                        0.5,
                        at,
                        at,
                        at,
                        [],
                        f"{user}:{j}",
                        "{}",
                        at if superseded else None,
                        superseded,
                    )
                )
                events.append((mid, user, "add", None, f"{user} memory {j}", "{}"))
            entities = [
                {
                    "key": f"thing:{user}:{e}",
                    "name": f"{user} thing {e}",
                    "type": "thing",
                    "summary": f"something {user} mentioned",
                    "sources": [e],
                }
                for e in range(n_nodes)
            ]
            links = [[entities[e]["key"], entities[e + 1]["key"]] for e in range(0, n_nodes - 1, 2)]
            graph.append(
                {
                    "user_id": user,
                    "name": f"Name {user}",
                    "entities": entities,
                    "links": links,
                    "skus": [str(x) for x in self.rng.choice(self.skus, 3, replace=False)],
                    "styles": [str(x) for x in self.rng.choice(self.styles, 2, replace=False)],
                }
            )
        async with self.rt.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "users", records=users, columns=["user_identifier", "display_name", "created_at"]
            )
            await conn.copy_records_to_table(
                "sessions",
                records=sessions,
                columns=["id", "user_identifier", "channel", "started_at", "last_message_at", "metadata"],
            )
            await conn.copy_records_to_table(
                "messages",
                records=msgs,
                columns=[
                    "session_id",
                    "user_identifier",
                    "role",
                    "speaker",
                    "content",
                    "external_id",
                    "created_at",
                    "embedding",
                    "metadata",
                ],
            )
            # superseded_by points at a later row of the same batch: load them, then link
            await conn.copy_records_to_table(
                "long_term_memories",
                records=[m[:13] for m in mems],
                columns=[
                    "id",
                    "user_identifier",
                    "kind",
                    "content",
                    "subject",
                    "embedding",
                    "importance",
                    "created_at",
                    "updated_at",
                    "valid_from",
                    "source_message_ids",
                    "content_hash",
                    "metadata",
                ],
            )
            await conn.executemany(
                "UPDATE long_term_memories SET valid_to = $1, superseded_by = $2 WHERE id = $3",
                [(m[13], m[14], m[0]) for m in mems if m[14] is not None],
            )
            await conn.copy_records_to_table(
                "memory_events",
                records=events,
                columns=["memory_id", "user_identifier", "event", "old_content", "new_content", "detail"],
            )
            await conn.copy_records_to_table(
                "conversation_summaries",
                records=summaries,
                columns=[
                    "id",
                    "session_id",
                    "user_identifier",
                    "summary",
                    "key_entities",
                    "embedding",
                    "message_count",
                    "first_message_at",
                    "last_message_at",
                    "source_message_ids",
                    "method",
                ],
            )
            await conn.execute(COUNT_TERMS, chunk)
        for row in graph:  # one customer per transaction: the large ones have hundreds of nodes
            await self.rt.graph.execute_query(GRAPH, rows=[row], database_=self.rt.settings.neo4j_database)


async def naive_erase(rt, user: str) -> None:
    await rt.pool.execute("DELETE FROM users WHERE user_identifier = $1", user)
    for query in NAIVE_NEO4J:
        await rt.graph.execute_query(query, u=user, database_=rt.settings.neo4j_database)


async def left(rt, user: str) -> dict[str, int]:
    rows = await rt.pool.fetchval(LEFT_ROWS, user)
    records, _, _ = await rt.graph.execute_query(LEFT_NODES, u=user, database_=rt.settings.neo4j_database)
    return {"rows": int(rows), "nodes": int(records[0]["nodes"])}


async def others(rt, victims: list[str]) -> dict[str, int]:
    rows = dict(await rt.pool.fetchrow(COUNT_ROWS, victims))
    records, _, _ = await rt.graph.execute_query(COUNT_NODES, victims=victims, database_=rt.settings.neo4j_database)
    return rows | {"graph_nodes": records[0]["nodes"]}


async def run(args) -> dict:
    from service.core import erasure
    from service.runtime import Runtime

    async with bench_stack(heap="1g") as settings:
        rt = await Runtime.open(settings, pool_size=4)
        try:
            builder = Builder(rt, args.seed)
            t0 = time.perf_counter()
            other_users = [f"other-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.others)]
            await builder.customers(
                other_users, messages=args.other_messages, memories=args.other_memories, nodes=args.other_nodes
            )
            pairs = [
                (f"victim-{i}-{uuid.uuid4().hex[:6]}", f"naive-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.repeat)
            ]
            for pair in pairs:
                await builder.customers(list(pair), messages=args.messages, memories=args.memories, nodes=args.nodes)
                log(f"loaded a pair of large customers ({time.perf_counter() - t0:.0f} s)")
            async with rt.pool.acquire() as conn:
                await conn.execute("ANALYZE")
            victims = [u for pair in pairs for u in pair]
            before = await others(rt, victims)
            log(f"population ready in {time.perf_counter() - t0:.0f} s: {before}")

            runs = []
            for victim, naive in pairs:
                size = await rt.pool.fetchval("SELECT count(*) FROM messages WHERE user_identifier = $1", victim)
                started = time.perf_counter()
                receipt = await erasure.erase(rt, victim)
                took = time.perf_counter() - started
                started = time.perf_counter()
                await naive_erase(rt, naive)
                naive_took = time.perf_counter() - started
                runs.append(
                    {
                        "messages": size,
                        "erase_s": round(took, 3),
                        "naive_s": round(naive_took, 3),
                        "status": receipt.status,
                        "counts": receipt.counts,
                        "left": await left(rt, victim),
                        "naive_left": await left(rt, naive),
                    }
                )
                log(f"erase {took:.3f} s ({receipt.status}), naive {naive_took:.3f} s; left {runs[-1]['left']}")
            after = await others(rt, victims)
        finally:
            await rt.close()

    erase_s = statistics.median(r["erase_s"] for r in runs)
    naive_s = statistics.median(r["naive_s"] for r in runs)
    return {
        "benchmark": "erasure",
        "population": {
            "others": args.others,
            "per_other": {"messages": args.other_messages, "memories": args.other_memories, "nodes": args.other_nodes},
            "victim": {"messages": args.messages, "memories": args.memories, "nodes": args.nodes},
        },
        "erase_s_median": erase_s,
        "naive_s_median": naive_s,
        "ratio_to_naive": round(erase_s / naive_s, 2) if naive_s else None,
        "goal_s": 2.0,
        "left_after_erase": [r["left"] for r in runs],
        "others_unchanged": before == after,
        "others_before": before,
        "others_after": after,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--others", type=int, default=1000)
    parser.add_argument("--other-messages", type=int, default=100)
    parser.add_argument("--other-memories", type=int, default=20)
    parser.add_argument("--other-nodes", type=int, default=10)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--memories", type=int, default=2_000)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as JSON (always on stdout)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    log(
        f"erase median {result['erase_s_median']} s (goal < 2 s), naive {result['naive_s_median']} s, "
        f"ratio {result['ratio_to_naive']}; others unchanged: {result['others_unchanged']}"
    )
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
