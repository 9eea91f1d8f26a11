"""Keyset pagination with an opaque token: stable under inserts, no duplicates, no gaps."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from togai_engine.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def encode_token(kind: str, key: list[Any]) -> str:
    raw = json.dumps({"k": kind, "after": key}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _not_a_token(kind: str) -> InvalidInput:
    return InvalidInput(
        "nextToken",
        f"is not a token issued by this list ({kind}); pass the nextToken of the previous page unchanged, "
        "or omit it to start from the first page",
    )


def decode_token(kind: str, token: str | None) -> list[Any] | None:
    """The keyset position after which the next page starts (a non-empty list); None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise _not_a_token(kind) from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("after"), list) \
            or not data["after"]:
        raise _not_a_token(kind)
    return data["after"]


def token_int(kind: str, value: object) -> int:
    """A keyset integer (a bigint column's value) read from a token of `kind`, or the nextToken error."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise _not_a_token(kind)
    return value


def check_page_size(page_size: int | None) -> int:
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}; got {size}")
    return size


async def fetch_page(
    session: AsyncSession,
    stmt: Select[Any],
    key: InstrumentedAttribute[int],
    kind: str,
    page_size: int | None,
    next_token: str | None,
    *,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `stmt` in keyset order on an integer column, and the token of the next page."""
    size = check_page_size(page_size)
    after = decode_token(kind, next_token)
    stmt = stmt.order_by(key.desc() if descending else key).limit(size + 1)
    if after:
        position = token_int(kind, after[0])
        stmt = stmt.where(key < position if descending else key > position)
    rows = list(await session.scalars(stmt))
    more = len(rows) > size
    rows = rows[:size]
    return rows, encode_token(kind, [getattr(rows[-1], key.key)]) if more else None
