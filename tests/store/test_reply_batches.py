"""A batch of replies stored in one statement (issue 13) holds exactly what storing them one by one would.

PostgreSQL takes a run's replies as one array per column (``unnest``), SQLite as a multi-row ``VALUES``; the one-row
path (``put_message``) is the reference. Every column is compared as the database holds it (cast to text), so a JSON
``null`` where the one-row path stores SQL ``NULL`` (a message without attachments), a lost time zone or a default
not applied would show here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, cast, select

from kanmon.store import NewMessage, Store
from kanmon.store.tables import messages
from tests.pgdb import create_pg_database, drop_pg_database

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
PLUS_NINE = dt.timezone(dt.timedelta(hours=9))


def variety(run_id: str | None, chat: str) -> list[NewMessage]:
    """Replies with every optional field both set and not set, odd text and attachments."""
    return [
        NewMessage(chat_jid=chat, content="plain", direction="out", run_id=run_id, output_index=0, id=f"{chat}-0"),
        NewMessage(
            chat_jid=chat, content="日本語 ✓ \U0001f600 'quoted' \"double\" \\back, {comma}", direction="out",
            run_id=run_id, output_index=1, id=f"{chat}-1", sender="bot", sender_name="Kanmon ボット", verb="edit",
            topic="#t", reply_to_id="m1", reply_to_text="", reply_to_sender="alice", forwarded_from="fwd",
            origin="gateway", platform_message_id="p1", timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, 6, PLUS_NINE),
            attachments=[{"name": "ファイル.txt", "size": 3, "nested": {"a": [1, None, True]}}],
        ),
        NewMessage(chat_jid=chat, content="NUL \x00 lone \ud83d", direction="out", run_id=run_id, output_index=2,
                   id=f"{chat}-2", attachments=[], delivered=True, reply_to_text="NULL"),
        NewMessage(chat_jid=chat, content="", direction="out", run_id=run_id, output_index=3, id=f"{chat}-3",
                   attachments=[{}], is_bot_message=False),
    ]  # fmt: skip


def raw_rows(store: Store, chat: str) -> list[dict[str, Any]]:
    """The rows of ``chat`` in seq order, every column but seq and the chat's own names as the database holds it."""
    skipped = {"seq", "chat_jid", "id", "run_id", "output_index"}
    columns = [cast(column, String).label(column.name) for column in messages.c if column.name not in skipped]
    query = select(*columns).where(messages.c.chat_jid == chat).order_by(messages.c.seq)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


@pytest.mark.parametrize("turn", [0, 1], ids=["none-first", "list-first"])
def test_a_batch_of_replies_holds_what_one_by_one_appends_hold(store: Store, turn: int) -> None:
    """``turn``: the batch starts with a reply without attachments, or with one whose attachments are a list."""

    def turned(run_id: str | None, chat: str) -> list[NewMessage]:
        replies = variety(run_id, chat)
        return replies[turn:] + replies[:turn]

    for reply in turned(None, "web:one"):
        store.put_message(reply, now=NOW)
    stored = store.record_replies(turned("r1", "web:batch"), now=NOW)

    assert raw_rows(store, "web:batch") == raw_rows(store, "web:one")
    # no attachments is SQL NULL (nothing to parse when read), not JSON null; an empty list stays a list
    nulls = [row["attachments"] is None for row in raw_rows(store, "web:batch")]
    assert nulls == [row.attachments is None for row in stored] and any(nulls)
    one_by_one = store.latest_chat_messages("web:one")
    assert [row.attachments for row in stored] == [row.attachments for row in one_by_one]
    stamps = [NOW, dt.datetime(2026, 1, 2, 3, 4, 5, 6, PLUS_NINE), NOW, NOW]
    assert [row.timestamp for row in stored] == stamps[turn:] + stamps[:turn]
    assert all(row.timestamp.tzinfo == dt.UTC and row.received_at == NOW for row in stored)


def test_a_batch_gets_ascending_seqs_in_the_order_given_and_returns_exactly_the_rows_created(store: Store) -> None:
    order = [5, 0, 3, 1, 4, 2, *range(6, 600)]  # the order given decides, not the output index
    replies = [
        NewMessage(chat_jid="web:c", content=f"r{i}", direction="out", run_id="r1", output_index=i) for i in order
    ]
    stored = store.record_replies(replies, now=NOW)

    assert [row.output_index for row in stored] == order
    assert [row.seq for row in stored] == sorted(row.seq for row in stored)
    assert stored == store.new_messages(0, limit=1000)


def test_a_batch_replayed_in_part_stores_only_what_is_new_in_seq_order(store: Store) -> None:
    def reply(index: int, run_id: str | None = "r1") -> NewMessage:
        return NewMessage(chat_jid="web:c", id=f"{run_id}-{index}", content=f"r{index}", direction="out", run_id=run_id,
                          output_index=None if run_id is None else index)  # fmt: skip

    first = store.record_replies([reply(1), reply(3), reply(10, None), reply(20, "r2")], now=NOW)
    again = store.record_replies(
        [reply(0), reply(1), reply(2), reply(3), reply(10, None), reply(11, None), reply(3, "r2"), reply(20, "r2")],
        now=NOW,
    )

    assert [row.content for row in first] == ["r1", "r3", "r10", "r20"]
    assert [row.content for row in again] == ["r0", "r2", "r11", "r3"]  # r2's output 3: not r1's, not stored yet
    assert [row.seq for row in again] == sorted(row.seq for row in again) and again[0].seq > first[-1].seq
    assert store.record_replies([reply(2), reply(11, None)], now=NOW) == []


@pytest.mark.postgres
def test_every_postgres_connection_sends_lists_as_binary_arrays(pg_admin_url: str, pg_template: str) -> None:
    """psycopg's default text format escapes each element in Python: 6 ms for a batch of 256 replies, 1.3 ms in binary
    (kanmon.store.engine). A connection the pool opens later must do the same, so two are checked."""
    from psycopg import pq
    from psycopg.adapt import PyFormat, Transformer

    url = create_pg_database(pg_admin_url, template=pg_template)
    store = Store.open(url)
    try:
        with store.engine.connect() as first, store.engine.connect() as second:
            for conn in (first, second):
                wire = Transformer(conn.connection.driver_connection)
                for value in (["text", None], [1, 2], [NOW]):
                    assert wire.get_dumper(value, PyFormat.AUTO).format == pq.Format.BINARY
    finally:
        store.close()
        drop_pg_database(pg_admin_url, url)


# ---------------------------------------------------------------------------------- what the store hands back
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
OFFSETS = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23), max_value=dt.timedelta(hours=23)))
STAMPS = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=OFFSETS)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
REPLIES = st.lists(
    st.builds(
        NewMessage,
        chat_jid=st.just("web:c"), content=TEXT, direction=st.sampled_from(["in", "out"]), sender=TEXT,
        sender_name=TEXT, timestamp=st.none() | STAMPS, verb=st.sampled_from(["message", "edit"]), topic=TEXT,
        reply_to_id=st.none() | TEXT, reply_to_text=st.none() | TEXT, reply_to_sender=st.none() | TEXT,
        attachments=st.none() | st.lists(st.dictionaries(TEXT, JSON, max_size=3), max_size=2),
        forwarded_from=st.none() | TEXT, is_bot_message=st.booleans(), origin=TEXT,
        platform_message_id=st.none() | TEXT, delivered=st.booleans(),
    ),
    min_size=1, max_size=6,
)  # fmt: skip
EXAMPLES = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(replies=REPLIES, one_by_one=st.booleans())
def test_the_rows_the_store_hands_back_are_the_rows_it_reads_back(
    store: Store, replies: list[NewMessage], one_by_one: bool
) -> None:
    """``record_replies`` and ``put_message`` hand back the rows they created: field for field what a read of the
    same rows gives (odd text, any time zone, JSON attachments, defaults the database fills in)."""
    run = f"run-{next(EXAMPLES)}"
    replies = [
        dataclasses.replace(reply, run_id=run, output_index=index, id=f"{run}-{index}")
        for index, reply in enumerate(replies)
    ]
    if one_by_one:
        handed = [store.put_message(reply, now=NOW).message for reply in replies]
    else:
        handed = store.record_replies(replies, now=NOW)
    read = {row.seq: row for row in store.new_messages(handed[0].seq - 1, limit=len(handed))}
    assert handed == [read[row.seq] for row in handed]
    assert [row.id for row in handed] == [reply.id for reply in replies]
