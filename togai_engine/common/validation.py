"""Field checks shared by domains: currency, country, email, ids, instants."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import pycountry
from babel.numbers import is_currency
from pydantic import BaseModel, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

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


# ISO 4217's code for "transactions where no currency is involved" (numeric 999): nothing can be invoiced in it
NO_CURRENCY = pycountry.currencies.get(numeric="999").alpha_3


def check_currency(value: str, field: str) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not is_currency(code):
        raise InvalidInput(field, f"{value!r} is not an ISO 4217 currency code; use e.g. USD, EUR, JPY")
    if code == NO_CURRENCY:
        raise InvalidInput(field, f"{NO_CURRENCY} is ISO 4217's code for no currency, which nothing can be invoiced "
                                  "in; use the currency you bill in, e.g. USD, EUR, JPY (XTS is the code for testing)")
    return code


def check_country(value: str, field: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidInput(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code; use e.g. US, DE, IN")
    return code


# RFC 5322 atext (the characters a dot-atom local part may use), plus any non-ASCII character (SMTPUTF8).
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
                         r"\u0080-\U0010FFFF]+)*$")
_DOMAIN_LABEL = re.compile(r"^[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?$")  # letters/digits, inner hyphens, 1-63 characters
EMAIL_EXAMPLE = "use e.g. billing@acme.com"


def check_email(value: str, field: str) -> str:
    """An email address checked for syntax only: local@domain.tld. Reserved and special-use domains
    (.test, .example, .localhost, .invalid) are accepted: CI pipelines and fixtures use them, and whether
    mail gets delivered is not the billing engine's concern. The domain is stored in lower case."""
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        reason = "it has no @" if not at else "nothing comes before the @" if not local else "no domain follows the @"
    elif "@" in local:
        reason = "it has more than one @"
    elif len(local) > 64:
        reason = f"the part before the @ is {len(local)} characters long; at most 64"
    elif not _LOCAL_PART.match(local):
        reason = ("the part before the @ may hold letters, digits and !#$%&'*+/=?^_`{|}~- separated by single dots "
                  "(no spaces, no leading or trailing dot)")
    elif len(value) > 254:
        reason = f"it is {len(value)} characters long; at most 254"
    else:
        labels = domain.split(".")
        if len(labels) < 2:
            reason = f"the domain {domain[:40]!r} needs a dot, as in acme.com"
        elif not all(_DOMAIN_LABEL.match(label) for label in labels):
            reason = (f"the domain {domain[:40]!r} must be dot-separated names of letters, digits and inner "
                      "hyphens")
        elif labels[-1].isdigit():
            reason = f"the domain {domain[:40]!r} ends in a number, not a top-level domain"
        else:
            return f"{local}@{domain.lower()}"
    raise InvalidInput(field, f"{value[:60]!r} is not a valid email address: {reason}; {EMAIL_EXAMPLE}")


def refuse_nulls(data: BaseModel, required: Sequence[str], owner: str) -> None:
    """In an update, null clears a field; a field `owner` cannot be without is refused as null, naming it."""
    for name in required:
        if name in data.model_fields_set and getattr(data, name) is None:
            raise InvalidInput(name, f"cannot be null: {owner} always has one. Omit {name} to keep the current "
                                     "value, or send a new one")


def clean_address(address: Address | None, field: str) -> dict[str, Any] | None:
    """An address as stored: empty parts dropped, the country checked (ISO 3166)."""
    if address is None:
        return None
    data = address.model_dump(exclude_none=True)
    if "country" in data:
        data["country"] = check_country(data["country"], f"{field}.country")
    return data or None


# The instants billing computes with: cycles, proration and expiries are computed a few cycles around an
# instant, and both Python's datetime (years 1-9999) and the partitioned events table must hold the results.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)
INSTANT_RANGE = "from 2000-01-01T00:00:00Z to 9000-01-01T00:00:00Z"
INSTANT_FORMS = ('an ISO 8601 date such as "2026-12-01" (00:00 UTC that day) or date-time such as '
                 '"2026-12-01T09:30:00Z" (without an offset it is UTC)')


def instant_text(moment: datetime) -> str:
    """An aware instant as the tools write instants: ISO 8601 in UTC with `Z` (2026-01-10T00:00:00Z)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_instant(value: datetime, field: str) -> datetime:
    """`value` in UTC (a date-time without an offset is UTC, as in Togai), refused outside the instants
    billing can compute with."""
    if value.tzinfo is UTC:  # already UTC (as every "...Z" parsed): a third of the cost of converting it
        moment = value
    else:
        try:
            moment = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
        except OverflowError:  # an offset that pushes the value past year 1 or 9999
            moment = None
    if moment is None or not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise _out_of_range(value.isoformat(), field)
    return moment


def _out_of_range(shown: str, field: str) -> InvalidInput:
    return InvalidInput(field, f"{shown} is out of the range billing computes with; send an instant {INSTANT_RANGE}")


def parse_instant(value: object, field: str) -> datetime:
    """An instant as a caller sends it (ISO 8601 text, or a date or datetime), in UTC: a date is 00:00 UTC
    that day, a date-time without an offset is UTC, one with an offset is converted. The one parser of every
    time a tool takes."""
    if type(value) is not str:  # text first: it is what every event sends
        if isinstance(value, datetime):
            return utc_instant(value, field)
        if isinstance(value, date):
            return utc_instant(datetime(value.year, value.month, value.day), field)
        raise InvalidInput(field, f"must be {INSTANT_FORMS}; got {json_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, _not_an_instant(value)) from None
    try:
        return utc_instant(moment, field)
    except InvalidInput:
        raise _out_of_range(repr(value), field) from None  # as sent, not as parsed


# ISO 8601 text Python's parser refuses: a leap second, and 24:00 (the end of a day)
_LEAP_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}T23:59:60")
_HOUR_24 = re.compile(r"(\d{4}-\d{2}-\d{2})T24:00(?::00(?:\.0+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _not_an_instant(value: str) -> str:
    if _LEAP_SECOND.match(value):
        return (f"{value[:40]!r} is a leap second, which instants here do not carry; send 23:59:59.999999 of that "
                "day (or 00:00:00 of the next)")
    if (end_of_day := _HOUR_24.match(value)) is not None:
        try:
            next_day = date.fromisoformat(end_of_day[1]) + timedelta(days=1)
        except (ValueError, OverflowError):
            next_day = None
        if next_day is not None:
            return (f"{value[:40]!r} is 24:00, the end of that day; send {next_day.isoformat()}T00:00:00"
                    f"{end_of_day[2] or ''} instead")
    return f"{value[:40]!r} is not {INSTANT_FORMS}"


def json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words (never a Python type name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another kind"


def _instant_argument(value: object) -> datetime:
    try:
        return parse_instant(value, "")
    except InvalidInput as exc:
        # pydantic puts the field's path in front of the message
        raise PydanticCustomError("instant", exc.reason) from None


INSTANT_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
}

# A time argument or schema field: parse_instant's forms and range, for every tool alike.
Instant = Annotated[datetime, BeforeValidator(_instant_argument), WithJsonSchema(INSTANT_JSON_SCHEMA)]


def check_card_names(names: Sequence[str], path: str, known: Sequence[str] | None = None, *,
                     whose: str = "this plan") -> None:
    """Rate card names a credit grant is limited to (applicableEntityIds, at `path`): each once and, with `known`,
    each the name of a card that puts lines on an invoice (of `whose` plan)."""
    for j, name in enumerate(names):
        if name in names[:j]:
            raise InvalidInput(f"{path}[{j}]", f"{name[:60]!r} is listed twice; list each rate card name once")
        if known is not None and name not in known:
            listed = ", ".join(repr(n) for n in sorted(known)) or "none"
            raise InvalidInput(f"{path}[{j}]", (
                f"{name[:60]!r} is not a usage, license, fixed-fee or entitlement overage rate card of {whose} (they "
                f"are: {listed}); name the cards whose invoice lines the grant may pay (list_rate_cards shows them)"))
