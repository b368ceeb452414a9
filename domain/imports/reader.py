"""Streaming CSV reading: UTF-8 decoded line by line (so an encoding error has a line number),
comma or semicolon separated, strict quoting, header checked against the import's columns.

Memory is bounded by one chunk of rows, whatever the file size.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Iterator

from domain.imports.errors import ErrorLog, ImportRejected, RowError

csv.field_size_limit(64 * 1024)

Progress = Callable[[int, int], None]  # (bytes read, rows read)


class CsvSource:
    """Rows of a CSV file as (line number, fields), with encoding and structure errors logged."""

    def __init__(self, kind: str, stream: Iterable[bytes], errors: ErrorLog, progress: Progress | None = None) -> None:
        self.stream = stream
        self.errors = errors
        self.progress = progress
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self.rows = 0
        self._physical = 0
        lines = self._lines()
        try:
            first = next(lines)
        except StopIteration:
            raise ImportRejected(kind, [RowError(1, None, "empty_file", "the file is empty")]) from None
        self.delimiter = ";" if first.count(";") > first.count(",") else ","
        self._reader = csv.reader(_chain(first, lines), delimiter=self.delimiter, strict=True)
        try:
            header = next(self._reader)
        except csv.Error as err:
            raise ImportRejected(kind, [RowError(1, None, "malformed_csv", f"header: {err}")]) from None
        self.header = [h.strip().lower() for h in header]
        self._last_line = self._reader.line_num

    def _lines(self) -> Iterator[str]:
        first = True
        for raw in self.stream:
            self._physical += 1
            self.sha256.update(raw)
            self.bytes_read += len(raw)
            if first:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
                first = False
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                self.errors.add(self._physical, None, "invalid_encoding",
                                f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at position {err.start + 1}); "
                                "save the file as UTF-8")
                yield raw.decode("utf-8", "replace")

    def rows_iter(self) -> Iterator[tuple[int, list[str]]]:
        """(first line of the record, fields), skipping blank lines; structure errors are logged."""
        reader = self._reader
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                self.errors.add(self._last_line + 1, None, "malformed_csv", f"{err} (check quoting)")
                self._last_line = reader.line_num
                continue
            line = self._last_line + 1
            self._last_line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            self.rows += 1
            if self.progress is not None and self.rows % 5000 == 0:
                self.progress(self.bytes_read, self.rows)
            yield line, fields


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def check_header(kind: str, header: list[str], known: list[str], required: list[str]) -> dict[str, int]:
    """Column name -> index; unknown, missing and duplicate columns reject the file."""
    errors: list[RowError] = []
    positions: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in positions:
            errors.append(RowError(1, name, "duplicate_column", f"column {name!r} appears twice"))
        elif name not in known:
            errors.append(RowError(1, name, "unknown_column",
                                   f"unknown column {name!r}; {kind} files have: {', '.join(known)}"))
        positions[name] = i
    for name in required:
        if name not in positions:
            errors.append(RowError(1, name, "missing_column", f"required column {name!r} is missing"))
    if errors:
        raise ImportRejected(kind, errors)
    return positions
