"""docker-compose.yml's sandbox service agrees with the CLI (docker is not run here): its command parses as
`togai-engine serve`'s options and, run as written (on a free port, on a throwaway database), serves a
sandbox that its healthcheck and its own key reach; its database is made by the one-shot service's command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import typer
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.engine import make_url

from conftest import free_port, pg_connection
from mcp_server.cli import app
from togai_engine.common import validation
from togai_engine.settings import Settings, SettingsError, load_settings
from togai_engine.store.throwaway import THROWAWAY_PREFIX, ThrowawayServer
from togai_engine.testing.http_server import ServerProcess

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "togai-engine"
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${NAME}` / `${NAME:-default}` (an unset or empty NAME takes the default, else empty)."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    # a required variable (`${NAME:?}`) would stop `docker compose up` of every other service too
    assert not re.search(r"\$\{\w+:?\?", yaml.safe_dump(services))
    return services


def serve_options(arguments: list[str]) -> dict[str, Any]:
    """`arguments` after `togai-engine serve`, parsed by the CLI's own option parser."""
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    with serve.make_context("serve", list(arguments)) as context:
        return dict(context.params)


def published(port_mapping: str) -> tuple[str, int, int]:
    host, host_port, container_port = port_mapping.split(":")
    return host, int(host_port), int(container_port)


def test_the_sandbox_service_is_coherent_with_the_cli_and_the_main_service(compose: dict[str, Any]) -> None:
    sandbox, main, postgres = compose["togai-sandbox"], compose["togai"], compose["postgres"]
    assert sandbox["profiles"] == compose["togai-sandbox-db"]["profiles"] == ["sandbox"]
    assert sandbox["build"] == main["build"] == "."  # the same image
    assert sandbox["depends_on"] == {"togai-sandbox-db": {"condition": "service_completed_successfully"}}

    command = interpolate(sandbox["command"], {})
    assert command[:2] == ["togai-engine", "serve"]
    options = serve_options(command[2:])
    assert (options["sandbox"], options["transport"], options["host"]) == (True, "http", "0.0.0.0")
    assert validation.parse_instant(options["start"], "--start").isoformat() == "2026-01-01T00:00:00+00:00"
    assert serve_options(interpolate(sandbox["command"], {"TOGAI_SANDBOX_START": "2027-05-01"})[2:])["start"] \
        == "2027-05-01"

    (mapping,) = sandbox["ports"]
    host, host_port, container_port = published(mapping)
    assert host == "127.0.0.1" and container_port == options["port"]
    assert host_port not in {published(m)[1] for m in main["ports"]}  # both can run at once
    assert f"http://127.0.0.1:{options['port']}/healthz" in " ".join(sandbox["healthcheck"]["test"])

    env = sandbox["environment"]
    assert env["TOGAI_API_KEY"] == "${TOGAI_SANDBOX_API_KEY:-}" != main["environment"]["TOGAI_API_KEY"]
    url = make_url(env["TOGAI_DATABASE_URL"])
    main_url = make_url(main["environment"]["TOGAI_DATABASE_URL"])
    assert (url.host, url.port, url.username, url.password) == ("postgres", 5432, postgres["environment"][
        "POSTGRES_USER"], postgres["environment"]["POSTGRES_PASSWORD"])
    assert url.database != main_url.database  # its own database: a sandbox refuses one with real data
    assert f"createdb {url.database}" in compose["togai-sandbox-db"]["command"][-1]
    assert "togai-sandbox:*" in env["TOGAI_HTTP_ALLOWED_HOSTS"]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("TOGAI_")]:
        monkeypatch.delenv(name)
    yield


def test_without_its_key_the_sandbox_refuses_to_start(compose: dict[str, Any], settings_env: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    environment = interpolate(compose["togai-sandbox"]["environment"], {})
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="invalid setting TOGAI_API_KEY: String should have at least 24"):
        load_settings()
    monkeypatch.setenv("TOGAI_API_KEY", interpolate("${TOGAI_SANDBOX_API_KEY:-}", {"TOGAI_SANDBOX_API_KEY": "k" * 24}))
    settings = load_settings()
    assert isinstance(settings, Settings) and settings.billing_interval_seconds == 0


async def clock_over_http(url: str, key: str) -> dict[str, Any]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    async with Client(streamable_http_client(url, http_client=http)) as client:
        result = await client.call_tool("get_clock", {})
        assert not result.is_error, result.content
        return result.structured_content


async def test_the_sandbox_command_serves_a_sandbox_its_healthcheck_and_key_reach(
        compose: dict[str, Any], server_url: str) -> None:
    sandbox = compose["togai-sandbox"]
    port, key = free_port(), "sandbox-key-0123456789abcdef"
    command = [str(BIN) if part == "togai-engine" else part for part in interpolate(sandbox["command"], {})]
    command[command.index("--port") + 1] = str(port)
    throwaway = ThrowawayServer(server_url)
    database = await throwaway.create()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= interpolate(sandbox["environment"], {"TOGAI_SANDBOX_API_KEY": key}) | {"TOGAI_DATABASE_URL": database}
    server = ServerProcess(command, env)
    try:
        assert server.url() == f"http://0.0.0.0:{port}/mcp"
        health = [sys.executable if part == "python" else part.replace(":8000/", f":{port}/")
                  for part in sandbox["healthcheck"]["test"][1:]]
        assert subprocess.run(health, capture_output=True, timeout=30).returncode == 0
        clock = await clock_over_http(f"http://127.0.0.1:{port}/mcp", key)
        assert (clock["now"], clock["sandbox"]) == ("2026-01-01T00:00:00Z", True)
    finally:
        server.stop()
        await throwaway.drop(database)


@pytest.mark.skipif(shutil.which("psql") is None or shutil.which("createdb") is None,
                    reason="the one-shot service's command needs psql and createdb")
async def test_the_database_command_makes_the_sandbox_database_once(compose: dict[str, Any],
                                                                     server_url: str) -> None:
    one_shot = compose["togai-sandbox-db"]
    name = f"{THROWAWAY_PREFIX}compose_{os.getpid()}"
    script = one_shot["command"][-1].replace("togai_sandbox", name)
    assert script != one_shot["command"][-1]
    url = make_url(server_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {
        "PGHOST": url.query.get("host") or url.host or "", "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres", "PGPASSWORD": url.password or "", "PGDATABASE": "postgres"}
    try:
        for _ in range(2):  # a new volume, then an existing one
            ran = await anyio.to_thread.run_sync(lambda: subprocess.run(
                [*one_shot["command"][:-1], script], env=env, capture_output=True, text=True, timeout=60))
            assert ran.returncode == 0, ran.stderr
        async with pg_connection(server_url) as conn:
            assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 1
    finally:
        async with pg_connection(server_url) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
