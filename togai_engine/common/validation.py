"""Field checks shared by domains: currency, country, email, ids."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pycountry
from babel.numbers import is_currency
from email_validator import EmailNotValidError, validate_email

from togai_engine.common.schemas import Address
from togai_engine.errors import InvalidInput


def error_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location in the engine's field-path style: rateCards.usageRateCards[0].ratePlan."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,49}$")


def check_id(value: str, field: str) -> str:
    if not ID_PATTERN.match(value):
        raise InvalidInput(
            field,
            f"{value!r} is not a valid id: use 1-50 characters of letters, digits, '_', '-', '.', ':' "
            "starting with a letter or digit",
        )
    return value


def check_currency(value: str, field: str) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not is_currency(code):
        raise InvalidInput(field, f"{value!r} is not an ISO 4217 currency code; use e.g. USD, EUR, JPY")
    return code


def check_country(value: str, field: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidInput(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code; use e.g. US, DE, IN")
    return code


def check_email(value: str, field: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(field, f"{value!r} is not a valid email address ({exc})") from None


def clean_address(address: Address | None, field: str) -> dict[str, Any] | None:
    """An address as stored: empty parts dropped, the country checked (ISO 3166)."""
    if address is None:
        return None
    data = address.model_dump(exclude_none=True)
    if "country" in data:
        data["country"] = check_country(data["country"], f"{field}.country")
    return data or None


def utc_instant(value: datetime, field: str) -> datetime:
    """An aware instant in UTC; a naive one is refused (its meaning would depend on the server's zone)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, f"{value.isoformat()} has no timezone; send an ISO 8601 instant such as "
                                  "2026-02-01T00:00:00Z")
    return value.astimezone(UTC)
