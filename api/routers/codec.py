"""Codec endpoint for the Temporal UI: decodes (and encodes) a tenant's encrypted payloads for users
allowed to read that tenant.

The Temporal UI posts ``{"payloads": [...]}`` to ``<endpoint>/decode`` with the namespace in the
``X-Namespace`` header. The caller authenticates with a bearer token, or with the ``gridgate_codec``
cookie that ``POST /api/v1/auth/token`` sets for this path only (the UI cannot attach our bearer
token; it can send same-site cookies with "include credentials"). Decoding changes nothing, so the
cookie carries no cross-site-request risk; no other route accepts it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header
from google.protobuf import json_format
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload

from api.deps import Caller, StateDep, current_caller, mark_dependency, oauth2_scheme
from core.codec import PayloadKeyMismatch, TenantPayloadCodec
from core.errors import InvalidInput
from domain.iam.access import access_by_namespace
from domain.iam.roles import Permission

router = APIRouter(prefix="/api/v1/codec", tags=["codec"])
COOKIE = "gridgate_codec"


async def codec_caller(
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)] = None,
    cookie: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> Caller:
    return await current_caller(state, token or cookie)


mark_dependency(codec_caller, gridgate_auth=True)


class Payloads(BaseModel):
    payloads: list[dict[str, Any]]


async def _codec(state: StateDep, caller: Caller, namespace: str | None) -> TenantPayloadCodec:
    if not namespace:
        raise InvalidInput("the X-Namespace header is required", code="namespace_required")
    async with state.dbs.control_sessions() as session:
        await access_by_namespace(session, namespace, user_id=caller.user_id, superadmin=caller.is_superadmin,
                                  permission=Permission.TENANT_READ,
                                  denied="reading process payloads needs read access to the tenant")
    return TenantPayloadCodec(state.settings.resolved_secret("master_key"), namespace)


def _parse(body: Payloads) -> list[Payload]:
    try:
        return [json_format.ParseDict(p, Payload()) for p in body.payloads]
    except (json_format.ParseError, ValueError, TypeError):
        raise InvalidInput("payloads are not Temporal Payload JSON", code="invalid_payloads") from None


def _dump(payloads: list[Payload]) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


@router.post("/decode")
async def decode(state: StateDep, body: Payloads, caller: Annotated[Caller, Depends(codec_caller)],
                 x_namespace: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    codec = await _codec(state, caller, x_namespace)
    try:
        return _dump(await codec.decode(_parse(body)))
    except PayloadKeyMismatch as err:
        raise InvalidInput(str(err), code="payload_not_of_this_namespace") from None


@router.post("/encode")
async def encode(state: StateDep, body: Payloads, caller: Annotated[Caller, Depends(codec_caller)],
                 x_namespace: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    codec = await _codec(state, caller, x_namespace)
    return _dump(await codec.encode(_parse(body)))
