"""The PostgreSQL tier: connections, migrations, and the owner of each table."""
