"""``in_list``: ``column IN (a list given at execution)`` on both backends, one SQL text whatever the list's length.

On PostgreSQL an expanding ``IN`` made every length its own statement, which psycopg neither caches nor prepares
(issue 13); the list now travels as one array.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ClauseElement, Connection, Executable, event, select
from sqlalchemy.dialects import postgresql

import kanmon.store
from kanmon.store import NewMessage, Store
from kanmon.store.lists import in_list
from kanmon.store.tables import messages

_CHATS = ["web:a", "web:b", "telegram:1", "matrix:!r:x", "web:ü"]
_BY_SEQ_AND_CHAT = (
    select(messages.c.seq, messages.c.chat_jid)
    .where(in_list(messages.c.seq, "b_seqs"), in_list(messages.c.chat_jid, "b_chats"))
    .order_by(messages.c.seq)
)


@pytest.fixture
def seqs(store: Store) -> dict[int, str]:
    """Eight stored messages spread over the chats: seq → chat."""
    stored = [store.put_message(NewMessage(chat_jid=_CHATS[n % len(_CHATS)], content=f"m{n}")) for n in range(8)]
    return {put.message.seq: put.message.chat_jid for put in stored}


def _matching(conn: Connection, wanted_seqs: list[int], wanted_chats: list[str]) -> list[tuple[int, str]]:
    return [tuple(row) for row in conn.execute(_BY_SEQ_AND_CHAT, {"b_seqs": wanted_seqs, "b_chats": wanted_chats})]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picked=st.lists(st.integers(min_value=0, max_value=11), max_size=70),
    chats=st.lists(st.sampled_from([*_CHATS, "nowhere:1"]), max_size=6),
)
def test_matches_what_python_would(store: Store, seqs: dict[int, str], picked: list[int], chats: list[str]) -> None:
    """Any length (none, one, repeats, more than psycopg caches: 50), numbers and text: the rows whose values are in
    both lists, the same on both backends."""
    first = min(seqs)
    wanted = [first + n for n in picked]  # some beyond the stored seqs
    expected = sorted((seq, chat) for seq, chat in seqs.items() if seq in wanted and chat in chats)
    with store.engine.connect() as conn:
        assert _matching(conn, wanted, chats) == expected


def test_one_statement_text_for_every_length_on_postgresql(store: Store, seqs: dict[int, str]) -> None:
    """What reaches the driver does not depend on the list's length on PostgreSQL (one array parameter each); SQLite
    has no arrays and gets one placeholder per value."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.startswith("SELECT"):  # not SQLite's BEGIN
            sent.append(statement)

    with store.engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", record)
        for length in (1, 3, 60):
            _matching(conn, list(range(length)), _CHATS[: 1 + length % 4])
    if store.dialect == "postgresql":
        assert len(set(sent)) == 1
        assert "ANY" in sent[0]
    else:
        assert len(set(sent)) == 3


def test_no_statement_of_the_store_expands_a_list_on_postgresql() -> None:
    """Every statement the store builds once takes its lists as :func:`in_list` arrays on PostgreSQL: an expanding
    ``IN`` there would make one statement text per list length again."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    checked = 0
    for info in pkgutil.iter_modules(kanmon.store.__path__, "kanmon.store."):
        for name, value in vars(importlib.import_module(info.name)).items():
            if isinstance(value, Executable) and isinstance(value, ClauseElement):
                checked += 1
                assert "POSTCOMPILE" not in str(value.compile(dialect=dialect)), f"{info.name}.{name}"
    assert checked > 20  # the walk found the store's statements
