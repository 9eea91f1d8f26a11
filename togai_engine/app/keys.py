"""Creating an HTTP API key as an audited write (the CLI's `keys create`, the pytest plugin's HTTP sandbox)."""

from __future__ import annotations

from datetime import datetime

from togai_engine.apikeys.service import CreatedKey, create_key
from togai_engine.app.unit import unit_of_work
from togai_engine.store.database import Database


async def create_audited_key(db: Database, now: datetime | None, *, actor: str, name: str,
                             scopes: list[str]) -> CreatedKey:
    """A new key, audited as `keys create` under `actor`; the secret is in neither the arguments nor the
    changed ids. `now` None: a sandbox database, keyed at its own time."""
    async with unit_of_work(db, now, actor=actor, action="keys create",
                            arguments={"name": name, "scopes": scopes}) as unit:
        created = await create_key(unit.session, name, scopes, unit.now)
        unit.changed(created.apiKey.id)
        return created
