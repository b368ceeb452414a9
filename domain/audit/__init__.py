"""The change log: every write records who, when, what and old -> new."""
