"""Many new rows of ``messages`` in one fixed statement on PostgreSQL (issue 13).

A multi-row ``INSERT … VALUES (…), (…) RETURNING`` (SQLAlchemy's "insertmanyvalues") has a different text for every
batch size and is longer than psycopg's 4 KiB query cache, so psycopg parsed it afresh for each batch of a run's
replies. Here every column travels as one array and ``unnest`` turns the arrays back into rows::

    INSERT INTO messages (…) SELECT … FROM unnest(:a_chat_jid::TEXT[], …) WITH ORDINALITY AS u(…, ord)
    ORDER BY ord RETURNING …

The text is the same for any number of rows (psycopg caches its parse, and prepares it server-side after a few
uses). The rows are drawn, and so numbered by the seq sequence, in the order given (``ORDER BY ord``). Each value
goes through its column's type as in a plain INSERT (``UTCDateTime``), except ``attachments``: a JSON value can be a
list, which an array parameter would take for a dimension of its own, so it travels as JSON text, encoded the way
SQLAlchemy's JSON type encodes it for psycopg (``json.dumps``; ``None`` is SQL ``NULL``, as in a plain INSERT).
The arrays are sent in PostgreSQL's binary format (:mod:`kanmon.store.engine`): psycopg's text format escapes every
element in Python.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Text, and_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from kanmon.store.tables import messages

__all__ = ["insert_rows", "stored_keys"]

_AS_JSON_TEXT = frozenset({"attachments"})


def insert_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
    """Insert ``rows`` (column values by name, the same names in every row, as
    :func:`~kanmon.store.appends.insert_values` gives them) into ``messages`` in one statement, seqs ascending in
    the order given; the result holds ``(seq, chat_jid, id)`` of each row created (in no promised order)."""
    names = tuple(rows[0])
    arrays = {
        f"a_{name}": [_json_text(row[name]) for row in rows] if name in _AS_JSON_TEXT else [row[name] for row in rows]
        for name in names
    }
    return conn.execute(_statement(names), arrays)


def _json_text(value: Any) -> str | None:
    """A JSON column's value as JSON text; None stays SQL NULL (the column's ``none_as_null``)."""
    return None if value is None else json.dumps(value)


@functools.cache
def _statement(names: tuple[str, ...]) -> Any:
    """The statement for the columns ``names``, built once (insert_values gives the same names every time)."""
    arrays = [bindparam(f"a_{name}", type_=ARRAY(_carried(name))) for name in names]
    given = func.unnest(*arrays).table_valued(*names, with_ordinality="ord").render_derived()
    values = [cast(given.c[name], messages.c[name].type) if name in _AS_JSON_TEXT else given.c[name] for name in names]
    ordered = select(*values).order_by(given.c.ord)
    return messages.insert().from_select(names, ordered).returning(messages.c.seq, messages.c.chat_jid, messages.c.id)


def _carried(name: str) -> Any:
    """The type of column ``name``'s array elements."""
    return Text() if name in _AS_JSON_TEXT else messages.c[name].type


def stored_keys(conn: Connection, key: tuple[str, str], pairs: Sequence[tuple[Any, Any]]) -> set[tuple[Any, Any]]:
    """Which of ``pairs`` (values of the two columns ``key``, a unique key of ``messages``) are stored.

    One index probe per pair: asking ``a IN (…) AND b IN (…)`` instead made PostgreSQL's planner (without fresh
    statistics on a table a run is filling) read every reply of the run for each batch, so recording a run's
    replies grew quadratic in their number.
    """
    found = conn.execute(_pairs_statement(key), {"a_first": [a for a, _ in pairs], "a_second": [b for _, b in pairs]})
    return {(first, second) for first, second in found}


@functools.cache
def _pairs_statement(key: tuple[str, str]) -> Any:
    first, second = (messages.c[name] for name in key)
    arrays = bindparam("a_first", type_=ARRAY(first.type)), bindparam("a_second", type_=ARRAY(second.type))
    given = func.unnest(*arrays).table_valued("first", "second").render_derived()
    on = and_(first == given.c.first, second == given.c.second)
    return select(first, second).select_from(given.join(messages, on))
