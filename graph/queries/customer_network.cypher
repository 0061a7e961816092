// What does a customer's neighbourhood look like as a graph: the people, places and things
// they mentioned, how those relate, what they bought and what they like now?
// Parameters: $user_id, a customer's identifier.
// :param user_id => 'demo-0001'
MATCH (c:Customer {user_id: $user_id})
OPTIONAL MATCH p1 = (c)-[:MENTIONED]->(e:Entity)
OPTIONAL MATCH p2 = (e)-[:RELATED_TO]-(:Entity {user_id: $user_id})
OPTIONAL MATCH p3 = (c)-[:PURCHASED]->(:Product)
OPTIONAL MATCH p4 = (c)-[r:PREFERS|DISLIKES]->() WHERE r.valid_to IS NULL
RETURN c, collect(DISTINCT p1) AS mentioned, collect(DISTINCT p2) AS related,
       collect(DISTINCT p3) AS purchases, collect(DISTINCT p4) AS preferences;
