"""The ``gridgate`` command: entry points of every process (``gridgate.cli``), ``gridgate up``
(``gridgate.supervisor``) and developer tools. Plumbing lives in ``core/`` (docs/architecture.md).
"""

from core import __version__

__all__ = ["__version__"]
