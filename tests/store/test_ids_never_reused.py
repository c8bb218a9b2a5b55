"""An id an operator names (`route rm ID`, `allow rm ID`, `task rm ID`, `web-token --revoke ID`) is never given to
another row, even after the newest row was removed (migration 0012). Before, SQLite gave the next row the id just
freed: a newcomer revoked token 2, made another, and was told "web token 2" again, so a noted `--revoke 2` would
have revoked someone else's token."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from kanmon.store import Group, NewTask, Store, downgrade, upgrade

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
Adds = Callable[[Store, int], int]
Removes = Callable[[Store, int], object]


def add_route(store: Store, n: int) -> int:
    return store.add_route(seq=n, match=f"chat_jid=telegram:{n}", target="corp").id


def add_allow(store: Store, n: int) -> int:
    return store.add_allow(f"user:{n}", now=NOW)[0].id


def add_task(store: Store, n: int) -> int:
    new = NewTask(
        group_folder="corp", chat_jid="web:corp", prompt=f"task {n}", kind="at", expression="x",
        next_fire_at=NOW + dt.timedelta(days=1), created_at=NOW,
    )  # fmt: skip
    return store.add_task(new).id


def add_token(store: Store, n: int) -> int:
    return store.add_web_token("corp", f"hash-{n}", label=f"phone {n}").id


KINDS: dict[str, tuple[Adds, Removes]] = {
    "route": (add_route, lambda store, id_: store.remove_route(id_)),
    "allow": (add_allow, lambda store, id_: store.remove_allow(id_)),
    "task": (add_task, lambda store, id_: store.remove_task(id_)),
    "web-token": (add_token, lambda store, id_: store.revoke_web_token("corp", id_)),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_id_of_a_removed_row_is_never_given_again(store: Store, kind: str) -> None:
    add, remove = KINDS[kind]
    store.add_group(Group(folder="corp"))
    first, newest = add(store, 1), add(store, 2)
    remove(store, newest)
    again = add(store, 3)
    assert again > newest > first
    remove(store, again)
    remove(store, first)
    assert add(store, 4) > again  # nothing left in the table: still no id given twice


def test_upgrading_keeps_every_row_and_its_id(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    downgrade(store.engine, "0011")
    with store.engine.begin() as conn:
        assert "AUTOINCREMENT" not in str(conn.execute(text("SELECT sql FROM sqlite_master WHERE name='routes'")).one())
    store.add_group(Group(folder="corp"))
    ids = {kind: [add(store, n) for n in (1, 2, 3)] for kind, (add, _) in KINDS.items()}
    for kind, (_, remove) in KINDS.items():
        remove(store, ids[kind][1])
    upgrade(store.engine)
    assert [route.id for route in store.list_routes()] == [ids["route"][0], ids["route"][2]]
    assert [entry.id for entry in store.list_allow()] == [ids["allow"][0], ids["allow"][2]]
    assert [token.id for token in store.list_web_tokens("corp")] == [ids["web-token"][0], ids["web-token"][2]]
    assert sorted(task.id for task in store.list_tasks()) == [ids["task"][0], ids["task"][2]]
    for kind, (add, remove) in KINDS.items():
        newest = ids[kind][2]
        remove(store, newest)
        assert add(store, 9) > newest, kind
    store.close()
