"""Application services used by the API, the CLI and the supervisor: starting and steering process
workflows, the tenants' schedules, creating tenants with their Temporal namespace, and bootstrap.
The client side of Temporal lives here; the domain below never touches it."""
