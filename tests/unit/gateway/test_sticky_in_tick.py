"""A sticky setting is written with the tick that read it, in its one transaction (SPEC §6.1, dispatch step 4).

The sticky layer wrote the chat's setting at once, before the tick's decisions were recorded. A crash (or a store
error) between the two re-read the batch with the new setting already stored, so the rows before the ``@folder``
message were routed by it too: messages a user sent before steering went to the group steered to.
"""

from __future__ import annotations

import pytest

from kanmon.store import Store, StoreUnavailable
from tests.unit.gateway.tick_world import CHAT, TickWorld


class World(TickWorld):
    def routed(self) -> dict[str, str | None]:
        """Where each inbound row went: its routed folder, or ``corp/eng`` for a row copied to that group's inbox
        (a chat steered to a sub-group of its owner delegates there)."""
        copied = {row.content for row in self.store.chat_messages("local:corp/eng")}
        return {
            row.content: row.routed_folder or ("corp/eng" if row.content in copied else None)
            for row in self.store.chat_messages(CHAT)
            if row.direction == "in"
        }


def fail_next_record(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``record_dispatch`` fails as a lost database does: the tick's transaction never commits."""
    real = store.record_dispatch

    def once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(store, "record_dispatch", real)
        raise StoreUnavailable("the database went away")

    monkeypatch.setattr(store, "record_dispatch", once)


def test_the_batch_read_again_after_a_failed_tick_routes_the_earlier_rows_by_the_earlier_setting(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(store)
    world.send("before", "@corp/eng", "after")
    fail_next_record(store, monkeypatch)
    with pytest.raises(StoreUnavailable):
        world.tick()
    chat = store.get_chat(CHAT)
    assert chat is None or chat.sticky_group is None  # nothing of the failed tick is stored
    world.tick()
    assert world.routed() == {"before": "corp", "@corp/eng": None, "after": "corp/eng"}
    chat = store.get_chat(CHAT)
    assert chat is not None and chat.sticky_group == "corp/eng"
    assert world.answers() == ["routing → corp/eng"]  # answered once


def test_a_later_row_of_the_same_tick_follows_the_setting_an_earlier_row_made(store: Store) -> None:
    world = World(store)
    world.send("before", "@corp/eng", "middle", "#ops", "@", "last")
    world.tick()
    assert world.routed() == {
        "before": "corp", "@corp/eng": None, "middle": "corp/eng", "#ops": None, "@": None, "last": "corp",
    }  # fmt: skip
    [last] = [row for row in store.chat_messages(CHAT) if row.content == "last"]
    assert last.routed_topic == "#ops"  # the sticky topic set two rows earlier, in the same tick
    chat = store.get_chat(CHAT)
    assert chat is not None and (chat.sticky_group, chat.sticky_topic) == (None, "#ops")


def test_a_sticky_setting_of_a_chat_not_yet_known_is_stored_with_the_tick(store: Store) -> None:
    world = World(store)
    world.send("#ops")
    world.tick()
    chat = store.get_chat(CHAT)
    assert chat is not None and chat.sticky_topic == "#ops"
