"""Who is calling: the local stdio user (all scopes) or the holder of an HTTP API key."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token


@dataclass(frozen=True)
class Principal:
    actor: str
    scopes: frozenset[str] | None  # None = every scope (the local user on stdio)

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes or "*" in self.scopes


LOCAL = Principal(actor="local", scopes=None)


def current_principal() -> Principal:
    token = get_access_token()
    if token is None:
        return LOCAL
    return Principal(actor=f"key:{token.client_id}", scopes=frozenset(token.scopes))
