// What customers asked about most in the last 30 days, by category.
MATCH (:Customer)-[r:ASKED_ABOUT]->(t)
WHERE r.at >= datetime() - duration('P30D')
WITH CASE WHEN t:Category THEN t.name ELSE t.category END AS category, sum(r.mentions) AS mentions
RETURN category, mentions
ORDER BY mentions DESC
LIMIT 20;
