"""``column IN (a list given at execution)`` whose SQL text does not depend on the list's length.

SQLAlchemy expands ``column.in_(bindparam(name, expanding=True))`` into one placeholder per element when the
statement runs, so on PostgreSQL a batch of 7 seqs and one of 8 are two different statements: psycopg caches the
conversion of neither when it has more than 50 parameters, seldom sees one text often enough to prepare it, and the
server parses and plans each afresh (issue 13: converting them was about 9 % of gated's GIL-held time in
``bench/throughput.py`` on PostgreSQL). :func:`in_list` renders ``column = ANY(%(name)s::TYPE[])`` there instead, one
array parameter whatever the length; SQLite, which has no arrays, keeps the expanding ``IN``. The parameter is a
list either way; an empty one matches nothing.

Both forms are built when SQLAlchemy compiles the statement for a dialect, so a module-level statement stays one
cached compilation per backend (SQLAlchemy's "Custom SQL Constructs and Compilation Extension").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, Boolean, ColumnElement, any_, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ["InList", "in_list"]


class InList(ColumnElement[bool]):
    """``column`` is one of the values of the execution parameter ``key`` (see the module docstring)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition of its own: no "= 1" appended where booleans are not native
    # what the statement's cache key is made of: the column and the parameter's name (a list, as SQLAlchemy declares it)
    _traverse_internals = [  # noqa: RUF012
        ("column", InternalTraversal.dp_clauseelement),
        ("key", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], key: str) -> None:
        self.column = column
        self.key = key


def in_list(column: ColumnElement[Any], key: str) -> InList:
    """``column IN (:key)`` for a list passed as ``key`` when the statement runs (module docstring)."""
    return InList(column, key)


@compiles(InList)
def _expanding(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.key, expanding=True)), **kw)


@compiles(InList, "postgresql")
def _any_array(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    values = bindparam(element.key, type_=ARRAY(element.column.type))
    return compiler.process(element.column == any_(values), **kw)
