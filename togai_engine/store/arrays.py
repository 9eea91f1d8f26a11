"""Matching a column against a list of values of any length, in one parameter.

`column.in_(values)` sends one bind parameter per value, and asyncpg refuses a statement of more than 32,767: a
read whose list grows with stored data (the invoices of a range, every account, their plan associations) would
fail once the data is that large. `any_of` sends the list as ONE array parameter, `column = ANY($1::TEXT[])`,
which PostgreSQL plans as it does an IN list (the btree index on the column serves it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, Text, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """SQL: `column` is one of `values` (false when there are none), however many they are. A string column's
    array is text[], never its own varchar(n)[]: casting to varchar(n) would cut a longer value down to one that
    matches."""
    element = Text() if isinstance(column.type, String) else column.type
    return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
