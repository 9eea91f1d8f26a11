"""Which database the engine uses: TOGAI_DATABASE_URL, or the embedded PostgreSQL in TOGAI_DATA_DIR."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
