"""Onboarding approval is one transaction (SPEC §11): the route, the decision and the re-posted message, or nothing.

A failure is injected at the SQL level (the statement that writes a route, the decision or the copy raises), so the
test does not depend on how the approval is put together: whichever write fails, nothing of the approval is left in
the store, and a retry then succeeds. Approving twice adds one route and posts one copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from kanmon.gateway import IdleQueue, LayerContext
from kanmon.gateway.onboarding import OnboardingError, approve, get_entry, note_unowned, repost_id
from kanmon.store import Group, Message, NewMessage, NotFound, Store

JID = "tg:100"


class Injected(Exception):
    """The failure a test injects into one SQL statement."""


@contextmanager
def failing(store: Store, table: str) -> Iterator[None]:
    """Make every INSERT or UPSERT into ``table`` raise :class:`Injected` while the block runs."""

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()} "):
            raise Injected(f"injected failure writing {table}")

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(store.engine, "before_cursor_execute", before)


def snapshot(store: Store) -> tuple[object, ...]:
    return (store.list_routes(), store.states(""), store.max_seq())


@pytest.fixture
def waiting(store: Store) -> list[Message]:
    """Groups corp and root; chat tg:100 pending with two waiting messages."""
    for folder in ("corp", "root"):
        store.add_group(Group(folder=folder))
    ctx = LayerContext(store, IdleQueue())
    rows = []
    for text in ("first", "second"):
        row = store.put_message(NewMessage(chat_jid=JID, content=text, sender="tg:alice")).message
        note_unowned(row, ctx)
        rows.append(row)
    entry = get_entry(store, JID)
    assert entry is not None and entry.state == "pending"
    return rows


@pytest.mark.parametrize("table", ["routes", "router_state", "messages"])
def test_a_failure_anywhere_in_an_approval_writes_nothing_and_a_retry_succeeds(
    store: Store, waiting: list[Message], table: str
) -> None:
    before = snapshot(store)
    with failing(store, table), pytest.raises(Injected):
        approve(store, JID, "corp", by="test")
    assert snapshot(store) == before
    entry = get_entry(store, JID)
    assert entry is not None and entry.state == "pending"

    approval = approve(store, JID, "corp", by="test")

    [route] = store.list_routes()
    assert (route.match, route.target, approval.route_id) == (f"chat_jid={JID}", "corp", route.id)
    assert store.get_state(f"onboarding:{JID}") == "approved corp"
    copy = store.get_message(JID, repost_id(waiting[-1].seq))
    assert copy is not None and copy.content == "second"
    assert approval.reposted is not None and approval.reposted.seq == copy.seq


def test_approving_twice_adds_one_route_posts_one_copy_and_the_second_changes_nothing(
    store: Store, waiting: list[Message]
) -> None:
    first = approve(store, JID, "corp", by="test")
    after_first = snapshot(store)

    second = approve(store, JID, "corp", by="test")

    assert snapshot(store) == after_first
    assert len(store.list_routes()) == 1
    copies = [m for m in store.new_messages(0) if m.id.startswith("onboard-")]
    assert len(copies) == 1
    assert first.changed and not second.changed
    assert second.route_id == first.route_id


def test_approving_an_approved_chat_to_another_folder_is_a_clear_error_and_changes_nothing(
    store: Store, waiting: list[Message]
) -> None:
    approve(store, JID, "corp", by="test")
    before = snapshot(store)
    with pytest.raises(OnboardingError, match=f"{JID} is already approved -> corp"):
        approve(store, JID, "root", by="test")
    assert snapshot(store) == before


def test_a_route_left_by_an_interrupted_approval_is_reused_and_the_approval_completes(
    store: Store, waiting: list[Message]
) -> None:
    # What an approval that stopped after its first write (before this was one transaction) left behind.
    left = store.add_route(seq=0, match=f"chat_jid={JID}", target="corp")

    approval = approve(store, JID, "corp", by="test")

    assert store.list_routes() == [left]
    assert approval.route_id == left.id and approval.changed
    assert store.get_state(f"onboarding:{JID}") == "approved corp"
    assert store.get_message(JID, repost_id(waiting[-1].seq)) is not None


def test_record_approval_writes_each_part_once_and_refuses_an_unregistered_folder(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    copy = NewMessage(chat_jid=JID, id="onboard-1", content="hi", origin="gateway")
    match, key = f"chat_jid={JID}", f"onboarding:{JID}"

    first = store.record_approval(folder="corp", match=match, decision_key=key, decision="approved corp", repost=copy)
    again = store.record_approval(folder="corp", match=match, decision_key=key, decision="approved corp", repost=copy)

    assert (first.route_added, first.decision_changed, first.repost_added, first.changed) == (True, True, True, True)
    assert (again.route_added, again.decision_changed, again.repost_added, again.changed) == (False,) * 4
    assert again.route == first.route and again.reposted == first.reposted
    before = snapshot(store)
    with pytest.raises(NotFound, match="no group 'ghost'"):
        store.record_approval(folder="ghost", match=match, decision_key=key, decision="approved ghost", repost=copy)
    assert snapshot(store) == before
