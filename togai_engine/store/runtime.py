"""Which database the engine uses: TOGAI_DATABASE_URL, or the embedded PostgreSQL in TOGAI_DATA_DIR."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from togai_engine.settings import Settings


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """Yields the asyncpg URL to use; an embedded server started here is stopped on the way out."""
    if settings.database_url:
        yield settings.database_url
        return
    from togai_engine.store.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()  # explicit pg_ctl stop; never left to atexit


def data_folder_line(data_dir: Path) -> str:
    """Which folder the embedded PostgreSQL serves, and whether it is a new one: a client that does not pass
    TOGAI_DATA_DIR on (MCP Inspector 2.x passes no environment) silently gets the default folder."""
    folder = Path(data_dir).expanduser().resolve()
    if (folder / "pgdata" / "PG_VERSION").exists():
        return f"serving the data folder {folder} (embedded PostgreSQL)"
    return f"serving a new, empty data folder {folder} (embedded PostgreSQL); set TOGAI_DATA_DIR to serve another one"
