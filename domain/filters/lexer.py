"""Tokens of the filter language. Hand-written: every character is either part of a known token
or an error with its position (so ``;``, quotes left open or SQL comments stop here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.filters.errors import InvalidFilter

MAX_LENGTH = 4000


class Kind(StrEnum):
    WORD = "word"  # field names, keywords and bare values: EMH, in_operation, 2.1, 2024-01-01
    STRING = "string"  # "quoted value" or 'quoted value'
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end of filter"


@dataclass(frozen=True)
class Token:
    kind: Kind
    value: str
    pos: int

    @property
    def lower(self) -> str:
        return self.value.lower()


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:+*%?/@")
_SINGLE = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(f"filter is longer than {MAX_LENGTH} characters", MAX_LENGTH, text[:MAX_LENGTH])
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in _SINGLE:
            tokens.append(Token(_SINGLE[c], c, i))
            i += 1
        elif c in "=<>!":
            two = text[i:i + 2]
            if two in ("!=", "<=", ">=", "<>"):
                tokens.append(Token(Kind.OP, "!=" if two == "<>" else two, i))
                i += 2
            elif c == "!":
                raise InvalidFilter("'!' must be followed by '=' (use 'not' to negate)", i, text)
            else:
                tokens.append(Token(Kind.OP, c, i))
                i += 1
        elif c in "\"'":
            end = i + 1
            chars: list[str] = []
            while True:
                if end >= n:
                    raise InvalidFilter(f"quoted value opened here is never closed with {c}", i, text)
                if text[end] == "\\" and end + 1 < n and text[end + 1] in (c, "\\"):
                    chars.append(text[end + 1])
                    end += 2
                    continue
                if text[end] == c:
                    break
                chars.append(text[end])
                end += 1
            tokens.append(Token(Kind.STRING, "".join(chars), i))
            i = end + 1
        elif c in _WORD_CHARS:
            start = i
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            word = text[start:i]
            if word.startswith("--"):
                raise InvalidFilter("'--' is not part of the filter language", start, text)
            tokens.append(Token(Kind.WORD, word, start))
        else:
            raise InvalidFilter(f"unexpected character {c!r}", i, text)
    tokens.append(Token(Kind.END, "", n))
    return tokens
