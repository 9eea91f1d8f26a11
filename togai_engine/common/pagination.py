"""Keyset pagination with an opaque token: stable under inserts, no duplicates, no gaps."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from togai_engine.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def encode_token(kind: str, key: list[Any]) -> str:
    raw = json.dumps({"k": kind, "after": key}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# A token holds a list name and a few keys (ids of at most a few dozen characters, times, integers).
MAX_TOKEN_CHARS = 2048


def not_a_token(kind: str) -> InvalidInput:
    """`kind` is not quoted: it may hold an id the caller sent (wallet_entries:<account>)."""
    return InvalidInput(
        "nextToken",
        "is not a token this server issued for this list; pass the previous page's nextToken unchanged, "
        "or omit it to start from the first page",
    )


def decode_token(kind: str, token: str | None) -> list[Any] | None:
    """The keyset position after which the next page starts (a non-empty list); None for the first page.

    Anything else is the nextToken error: text that is not base64 of JSON, JSON the parser gives up on
    (nested past its recursion limit, an integer of thousands of digits), or JSON of another shape."""
    if not token:
        return None
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise not_a_token(kind)
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise not_a_token(kind) from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("after"), list) \
            or not data["after"]:
        raise not_a_token(kind)
    return data["after"]


def token_int(kind: str, value: object) -> int:
    """A keyset integer (a bigint column's value) read from a token of `kind`, or the nextToken error."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise not_a_token(kind)
    return value


def check_page_size(page_size: int | None) -> int:
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}; got {size}")
    return size


def decode_position(kind: str, token: str | None, keys: Sequence[InstrumentedAttribute[Any]]) -> tuple[Any, ...] | None:
    """The keyset position of a token of `kind`, one value per key column, each checked against the
    column's type (an integer within bigint, a time with its offset, a text); None for the first page."""
    after = decode_token(kind, token)
    if after is None:
        return None
    if len(after) != len(keys):
        raise not_a_token(kind)
    return tuple(_key_value(kind, key.type.python_type, value) for key, value in zip(keys, after, strict=True))


def _key_value(kind: str, python_type: type, value: object) -> Any:
    if python_type is int:
        return token_int(kind, value)
    if python_type is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                # in UTC, as the database compares it: an instant the server issued always converts
                return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise not_a_token(kind) from None
    if python_type is str and isinstance(value, str):
        return value
    raise not_a_token(kind)


async def fetch_page(
    session: AsyncSession,
    stmt: Select[Any],
    key: InstrumentedAttribute[Any] | tuple[InstrumentedAttribute[Any], ...],
    kind: str,
    page_size: int | None,
    next_token: str | None,
    *,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `stmt` in keyset order on `key` (a unique column, or columns unique together: integers,
    times, texts), and the token of the next page."""
    keys = key if isinstance(key, tuple) else (key,)
    size = check_page_size(page_size)
    position = decode_position(kind, next_token, keys)
    stmt = stmt.order_by(*(k.desc() if descending else k for k in keys)).limit(size + 1)
    if position is not None:
        row, at = (keys[0], position[0]) if len(keys) == 1 else (tuple_(*keys), tuple_(*position))
        stmt = stmt.where(row < at if descending else row > at)
    rows = list(await session.scalars(stmt))
    more = len(rows) > size
    rows = rows[:size]
    if not more:
        return rows, None
    last = [getattr(rows[-1], k.key) for k in keys]
    return rows, encode_token(kind, [v.isoformat() if isinstance(v, datetime) else v for v in last])
