// What has this customer liked and disliked over time, current and closed, in time order
// ("what did she like in May, and what does she like now")?
// Parameters: $user_id, a customer's identifier.
// :param user_id => 'demo-0001'
MATCH (c:Customer {user_id: $user_id})-[r:PREFERS|DISLIKES]->(t)
RETURN type(r) AS relation, r.attribute AS attribute, coalesce(t.name, t.sku) AS value,
       r.valid_from AS valid_from, r.valid_to AS valid_to, r.valid_to IS NULL AS current,
       r.source_message_ids AS source_message_ids
ORDER BY r.valid_from;
