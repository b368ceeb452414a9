"""Token issuance (OAuth2 password flow) and who-am-I."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentCaller, StateDep
from api.routers.codec import COOKIE as CODEC_COOKIE
from api.schemas import MeOut, TenantMembershipOut, TokenResponse
from core.context import set_actor
from domain.iam.models import User
from domain.iam.service import authenticate, issue_token, tenants_of

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/token", response_model=TokenResponse)
async def token(state: StateDep, form: Annotated[OAuth2PasswordRequestForm, Depends()],
                response: Response) -> TokenResponse:
    """A bearer token. Also set as an HttpOnly cookie valid only for the read-only codec endpoint,
    so the Temporal UI (same site) can show this user's tenants' decrypted payloads."""
    ttl = timedelta(minutes=state.settings.token_ttl_minutes)
    async with state.dbs.control_sessions() as session, session.begin():
        user = await authenticate(session, form.username, form.password)
        set_actor(f"user:{user.username}")
        issued = issue_token(user, state.token_secret, ttl)
    response.set_cookie(CODEC_COOKIE, issued.access_token, max_age=int(ttl.total_seconds()), path="/api/v1/codec",
                        httponly=True, samesite="lax", secure=state.settings.mode == "production")
    return TokenResponse(access_token=issued.access_token, expires_at=issued.expires_at)


@router.get("/me", response_model=MeOut)
async def me(state: StateDep, caller: CurrentCaller) -> MeOut:
    async with state.dbs.control_sessions() as session:
        user = await session.get(User, caller.user_id)
        assert user is not None
        tenants = await tenants_of(session, user)
    return MeOut(
        username=caller.username,
        is_superadmin=caller.is_superadmin,
        tenants=[TenantMembershipOut(tenant=t.name, role=r) for t, r in tenants],
    )
