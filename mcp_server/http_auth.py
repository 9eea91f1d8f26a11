"""Bearer API keys for the HTTP transport, through the MCP SDK's token verification."""

from __future__ import annotations

import hmac
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from togai_engine.apikeys.service import verify_key
from togai_engine.store.database import Database


class ApiKeyVerifier:
    def __init__(self, db: Database, env_key: str | None = None) -> None:
        self.db = db
        self.env_key = env_key

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.env_key is not None and hmac.compare_digest(token.encode(), self.env_key.encode()):
            return AccessToken(token="[redacted]", client_id="env", scopes=["*"])
        async with self.db.unit_of_work() as session:
            key = await verify_key(session, token)
        if key is None:
            return None
        return AccessToken(token="[redacted]", client_id=key.id, scopes=key.scopes)


def auth_options(db: Database, host: str, port: int, env_key: str | None = None) -> dict[str, Any]:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return {
        "token_verifier": ApiKeyVerifier(db, env_key),
        "auth": AuthSettings(issuer_url=base, resource_server_url=f"{base}/mcp", required_scopes=None),
    }
