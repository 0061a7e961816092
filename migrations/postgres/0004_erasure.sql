-- Erasure: receipts that prove a customer was forgotten, the indexes that make the
-- cascade fast, and graph versions that never repeat.

-- A receipt names the customer only by an HMAC of the identifier (the key lives under the
-- data dir or in LOFT_ERASURE_KEY, never in the database), so the table proves that an
-- erasure happened without keeping whom it was about.
CREATE TABLE erasure_receipts (
    receipt_id    uuid PRIMARY KEY,
    subject_hash  text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'complete')),
    -- rows and nodes deleted per store, caches purged
    counts        jsonb NOT NULL DEFAULT '{}',
    -- what the re-check of both stores found after deleting (all zeros when complete)
    verification  jsonb NOT NULL DEFAULT '{}',
    requested_at  timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    error         text
);
CREATE INDEX erasure_receipts_subject_idx ON erasure_receipts (subject_hash, requested_at DESC);
CREATE INDEX erasure_receipts_recent_idx ON erasure_receipts (requested_at DESC);

-- every foreign key an erasure cascades through has an index (without these, each deleted
-- memory costs a sequential scan of memory_events / long_term_memories)
CREATE INDEX ltm_superseded_by_idx ON long_term_memories (superseded_by) WHERE superseded_by IS NOT NULL;
CREATE INDEX memory_events_user_idx ON memory_events (user_identifier);

-- the Neo4j part of an erasure, finished by a worker when Neo4j was down
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('ingest_message', 'summarize_session', 'erase_user'));

-- Graph versions come from one sequence, so a customer erased and created again never
-- gets a version an API process may still hold a cached copy for.
CREATE SEQUENCE graph_version_seq;
SELECT setval('graph_version_seq', greatest((SELECT max(graph_version) FROM users), 0) + 1);
ALTER TABLE users ALTER COLUMN graph_version SET DEFAULT nextval('graph_version_seq');
UPDATE users SET graph_version = nextval('graph_version_seq');
