"""Generated ids: a readable prefix plus a random, sortable-enough suffix."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
