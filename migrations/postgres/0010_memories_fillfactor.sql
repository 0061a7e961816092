-- Serving a memory updates its access_count and last_accessed_at (batched, once a second
-- per API process). With full pages every such update is a new row version elsewhere,
-- and a new entry in each of the table's indexes, HNSW and GIN included; room left on
-- each page lets PostgreSQL update in place (HOT) instead: none of those columns is
-- indexed. Applies to pages written from now on (a VACUUM FULL or pg_repack rewrites old ones).
ALTER TABLE long_term_memories SET (fillfactor = 85);
