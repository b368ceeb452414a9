"""Recursive-descent parser of the filter language into a small syntax tree.

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | primary
    primary    := "(" or_expr ")" | comparison
    comparison := FIELD op value
                | FIELD ["not"] "in" "(" value ("," value)* ")"
                | FIELD ["not"] "like" value
                | FIELD "is" ["not"] "null"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := WORD | STRING
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.filters.errors import InvalidFilter
from domain.filters.lexer import Kind, Token, tokenize

KEYWORDS = frozenset({"and", "or", "not", "in", "like", "is", "null"})
MAX_DEPTH = 40
MAX_LIST = 1000


@dataclass(frozen=True)
class Value:
    text: str
    pos: int
    quoted: bool


@dataclass(frozen=True)
class Comparison:
    field: str
    field_pos: int
    op: str  # = != < <= > >= in not_in like not_like is_null is_not_null
    values: tuple[Value, ...]
    op_pos: int


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_kw(self, word: str) -> bool:
        return self.tok.kind == Kind.WORD and self.tok.lower == word

    def fail(self, message: str, tok: Token | None = None) -> InvalidFilter:
        tok = tok or self.tok
        found = "the end of the filter" if tok.kind == Kind.END else repr(tok.value)
        return InvalidFilter(f"{message}, found {found}", tok.pos, self.text)

    def parse(self) -> Node:
        if self.tok.kind == Kind.END:
            raise InvalidFilter("the filter is empty", 0, self.text)
        node = self.or_expr()
        if self.tok.kind != Kind.END:
            raise self.fail("expected 'and', 'or' or the end of the filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.is_kw("or"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.is_kw("and"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.is_kw("not"):
            self.advance()
            return Not(self.nested(self.not_expr))
        return self.primary()

    def nested(self, fn: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(f"filter nests deeper than {MAX_DEPTH} levels", self.tok.pos, self.text)
        try:
            return fn()
        finally:
            self.depth -= 1

    def primary(self) -> Node:
        if self.tok.kind == Kind.LPAREN:
            open_tok = self.advance()
            node = self.nested(self.or_expr)
            if self.tok.kind != Kind.RPAREN:
                if self.tok.kind == Kind.END:
                    raise InvalidFilter("'(' is never closed", open_tok.pos, self.text)
                raise self.fail("expected ')'")
            self.advance()
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        field = self.tok
        if field.kind != Kind.WORD or field.lower in KEYWORDS:
            raise self.fail("expected a field name")
        self.advance()
        op_tok = self.tok
        if op_tok.kind == Kind.OP:
            self.advance()
            return Comparison(field.lower, field.pos, op_tok.value, (self.value(),), op_tok.pos)
        negated = False
        if self.is_kw("not"):
            negated = True
            self.advance()
            if not (self.is_kw("in") or self.is_kw("like")):
                raise self.fail("expected 'in' or 'like' after 'not'")
        if self.is_kw("in"):
            self.advance()
            return Comparison(field.lower, field.pos, "not_in" if negated else "in", self.value_list(), op_tok.pos)
        if self.is_kw("like"):
            self.advance()
            return Comparison(field.lower, field.pos, "not_like" if negated else "like", (self.value(),), op_tok.pos)
        if self.is_kw("is"):
            self.advance()
            op = "is_null"
            if self.is_kw("not"):
                self.advance()
                op = "is_not_null"
            if not self.is_kw("null"):
                raise self.fail("expected 'null'")
            self.advance()
            return Comparison(field.lower, field.pos, op, (), op_tok.pos)
        raise self.fail(f"expected an operator (=, !=, <, <=, >, >=, in, like, is) after {field.value!r}")

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == Kind.STRING:
            self.advance()
            return Value(tok.value, tok.pos, True)
        if tok.kind == Kind.WORD and tok.lower not in KEYWORDS:
            self.advance()
            return Value(tok.value, tok.pos, False)
        raise self.fail("expected a value (quote values with spaces or keywords)")

    def value_list(self) -> tuple[Value, ...]:
        if self.tok.kind != Kind.LPAREN:
            raise self.fail("expected '(' after 'in'")
        self.advance()
        values = [self.value()]
        while self.tok.kind == Kind.COMMA:
            self.advance()
            values.append(self.value())
            if len(values) > MAX_LIST:
                raise InvalidFilter(f"more than {MAX_LIST} values in one list", self.tok.pos, self.text)
        if self.tok.kind != Kind.RPAREN:
            raise self.fail("expected ',' or ')' in the value list")
        self.advance()
        return tuple(values)


def parse(text: str) -> Node:
    """Parse filter text; raises InvalidFilter with the position of the first problem."""
    return _Parser(text).parse()
