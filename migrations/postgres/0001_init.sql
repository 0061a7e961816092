-- Short-term history, long-term memories, summaries, audit history, the job queue.
-- Every per-user row references users(user_identifier) ON DELETE CASCADE, so erasing a
-- customer from PostgreSQL is one DELETE in one transaction.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    user_identifier text PRIMARY KEY,
    display_name    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- short-term tier ------------------------------------------------------------------------

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_identifier text NOT NULL REFERENCES users ON DELETE CASCADE,
    channel         text NOT NULL DEFAULT 'chat',
    started_at      timestamptz NOT NULL,
    last_message_at timestamptz NOT NULL,
    summarized_at   timestamptz,
    metadata        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_user_recent_idx ON sessions (user_identifier, last_message_at DESC, id);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
    user_identifier text NOT NULL REFERENCES users ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    speaker         text,
    content         text NOT NULL,
    -- a client's own id for the message (imports are idempotent on it)
    external_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    embedding       vector(384),
    metadata        jsonb NOT NULL DEFAULT '{}',
    tsv             tsvector GENERATED ALWAYS AS (
                        to_tsvector('english', coalesce(speaker, '') || ' ' || content)) STORED,
    UNIQUE (user_identifier, external_id)
);
CREATE INDEX messages_session_idx ON messages (session_id, created_at, id);
CREATE INDEX messages_user_time_idx ON messages (user_identifier, created_at DESC);
CREATE INDEX messages_tsv_idx ON messages USING gin (tsv);

-- long-term tier -------------------------------------------------------------------------

CREATE TABLE long_term_memories (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_identifier    text NOT NULL REFERENCES users ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('fact', 'preference', 'event', 'insight', 'pattern')),
    content            text NOT NULL,
    -- what the memory is about, e.g. 'preference:material'; a newer memory with the same
    -- subject that says it replaces the old one supersedes it
    subject            text,
    embedding          vector(384) NOT NULL,
    importance         real NOT NULL DEFAULT 0.5 CHECK (importance BETWEEN 0 AND 1),
    access_count       integer NOT NULL DEFAULT 0,
    last_accessed_at   timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- world time: when the fact started / stopped being true
    valid_from         timestamptz NOT NULL DEFAULT now(),
    valid_to           timestamptz,
    superseded_by      uuid REFERENCES long_term_memories (id) ON DELETE SET NULL,
    source_message_ids bigint[] NOT NULL DEFAULT '{}',
    content_hash       text NOT NULL,
    metadata           jsonb NOT NULL DEFAULT '{}',
    tsv                tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    UNIQUE (user_identifier, content_hash)
);
CREATE INDEX ltm_user_idx ON long_term_memories (user_identifier, created_at DESC);
CREATE INDEX ltm_subject_idx ON long_term_memories (user_identifier, subject) WHERE valid_to IS NULL;
CREATE INDEX ltm_tsv_idx ON long_term_memories USING gin (tsv);
-- cross-user ANN (admin search, very large users); per-user reads use an exact scan
-- over the user's rows, which is faster and exact at a few hundred rows per user
CREATE INDEX ltm_embedding_hnsw_idx ON long_term_memories USING hnsw (embedding vector_cosine_ops);

-- every change to a memory, for audit and GET /memory/{id}/history
CREATE TABLE memory_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id       uuid NOT NULL,
    user_identifier text NOT NULL REFERENCES users ON DELETE CASCADE,
    event           text NOT NULL CHECK (event IN ('add', 'update', 'supersede', 'delete')),
    old_content     text,
    new_content     text,
    detail          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX memory_events_memory_idx ON memory_events (memory_id, id);

CREATE TABLE conversation_summaries (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id         uuid NOT NULL UNIQUE REFERENCES sessions ON DELETE CASCADE,
    user_identifier    text NOT NULL REFERENCES users ON DELETE CASCADE,
    summary            text NOT NULL,
    key_entities       text[] NOT NULL DEFAULT '{}',
    embedding          vector(384) NOT NULL,
    message_count      integer NOT NULL,
    first_message_at   timestamptz NOT NULL,
    last_message_at    timestamptz NOT NULL,
    source_message_ids bigint[] NOT NULL DEFAULT '{}',
    method             text NOT NULL CHECK (method IN ('llm', 'extractive')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    tsv                tsvector GENERATED ALWAYS AS (to_tsvector('english', summary)) STORED
);
CREATE INDEX summaries_user_idx ON conversation_summaries (user_identifier, last_message_at DESC);
CREATE INDEX summaries_tsv_idx ON conversation_summaries USING gin (tsv);

-- durable work queue ---------------------------------------------------------------------
-- A table claimed with FOR UPDATE SKIP LOCKED rather than a queue library: the worker
-- claims many jobs at once so that it can embed their messages in one batch.

CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('ingest_message', 'summarize_session')),
    -- not a foreign key: queued work is dropped explicitly on erasure
    user_identifier text NOT NULL,
    dedupe_key      text NOT NULL UNIQUE,
    payload         jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 10,
    run_after       timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    locked_by       text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_ready_idx ON jobs (run_after, id) WHERE status = 'queued';
CREATE INDEX jobs_user_idx ON jobs (user_identifier);
