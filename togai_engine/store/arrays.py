"""Matching a column against a list of values of any length, in one parameter.

`column.in_(values)` sends one bind parameter per value, and asyncpg refuses a statement of more than 32,767: a
read whose list grows with stored data (the invoices of a range, every account, their plan associations) would
fail once the data is that large. `any_of` sends the list as ONE array parameter, `column = ANY($1::TEXT[])`,
which PostgreSQL plans as it does an IN list (the btree index on the column serves it). A multi-row
`insert().values([...])` sends a parameter per row the same way; `rows_of` is the INSERT ... SELECT instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, String, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """SQL: `column` is one of `values` (false when there are none), however many they are. A string column's
    array is text[], never its own varchar(n)[]: casting to varchar(n) would cut a longer value down to one that
    matches."""
    element = Text() if isinstance(column.type, String) else column.type
    return column == any_(bindparam(None, list(values), type_=ARRAY(element)))


def rows_of(values: Iterable[str]) -> Select[tuple[str]]:
    """SQL: `values` as rows of one text column, in their order (`SELECT unnest($1::TEXT[])`), however many they
    are: an INSERT ... SELECT of a row per value."""
    return select(func.unnest(bindparam(None, list(values), type_=ARRAY(Text))))
