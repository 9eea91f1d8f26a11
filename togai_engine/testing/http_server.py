"""A real `togai-engine serve --sandbox --transport http` on a test's sandbox database, as a subprocess, with
an API key of every scope: for code under test that talks HTTP to the engine."""

from __future__ import annotations

import collections
import os
import queue
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
_LISTENING = re.compile(r"listening on (http://\S+/mcp)")
# The installed command, run by this interpreter: the server is the same version as the plugin, whatever
# `togai-engine` is first on PATH.
SERVE_COMMAND = (sys.executable, "-c", "from mcp_server.cli import main; main()", "serve")


class TogaiHttpError(RuntimeError):
    """The HTTP sandbox server did not start; the message carries the end of its stderr."""


@dataclass(frozen=True)
class TogaiHttp:
    """The sandbox served over streamable HTTP: POST MCP messages to `url` with `headers`."""

    url: str  # the MCP endpoint, http://127.0.0.1:<port>/mcp
    key: str  # an API key with every scope ('*')
    headers: dict[str, str] = field(default_factory=dict)  # {"Authorization": "Bearer <key>"}


def server_environment(database_url: str) -> dict[str, str]:
    """The caller's environment without its TOGAI_ settings (a developer's TOGAI_API_KEY or data folder must
    not leak into the test server), serving `database_url` with no background bill run: in a sandbox only
    `advance_clock` moves time, and every read catches up by itself."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOGAI_")}
    return env | {"TOGAI_DATABASE_URL": database_url, "TOGAI_BILLING_INTERVAL_SECONDS": "0"}


class ServerProcess:
    """A `togai-engine serve --transport http` subprocess; `url()` waits for its "listening on" line. Its stderr
    is drained by a thread (a full pipe would stall the server) and its end kept for errors."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._found: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="togai-http-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip())
            if match := _LISTENING.search(line):
                self._found.put(match.group(1))
        self._found.put(None)  # the server closed its stderr: it has stopped

    def url(self, timeout: float = START_TIMEOUT_SECONDS) -> str:
        try:
            found = self._found.get(timeout=timeout)
        except queue.Empty:
            raise TogaiHttpError(f"togai-engine serve did not say where it listens within {timeout:.0f} s; "
                                 f"its stderr:\n{self.tail()}") from None
        if found is None:
            self.process.wait()
            raise TogaiHttpError(f"togai-engine serve exited with code {self.process.returncode} before "
                                 f"listening; its stderr:\n{self.tail()}")
        return found

    def tail(self) -> str:
        return "\n".join(self.stderr) or "(nothing)"

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=STOP_TIMEOUT_SECONDS)


def sandbox_server(database_url: str) -> ServerProcess:
    """`serve --sandbox --transport http` on a free port of 127.0.0.1, on `database_url` (a sandbox already,
    served at its own time)."""
    return ServerProcess([*SERVE_COMMAND, "--sandbox", "--transport", "http", "--host", "127.0.0.1", "--port", "0"],
                         server_environment(database_url))
