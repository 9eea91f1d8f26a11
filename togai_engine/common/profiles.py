"""Stored profile fields (address, metadata) as customers and accounts read them back."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from togai_engine.common.messages import describe_errors, join_path
from togai_engine.common.schemas import Address

_METADATA = TypeAdapter(dict[str, str])


def stored_profile(address: Any, metadata: Any, owner: str, tool: str
                   ) -> tuple[Address | None, dict[str, str] | None, str | None]:
    """A stored address and metadata as read back, and a problem: one that no longer validates (a hand edit, stricter
    checks since) is shown as null and named, with `tool`, the call that sets it again (`owner` names the record), so
    one row never fails a listing of many, nor the rest of its own record."""
    shown_address = shown_metadata = None
    broken: list[tuple[str, ValidationError]] = []
    if address:
        try:
            shown_address = Address.model_validate(address)
        except ValidationError as exc:
            broken.append(("address", exc))
    if metadata is not None:
        try:
            shown_metadata = _METADATA.validate_python(metadata)
        except ValidationError as exc:
            broken.append(("metadata", exc))
    if not broken:
        return shown_address, shown_metadata, None
    names = [name for name, _ in broken]
    described = "; ".join(f"{join_path(name, path)}: {message}" for name, exc in broken
                          for path, message in describe_errors(exc))
    return shown_address, shown_metadata, (
        f"the stored {' and '.join(names)} of {owner} no longer validate{'s' if len(names) == 1 else ''} ({described}), "
        f"so {'it is' if len(names) == 1 else 'they are'} shown as null; set {'it' if len(names) == 1 else 'them'} "
        f"again with {tool}({', '.join(names)})")
