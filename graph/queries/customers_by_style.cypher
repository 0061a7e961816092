// Which customers currently prefer a style (strongest first)?
// Parameters: $style, a catalog style such as 'modern', 'japandi', 'scandinavian'.
// :param style => 'modern'
MATCH (c:Customer)-[r:PREFERS]->(s:Style {name: $style})
WHERE r.valid_to IS NULL
RETURN c.user_id AS customer, c.name AS name, r.strength AS strength, r.mentions AS mentions,
       r.valid_from AS since, r.last_seen AS last_seen
ORDER BY r.strength DESC, r.mentions DESC, customer
LIMIT 100;
