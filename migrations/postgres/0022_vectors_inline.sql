-- The columns a per-customer search ranks on (embedding: cosine distance; tsv: full-text
-- match and BM25) stay in their row: MAIN storage, out of line only if a row would not
-- otherwise fit in a page. A long turn's row is over the TOAST threshold (~2 kB); with the
-- default storage (the vector type's EXTERNAL) its embedding, and then its tsv, were the
-- first values moved to the TOAST table, so ranking a customer's turns fetched each of them
-- through the TOAST index. What moves out now is the text itself (content, summary), read
-- only for the rows a search returns.
--
-- Metadata only: no table is rewritten here (each ALTER holds an ACCESS EXCLUSIVE lock for
-- an instant, once the statements running on its table end). Rows inserted from now on, and
-- values written anew, are stored this way; a value already out of line stays there (an
-- UPDATE that leaves it as it is keeps its TOAST pointer) until its table is rewritten:
-- VACUUM FULL, or pg_repack online (docs/operations.md). Both layouts give the same results.
ALTER TABLE messages ALTER COLUMN embedding SET STORAGE MAIN, ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE message_passages ALTER COLUMN embedding SET STORAGE MAIN, ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE long_term_memories ALTER COLUMN embedding SET STORAGE MAIN, ALTER COLUMN tsv SET STORAGE MAIN;
ALTER TABLE conversation_summaries ALTER COLUMN embedding SET STORAGE MAIN, ALTER COLUMN tsv SET STORAGE MAIN;
