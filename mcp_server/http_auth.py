"""Bearer API keys for the HTTP transport, through the MCP SDK's token verification.

Keys are made on the server's machine (`togai-engine keys create`); there is no OAuth authorization
server. So the server advertises none: no protected-resource metadata, and no `resource_metadata` in
its 401s. (Advertising one sent OAuth clients such as MCP Inspector to registration endpoints that do
not exist: "Dynamic Client Registration rejected (HTTP 404)".) A 401 says instead how to send a key and
how to make one.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.auth import ENV_KEY_ID
from togai_engine.apikeys.service import verify_key
from togai_engine.store.database import Database

REALM = "togai-engine"
SEND_KEY = "Authorization: Bearer <key>"
MAKE_KEY = "togai-engine keys create --name <who uses it> --scopes <scope,...>"


class ApiKeyVerifier:
    def __init__(self, db: Database, env_key: str | None = None) -> None:
        self.db = db
        self.env_key = env_key

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.env_key is not None and hmac.compare_digest(token.encode(), self.env_key.encode()):
            return AccessToken(token="[redacted]", client_id=ENV_KEY_ID, scopes=["*"])
        async with self.db.unit_of_work() as session:
            key = await verify_key(session, token)
        if key is None:
            return None
        return AccessToken(token="[redacted]", client_id=key.id, scopes=key.scopes)


def auth_options(db: Database, host: str, port: int, env_key: str | None = None) -> dict[str, Any]:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return {
        "token_verifier": ApiKeyVerifier(db, env_key),
        # The SDK's settings require an issuer; without an authorization-server provider and without a
        # resource_server_url it is never published (no metadata route, no resource_metadata).
        "auth": AuthSettings(issuer_url=base, resource_server_url=None, required_scopes=None),
    }


def how_to_authenticate(problem: str) -> str:
    return (f"{problem}. This server takes API keys, not OAuth: send the header '{SEND_KEY}'. Make a key on the "
            f"server's machine with: {MAKE_KEY} (scopes per tool in the README; '*' for all).")


async def no_client_registration(_: Request) -> JSONResponse:
    """POST /register: an OAuth client that finds no authorization server falls back to registering here
    (MCP Inspector does); its error shows this body, so the body says what to do instead."""
    return JSONResponse({"error": "not_found", "error_description": how_to_authenticate(
        "there is no OAuth client registration here")}, status_code=404)


def unauthorized_answer(key_sent: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and JSON body of a 401: what was wrong, how to send a key, how to make one."""
    if key_sent:
        problem = "the API key was not accepted (unknown, revoked or mistyped)"
        challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{problem}"'
        error = "invalid_token"
    else:
        problem = "no API key was sent as Authorization: Bearer <key>"
        challenge = f'Bearer realm="{REALM}"'
        error = "api_key_required"
    body = json.dumps({
        "error": error,
        "error_description": how_to_authenticate(problem),
        "sendKey": SEND_KEY,
        "makeKey": MAKE_KEY,
    }).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", challenge.encode()),
    ]
    return headers, body


def bearer_sent(scope: Scope) -> bool:
    return any(name == b"authorization" and value[:7].lower() == b"bearer " for name, value in scope["headers"])


class ExplainUnauthorized:
    """Replaces the SDK's 401 (an OAuth-style `invalid_token` / "Authentication required", which says
    nothing about keys) with `unauthorized_answer`. Everything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_explained(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                replaced = True
                headers, body = unauthorized_answer(bearer_sent(scope))
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            elif not replaced:  # the SDK's own 401 body is dropped
                await send(message)

        await self.app(scope, receive, send_explained)
