// Recommendations over purchase paths: products bought by customers who bought what this
// customer bought, not yet bought by them, boosted by their current style preferences.
// :param user_id => 'sarah'
MATCH (c:Customer {user_id: $user_id})-[:PURCHASED]->(:Product)<-[:PURCHASED]-(other:Customer)-[:PURCHASED]->(rec:Product)
WHERE other <> c AND NOT (c)-[:PURCHASED]->(rec)
WITH c, rec, count(DISTINCT other) AS co_buyers
OPTIONAL MATCH (c)-[p:PREFERS]->(:Style)<-[:HAS_STYLE]-(rec) WHERE p.valid_to IS NULL
RETURN rec.sku AS sku, rec.name AS product, rec.price AS price, co_buyers, count(p) AS style_matches
ORDER BY co_buyers + count(p) DESC, rec.sku
LIMIT 10;
