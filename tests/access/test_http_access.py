"""The HTTP transport: API keys (401 without a valid one) and per-tool scopes, through real clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import free_port, hosted
from mcp_server.registry import SPECS
from mcp_server.server import load_tools
from togai_engine.apikeys.service import create_key, revoke_key

BIN = Path(sys.executable).parent / "togai-engine"


async def new_key(db, *scopes: str) -> str:
    async with db.unit_of_work() as session:
        return (await create_key(session, "test", list(scopes), datetime.now(UTC))).key


def keyed_client(url: str, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return Client(streamable_http_client(url, http_client=http))


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_missing_wrong_and_revoked_keys_get_401(http_server, db):
    good = await new_key(db, "customers:read")
    async with httpx2.AsyncClient(timeout=30) as http:
        assert (await http.post(http_server, json=INIT, headers=HEADERS)).status_code == 401
        wrong = HEADERS | {"Authorization": "Bearer tge_000000000000_notthesecret"}
        assert (await http.post(http_server, json=INIT, headers=wrong)).status_code == 401
        tampered = HEADERS | {"Authorization": f"Bearer {good[:-2]}xx"}
        assert (await http.post(http_server, json=INIT, headers=tampered)).status_code == 401
        ok = HEADERS | {"Authorization": f"Bearer {good}"}
        assert (await http.post(http_server, json=INIT, headers=ok)).status_code == 200
        async with db.unit_of_work() as session:
            await revoke_key(session, good.split("_")[1], datetime.now(UTC))
        assert (await http.post(http_server, json=INIT, headers=ok)).status_code == 401


async def test_foreign_host_header_is_refused(http_server, db):
    key = await new_key(db, "*")
    headers = HEADERS | {"Authorization": f"Bearer {key}", "Host": "evil.example:80"}
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(http_server, json=INIT, headers=headers)
    assert response.status_code in (400, 403, 421)


async def test_scope_is_named_in_the_refusal(http_server, db):
    key = await new_key(db, "customers:read")
    async with hosted(keyed_client(http_server, key)) as client:
        listed = await client.call_tool("list_customers", {})
        assert not listed.is_error
        refused = await client.call_tool("create_customer", {"name": "Nope"})
        assert refused.is_error
        assert "lacks scope 'customers:write', required by create_customer" in refused.content[0].text
    async with db.unit_of_work() as session:
        from sqlalchemy import text

        assert await session.scalar(text("select count(*) from customers")) == 0


async def test_every_tool_refused_without_its_scope_and_allowed_with_it(http_server, db):
    load_tools()
    scopes = sorted({spec.scope for spec in SPECS.values()})
    keys = {scope: await new_key(db, scope) for scope in scopes}
    checked = 0
    for scope in scopes:
        async with hosted(keyed_client(http_server, keys[scope])) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {name for name, spec in SPECS.items() if spec.scopes == (scope,)}
            for name, spec in sorted(SPECS.items()):
                result = await client.call_tool(name, {})
                text = result.content[0].text if result.content else ""
                if spec.scopes == (scope,):
                    assert "lacks scope" not in text, (name, text)
                else:  # the first scope of the tool's that the key lacks
                    missing = next(needed for needed in spec.scopes if needed != scope)
                    assert result.is_error and f"lacks scope '{missing}', required by {name}" in text
                checked += 1
    assert checked == len(scopes) * len(SPECS)
    print(f"scope matrix: {len(SPECS)} tools x {len(scopes)} scopes")


@pytest.fixture
async def env_key_server(database_url: str, db) -> AsyncIterator[tuple[str, str]]:
    port = free_port()
    key = "container-secret-0123456789abcdef"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0", "TOGAI_API_KEY": key}
    proc = subprocess.Popen([str(BIN), "serve", "--transport", "http", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx2.AsyncClient(timeout=5) as http:
            for _ in range(150):
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
        yield f"{base}/mcp", key
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_key_from_environment_and_health_route(env_key_server):
    url, key = env_key_server
    async with httpx2.AsyncClient(timeout=5) as http:
        health = await http.get(url.replace("/mcp", "/healthz"))
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    async with hosted(keyed_client(url, key)) as client:
        result = await client.call_tool("create_customer", {"id": "from_container", "name": "Container"})
        assert not result.is_error
        log = await client.call_tool("list_audit_log", {})
        assert log.structured_content["data"][0]["actor"] == "key:env"


def test_compose_file_describes_postgres_and_the_http_server():
    import yaml

    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    services = compose["services"]
    # the sandbox's services (tests/testing_plugin/test_compose_sandbox.py) start only when asked for
    assert set(services) == {"postgres", "togai", "togai-sandbox-db", "togai-sandbox"}
    assert "profiles" not in services["postgres"] and "profiles" not in services["togai"]
    assert services["togai"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["togai"]
    command = (Path(__file__).parents[2] / "Dockerfile").read_text()
    assert '"--transport", "http"' in command
    assert services["togai"]["environment"]["TOGAI_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["togai"]["ports"] == ["127.0.0.1:8000:8000"]


async def test_consume_needs_events_write_on_top_of_entitlements_read(http_server, db):
    read_only = await new_key(db, "entitlements:read")
    async with hosted(keyed_client(http_server, read_only)) as client:
        checked = await client.call_tool("check_entitlement", {"accountId": "nobody", "featureId": "f"})
        assert checked.is_error and "account 'nobody' does not exist" in checked.content[0].text  # checks run
        refused = await client.call_tool("check_entitlement", {"accountId": "nobody", "featureId": "f",
                                                               "consume": {"id": "e1", "schemaName": "api"}})
        assert refused.is_error
        assert "lacks scope 'events:write', required by check_entitlement with consume" in refused.content[0].text
    both = await new_key(db, "entitlements:read", "events:write")
    async with hosted(keyed_client(http_server, both)) as client:
        allowed = await client.call_tool("check_entitlement", {"accountId": "nobody", "featureId": "f",
                                                               "consume": {"id": "e1", "schemaName": "api"}})
        assert allowed.is_error and "account 'nobody' does not exist" in allowed.content[0].text  # past the scope


async def test_consume_without_events_write_is_refused_before_its_arguments_are_read(http_server, db):
    # as every scope check (TogaiServer.call_tool): a caller without the scope learns nothing about its input
    read_only = await new_key(db, "entitlements:read")
    async with hosted(keyed_client(http_server, read_only)) as client:
        refused = await client.call_tool("check_entitlement", {"accountId": "nobody", "featureId": "f",
                                                               "quantity": "lots",
                                                               "consume": {"id": "e1", "schemaName": "api"}})
        assert refused.is_error
        assert "lacks scope 'events:write', required by check_entitlement with consume" in refused.content[0].text
