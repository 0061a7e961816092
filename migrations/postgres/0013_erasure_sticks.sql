-- An erasure that sticks: tombstones against replays, erasure jobs that are never parked,
-- and the indexes behind the checks that run on every customer read and write.

-- What an erased customer's clients could send again (chat idempotency keys and turn ids,
-- imports' external ids, order ids, session ids), each as a keyed hash of (kind, customer,
-- client id) truncated to 16 bytes, one row per erasure. The key (LOFT_ERASURE_KEY, or the
-- one generated under the data dir) is never in the database: without it the table names
-- nobody and no id. Rows go when they expire (LOFT_TOMBSTONE_DAYS); they are not the
-- customer's data and outlive the customer on purpose (service/tombstones.py).
CREATE TABLE erasure_tombstones (
    receipt_id    uuid PRIMARY KEY,
    -- the receipt's HMAC of the identifier: the customer's tombstones are found by it
    subject_hash  text NOT NULL,
    client_ids    uuid[] NOT NULL,
    erased_at     timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX erasure_tombstones_subject_idx ON erasure_tombstones (subject_hash, expires_at);
CREATE INDEX erasure_tombstones_expiry_idx ON erasure_tombstones (expires_at);
-- random hashes do not compress: store them out of line without trying
ALTER TABLE erasure_tombstones ALTER COLUMN client_ids SET STORAGE EXTERNAL;

-- "is this customer being erased?" runs on every read of a customer: one probe, however
-- many other jobs the customer has queued
CREATE INDEX jobs_erasure_idx ON jobs (user_identifier) WHERE kind = 'erase_user';

-- memories deleted on request: their markers keep a retried job from writing them again
CREATE INDEX memory_events_deleted_idx ON memory_events (user_identifier) WHERE event = 'delete';

-- an erasure job is retried until it succeeds (or a later erasure of the same customer
-- does): never parked. Jobs parked before this migration go back to the queue.
UPDATE jobs SET status = 'queued', attempts = 0, crashes = 0, run_after = now(), locked_by = NULL,
                locked_until = NULL, updated_at = now()
WHERE kind = 'erase_user' AND status = 'failed';
UPDATE jobs SET max_attempts = 2147483647 WHERE kind = 'erase_user';
