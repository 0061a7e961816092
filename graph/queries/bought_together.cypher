// Which products are bought together by the same customers (the strongest pairs in the shop)?
// Parameters: $min_customers, the least number of customers who bought both (e.g. 3).
// :param min_customers => 3
MATCH (a:Product)<-[:PURCHASED]-(c:Customer)-[:PURCHASED]->(b:Product)
WHERE a.sku < b.sku
WITH a, b, count(DISTINCT c) AS customers
WHERE customers >= $min_customers
RETURN a.sku AS sku_a, a.name AS product_a, b.sku AS sku_b, b.name AS product_b, customers
ORDER BY customers DESC, sku_a, sku_b
LIMIT 50;
