-- Per-customer document frequencies of the lexemes in their messages, maintained by the
-- worker as it embeds each message once. The retriever ranks full-text hits by BM25
-- (binary term frequency) with these IDFs: ts_rank_cd has no IDF, so frequent words
-- (the customer's own name, "really", "great") drown the rare ones that matter.
CREATE TABLE user_terms (
    user_identifier text NOT NULL REFERENCES users ON DELETE CASCADE,
    lexeme          text NOT NULL,
    ndoc            integer NOT NULL,
    PRIMARY KEY (user_identifier, lexeme)
);

-- back-fill from messages already embedded
INSERT INTO user_terms (user_identifier, lexeme, ndoc)
SELECT m.user_identifier, t.lexeme, count(*)
FROM messages m, unnest(m.tsv) AS t(lexeme, positions, weights)
WHERE m.embedding IS NOT NULL
GROUP BY 1, 2;
