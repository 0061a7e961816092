// Which categories drew more interest this month than last month? Interest = purchases
// plus questions about the category (or one of its products), by the time they happened.
// Parameters: $now, the moment "this month" is measured at (a datetime; usually datetime()).
// :param now => datetime()
WITH datetime.truncate('month', $now) AS this_month
WITH this_month, this_month - duration('P1M') AS last_month
MATCH (:Customer)-[r:PURCHASED|ASKED_ABOUT]->(t)
WHERE r.at >= last_month AND r.at < $now + duration('PT1S')
WITH this_month, CASE WHEN t:Category THEN t.name ELSE t.category END AS category,
     r.at >= this_month AS current
WHERE category IS NOT NULL
WITH category, sum(CASE WHEN current THEN 1 ELSE 0 END) AS this_month, sum(CASE WHEN current THEN 0 ELSE 1 END) AS last_month
WHERE this_month > last_month
RETURN category, this_month, last_month, this_month - last_month AS growth
ORDER BY growth DESC, category
LIMIT 20;
