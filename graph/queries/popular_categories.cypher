// What did customers ask about most in the last 30 days, by category?
// Parameters: $days, the window in days (e.g. 30).
// :param days => 30
MATCH (:Customer)-[r:ASKED_ABOUT]->(t)
WHERE r.at >= datetime() - duration({days: $days})
WITH CASE WHEN t:Category THEN t.name ELSE t.category END AS category, sum(r.mentions) AS mentions
RETURN category, mentions
ORDER BY mentions DESC, category
LIMIT 20;
