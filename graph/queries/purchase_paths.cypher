// What did this customer buy, in order, and where do their purchases lead? For each of
// their products: what the other buyers of it bought too (the paths recommendations walk).
// Parameters: $user_id, a customer's identifier such as 'demo-0001'.
// :param user_id => 'demo-0001'
MATCH (c:Customer {user_id: $user_id})-[b:PURCHASED]->(mine:Product)
OPTIONAL MATCH (mine)<-[:PURCHASED]-(other:Customer)-[:PURCHASED]->(next:Product)
WHERE other <> c AND NOT (c)-[:PURCHASED]->(next)
WITH b, mine, next, count(DISTINCT other) AS co_buyers
ORDER BY b.at, co_buyers DESC
WITH b, mine, collect(CASE WHEN next IS NULL THEN null ELSE {sku: next.sku, name: next.name, co_buyers: co_buyers} END)[..3] AS leads_to
RETURN b.at AS bought_at, b.order_id AS order_id, b.source AS source, mine.sku AS sku, mine.name AS product,
       leads_to
ORDER BY bought_at;
