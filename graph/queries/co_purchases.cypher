// What would we suggest to this customer from purchase paths alone? Products bought by
// customers who bought what this customer bought, not owned yet, with how many such
// customers and how many of the customer's current styles each matches. (The API's
// recommendations, graph/recommend.py, add recency, preferences, dislikes, stock and budget.)
// Parameters: $user_id, a customer's identifier.
// :param user_id => 'demo-0001'
MATCH (c:Customer {user_id: $user_id})-[:PURCHASED]->(:Product)<-[:PURCHASED]-(other:Customer)-[:PURCHASED]->(rec:Product)
WHERE other <> c AND NOT (c)-[:PURCHASED]->(rec)
WITH c, rec, count(DISTINCT other) AS co_buyers
OPTIONAL MATCH (c)-[p:PREFERS]->(:Style)<-[:HAS_STYLE]-(rec) WHERE p.valid_to IS NULL
RETURN rec.sku AS sku, rec.name AS product, rec.price AS price, co_buyers, count(p) AS style_matches
ORDER BY co_buyers + count(p) DESC, rec.sku
LIMIT 10;
