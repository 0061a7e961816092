// Which preferences changed over time, across customers: a preference that was closed
// because the customer moved to another value of the same attribute ("oak" -> "walnut")?
// Parameters: $since, only changes from this time on (a datetime, e.g. datetime() - duration('P365D')).
// :param since => datetime() - duration('P365D')
MATCH (c:Customer)-[old:PREFERS]->(was), (c)-[new:PREFERS]->(now)
WHERE old.valid_to IS NOT NULL AND new.attribute = old.attribute AND was <> now
  AND new.valid_from = old.valid_to AND old.valid_to >= $since
RETURN c.user_id AS customer, old.attribute AS attribute, coalesce(was.name, was.sku) AS from_value,
       coalesce(now.name, now.sku) AS to_value, old.valid_from AS liked_since, old.valid_to AS changed_at
ORDER BY changed_at DESC, customer
LIMIT 200;
