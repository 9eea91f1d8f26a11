"""The pytest plugin for pipelines that test their own billing against a throwaway togai engine.

Enable it with `pytest -p togai_engine.testing`, `addopts = "-p togai_engine.testing"` in the project's pytest
configuration, or `pytest_plugins = ["togai_engine.testing"]` in the top-level conftest.py. It is not
registered as an auto-loaded `pytest11` entry point: that would import the whole MCP server into every pytest
run of every project that merely installs togai-engine.

It is the top of the stack, a client of the whole product like the CLI: it imports mcp_server, and nothing in
togai_engine or mcp_server imports it (tests/store/test_import_graph.py holds both).

Fixtures (README, "Testing your billing"):
- `togai_server_url` (session): the PostgreSQL server the sandboxes are made on.
- `togai_start`: the sandbox's starting time (`@pytest.mark.togai_start("2026-03-01")`, or override it).
- `togai`: a clean sandbox engine per test, called synchronously (`Togai`).
- `togai_async`: the same engine for async tests (`AsyncTogai`).
- `togai_http`: the same database served over streamable HTTP with an every-scope key (`TogaiHttp`).
- `togai_portal` (session): the event loop thread the engines live on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from mcp_server.sandbox_engine import sandbox_engine
from togai_engine.app.keys import create_audited_key
from togai_engine.common import validation
from togai_engine.errors import InvalidInput
from togai_engine.settings import asyncpg_url
from togai_engine.store.embedded import temporary_server
from togai_engine.testing.facade import AsyncTogai, BillingFailed, Togai, ToolCallError
from togai_engine.testing.http_server import TogaiHttp, TogaiHttpError, sandbox_server

__all__ = ["DEFAULT_START", "AsyncTogai", "BillingFailed", "Togai", "TogaiHttp", "TogaiHttpError", "ToolCallError"]

# A fixed instant, so a test's invoices and periods are the same on every run and every day.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
SERVER_URL_VARIABLES = ("TOGAI_TEST_DATABASE_URL", "TOGAI_DATABASE_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "togai_start(instant): the sandbox starting time of this test's togai engine (ISO 8601 text "
                   "such as '2026-03-01' or '2026-03-01T09:00:00Z', a date, or a datetime; default 2026-01-01Z)")


def configured_server_url() -> str | None:
    """The server named by the first of SERVER_URL_VARIABLES that is set, in asyncpg form."""
    for name in SERVER_URL_VARIABLES:
        value = os.environ.get(name)
        if value:
            try:
                return asyncpg_url(value)
            except ValueError as exc:
                pytest.fail(f"{name} {exc}", pytrace=False)
    return None


@pytest.fixture(scope="session")
def togai_server_url() -> Iterator[str]:
    """The PostgreSQL server every sandbox database of the session is made on (the role must be allowed to
    create databases): TOGAI_TEST_DATABASE_URL, else TOGAI_DATABASE_URL, else an embedded PostgreSQL started in
    a temporary folder for the session and stopped at its end. On it the plugin creates the migrated template
    (once per schema) and a database per test, and writes to no other database."""
    configured = configured_server_url()
    if configured:
        yield configured
        return
    with temporary_server("togai-pytest-embedded-") as url:
        yield url


@pytest.fixture
def togai_start(request: pytest.FixtureRequest) -> datetime:
    """The sandbox's starting time: the test's `@pytest.mark.togai_start(...)` (on the test, its class or its
    module), else DEFAULT_START. Override the fixture to choose it another way; it may return ISO 8601 text, a
    date or a datetime."""
    marker = request.node.get_closest_marker("togai_start")
    if marker is None:
        return DEFAULT_START
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail("@pytest.mark.togai_start takes one instant, e.g. @pytest.mark.togai_start('2026-03-01')",
                    pytrace=False)
    return start_instant(marker.args[0], "@pytest.mark.togai_start")


def start_instant(value: object, source: str) -> datetime:
    try:
        return validation.parse_instant(value, source)
    except InvalidInput as exc:
        pytest.fail(f"{source}: {exc.reason}", pytrace=False)


@pytest.fixture(scope="session")
def togai_portal() -> Iterator[BlockingPortal]:
    """The event loop, on a thread of its own, that every sandbox engine of the session lives on: sync tests
    call into it, and an MCP client session must be entered and left in one task (anyio cancel scopes), which
    the portal's `wrap_async_context_manager` does."""
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture
def togai(togai_portal: BlockingPortal, togai_server_url: str, togai_start: datetime | date | str) -> Iterator[Togai]:
    """A clean sandbox engine for this test: a fresh database (cloned from a migrated template: a fraction of a
    second), a sandbox at `togai_start`, and an MCP client session on it, all dropped afterwards.
    `togai.call(tool, **arguments)`, `togai.advance(by="P1M")` / `advance(to=...)`, `togai.now`, `togai.url`."""
    start = start_instant(togai_start, "togai_start")
    with togai_portal.wrap_async_context_manager(sandbox_engine(togai_server_url, start)) as engine:
        yield Togai(togai_portal, engine)


@pytest.fixture
def togai_async(togai: Togai) -> AsyncTogai:
    """The test's `togai` engine (the same database) for async tests: `await togai_async.call(...)`,
    `await togai_async.advance(...)`, `await togai_async.now()`. Works on any event loop; needs no fixture
    support from an async plugin (the test itself needs one, e.g. pytest-asyncio or anyio's)."""
    return AsyncTogai(togai)


@pytest.fixture
def togai_http(togai: Togai) -> Iterator[TogaiHttp]:
    """The test's `togai` database (the same one, at the same sandbox time) served by `togai-engine serve
    --sandbox --transport http --port 0` in a subprocess, with an API key of every scope (created at the
    sandbox time, audited as `keys create` by actor `pytest`). `.url` (the /mcp endpoint), `.key`, `.headers`.
    The server stops after the test, before the database is dropped."""
    server = sandbox_server(togai.url)
    try:
        # made while the server starts up
        created = togai.portal.call(functools.partial(
            create_audited_key, togai.engine.db, None, actor="pytest", name="togai_http", scopes=["*"]))
        yield TogaiHttp(url=server.url(), key=created.key, headers={"Authorization": f"Bearer {created.key}"})
    finally:
        server.stop()
