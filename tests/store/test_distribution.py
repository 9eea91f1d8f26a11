"""The Citus placement of tables (store/distribution.py) on a server without Citus: every table has a
place, `db distribute` refuses saying what to do, and `db check` has nothing to say about placement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from togai_engine.store import distribution, migrate
from togai_engine.tables import metadata

CLI = Path(sys.executable).parent / "togai-engine"


def test_every_table_has_one_place_on_citus() -> None:
    places = [*distribution.DISTRIBUTED, *distribution.BY_METER, *distribution.REFERENCE, *distribution.LOCAL]
    assert len(places) == len(set(places))
    # a new table must be given a place (README, Scaling out -> Citus), or `db check` names it on Citus
    assert {t.name for t in metadata.sorted_tables} | {"alembic_version"} == set(places)
    for name in distribution.DISTRIBUTED:
        assert "account_id" in metadata.tables[name].c, name
    for name, column in distribution.BY_METER.items():
        assert column in metadata.tables[name].c


def test_db_distribute_refuses_on_a_server_without_citus(database_url: str) -> None:
    with pytest.raises(RuntimeError, match="not a Citus coordinator"):
        migrate.distribute(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOGAI_")} | {"TOGAI_DATABASE_URL": database_url}
    done = subprocess.run([str(CLI), "db", "distribute"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("togai-engine: this server is not a Citus coordinator")
    assert "CREATE EXTENSION citus" in done.stderr
    migrate.check(database_url)  # no placement problems without Citus
