"""Platform plumbing shared by every process and owned by none: configuration, logging, error base
classes, database engines, Temporal clients and the payload codec, the embedded PostgreSQL and
Temporal dev server, and the identifiers of the trade (DIN 43849, MeLo, MaLo). Imports nothing of
gridgate's own above it (docs/architecture.md, "Layers")."""

__version__ = "0.1.0"
