// Uniqueness for the shared catalog and per-user nodes, range indexes on user_id,
// the vector index on entity embeddings (384 dims, cosine) and full-text indexes.
CREATE CONSTRAINT customer_user_id IF NOT EXISTS FOR (c:Customer) REQUIRE c.user_id IS UNIQUE;
CREATE CONSTRAINT product_sku IF NOT EXISTS FOR (p:Product) REQUIRE p.sku IS UNIQUE;
CREATE CONSTRAINT category_name IF NOT EXISTS FOR (n:Category) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT style_name IF NOT EXISTS FOR (n:Style) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT material_name IF NOT EXISTS FOR (n:Material) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT color_name IF NOT EXISTS FOR (n:Color) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT brand_name IF NOT EXISTS FOR (n:Brand) REQUIRE n.name IS UNIQUE;
CREATE CONSTRAINT entity_user_key IF NOT EXISTS FOR (e:Entity) REQUIRE (e.user_id, e.key) IS UNIQUE;
CREATE INDEX entity_user_id IF NOT EXISTS FOR (e:Entity) ON (e.user_id);
CREATE INDEX entity_type IF NOT EXISTS FOR (e:Entity) ON (e.user_id, e.type);
CREATE INDEX product_category IF NOT EXISTS FOR (p:Product) ON (p.category);
CREATE VECTOR INDEX entity_embedding IF NOT EXISTS FOR (e:Entity) ON e.embedding
  OPTIONS {indexConfig: {`vector.dimensions`: 384, `vector.similarity_function`: 'cosine'}};
CREATE FULLTEXT INDEX entity_names IF NOT EXISTS FOR (e:Entity) ON EACH [e.name, e.summary];
CREATE FULLTEXT INDEX product_names IF NOT EXISTS FOR (p:Product) ON EACH [p.name, p.description];
