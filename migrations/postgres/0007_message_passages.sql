-- Passages of long messages, for retrieval. A message longer than a passage (a few hundred
-- characters: a pasted product sheet, an e-mail) is split on sentence boundaries into
-- passages, each embedded and full-text indexed on its own: the message's own embedding
-- sees only its first ~256 word pieces, and its BM25 is diluted by its length. A message
-- is scored by its best passage, and its packed text is clipped around that passage
-- (start_char/end_char index into messages.content; the text is not stored twice).
-- Owned by vectors/passages.py; the worker writes them with the message's embedding.
CREATE TABLE message_passages (
    message_id      bigint NOT NULL REFERENCES messages ON DELETE CASCADE,
    ordinal         integer NOT NULL,
    user_identifier text NOT NULL REFERENCES users ON DELETE CASCADE,
    start_char      integer NOT NULL,
    end_char        integer NOT NULL,
    embedding       vector(384) NOT NULL,
    tsv             tsvector NOT NULL,
    PRIMARY KEY (message_id, ordinal)
);
CREATE INDEX message_passages_user_idx ON message_passages (user_identifier);
