"""Import failures: every problem of a file with its line and column, nothing stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.errors import InvalidInput


@dataclass(frozen=True)
class RowError:
    line: int  # physical line in the file, 1-based (the header is line 1)
    column: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message} ({self.code})"


class ErrorLog:
    """Collects row errors; keeps the first ``limit`` and counts the rest."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.items: list[RowError] = []
        self.count = 0

    def add(self, line: int, column: str | None, code: str, message: str) -> None:
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(RowError(line, column, code, message))

    def __bool__(self) -> bool:
        return self.count > 0


class ImportRejected(InvalidInput):
    """The file has errors; nothing was stored. ``details.errors`` lists them per line/column."""

    code = "import_rejected"

    def __init__(self, kind: str, errors: ErrorLog | list[RowError], rows: int = 0) -> None:
        items = errors.items if isinstance(errors, ErrorLog) else errors
        total = errors.count if isinstance(errors, ErrorLog) else len(errors)
        details: dict[str, Any] = {"kind": kind, "rows": rows, "error_count": total,
                                   "errors": [asdict(e) for e in items], "truncated": total > len(items)}
        first = str(items[0]) if items else "invalid file"
        more = f" (and {total - 1} more)" if total > 1 else ""
        super().__init__(f"{kind} import rejected, nothing stored: {first}{more}", details=details)
        self.errors = items
        self.error_count = total
