-- The queue tells a PostgreSQL outage from a worker crash, and its fencing never repeats:
--   claim_token        drawn from a sequence on every claim; every later change of the job
--                      (done, retry, run again, lease renewal) names it, so a holder whose
--                      claim has ended can never touch the job again, not even the same
--                      worker after it gave the job back
--   revivals           how often the slow sweep has put a parked job back (bounded)
--   worker_heartbeats  each worker's last beat, and since when it has beaten without a
--                      break: a lease that runs out counts as a crash only if its holder
--                      stopped beating while another worker kept reaching PostgreSQL
CREATE SEQUENCE jobs_claim_token_seq;
ALTER TABLE jobs ADD COLUMN claim_token bigint;
ALTER TABLE jobs ADD COLUMN revivals integer NOT NULL DEFAULT 0;

CREATE TABLE worker_heartbeats (
    worker_id text PRIMARY KEY,
    up_since  timestamptz NOT NULL DEFAULT now(),
    beat_at   timestamptz NOT NULL DEFAULT now()
);

-- claims walk only the customers with ready work: jobs that crashed a worker are claimed
-- on their own (jobs_crashed_idx), and a job in back-off is skipped on the index entry
-- (run_after is carried in it) instead of counting its customer in the share
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (kind, lane, user_identifier, id) INCLUDE (run_after)
  WHERE status = 'queued' AND crashes = 0;
CREATE INDEX jobs_crashed_idx ON jobs (id) WHERE status = 'queued' AND crashes > 0;
CREATE INDEX jobs_failed_idx ON jobs (updated_at) WHERE status = 'failed';
