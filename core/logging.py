"""structlog setup: JSON lines when not on a TTY, a readable console otherwise.

Context (tenant, request_id, workflow_id, gateway) is bound with ``structlog.contextvars``.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured = False

_SECRET_KEYS = {"password", "secret", "private_key", "mk0", "master_key", "token", "access_token"}


def _redact(_: object, __: str, event_dict: dict) -> dict:
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", *, force: bool = False) -> None:
    global _configured
    if _configured and not force:
        return
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    if use_json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
    _configured = True


def get_logger(name: str | None = None, **context: object) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name).bind(**context) if context else structlog.get_logger(name)
