"""gridgate platform core: configuration, logging, errors, process entry points.

Everything here is shared plumbing that belongs to no single domain area (see docs/architecture.md).
"""

__version__ = "0.1.0"
