-- A message's customer is its session's customer, by construction: messages and
-- summaries reference (session, customer) pairs, so no row can attach one customer's
-- text to another customer's session whatever a query does.
ALTER TABLE sessions ADD CONSTRAINT sessions_id_user_key UNIQUE (id, user_identifier);

ALTER TABLE messages DROP CONSTRAINT messages_session_id_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_session_user_fkey
    FOREIGN KEY (session_id, user_identifier) REFERENCES sessions (id, user_identifier) ON DELETE CASCADE;

ALTER TABLE conversation_summaries DROP CONSTRAINT conversation_summaries_session_id_fkey;
ALTER TABLE conversation_summaries ADD CONSTRAINT conversation_summaries_session_user_fkey
    FOREIGN KEY (session_id, user_identifier) REFERENCES sessions (id, user_identifier) ON DELETE CASCADE;
