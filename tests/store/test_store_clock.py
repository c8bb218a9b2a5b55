"""The store's time comes from its caller or from its injected clock, never from the wall clock (issue 13, item 5).

A store on a clock five years ahead is driven through every method that stamps a row without being given ``now``;
afterwards every timestamp column of every table holds that clock's time. A stamp taken from the wall clock (a
forgotten ``datetime.now()``) would be five years off. The source check below keeps it that way for code this test
does not call.
"""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

import kanmon.store
from kanmon.clock import FakeClock
from kanmon.gateway import IdleQueue, LayerContext
from kanmon.store import Dispatch, Group, NewMessage, Store
from kanmon.store.columns import UTCDateTime, metadata
from tests.clocks import ShiftedClock

AHEAD = dt.timedelta(days=5 * 365)
STORE_SOURCES = sorted(Path(kanmon.store.__file__).parent.glob("*.py"))


@pytest.fixture
def ahead(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url, clock=ShiftedClock(AHEAD))
    yield store
    store.close()


def stamps(store: Store) -> dict[str, list[dt.datetime]]:
    """Every non-null value of every timestamp column, by ``table.column``."""
    found: dict[str, list[dt.datetime]] = {}
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, UTCDateTime):
                    values = conn.execute(select(column).where(column.is_not(None))).scalars().all()
                    if values:
                        found[f"{table.name}.{column.name}"] = list(values)
    return found


def test_rows_stamped_without_a_time_from_the_caller_carry_the_store_clock_time(ahead: Store) -> None:
    ahead.add_group(Group(folder="corp"))
    ahead.set_session("corp", "", "sess-1")
    ahead.add_system_message("corp", origin="cli", event="note", body="hello")
    put = ahead.put_message(NewMessage(chat_jid="web:corp", content="hi", sender="user:1"))
    ahead.add_web_token("corp", "hash-1", label="one")
    ahead.set_group_web_token("corp", "hash-2", label="two")
    ahead.name_topic("web:corp", "t1", "Plans")
    ahead.add_api_key("key-1", "key-hash", ["corp"], name="ci")
    ahead.record_approval(
        folder="corp",
        match="chat_jid=tg:1",
        decision_key="onboarding:tg:1",
        decision="approved corp",
        repost=NewMessage(chat_jid="tg:1", id="repost-1", content="again", sender="tg:9"),
    )
    outbox = [NewMessage(chat_jid="web:corp", id="answer-1", content="answer", direction="out", origin="gateway")]
    dispatch = Dispatch(seq=put.message.seq, status="new", folder="corp", topic="", content="hi")
    ahead.record_dispatch([dispatch], put.message.seq, outbox=outbox)

    found = stamps(ahead)
    lower = dt.datetime.now(dt.UTC) + AHEAD - dt.timedelta(days=1)
    wall = {where: values for where, values in found.items() if any(value < lower for value in values)}
    assert wall == {}, f"stamped with the wall clock: {wall}"
    for where in (
        "registered_groups.added_at",
        "sessions.updated_at",
        "system_messages.created_at",
        "messages.timestamp",
        "messages.received_at",
        "web_tokens.created_at",
        "topic_names.named_at",
        "api_keys.created_at",
    ):
        assert where in found, f"{where}: nothing stamped, so nothing checked"


def test_a_time_from_the_caller_wins_over_the_store_clock(ahead: Store) -> None:
    given = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)
    ahead.add_group(Group(folder="corp"))
    ahead.set_session("corp", "", "sess-1", now=given)
    ahead.add_system_message("corp", origin="cli", event="note", now=given)
    ahead.put_message(NewMessage(chat_jid="web:corp", content="hi"), now=given)
    ahead.name_topic("web:corp", "t1", "Plans", now=given)
    ahead.add_api_key("key-1", "key-hash", ["corp"], now=given)

    found = stamps(ahead)
    for where in (
        "sessions.updated_at",
        "system_messages.created_at",
        "messages.received_at",
        "topic_names.named_at",
        "api_keys.created_at",
    ):
        assert found[where] == [given], where


def test_a_layer_context_tells_its_own_clock_time_and_else_the_store_clock_time(ahead: Store) -> None:
    """What the layers stamp outside the loop (an approval from the CLI, a scheduled task) has the store's time."""
    assert LayerContext(ahead, IdleQueue()).now() > dt.datetime.now(dt.UTC) + AHEAD - dt.timedelta(days=1)
    fake = FakeClock(wall_start=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert LayerContext(ahead, IdleQueue(), clock=fake).now() == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _wall_clock_reads(path: Path) -> list[str]:
    """``datetime.now()``, ``datetime.utcnow()``, ``date.today()``, ``time.time()`` … calls in ``path``."""
    reads = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter"}:
                owner = ast.unparse(node.func.value)
                if not owner.endswith("clock"):  # self.clock.now(), self._clock.monotonic(): the injected clock
                    reads.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return reads


@pytest.mark.parametrize("path", STORE_SOURCES, ids=lambda path: path.name)
def test_no_store_module_reads_the_wall_clock(path: Path) -> None:
    assert _wall_clock_reads(path) == []


def test_the_source_check_finds_a_wall_clock_read(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import datetime as dt, time\n"
        "a = dt.datetime.now(dt.UTC)\n"
        "b = time.monotonic()\n"
        "c = self.clock.now()\n"
        "d = func.now()\n"  # SQL's now() is the database server's wall clock: as bad
    )
    assert [read.split(": ", 1)[1] for read in _wall_clock_reads(source)] == [
        "dt.datetime.now(dt.UTC)",
        "time.monotonic()",
        "func.now()",
    ]
