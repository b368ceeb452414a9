"""What the head-end records in the tenant database: connections, node heartbeats, communication
history and the events gateways pushed (models and the API's queries)."""
