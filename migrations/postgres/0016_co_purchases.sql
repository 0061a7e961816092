-- Item-to-item "bought with" statistics, kept as the order feed's orders are filed (owned by
-- service/co_purchases.py). Only orders count (never a purchase said in chat), and each
-- customer at most once per product and once per pair: counts are of distinct customers.
--
-- product_stats        one row per product ever ordered: how many distinct customers bought
--                      it, and what the catalog said of it when it was last ordered (name,
--                      category, consumable, price, "attribute:value" facets) so a degraded
--                      answer can be given without Neo4j; mass (the sum of its pairs'
--                      counts), changes and mass_refreshed decide when its neighbours are
--                      computed again
-- product_pairs        every pair bought by the same customer (sku < other), with how many
--                      distinct customers bought both
-- product_neighbours   each product's top neighbours by cosine (pairs of at least the minimum
--                      support), what recommendations read
-- order_lines.counted  the line whose product entered its customer's counted products: a
--                      retried or re-sent order finds its products counted and adds nothing,
--                      and an erasure subtracts exactly what was added
CREATE TABLE product_stats (
  sku        text PRIMARY KEY,
  customers  integer NOT NULL DEFAULT 0 CHECK (customers >= 0),
  name       text,
  category   text,
  consumable boolean NOT NULL DEFAULT false,
  price      numeric(12, 2),
  facets     text[] NOT NULL DEFAULT '{}',
  mass       integer NOT NULL DEFAULT 0,
  changes    integer NOT NULL DEFAULT 0,
  mass_refreshed integer NOT NULL DEFAULT 0
);
CREATE INDEX product_stats_category_idx ON product_stats (category, customers DESC, sku);
CREATE INDEX product_stats_popular_idx ON product_stats (customers DESC, sku);

CREATE TABLE product_pairs (
  sku       text NOT NULL,
  other     text NOT NULL,
  customers integer NOT NULL CHECK (customers >= 0),
  PRIMARY KEY (sku, other),
  CHECK (sku < other)
) WITH (fillfactor = 80);  -- room for in-place (HOT) updates of the counts
CREATE INDEX product_pairs_other_idx ON product_pairs (other);

CREATE TABLE product_neighbours (
  sku       text NOT NULL,
  neighbour text NOT NULL,
  score     real NOT NULL,
  customers integer NOT NULL,
  PRIMARY KEY (sku, neighbour)
);

ALTER TABLE order_lines ADD COLUMN counted boolean NOT NULL DEFAULT false;
CREATE INDEX order_lines_counted_idx ON order_lines (user_identifier, sku) WHERE counted;
