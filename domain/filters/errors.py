"""The one error of the filter language: what is wrong and at which character."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput


class InvalidFilter(InvalidInput):
    """``position`` is the 0-based offset into the filter text where the problem starts."""

    code = "invalid_filter"

    def __init__(self, message: str, position: int, text: str, **extra: Any) -> None:
        position = max(0, min(position, len(text)))
        pointer = f"{text}\n{' ' * position}^"
        super().__init__(f"{message} (at position {position})",
                         details={"position": position, "filter": text, "pointer": pointer, **extra})
        self.position = position
