"""The real MCP Inspector (2.x, CLI mode) against `togai-engine serve`, over stdio and HTTP.

Opt-in, as it needs npm's registry (or a cache) and Node: set TOGAI_TEST_INSPECTOR=1 to run it through
`npx -y @modelcontextprotocol/inspector@2.12.0`, or to the command that starts an Inspector, e.g.
TOGAI_TEST_INSPECTOR="node22 /path/to/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js".
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.registry import SPECS
from mcp_server.server import load_tools
from test_clients_connect import server_env, start_http_server
from test_http_access import new_key

BIN = Path(sys.executable).parent / "togai-engine"
PINNED = "npx -y @modelcontextprotocol/inspector@2.12.0"
SETTING = os.environ.get("TOGAI_TEST_INSPECTOR", "")
INSPECTOR = shlex.split(PINNED if SETTING == "1" else SETTING)

pytestmark = [
    pytest.mark.skipif(not INSPECTOR, reason="opt-in: set TOGAI_TEST_INSPECTOR=1 (npx) or to an Inspector command"),
    pytest.mark.skipif(bool(INSPECTOR) and shutil.which(INSPECTOR[0]) is None,
                       reason=f"{INSPECTOR[0] if INSPECTOR else ''} is not installed"),
]


def inspector(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")}
    env["MCP_INSPECTOR_SECRET_STORE"] = "memory"  # no OS keychain here, and nothing to keep
    return subprocess.run([*INSPECTOR, "--cli", *arguments], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def listed(done: subprocess.CompletedProcess[str]) -> set[str]:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {tool["name"] for tool in json.loads(done.stdout)["tools"]}


def test_inspector_lists_every_tool_over_stdio_without_portability_warnings(database_url):
    load_tools()
    # The Inspector passes the server none of this shell's environment: every variable goes with -e.
    passed = [f"{k}={v}" for k, v in server_env(database_url).items() if k.startswith("TOGAI_") or k == "PYTHONPATH"]
    done = inspector(*[a for pair in passed for a in ("-e", pair)], str(BIN), "serve",
                     "--method", "tools/list", "--strict")
    assert listed(done) == set(SPECS)
    assert "Warning: tool" not in done.stderr and "Error: tool" not in done.stderr


async def test_inspector_over_http_with_and_without_a_key(database_url, db):
    load_tools()
    key = await new_key(db, "customers:read")
    server = start_http_server(server_env(database_url))
    try:
        with_key = inspector(server.url, "--header", f"Authorization: Bearer {key}", "--method", "tools/list",
                             "--strict")
        assert listed(with_key) == {"get_customer", "list_customers", "list_accounts"}
        # Without a TTY the Inspector would try interactive OAuth; --stored-auth-only shows the 401 instead.
        without = inspector(server.url, "--method", "tools/list", "--stored-auth-only")
        assert without.returncode != 0
        assert "no API key was sent" in without.stdout + without.stderr
        assert "togai-engine keys create" in without.stdout + without.stderr
    finally:
        server.stop()
