"""A command's effect never reaches back to the rows before it in its tick, even when the tick fails to record.

Commands such as ``/approve`` commit their change (a route, a decision, a copy of the waiting message) at once, in
a transaction of their own. The tick recorded its decisions only at its end: when that failed (a crash, a lost
database), the batch was read again with the change already stored, and the rows before the command were decided
by it. A stranger's "hello" then sent in the same tick as the operator's ``/approve`` was routed to the group and
answered, and so was the copy of it that the approval posted: the agent answered it twice.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway import IdleQueue
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Group, NewMessage, Store, StoreUnavailable

STRANGER = "tg:new"


def dispatcher(store: Store) -> Dispatcher:
    config = DispatchConfig(poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=True)
    return Dispatcher(store, Registry(store), config, metrics=GatewayMetrics(), clock=FakeClock(), rng=random.Random(1))


def watch_records(store: Store, monkeypatch: pytest.MonkeyPatch, before: Callable[[list[object]], None]) -> None:
    """Call ``before`` with the dispatches of each ``record_dispatch`` before it runs (it may raise instead)."""
    real = store.record_dispatch

    def record(dispatches: list[object], *args: object, **kwargs: object) -> object:
        before(dispatches)
        return real(dispatches, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "record_dispatch", record)


def fail_the_record_after_the_approval(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first ``record_dispatch`` once the approval's route is stored fails as a lost database does."""
    failed = list[int]()

    def fail(dispatches: list[object]) -> None:
        if not failed and any(route.match == f"chat_jid={STRANGER}" for route in store.list_routes()):
            failed.append(1)
            raise StoreUnavailable("the database went away")

    watch_records(store, monkeypatch, fail)
    return failed


def test_a_tick_that_fails_after_an_approval_does_not_route_the_strangers_earlier_message_too(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_group(Group(folder="main"))
    store.ensure_chat(STRANGER, channel="tg", is_group=True)
    store.put_message(NewMessage(chat_jid=STRANGER, content="hello", sender="tg:1", origin="adapter:tg"))
    store.put_message(NewMessage(chat_jid="web:main", content=f"/approve {STRANGER} main", sender="web:op"))
    failed = fail_the_record_after_the_approval(store, monkeypatch)
    loop, cursor = dispatcher(store), 0
    for _ in range(4):
        try:
            work = loop.tick(cursor, IdleQueue())
        except StoreUnavailable:
            continue  # the loop backs off and reads the batch again
        cursor = work.rows[-1].seq if work.rows else cursor
    assert failed, "the failure was never injected"
    waiting = [row for row in store.chat_messages(STRANGER) if row.status == "new" and row.routed_folder == "main"]
    assert [row.content for row in waiting] == ["hello"]  # one row for the agent: the approval's copy
    assert waiting[0].id.startswith("onboard-")
    answers = [row.content for row in store.chat_messages("web:main") if row.direction == "out"]
    assert len(answers) == 1 and answers[0].startswith(f"Approved {STRANGER} → main")


def test_the_rows_recorded_before_a_command_of_a_failed_tick_are_offered_again_and_not_decided_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_group(Group(folder="corp"))
    store.add_route(seq=0, match="chat_jid=tg:team", target="corp")
    first = store.put_message(NewMessage(chat_jid="tg:team", content="hi", sender="tg:1", origin="adapter:tg"))
    store.put_message(NewMessage(chat_jid="tg:team", content="/new", sender="tg:1", origin="adapter:tg"))
    calls = list[int]()

    def second_fails(dispatches: list[object]) -> None:
        calls.append(1)
        if len(calls) == 2:  # the rows before /new were recorded; the tick fails after the command ran
            raise StoreUnavailable("the database went away")

    watch_records(store, monkeypatch, second_fails)
    loop = dispatcher(store)
    with pytest.raises(StoreUnavailable):
        loop.tick(0, IdleQueue())
    [hi] = [row for row in store.chat_messages("tg:team") if row.seq == first.message.seq]
    assert (hi.status, hi.routed_folder) == ("new", "corp")  # recorded before the command
    work = loop.tick(0, IdleQueue())  # the loop reads the batch again from where it was
    assert [(item.seq, str(item.lane)) for item in work.admitted] == [(hi.seq, "corp")]  # offered once more
    answers = [row.content for row in store.chat_messages("tg:team") if row.direction == "out"]
    assert answers == ["Session cleared."]


def counting(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each ``record_dispatch`` call recorded, in order."""
    calls = list[int]()
    watch_records(store, monkeypatch, lambda dispatches: calls.append(len(dispatches)))
    return calls


def test_commands_that_never_run_or_only_read_cost_the_tick_no_transaction_of_their_own(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stranger's commands are never run (nobody owns the chat), /ping only reads: one transaction for the tick
    store.add_group(Group(folder="corp"))
    store.add_route(seq=0, match="chat_jid=tg:team", target="corp")
    for n in range(50):
        store.put_message(NewMessage(chat_jid="tg:nobody", content="/approve tg:x corp", sender=f"tg:{n}"))
        store.put_message(NewMessage(chat_jid="tg:team", content="/ping", sender="tg:1", origin="adapter:tg"))
    calls = counting(store, monkeypatch)
    dispatcher(store).tick(0, IdleQueue())
    assert calls == [100]


def test_a_writing_command_records_the_rows_before_it_first_and_only_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_group(Group(folder="corp"))
    store.add_route(seq=0, match="chat_jid=tg:team", target="corp")
    for text in ("a", "b", "/new", "/new", "c"):
        store.put_message(NewMessage(chat_jid="tg:team", content=text, sender="tg:1", origin="adapter:tg"))
    calls = counting(store, monkeypatch)
    dispatcher(store).tick(0, IdleQueue())
    assert calls == [2, 1, 2]  # a, b | the first /new | the second /new, c


def test_a_tick_leaves_no_garbage_for_the_cyclic_collector(store: Store) -> None:
    # the tick's context held a closure that held the context: every tick's rows and caches waited for the cyclic
    # collector, and gated's RSS grew by 6 MiB under bench/rss.py
    store.add_group(Group(folder="corp"))
    store.add_route(seq=0, match="chat_jid=tg:team", target="corp")
    loop, cursor, garbage = dispatcher(store), 0, []
    for _ in range(3):
        for text in ("a", "/new", "b"):
            store.put_message(NewMessage(chat_jid="tg:team", content=text, sender="tg:1", origin="adapter:tg"))
        gc.collect()
        gc.disable()
        try:
            cursor = loop.tick(cursor, IdleQueue()).rows[-1].seq
            garbage.append(gc.collect())
        finally:
            gc.enable()
    assert garbage[1:] == [0, 0]  # the first tick warms caches up
