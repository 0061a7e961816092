-- Orders from the shop's order feed (POST /v1/customers/{user}/orders), owned by
-- service/orders.py. The record of what was bought; the graph's PURCHASED {order_id, at,
-- qty, price, source: 'order'} relationships are derived from it by the worker.
--   order_id      the shop's id, unique across the shop (a second customer cannot reuse it)
--   content_hash  the canonical lines and time: a retry with the same content is a replay,
--                 different content under the same id is refused (409)
CREATE TABLE orders (
  order_id        text PRIMARY KEY,
  user_identifier text NOT NULL REFERENCES users (user_identifier) ON DELETE CASCADE,
  placed_at       timestamptz NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  total           numeric(14, 2) NOT NULL,
  content_hash    text NOT NULL
);
CREATE INDEX orders_user_idx ON orders (user_identifier, placed_at DESC);

CREATE TABLE order_lines (
  order_id        text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
  line_no         integer NOT NULL,
  user_identifier text NOT NULL REFERENCES users (user_identifier) ON DELETE CASCADE,
  sku             text NOT NULL,
  qty             integer NOT NULL CHECK (qty > 0),
  unit_price      numeric(12, 2) NOT NULL CHECK (unit_price >= 0),
  PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_lines_user_idx ON order_lines (user_identifier);
CREATE INDEX order_lines_sku_idx ON order_lines (sku);

-- the worker files an order in the graph through the queue, like a message
ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
  CHECK (kind IN ('ingest_message', 'summarize_session', 'erase_user', 'ingest_order'));
