"""GroupCommit (kanmon.store.aio): writes of one kind from many callers go in one transaction, each caller gets its
own result or error, and on SQLite the writes that arrive while a commit waits for this process's writer turn
join it (issue 13: in put mode a run's begin and end waited a turn each, one or two to a transaction)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.store import Store, StoreFenced, StoreUnavailable, upgrade
from kanmon.store.aio import AsyncStore, GroupCommit


class Recorder:
    """An ``apply_many`` that writes each item through the store (inside the turn GroupCommit holds) and notes the
    batches it was given; items listed in ``bad`` fail their batch, ``unavailable`` fails the next N calls."""

    def __init__(self, store: Store, *, bad: frozenset[int] = frozenset(), unavailable: int = 0) -> None:
        self.store, self.bad, self.unavailable = store, bad, unavailable
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[str]:
        if self.unavailable:
            self.unavailable -= 1
            raise StoreUnavailable("the database went away")
        self.batches.append(list(items))
        if self.bad & set(items):
            raise ValueError(f"bad item among {items}")
        for item in items:
            self.store.set_state(f"item-{item}", str(item))  # a store write while the turn is held: no deadlock
        return [f"done {item}" for item in items]


@pytest.fixture
def db(store: Store) -> Iterator[AsyncStore]:
    facade = AsyncStore(store, first_wait=0.0)
    yield facade
    facade.close()


async def test_a_lone_write_is_one_transaction_and_gets_its_result(db: AsyncStore) -> None:
    apply = Recorder(db.store)
    commit = GroupCommit(db, apply, name="test")
    assert await commit(7) == "done 7"
    assert apply.batches == [[7]]
    assert (commit.commits, commit.items) == (1, 1)
    assert db.store.get_state("item-7") == "7"


async def test_writes_made_together_share_a_transaction_and_each_caller_gets_its_own_result(db: AsyncStore) -> None:
    apply = Recorder(db.store)
    commit = GroupCommit(db, apply, name="test")
    results = await asyncio.gather(*(commit(n) for n in range(6)))
    assert results == [f"done {n}" for n in range(6)]
    assert sorted(n for batch in apply.batches for n in batch) == list(range(6))  # each written once
    assert len(apply.batches) < 6
    assert all(db.store.get_state(f"item-{n}") == str(n) for n in range(6))


async def test_a_bad_item_fails_only_its_own_caller(db: AsyncStore) -> None:
    apply = Recorder(db.store, bad=frozenset({2}))
    commit = GroupCommit(db, apply, name="test")
    results = await asyncio.gather(*(commit(n) for n in range(4)), return_exceptions=True)
    assert [r for n, r in enumerate(results) if n != 2] == ["done 0", "done 1", "done 3"]
    assert isinstance(results[2], ValueError)
    assert db.store.get_state("item-2") is None
    assert [db.store.get_state(f"item-{n}") for n in (0, 1, 3)] == ["0", "1", "3"]


async def test_a_write_retried_after_an_outage_is_made_once_with_whatever_joined_it(db: AsyncStore) -> None:
    apply = Recorder(db.store, unavailable=2)
    commit = GroupCommit(db, apply, name="test")
    results = await asyncio.gather(*(commit(n) for n in range(3)))
    assert results == ["done 0", "done 1", "done 2"]
    assert sorted(n for batch in apply.batches for n in batch) == [0, 1, 2]
    assert db.outage is None


async def test_without_retrying_an_outage_fails_every_caller_at_once_and_the_next_write_is_made(db: AsyncStore) -> None:
    """``retrying=False`` (the gateway's puts: an adapter's request gets its 503 instead of waiting): the outage fails
    the whole batch, and no item is tried again alone (an unreachable database is no item's fault)."""
    apply = Recorder(db.store, unavailable=1)
    commit = GroupCommit(db, apply, name="test", retrying=False)
    results = await asyncio.gather(*(commit(n) for n in range(3)), return_exceptions=True)
    assert [type(result) for result in results] == [StoreUnavailable] * 3
    assert apply.batches == []
    assert db.outage is not None
    assert await commit(4) == "done 4"
    assert db.outage is None
    assert [db.store.get_state(f"item-{n}") for n in range(5)] == [None, None, None, None, "4"]


async def test_a_fenced_store_fails_every_caller_without_trying_each_alone(db: AsyncStore) -> None:
    """Another gated took the store (SPEC §14): no item is at fault, so the batch is not split into lone retries."""
    batches: list[list[int]] = []

    def fenced(items: list[int]) -> list[str]:
        batches.append(list(items))
        raise StoreFenced("another gated holds the store")

    commit = GroupCommit(db, fenced, name="test")
    results = await asyncio.gather(*(commit(n) for n in range(3)), return_exceptions=True)
    assert [type(result) for result in results] == [StoreFenced] * 3
    assert batches == [[0, 1, 2]]


async def test_writes_arriving_while_it_waits_for_the_writer_turn_join_that_transaction(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    db = AsyncStore(store)
    apply = Recorder(store)
    commit = GroupCommit(db, apply, name="test")
    holding, release = threading.Event(), threading.Event()

    def another_writer() -> None:
        with store.writer_turn():
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=another_writer)
    writer.start()
    try:
        assert holding.wait(30)
        first = asyncio.ensure_future(commit(1))
        for _ in range(3):
            await asyncio.sleep(0)  # the commit of 1 is under way: its thread waits for the turn
        later = [asyncio.ensure_future(commit(n)) for n in (2, 3)]
        for _ in range(3):
            await asyncio.sleep(0)  # 2 and 3 are waiting too
        assert apply.batches == []
    finally:
        release.set()
        await asyncio.to_thread(writer.join)
    assert await asyncio.gather(first, *later) == ["done 1", "done 2", "done 3"]
    assert apply.batches == [[1, 2, 3]]  # before: [[1], [2, 3]], the second waiting another turn
    assert commit.commits == 1
    db.close()
    store.close()


async def test_a_cancelled_commit_still_tells_its_callers_how_their_writes_ended(db: AsyncStore) -> None:
    """The commit task cancelled (a shutdown cancelling every task) while its transaction runs in the store's thread:
    the callers whose writes were taken learn the real outcome once the thread is done, and the ones still waiting
    are cancelled; none waits forever (before: their futures were never settled), and the next write is made."""
    started, release = threading.Event(), threading.Event()
    recorder = Recorder(db.store)

    def slow(items: list[int]) -> list[str]:
        started.set()
        release.wait(30)
        return recorder(items)

    commit = GroupCommit(db, slow, name="test")
    taken = asyncio.ensure_future(commit(1))
    assert await asyncio.to_thread(started.wait, 30)
    waiting = asyncio.ensure_future(commit(2))
    await asyncio.sleep(0)
    flushing = commit._flushing
    assert flushing is not None
    flushing.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.wait_for(taken, 10) == "done 1"
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 10)
    assert db.store.get_state("item-1") == "1"
    assert db.store.get_state("item-2") is None
    assert await asyncio.wait_for(commit(3), 10) == "done 3"
