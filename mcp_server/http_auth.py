"""Bearer API keys for the HTTP transport, through the MCP SDK's token verification."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from togai_engine.apikeys.service import verify_key
from togai_engine.store.database import Database


class ApiKeyVerifier:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def verify_token(self, token: str) -> AccessToken | None:
        async with self.db.unit_of_work() as session:
            key = await verify_key(session, token)
        if key is None:
            return None
        return AccessToken(token="[redacted]", client_id=key.id, scopes=key.scopes)


def auth_options(db: Database, host: str, port: int) -> dict[str, Any]:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return {
        "token_verifier": ApiKeyVerifier(db),
        "auth": AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp", required_scopes=None),
    }
