"""The doors: the HTTP API (app, routes, middleware, keys and roles) and the MCP server."""
