-- The names of the people who speak in a customer's history (messages.speaker: an imported
-- conversation between two named people; NULL for the customer and the assistant). The
-- retriever reads them with the customer's graph version, before it embeds the question:
-- a question that names a speaker ("What did Caroline paint?") is embedded without the name,
-- so what was said, not who said it, decides which turns are near (who said it is weighed
-- separately). Kept by history.add_messages.
ALTER TABLE users ADD COLUMN speakers text[] NOT NULL DEFAULT '{}';
UPDATE users u
SET speakers = ARRAY(
  SELECT DISTINCT m.speaker FROM messages m
  WHERE m.user_identifier = u.user_identifier AND m.speaker IS NOT NULL ORDER BY 1
)
WHERE EXISTS (SELECT 1 FROM messages m WHERE m.user_identifier = u.user_identifier AND m.speaker IS NOT NULL);
