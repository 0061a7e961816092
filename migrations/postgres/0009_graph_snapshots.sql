-- What the retriever reads from a customer's graph, kept beside the graph version it was
-- read at, so the context's hot path needs no Neo4j round trip when a process has not
-- cached the customer yet (owned by service/graph_snapshots.py).
--   version   users.graph_version when the snapshot was read: valid only while they are equal
--   facts     graph.reads.customer_facts without the entity embeddings, as JSON
--   entities  those embeddings: float32, one row of 384 per entity in facts' order
-- Written by the worker right after every graph write (inside the same fence), and by an
-- API process that had to read the graph itself. Derived data: erased with the customer.
CREATE TABLE graph_snapshots (
  user_identifier text PRIMARY KEY REFERENCES users (user_identifier) ON DELETE CASCADE,
  version         bigint NOT NULL,
  facts           jsonb NOT NULL,
  entities        bytea NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
