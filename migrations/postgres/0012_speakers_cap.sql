-- users.speakers is capped: history.add_messages keeps the LOFT_MAX_SPEAKERS (64 by default) most
-- recently introduced names, oldest first, and every context matches its question against them.
-- An array over the default is cut to its last 64 names (they were kept in alphabetical order).
UPDATE users SET speakers = speakers[cardinality(speakers) - 63:] WHERE cardinality(speakers) > 64;
