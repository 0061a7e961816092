-- A long message's head passages (those inside the text its own embedding covers) no longer
-- store a copy of the message's embedding: NULL instead. The copy never won the vector
-- ranking (on a tie the message itself ranks), yet every per-customer search read its 1.5 kB
-- and computed its distance. Passages past the head keep their own embedding.
--
-- Metadata only. Rows written before keep their copies and give the same results; to slim
-- them, see docs/operations.md ("Table storage after an upgrade").
ALTER TABLE message_passages ALTER COLUMN embedding DROP NOT NULL;
