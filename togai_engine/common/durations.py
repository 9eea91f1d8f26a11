"""ISO-8601 durations (Togai's `expiryDuration`, `featureConfigs[].effectiveUntil`, the sandbox clock's `by`): pure parsing."""

from __future__ import annotations

import re

from dateutil.relativedelta import relativedelta

from togai_engine.errors import InvalidInput

_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


def parse_duration(text: object, field: str) -> relativedelta:
    """'P1M' -> 1 month, 'P20D' -> 20 days, 'PT12H' -> 12 hours; calendar-aware (P1M from 31 Jan is 28/29 Feb)."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or str(text).endswith("T"):
        raise InvalidInput(field, f"{text!r} is not an ISO-8601 duration; use e.g. 'P1M', 'P20D' or 'PT12H'")
    parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    if not any(parts.values()):
        raise InvalidInput(field, f"{text!r} is a zero duration; give a positive one such as 'P1D'")
    return relativedelta(**parts)
