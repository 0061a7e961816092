-- Accountability: who read, exported, erased, changed the consent of or deleted a memory
-- of which customer, and when. The customer is named only by the erasure receipts' HMAC
-- of the identifier (the key is never in the database), so the trail outlives the
-- customer's erasure and names nobody without the key.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    action        text NOT NULL CHECK (action IN ('context', 'export', 'erase', 'consent', 'delete_memory')),
    key_name      text NOT NULL,
    key_role      text NOT NULL,
    subject_hash  text NOT NULL,
    request_id    text,
    detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_recent_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_subject_idx ON audit_events (subject_hash, at DESC, id DESC);

-- append-only: an entry is never changed or removed through the service's role
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Consent: how much of a customer's conversation is remembered (no row: 'full').
--   full     every turn is kept and mined into the graph, the memories and the summaries
--   session  turns are kept for the session's context only (nothing is extracted), and
--            removed once the session goes idle
--   off      turns are answered and not stored beyond the reply
-- Keyed by the same HMAC as receipts: the choice outlives an erasure (a customer who asked
-- not to be remembered is not remembered afterwards either) and names nobody without the key.
CREATE TABLE memory_consents (
    subject_hash  text PRIMARY KEY,
    mode          text NOT NULL CHECK (mode IN ('full', 'session', 'off')),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- a session held under 'session' mode: removed once idle, whatever the mode is later
ALTER TABLE sessions ADD COLUMN ephemeral boolean NOT NULL DEFAULT false;
CREATE INDEX sessions_ephemeral_idx ON sessions (last_message_at) WHERE ephemeral;
