"""One filter language for lists, exports and mass processes.

    type = gateway and manufacturer = EMH and firmware < 2.1 and state = in_operation
        and segment in (A12, A13)

Public API (also for the mass-process area):

* ``compile_filter(entity, text, at=None)`` / ``compile_gateway_filter(text, at=None)``: a
  SQLAlchemy boolean expression over the entity's table, bind parameters only.
* ``iterate_gateway_ids(session, filter, batch=1000)``: keyset batches of gateway ids.
* ``iterate_gateway_refs(session, filter, batch=1000)``: the same with device ID, segment, state.
* ``count(session, entity, filter)``.
* ``InvalidFilter``: reason code ``invalid_filter`` with ``details.position``.

The grammar and the field list are in docs/masterdata.md.
"""

from domain.filters.compiler import compile_filter
from domain.filters.errors import InvalidFilter
from domain.filters.iterate import (
    GatewayRef,
    compile_gateway_filter,
    count,
    iterate_gateway_ids,
    iterate_gateway_refs,
    iterate_ids,
    resolve,
)

__all__ = [
    "GatewayRef",
    "InvalidFilter",
    "compile_filter",
    "compile_gateway_filter",
    "count",
    "iterate_gateway_ids",
    "iterate_gateway_refs",
    "iterate_ids",
    "resolve",
]
