"""Filter syntax tree -> SQLAlchemy boolean expression over one entity's table."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, literal, not_, or_, true
from sqlalchemy.types import DateTime

from domain.filters.entities import ENTITIES, FilterEntity
from domain.filters.errors import InvalidFilter
from domain.filters.fields import predicate
from domain.filters.parser import And, Comparison, Node, Not, Or, parse
from domain.validators import aware


def entity(name: str) -> FilterEntity:
    try:
        return ENTITIES[name]
    except KeyError:
        raise InvalidFilter(f"there is no filterable entity {name!r}", 0, "") from None


def compile_filter(entity_name: str, text: str, *, at: datetime | None = None) -> ColumnElement[bool]:
    """Compile ``text`` for ``entity_name``. Assignment fields use the topology valid at ``at``
    (default: now, evaluated by the database when the statement runs)."""
    spec = entity(entity_name)
    when: Any = func.now() if at is None else literal(aware(at), DateTime(timezone=True))
    return _Compiler(spec, text, when).node(parse(text))


class _Compiler:
    def __init__(self, spec: FilterEntity, text: str, at: Any) -> None:
        self.spec = spec
        self.text = text
        self.at = at

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*[self.node(n) for n in node.items])
        if isinstance(node, Or):
            return or_(*[self.node(n) for n in node.items])
        if isinstance(node, Not):
            return not_(func.coalesce(self.node(node.item), false()))
        return self.comparison(node)

    def comparison(self, cmp: Comparison) -> ColumnElement[bool]:
        if cmp.field == "type":
            return self.type_check(cmp)
        field = self.spec.fields.get(cmp.field)
        if field is None:
            names = sorted(["type", *self.spec.fields])
            close = difflib.get_close_matches(cmp.field, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidFilter(f"unknown field {cmp.field!r} for {self.spec.name}s{hint}", cmp.field_pos, self.text,
                                fields=names)
        return predicate(cmp.field, field, cmp, self.text, self.at)

    def type_check(self, cmp: Comparison) -> ColumnElement[bool]:
        if cmp.op not in ("=", "in"):
            raise InvalidFilter("'type' supports only = and in", cmp.op_pos, self.text)
        names = [v.text.lower() for v in cmp.values]
        if any(n in self.spec.type_names for n in names):
            return true()
        raise InvalidFilter(f"this filter selects {self.spec.name}s; type {cmp.values[0].text!r} does not apply here",
                            cmp.values[0].pos, self.text)
