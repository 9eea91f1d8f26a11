"""A client connecting for the first time: `togai-engine serve` as a subprocess, as a user starts it.

Over HTTP: one line on stderr saying where it listens; a 401 that explains API keys and advertises no
OAuth; tools/list shows a key only what its scopes allow. On the embedded PostgreSQL: a line naming
the data folder served, and whether it is a new, empty one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from conftest import hosted
from mcp_server.registry import SPECS
from mcp_server.server import load_tools
from test_http_access import HEADERS, INIT, keyed_client, new_key

BIN = Path(sys.executable).parent / "togai-engine"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/mcp")


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[bytes]
    first_line: str

    def stop(self) -> str:
        """Stops the server; returns all it wrote to stderr."""
        self.process.terminate()
        _, rest = self.process.communicate(timeout=30)
        return self.first_line + rest.decode()


def start_http_server(env: dict[str, str]) -> HttpServer:
    proc = subprocess.Popen([str(BIN), "serve", "--transport", "http", "--port", "0"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = proc.stderr.readline().decode()  # the port is known only from this line (--port 0)
    match = LISTENING.fullmatch(first.strip())
    if match is None:
        proc.kill()
        raise AssertionError(f"expected the listening line first, got {first!r}")
    return HttpServer(url=f"http://127.0.0.1:{match.group(1)}/mcp", process=proc, first_line=first)


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    return env | {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}


@pytest.fixture
def http_server(database_url: str, db) -> Iterator[HttpServer]:
    server = start_http_server(server_env(database_url))
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


async def test_http_serve_writes_only_where_it_listens(http_server, db):
    key = await new_key(db, "*")
    async with httpx2.AsyncClient(timeout=30) as http:
        # the line is printed once the socket listens: the first request right after it is answered
        answered = await http.post(http_server.url, json=INIT, headers=HEADERS | {"Authorization": f"Bearer {key}"})
        assert answered.status_code == 200
        assert (await http.post(http_server.url, json=INIT, headers=HEADERS)).status_code == 401
    stderr = http_server.stop()
    assert "Warning" not in stderr
    assert stderr.splitlines() == [f"listening on {http_server.url}"]


async def test_a_request_without_a_key_learns_how_to_send_and_make_one(http_server, db):
    async with httpx2.AsyncClient(timeout=30) as http:
        missing = await http.post(http_server.url, json=INIT, headers=HEADERS)
        wrong = await http.post(http_server.url, json=INIT, headers=HEADERS | {"Authorization": "Bearer tge_nope"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="togai-engine"'
    body = missing.json()
    assert body["error"] == "api_key_required"
    assert body["error_description"].startswith("no API key was sent as Authorization: Bearer <key>. This server takes API keys, not OAuth")
    assert "'Authorization: Bearer <key>'" in body["error_description"]
    assert "togai-engine keys create --name <who uses it> --scopes <scope,...>" in body["error_description"]
    assert body["sendKey"] == "Authorization: Bearer <key>"
    assert body["makeKey"] == "togai-engine keys create --name <who uses it> --scopes <scope,...>"

    assert wrong.status_code == 401
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="togai-engine", error="invalid_token"')
    assert "resource_metadata" not in challenge
    assert wrong.json()["error_description"].startswith("the API key was not accepted (unknown, revoked or mistyped)")
    assert "togai-engine keys create" in wrong.json()["error_description"]


async def test_no_oauth_is_advertised(http_server):
    base = http_server.url.removesuffix("/mcp")
    async with httpx2.AsyncClient(timeout=30) as http:
        # where an OAuth client looks for metadata (RFC 9728, RFC 8414, OpenID), as MCP Inspector 2.x does
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
                     "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
            assert (await http.get(base + path)).status_code == 404, path
        # with no metadata it falls back to registering at /register, and shows the error body it gets
        registration = await http.post(base + "/register", json={"redirect_uris": ["http://localhost/cb"]})
    assert registration.status_code == 404
    assert registration.json()["error_description"].startswith(
        "there is no OAuth client registration here. This server takes API keys, not OAuth: send the header "
        "'Authorization: Bearer <key>'. Make a key on the server's machine with: togai-engine keys create")


async def test_tools_list_shows_a_key_only_the_tools_its_scopes_allow(http_server, db):
    load_tools()
    readers = await new_key(db, "customers:read")
    ingester = await new_key(db, "events:write", "billing:read")
    everything = await new_key(db, "*")

    def scoped(*scopes: str) -> set[str]:
        return {name for name, spec in SPECS.items() if spec.scope in scopes}

    expected = {readers: scoped("customers:read"), ingester: scoped("events:write", "billing:read"),
                everything: set(SPECS)}
    assert expected[readers] == {"get_customer", "list_customers", "list_accounts"}
    assert {"ingest_event", "void_event", "list_invoices"} <= expected[ingester]
    for key, names in expected.items():
        async with hosted(keyed_client(http_server.url, key)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == names
            if key == readers:  # a tool it is not shown is still refused by name, not unknown
                refused = await client.call_tool("ingest_event", {"event": {}})
                assert refused.is_error
                assert "lacks scope 'events:write', required by ingest_event" in refused.content[0].text


async def test_the_local_user_sees_every_tool(client):
    load_tools()
    assert {t.name for t in (await client.list_tools()).tools} == set(SPECS)


def serve_stdio_on_embedded(data_dir: Path) -> str:
    """Runs `serve` (stdio) on the embedded PostgreSQL until stdin closes; returns its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env |= {"TOGAI_DATA_DIR": str(data_dir), "TOGAI_BILLING_INTERVAL_SECONDS": "0"}
    done = subprocess.run([str(BIN), "serve"], env=env, input=b"", capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return done.stderr.decode()


def test_serve_on_the_embedded_default_names_its_data_folder():
    root = Path(tempfile.mkdtemp(prefix="togai-test-folder-"))  # see conftest: not pytest's tmp_path
    try:
        data = (root / "data").resolve()
        started = time.perf_counter()
        first = serve_stdio_on_embedded(data)
        assert first.splitlines() == [f"serving a new, empty data folder {data} (embedded PostgreSQL); set "
                                      "TOGAI_DATA_DIR to serve another one"]
        second = serve_stdio_on_embedded(data)
        assert second.splitlines() == [f"serving the data folder {data} (embedded PostgreSQL)"]
        print(f"two embedded starts {time.perf_counter() - started:.1f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_configured_database_gets_no_data_folder_line(database_url):
    env = server_env(database_url)
    done = subprocess.run([str(BIN), "serve"], env=env, input=b"", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert done.stderr.decode() == ""


def test_keys_are_made_as_the_401_says(database_url):
    made = subprocess.run([str(BIN), "keys", "create", "--name", "first-client", "--scopes", "customers:read"],
                          env=server_env(database_url), capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("tge_")  # the key, printed once
