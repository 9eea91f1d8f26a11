"""API keys: created with scopes, stored hashed, verified in constant time, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from togai_engine.apikeys.models import ApiKeyRow
from togai_engine.apikeys.scopes import SCOPES
from togai_engine.common.schemas import Model
from togai_engine.errors import InvalidInput, NotFound

PREFIX = "tge"


class ApiKey(Model):
    id: str
    name: str
    scopes: list[str]
    createdAt: datetime
    revokedAt: datetime | None


class CreatedKey(Model):
    key: str  # shown once
    apiKey: ApiKey


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _schema(row: ApiKeyRow) -> ApiKey:
    return ApiKey(id=row.id, name=row.name, scopes=list(row.scopes), createdAt=row.created_at,
                  revokedAt=row.revoked_at)


def check_scopes(scopes: list[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in scopes if s.strip()})
    if not cleaned:
        raise InvalidInput("scopes", "give at least one scope, e.g. customers:read, or * for all")
    for scope in cleaned:
        if scope != "*" and scope not in SCOPES:
            raise InvalidInput("scopes", f"unknown scope {scope!r}; known: {', '.join(SCOPES)} or *")
    return cleaned


async def create_key(session: AsyncSession, name: str, scopes: list[str], now: datetime) -> CreatedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKeyRow(id=key_id, name=name, secret_hash=_hash(secret), scopes=check_scopes(scopes), created_at=now)
    session.add(row)
    await session.flush()
    return CreatedKey(key=f"{PREFIX}_{key_id}_{secret}", apiKey=_schema(row))


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return [_schema(r) for r in await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]


async def revoke_key(session: AsyncSession, key_id: str, now: datetime) -> ApiKey:
    row = await session.get(ApiKeyRow, key_id, with_for_update=True)
    if row is None:
        raise NotFound(f"API key {key_id!r} does not exist; `togai-engine keys list` shows the ids")
    if row.revoked_at is None:
        row.revoked_at = now
    await session.flush()
    return _schema(row)


async def live_key_ids(session: AsyncSession, key_ids: set[str]) -> set[str]:
    """Those of `key_ids` that name a key not revoked."""
    if not key_ids:
        return set()
    return set(await session.scalars(select(ApiKeyRow.id).where(ApiKeyRow.id.in_(key_ids),
                                                                  ApiKeyRow.revoked_at.is_(None))))


async def verify_key(session: AsyncSession, presented: str) -> ApiKey | None:
    """The key's record if `presented` is a live key; None otherwise (never says which part was wrong)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    row = await session.get(ApiKeyRow, parts[1])
    expected = row.secret_hash if row is not None else _hash("no such key")
    matches = hmac.compare_digest(expected, _hash(parts[2]))
    if row is None or not matches or row.revoked_at is not None:
        return None
    return _schema(row)
