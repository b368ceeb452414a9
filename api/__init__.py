"""The HTTP API: thin routers that validate, authorise and delegate to domain/ and workflows/."""
