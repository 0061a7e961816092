-- Bumped by the worker after every graph write for the customer, so API processes can
-- cache a customer's graph facts keyed by (customer, version) and never serve stale ones.
ALTER TABLE users ADD COLUMN graph_version bigint NOT NULL DEFAULT 0;
