"""A JID prefix belongs to one channel adapter at a time: an overlapping claim by another adapter is refused.

Two prefixes overlap when they are equal or one starts with the other (``telegram:`` and ``telegram:-100:``): a JID
could then start with both, and its replies would go to whichever adapter wrote into the chat last. The check and
the write are one transaction, so two adapters registering at once cannot both get the same prefix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event

from kanmon.store import Channel, Conflict, PrefixTaken, Store

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def channel(name: str, *prefixes: str, token_hash: str = "h") -> Channel:
    return Channel(
        name=name,
        url=f"http://{name}",
        token_hash=token_hash,
        jid_prefixes=list(prefixes),
        capabilities={},
        registered_at=NOW,
    )


def owners(store: Store) -> dict[str, list[str]]:
    return {c.name: list(c.jid_prefixes) for c in store.list_channels()}


@pytest.mark.parametrize(
    ("owned", "claimed"),
    [
        (["telegram:"], ["telegram:"]),
        (["telegram:"], ["telegram:-100:"]),
        (["telegram:-100:"], ["telegram:"]),
        (["discord:g1:c2:"], ["discord:g1:"]),
        (["slack:", "telegram:-100:"], ["matrix:", "telegram:-100:x:"]),
    ],
)
def test_a_prefix_overlapping_another_adapters_is_refused_naming_the_owner(
    store: Store, owned: list[str], claimed: list[str]
) -> None:
    store.save_channel(channel("first", *owned))
    with pytest.raises(PrefixTaken, match="'first'") as refused:
        store.save_channel(channel("second", *claimed))
    assert isinstance(refused.value, Conflict)
    assert refused.value.owner == "first"
    assert refused.value.prefix in claimed and refused.value.owned in owned
    assert owners(store) == {"first": owned}  # nothing written


def test_a_prefix_may_not_be_taken_over_by_re_registering_an_existing_adapter(store: Store) -> None:
    store.save_channel(channel("tg", "telegram:"))
    store.save_channel(channel("dc", "discord:"))
    with pytest.raises(PrefixTaken, match="'tg'"):
        store.save_channel(channel("dc", "discord:", "telegram:-5:"))
    assert owners(store) == {"dc": ["discord:"], "tg": ["telegram:"]}


def test_prefixes_that_only_share_a_start_do_not_overlap(store: Store) -> None:
    store.save_channel(channel("a", "tele:"))
    store.save_channel(channel("b", "telegram:"))
    store.save_channel(channel("c", "telegram2:", "discord:g1:"))
    store.save_channel(channel("d", "discord:g10:", "discord:g2:"))
    assert set(owners(store)) == {"a", "b", "c", "d"}


def test_an_adapter_may_rotate_its_token_and_change_its_own_prefixes(store: Store) -> None:
    store.save_channel(channel("tg", "telegram:", "telegram:-100:", token_hash="h1"))  # its own may overlap
    store.save_channel(channel("tg", "telegram:", token_hash="h2"))
    store.save_channel(channel("tg", "telegram:-100:", "slack:", token_hash="h3"))
    [saved] = store.list_channels()
    assert (saved.jid_prefixes, saved.token_hash) == (["telegram:-100:", "slack:"], "h3")
    store.save_channel(channel("other", "telegram:-200:"))  # what tg gave up is free
    assert owners(store) == {"other": ["telegram:-200:"], "tg": ["telegram:-100:", "slack:"]}
    store.remove_channel("tg")
    store.save_channel(channel("third", "slack:", "telegram:-100:"))  # so is what a deregistered adapter owned


@pytest.fixture
def two_stores(store_url: str) -> Iterator[tuple[Store, Store]]:
    first, second = Store.open(store_url), Store.open(store_url)
    yield first, second
    first.close()
    second.close()


def test_two_adapters_registering_one_prefix_at_once_cannot_both_win(two_stores: tuple[Store, Store]) -> None:
    """Each registration, once it has checked, waits (up to 2 s) for the other to check too before it writes.

    Were the check and the write not serialised, both would see a free prefix and both would write it. Serialised,
    the second waits for the first to commit, sees its row and is refused.
    """
    both_checked = threading.Barrier(2, timeout=2)

    def hold_the_write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CHANNELS"):
            # broken: the other one is waiting for this transaction to end; go on
            with contextlib.suppress(threading.BrokenBarrierError):
                both_checked.wait()

    for store in two_stores:
        event.listen(store.engine, "before_cursor_execute", hold_the_write)

    def register(store: Store, name: str) -> str:
        try:
            store.save_channel(channel(name, "telegram:"))
        except PrefixTaken as exc:
            return f"refused ({exc.owner})"
        return "saved"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(register, two_stores, ["alpha", "beta"]))
    saved = owners(two_stores[0])
    assert len(saved) == 1, saved
    [winner] = saved
    assert outcomes == ["refused (" + winner + ")", "saved"]
