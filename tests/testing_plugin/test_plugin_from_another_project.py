"""The pytest plugin works from a separate project: the example (examples/pytest_integration) and the checks
in user_project/ are copied into a temporary directory outside the repository and run by `python -m pytest`
as a subprocess, as a user's CI would run them, against this session's PostgreSQL server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import urlsplit

from conftest import pg_connection
from togai_engine.store.throwaway import database_of

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pytest_integration"
CHECKS = Path(__file__).parent / "user_project" / "checks.py"
EXAMPLE_TESTS = ["test_a_month_of_usage_is_invoiced_and_resets_the_entitlement",
                 "test_usage_reported_over_http_reaches_the_same_engine"]


def project(tmp_path: Path) -> Path:
    """A copy of the example project, outside the repository."""
    folder = tmp_path / "billing-project"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert not folder.resolve().is_relative_to(REPO)
    return folder


def run_pytest(folder: Path, server_url: str, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest` in `folder`, with none of this run's pytest or TOGAI_ settings but the server."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOGAI_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml=report.xml", *arguments],
        cwd=folder, env=clean | {"TOGAI_TEST_DATABASE_URL": server_url, **env}, capture_output=True, text=True,
        timeout=600)


def outcomes(folder: Path) -> dict[str, str]:
    """Each test's outcome, from the JUnit report: passed, failure, error or skipped."""
    cases = ElementTree.parse(folder / "report.xml").iter("testcase")
    return {case.get("name", ""): next((child.tag for child in case), "passed") for case in cases}


def test_the_example_passes_without_any_async_plugin(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    # -p no:asyncio -p no:anyio: the synchronous fixtures need no async plugin in the user's project;
    # -p togai_engine.testing on top of the conftest's pytest_plugins: enabled twice is enabled once;
    # TOGAI_TEST_DATABASE_URL comes first: a bad TOGAI_DATABASE_URL beside it is never read
    result = run_pytest(folder, server_url, "-p", "no:asyncio", "-p", "no:anyio", "-p", "togai_engine.testing",
                        TOGAI_DATABASE_URL="mysql://root@localhost/db")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert outcomes(folder) == dict.fromkeys(EXAMPLE_TESTS, "passed")
    assert "2 passed" in result.stdout.splitlines()[-1]


def test_a_wrong_expected_total_fails_and_names_both_totals(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    test_file = folder / "test_billing_integration.py"
    source = test_file.read_text()
    assert source.count('== "74.00"') == 1
    test_file.write_text(source.replace('== "74.00"', '== "75.00"'))
    result = run_pytest(folder, server_url, "-k", "a_month_of_usage")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert outcomes(folder) == {EXAMPLE_TESTS[0]: "failure"}
    # pytest's own assertion message: the line, and what the engine answered against what was expected
    assert "assert january[0][\"totalAmount\"] == \"75.00\"" in result.stdout
    assert "AssertionError: assert '74.00' == '75.00'" in result.stdout


def listening(url: str) -> bool:
    address = urlsplit(url)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=1):
            return True
    except OSError:
        return False


async def test_isolation_marker_errors_async_and_http_from_a_user_project(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    shutil.copy(CHECKS, folder / "test_checks.py")
    notes = tmp_path / "notes.jsonl"
    result = run_pytest(folder, server_url, "test_checks.py", TOGAI_CHECKS_OUT=str(notes))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert outcomes(folder) == dict.fromkeys([
        "test_isolation_first", "test_isolation_second", "test_default_start_is_fixed",
        "test_marker_sets_the_start", "test_an_overriding_fixture_sets_the_start",
        "test_advance_by_and_to_with_a_datetime", "test_an_account_the_clock_cannot_bill_raises_billing_failed",
        "test_a_decimal_argument_is_sent_as_its_exact_text",
        "test_a_tool_error_raises_tool_call_error", "test_the_raw_client_through_the_portal",
        "test_togai_async_under_pytest_asyncio", "test_togai_async_under_anyio[asyncio]",
        "test_a_raw_engine_in_the_tests_own_loop", "test_togai_http_serves_the_same_database_at_its_time",
    ], "passed")

    facts = [json.loads(line) for line in notes.read_text().splitlines()]
    databases = [database_of(fact["database"]) for fact in facts]
    assert len(set(databases)) == 3  # one database per test
    async with pg_connection(server_url) as conn:  # each dropped at the end of its test
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", databases) == 0
    (served,) = [fact["http"] for fact in facts if "http" in fact]
    assert not listening(served)  # the HTTP server stopped with its test


def test_a_bad_marker_fails_the_test_with_how_to_write_it(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    (folder / "test_marker.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.togai_start('the first of March')\n"
        "def test_bad(togai):\n    pass\n\n\n"
        "@pytest.mark.togai_start()\n"
        "def test_empty(togai):\n    pass\n")
    result = run_pytest(folder, server_url, "test_marker.py", "--strict-markers")
    assert result.returncode == 1, result.stdout[-4000:]
    assert outcomes(folder) == {"test_bad": "error", "test_empty": "error"}
    assert "@pytest.mark.togai_start: 'the first of March' is not" in result.stdout
    assert "@pytest.mark.togai_start takes one instant, e.g. @pytest.mark.togai_start('2026-03-01')" in result.stdout


def test_without_a_test_server_togai_database_url_is_read_and_checked(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    result = run_pytest(folder, server_url, "-k", "a_month_of_usage", TOGAI_TEST_DATABASE_URL="",
                        TOGAI_DATABASE_URL="mysql://root@localhost/db")
    assert result.returncode == 1, result.stdout[-4000:]
    assert outcomes(folder) == {EXAMPLE_TESTS[0]: "error"}
    assert "TOGAI_DATABASE_URL must be a PostgreSQL URL such as postgresql+asyncpg://" in result.stdout


def test_with_no_server_configured_an_embedded_one_serves_the_session(tmp_path: Path, server_url: str) -> None:
    folder = project(tmp_path)
    embedded_dirs = set(Path(tempfile.gettempdir()).glob("togai-pytest-embedded-*"))
    result = run_pytest(folder, server_url, "-k", "a_month_of_usage", TOGAI_TEST_DATABASE_URL="")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert outcomes(folder) == {EXAMPLE_TESTS[0]: "passed"}
    # the session's data folder is gone with the session (the server stopped first)
    assert set(Path(tempfile.gettempdir()).glob("togai-pytest-embedded-*")) <= embedded_dirs
