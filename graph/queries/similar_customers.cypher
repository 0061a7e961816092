// Which customers are most like this one? Jaccard similarity of the products they bought,
// plus one point per current preference (style, material, ...) they share.
// Parameters: $user_id, a customer's identifier.
// :param user_id => 'demo-0001'
MATCH (c:Customer {user_id: $user_id})-[:PURCHASED]->(p:Product)<-[:PURCHASED]-(other:Customer)
WHERE other <> c
WITH c, other, count(DISTINCT p) AS shared_products
WITH c, other, shared_products,
     COUNT { (c)-[:PURCHASED]->(:Product) } AS mine, COUNT { (other)-[:PURCHASED]->(:Product) } AS theirs
OPTIONAL MATCH (c)-[r1:PREFERS]->(t)<-[r2:PREFERS]-(other)
WHERE r1.valid_to IS NULL AND r2.valid_to IS NULL
WITH other, shared_products, mine, theirs, collect(DISTINCT coalesce(t.name, t.sku)) AS shared_preferences
WITH other, shared_products, shared_preferences,
     toFloat(shared_products) / (mine + theirs - shared_products) AS jaccard
RETURN other.user_id AS customer, other.name AS name, shared_products, shared_preferences,
       round(jaccard + 0.1 * size(shared_preferences), 3) AS similarity
ORDER BY similarity DESC, customer
LIMIT 20;
