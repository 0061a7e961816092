// A customer's neighbourhood for Neo4j Browser: people, places and things they mentioned,
// how those relate, what they bought and what they like now.
// :param user_id => 'sarah'
MATCH (c:Customer {user_id: $user_id})
OPTIONAL MATCH p1 = (c)-[:MENTIONED]->(e:Entity)
OPTIONAL MATCH p2 = (e)-[:RELATED_TO]-(:Entity {user_id: $user_id})
OPTIONAL MATCH p3 = (c)-[:PURCHASED]->(:Product)
OPTIONAL MATCH p4 = (c)-[r:PREFERS|DISLIKES]->() WHERE r.valid_to IS NULL
RETURN c, collect(DISTINCT p1) AS mentioned, collect(DISTINCT p2) AS related,
       collect(DISTINCT p3) AS purchases, collect(DISTINCT p4) AS preferences;
