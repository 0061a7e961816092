-- The queue, fair and exactly-once in effect:
--   lane     live chat turns ahead of bulk imports (which still get a share of every batch)
--   crashes  how often a worker died holding the job (lease expired): such a job runs alone
--            next time, and is parked after the second time instead of dragging its batch
--   rearmed  a debounced job (a session summary) asked for again while it was running: it
--            runs once more instead of being deleted when the current run finishes
ALTER TABLE jobs ADD COLUMN lane text NOT NULL DEFAULT 'live' CHECK (lane IN ('live', 'bulk'));
ALTER TABLE jobs ADD COLUMN crashes integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN rearmed boolean NOT NULL DEFAULT false;

-- claims walk the customers that have ready work (a skip scan) and take a few jobs each
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (kind, lane, user_identifier, id) WHERE status = 'queued';
CREATE INDEX jobs_running_idx ON jobs (locked_until) WHERE status = 'running';
