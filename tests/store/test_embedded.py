"""The embedded PostgreSQL against real processes: start, re-use, crash recovery, concurrency.

No mocks: every test runs the bundled server on its own tmp data dir. The `servers` fixture stops
every handle it made and, as a safety net, kills any postgres process still serving those data dirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from togai_engine.store.embedded import EmbeddedPostgres, EmbeddedPostgresError

REPO = Path(__file__).resolve().parents[2]

# A second process using the store: starts, reports, then (unless told to crash) waits for a line
# on stdin before stopping. "wait-go" makes it block on a stdin line first (to start two at once).
CHILD = r"""
import json, os, sys
from pathlib import Path
from togai_engine.store.embedded import EmbeddedPostgres

pg = EmbeddedPostgres(Path(sys.argv[1]))
mode = sys.argv[2]
if mode == "wait-go":
    sys.stdin.readline()
url = pg.start()
print(json.dumps({"url": url, "owns": pg.owns_server, "pid": pg.postmaster_pid}), flush=True)
if mode == "crash":
    os._exit(0)  # die without stop(), like a killed CLI
sys.stdin.readline()
pg.stop()
print("stopped", flush=True)
"""


def _postgres_serving(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            named_postgres = proc.info["name"] == "postgres" and proc.status() != psutil.STATUS_ZOMBIE
            if named_postgres and Path(proc.cwd()) == pgdata:  # a postgres process's cwd is its data dir
                found.append(proc)
    return found


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once `pid` has exited (an unreaped zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A private dir outside /tmp/pytest-of-<user>: as root the server user needs o+x on every parent,
    and each new pytest session (e.g. a colleague's, concurrently) resets that dir to 0700."""
    root = Path(tempfile.mkdtemp(prefix="togai-embedded-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[Callable[[Path], EmbeddedPostgres]]:
    handles: list[EmbeddedPostgres] = []

    def make(data_dir: Path) -> EmbeddedPostgres:
        handle = EmbeddedPostgres(data_dir)
        handles.append(handle)
        return handle

    try:
        yield make
    finally:
        for handle in reversed(handles):
            with contextlib.suppress(Exception):
                handle.stop()
        for handle in handles:  # safety net: leave no server behind, whoever started it
            for proc in _postgres_serving(handle.pgdata):
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def _spawn(data_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _report(child: subprocess.Popen[str]) -> dict[str, object]:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"child exited with {child.wait(timeout=30)} before reporting"
    return json.loads(line)


def _finish(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("stop\n")
    child.stdin.flush()
    assert child.wait(timeout=60) == 0


async def _fetchval(pg: EmbeddedPostgres, sql: str) -> object:
    conn = await asyncpg.connect(host=str(pg.socket_dir), user="postgres", database="togai")
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _execute(pg: EmbeddedPostgres, sql: str) -> None:
    conn = await asyncpg.connect(host=str(pg.socket_dir), user="postgres", database="togai")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_start_connect_stop(data_root: Path, servers: Callable[[Path], EmbeddedPostgres]) -> None:
    pg = servers(data_root / "data")
    url = pg.start()

    assert url == f"postgresql+asyncpg://postgres@/togai?host={pg.socket_dir}"
    assert pg.owns_server
    assert await _fetchval(pg, "SELECT 1") == 1
    assert await _fetchval(pg, "SHOW listen_addresses") == ""  # unix socket only: no TCP port to collide
    engine = create_async_engine(url)  # the URL is what the rest of the engine hands to SQLAlchemy
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_database()"))).scalar() == "togai"
    finally:
        await engine.dispose()

    pid, socket = pg.postmaster_pid, pg.socket_dir / ".s.PGSQL.5432"
    assert pid is not None and socket.exists()
    pg.stop()
    assert _gone(pid)
    assert not socket.exists()
    with pytest.raises(EmbeddedPostgresError, match="not started"):
        _ = pg.url


async def test_second_start_reuses_the_data(data_root: Path, servers: Callable[[Path], EmbeddedPostgres]) -> None:
    with servers(data_root / "data") as first:
        await _execute(first, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        cluster_id = await _fetchval(first, "SELECT system_identifier FROM pg_control_system()")

    with servers(data_root / "data") as second:
        assert await _fetchval(second, "SELECT v FROM kept") == 42
        # Same cluster identifier: no initdb ran the second time.
        assert await _fetchval(second, "SELECT system_identifier FROM pg_control_system()") == cluster_id


async def test_forgotten_handle_in_this_process_is_reattached_not_stopped(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    original = servers(data_root / "data")
    original.start()
    pid = original.postmaster_pid

    reattached = servers(data_root / "data")  # the first handle is "forgotten", never stopped
    assert reattached.start() == original.url
    assert reattached.postmaster_pid == pid
    assert await _fetchval(reattached, "SELECT 1") == 1
    # The starter (this process) is alive, so the second handle must not stop the shared server.
    assert not reattached.owns_server
    reattached.stop()
    assert await _fetchval(original, "SELECT 1") == 1

    original.stop()
    assert pid is not None and _gone(pid)


async def test_server_of_a_crashed_process_is_adopted(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    data_dir = data_root / "data"
    servers(data_dir)  # registers the data dir with the safety net
    child = _spawn(data_dir, "crash")
    started = _report(child)
    assert child.wait(timeout=30) == 0 and started["owns"]
    pid = started["pid"]
    assert isinstance(pid, int) and psutil.pid_exists(pid)  # the server outlived its starter

    pg = servers(data_dir)
    assert pg.start() == started["url"]
    assert pg.postmaster_pid == pid  # re-attached, not restarted
    assert pg.owns_server  # its starter is dead, so we take over stopping it
    assert await _fetchval(pg, "SELECT 1") == 1
    pg.stop()
    assert _gone(pid)


async def test_server_of_a_live_process_is_shared_not_stopped(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    data_dir = data_root / "data"
    servers(data_dir)
    child = _spawn(data_dir, "run")
    try:
        started = _report(child)
        pg = servers(data_dir)
        pg.start()
        assert not pg.owns_server
        pg.stop()
        assert await _fetchval_url(str(started["url"])) == 1  # still serving the other process
    finally:
        _finish(child)
    assert isinstance(started["pid"], int) and _gone(started["pid"])


async def _fetchval_url(url: str) -> object:
    host = url.split("host=", 1)[1]
    conn = await asyncpg.connect(host=host, user="postgres", database="togai")
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def test_kill_9_postmaster_then_start_restarts_cleanly(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    first = servers(data_root / "data")
    first.start()
    await _execute(first, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
    killed = first.postmaster_pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    assert _gone(killed)
    assert (first.pgdata / "postmaster.pid").exists()  # stale: its process is dead

    second = servers(data_root / "data")
    second.start()
    assert second.postmaster_pid not in (None, killed)
    assert second.owns_server
    assert await _fetchval(second, "SELECT v FROM kept") == 7  # crash recovery kept committed data
    restarted = second.postmaster_pid
    second.stop()
    assert restarted is not None and _gone(restarted)

    # The handle whose server died notices on its next start() and starts a fresh one.
    first.start()
    assert first.postmaster_pid not in (None, killed, restarted)
    assert await _fetchval(first, "SELECT v FROM kept") == 7
    first.stop()


async def test_stale_pid_file_naming_a_live_unrelated_process(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    with servers(data_root / "data"):
        pass
    pid_file = data_root / "data" / "pgdata" / "postmaster.pid"
    # The pid was reused by an unrelated live process (this test): PostgreSQL alone would refuse to start.
    pid_file.write_text(f"{os.getpid()}\n{data_root / 'data' / 'pgdata'}\n0\n5432\n/nowhere\n\n 0 0\nready\n")

    with servers(data_root / "data") as pg:
        assert pg.postmaster_pid != os.getpid()
        assert await _fetchval(pg, "SELECT 1") == 1


def test_stop_is_idempotent_and_safe_when_never_started(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    never = servers(data_root / "never")
    never.stop()
    assert not (data_root / "never").exists()  # stop() of an unstarted handle touches nothing

    pg = servers(data_root / "data")
    pg.start()
    pid = pg.postmaster_pid
    pg.stop()
    pg.stop()
    assert pid is not None and _gone(pid)


def test_two_processes_starting_at_once_share_one_initdb(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    data_dir = data_root / "data"
    servers(data_dir)
    children = [_spawn(data_dir, "wait-go") for _ in range(2)]
    try:
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = [_report(child) for child in children]
        # One started it (and ran the only initdb), the other re-attached to the same server.
        assert reports[0]["url"] == reports[1]["url"]
        assert reports[0]["pid"] == reports[1]["pid"]
        assert sorted(bool(r["owns"]) for r in reports) == [False, True]
        assert not (data_dir / "pgdata.initdb-tmp").exists()
    finally:
        for child in children:
            _finish(child)
    assert isinstance(reports[0]["pid"], int) and _gone(reports[0]["pid"])


def test_unusable_data_dir_gives_a_one_line_error(data_root: Path) -> None:
    blocker = data_root / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(EmbeddedPostgresError) as caught:
        EmbeddedPostgres(blocker / "data").start()
    assert "cannot create data dir" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_not_a_cluster_in_pgdata_gives_a_one_line_error(data_root: Path) -> None:
    (data_root / "data" / "pgdata").mkdir(parents=True)
    (data_root / "data" / "pgdata" / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddedPostgresError, match="not a PostgreSQL data dir") as caught:
        EmbeddedPostgres(data_root / "data").start()
    assert "\n" not in str(caught.value)


async def test_long_data_dir_puts_the_socket_in_a_short_dir(
    data_root: Path, servers: Callable[[Path], EmbeddedPostgres]
) -> None:
    data_dir = data_root / ("x" * 60) / ("y" * 60)  # data_dir/run/.s.PGSQL.5432 would exceed 107 bytes
    pg = servers(data_dir)
    try:
        pg.start()
        assert str(pg.socket_dir).startswith("/tmp/togai-pg-")
        assert len(str(pg.socket_dir / ".s.PGSQL.5432")) <= 107
        assert await _fetchval(pg, "SELECT 1") == 1
        socket_dir = pg.socket_dir
    finally:
        pg.stop()
    socket_dir.rmdir()  # empty after a clean stop


@pytest.mark.skipif(os.geteuid() != 0, reason="already running as a normal user")
def test_works_as_a_normal_user() -> None:
    """Fork, drop to `nobody`, start and stop there: the server runs as the caller, no system user.

    Fork (not exec) because this venv's interpreter lives under root's home, unreadable by nobody.
    """
    nobody = 65534
    parent = Path(tempfile.mkdtemp(prefix="togai-embedded-"))  # /tmp/pytest-of-root is root-only
    os.chown(parent, nobody, nobody)
    data_dir, result = parent / "data", parent / "result.json"
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            outcome: dict[str, object] = {}
            try:
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
                os.chdir(parent)
                pg = EmbeddedPostgres(data_dir)
                pg.start()
                assert pg.postmaster_pid is not None
                outcome = {"owns": pg.owns_server, "uid": psutil.Process(pg.postmaster_pid).uids().real}
                outcome["pid"] = pg.postmaster_pid
                pg.stop()
            except BaseException as exc:
                outcome = {"error": repr(exc)}
            finally:
                result.write_text(json.dumps(outcome))
                os._exit(0)
        os.waitpid(child, 0)
        outcome = json.loads(result.read_text())
        assert "error" not in outcome, outcome["error"]
        assert outcome["owns"] and outcome["uid"] == nobody
        assert isinstance(outcome["pid"], int) and _gone(outcome["pid"])
    finally:
        for proc in _postgres_serving(data_dir / "pgdata"):
            proc.kill()
        shutil.rmtree(parent, ignore_errors=True)
