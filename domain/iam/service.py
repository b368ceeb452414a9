"""Users, passwords, memberships and tokens.

Passwords are argon2id hashes. Access tokens are HS256 JWTs carrying only the user id; roles are
looked up per request, so a revoked membership takes effect at once.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from domain.audit.repository import record
from domain.iam import repository
from domain.iam.models import Membership, User
from domain.iam.roles import Role
from domain.tenancy.models import Tenant

USERNAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._@-]{1,99}$")
MIN_PASSWORD_LENGTH = 12
TOKEN_ALGORITHM = "HS256"
TOKEN_AUDIENCE = "gridgate-api"

_hasher = PasswordHasher()
# Verifying against this hash for unknown users keeps login timing independent of user existence.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


class UserExists(Conflict):
    code = "user_exists"


class UserNotFound(NotFound):
    code = "user_not_found"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class InvalidToken(Unauthorized):
    code = "invalid_token"


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def validate_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username or ""):
        raise InvalidInput(
            f"invalid username {username!r}: 2-100 of letters, digits, '.', '_', '@', '-'",
            code="invalid_username",
        )
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password too short: at least {MIN_PASSWORD_LENGTH} characters", code="weak_password"
        )
    return password


def validate_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}", code="invalid_role"
        ) from None


async def create_user(
    session: AsyncSession, username: str, password: str, *, superadmin: bool = False
) -> User:
    validate_username(username)
    validate_password(password)
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserExists(f"user {username!r} already exists")
    user = User(username=username, password_hash=_hasher.hash(password), is_superadmin=superadmin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise UserExists(f"user {username!r} already exists") from None
    record(session, "create", "user", username, {"superadmin": superadmin}, platform=True)
    return user


async def get_user(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserNotFound(f"user {username!r} not found")
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    validate_password(password)
    user.password_hash = _hasher.hash(password)
    record(session, "set_password", "user", user.username, platform=True)


async def grant(
    session: AsyncSession, user: User, tenant: Tenant, role: str, *, market_partner_id: str | None = None
) -> Membership:
    """Give ``user`` a role in ``tenant`` (replaces an existing membership's role)."""
    validated = validate_role(role)
    if validated is Role.EMT and market_partner_id is not None and not re.fullmatch(r"\d{13}",
                                                                                     market_partner_id):
        raise InvalidInput("market partner ID must be 13 digits", code="invalid_market_partner_id")
    membership = await repository.membership(session, user.id, tenant.id)
    old = membership.role if membership else None
    if membership is None:
        membership = Membership(user_id=user.id, tenant_id=tenant.id, role=validated.value,
                                market_partner_id=market_partner_id)
        session.add(membership)
    else:
        membership.role = validated.value
        membership.market_partner_id = market_partner_id
    await session.flush()
    record(session, "grant", "membership", f"{tenant.name}/{user.username}",
           {"role": {"old": old, "new": validated.value}}, platform=True)
    return membership


async def revoke(session: AsyncSession, user: User, tenant: Tenant) -> None:
    membership = await repository.membership(session, user.id, tenant.id)
    if membership is None:
        raise NotFound(f"{user.username!r} is not a member of {tenant.name!r}", code="membership_not_found")
    await session.delete(membership)
    record(session, "revoke", "membership", f"{tenant.name}/{user.username}",
           {"role": {"old": membership.role, "new": None}}, platform=True)


async def membership_of(session: AsyncSession, user_id: int, tenant_id: int) -> Membership | None:
    return await repository.membership(session, user_id, tenant_id)


async def members(session: AsyncSession, tenant: Tenant) -> Sequence[tuple[User, Membership]]:
    rows = await session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant.id)
        .order_by(User.username)
    )
    return [(u, m) for u, m in rows]


async def tenants_of(session: AsyncSession, user: User) -> Sequence[tuple[Tenant, str | None]]:
    """Tenants the user may see, with the user's role (None for a superadmin without membership)."""
    if user.is_superadmin:
        rows = await session.execute(
            select(Tenant, Membership.role)
            .outerjoin(Membership, (Membership.tenant_id == Tenant.id) & (Membership.user_id == user.id))
            .order_by(Tenant.name)
        )
    else:
        rows = await session.execute(
            select(Tenant, Membership.role)
            .join(Membership, Membership.tenant_id == Tenant.id)
            .where(Membership.user_id == user.id)
            .order_by(Tenant.name)
        )
    return [(t, r) for t, r in rows]


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise InvalidCredentials("wrong username or password") from None
    if user is None or not user.is_active:
        raise InvalidCredentials("wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = datetime.now(UTC)
    return user


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_at: datetime


def issue_token(user: User, secret: bytes, ttl: timedelta) -> IssuedToken:
    now = datetime.now(UTC)
    expires = now + ttl
    claims = {
        "sub": str(user.id),
        "name": user.username,
        "aud": TOKEN_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return IssuedToken(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM), expires)


def decode_token(token: str, secret: bytes) -> int:
    """The user id of a valid token."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[TOKEN_ALGORITHM], audience=TOKEN_AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
        return int(claims["sub"])
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired", code="token_expired") from None
    except (jwt.PyJWTError, ValueError):
        raise InvalidToken("malformed or invalid token") from None
