"""The filter language on its own: grammar, positions of errors, nothing of the text reaching SQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.compiler import Compiled

from domain.devices.models import Gateway
from domain.filters import InvalidFilter, compile_filter, compile_gateway_filter
from domain.filters.lexer import tokenize
from domain.filters.parser import And, Comparison, Not, Or, parse


def _compiled(text: str) -> Compiled:
    return select(Gateway.id).where(compile_gateway_filter(text)).compile(dialect=postgresql.dialect())


def test_the_issue_example_compiles_to_bound_parameters_only() -> None:
    text = "type = gateway and manufacturer = EMH and firmware < 2.1 and state = in_operation and segment in (A12, A13)"
    compiled = _compiled(text)
    for literal in ("EMH", "emh", "2.1", "in_operation", "A12", "a12"):
        assert literal not in str(compiled)
    values = list(compiled.params.values())
    assert "emh" in values and "in_operation" in values and [2, 1, 0, 0] in values and ["A12", "A13"] in values


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    tree = parse("state = faulty or not segment = A and firmware >= 2")
    assert isinstance(tree, Or)
    assert isinstance(tree.items[1], And)
    assert isinstance(tree.items[1].items[0], Not)
    assert isinstance(tree.items[0], Comparison) and tree.items[0].field == "state"


def test_quoted_values_keep_spaces_keywords_and_quotes() -> None:
    tree = parse("city = \"Bad Homburg\" and connection_point = 'and' and model = \"CASA \\\"1\\\"\"")
    assert isinstance(tree, And)
    comparisons = [c for c in tree.items if isinstance(c, Comparison)]
    assert len(comparisons) == len(tree.items)
    assert [c.values[0].text for c in comparisons] == ["Bad Homburg", "and", 'CASA "1"']


@pytest.mark.parametrize(("text", "position", "fragment"), [
    ("state = bogus", 8, "not a state"),
    ("stat = in_stock", 0, "did you mean 'state'"),
    ("state = in_stock and", 20, "expected a field name"),
    ("state = 'x'; drop table gateways; --", 11, "unexpected character ';'"),
    ("(state = in_stock", 0, "never closed"),
    ("segment in (A12, A13", 20, "expected ',' or ')'"),
    ("device_id = \"E", 12, "never closed"),
    ("firmware like 2*", 9, "does not apply to version"),
    ("state < in_stock", 6, "does not apply to enum"),
    ("type = meter", 7, "selects gateways"),
    ("created_at > yesterday", 13, "not a valid datetime"),
    ("meter_count = many", 14, "not a valid int"),
    ("leading = maybe", 10, "not true or false"),
    ("state != ", 9, "expected a value"),
    ("state ! in_stock", 6, "must be followed by '='"),
    ("", 0, "empty"),
])
def test_errors_name_the_position(text: str, position: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        compile_gateway_filter(text)
    assert caught.value.position == position, caught.value.message
    assert fragment in caught.value.message
    assert caught.value.code == "invalid_filter"
    assert caught.value.details["pointer"].endswith("^")


def test_limits_refuse_pathological_filters() -> None:
    with pytest.raises(InvalidFilter, match="nests deeper"):
        compile_gateway_filter("not " * 60 + "state = faulty")
    with pytest.raises(InvalidFilter, match="longer than"):
        compile_gateway_filter("state = faulty or " * 400 + "state = faulty")


def test_every_entity_has_its_own_fields() -> None:
    compile_filter("meter", "calibration_valid_until < today+90d and grid_area = NORD and has_mk0 = false")
    compile_filter("connection_point", "postcode like 10* and gateway is not null")
    compile_filter("metering_point", "direction = feed_in and malo is null")
    compile_filter("market_location", "supplier = 9900000000024")
    compile_filter("market_partner", "role in (LF, VNB)")
    compile_filter("cls_module", "controls like \"*wallbox*\"")
    with pytest.raises(InvalidFilter, match="unknown field 'lmn_type' for gateways"):
        compile_gateway_filter("lmn_type = wired")


def test_operators_and_words_are_case_insensitive() -> None:
    assert [t.value for t in tokenize("A <> b")][1] == "!="
    compile_gateway_filter("STATE = IN_OPERATION AND Segment IN (a) Or NOT firmware IS NULL")


def test_every_field_is_documented() -> None:
    from pathlib import Path

    from domain.filters.entities import ENTITIES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "masterdata.md").read_text()
    for name, entity in ENTITIES.items():
        section = doc.split(f"**{name}** (`type = {name}`)", 1)[1].split("\n\n**", 1)[0]
        missing = [f for f in entity.fields if f"| `{f}` |" not in section]
        assert not missing, f"docs/masterdata.md lacks {name} fields {missing}"
