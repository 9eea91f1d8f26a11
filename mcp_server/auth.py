"""Who is calling: the local stdio user (all scopes) or the holder of an HTTP API key."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.auth.middleware.auth_context import get_access_token

# The client id of TOGAI_API_KEY, the key from the environment: not a stored key, so it cannot be revoked.
ENV_KEY_ID = "env"


@dataclass(frozen=True)
class Principal:
    actor: str
    scopes: frozenset[str] | None  # None = every scope (the local user on stdio)
    key_id: str | None = None  # the stored API key's id, which can be revoked; None: local, or the environment's

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes or "*" in self.scopes


LOCAL = Principal(actor="local", scopes=None)


def current_principal() -> Principal:
    token = get_access_token()
    if token is None:
        return LOCAL
    stored = None if token.client_id == ENV_KEY_ID else token.client_id
    return Principal(actor=f"key:{token.client_id}", scopes=frozenset(token.scopes), key_id=stored)
