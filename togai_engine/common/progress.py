"""Progress of long work, reported to a caller that shows it (an MCP client's progress notifications)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

# progress(done, total, message): `done` of `total` units (accounts priced, phases of a batch) so far.
ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]
