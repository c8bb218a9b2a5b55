"""A value the database driver cannot even send (an int past 64 bits, a lone surrogate) is the store's one clear
error, :class:`InvalidValue`, on every backend: before, SQLite's driver raised OverflowError or UnicodeEncodeError
out of the store, which the callers that handle a store's refusals did not expect (an agent's action crashed its
run, a chat command failed the loop's tick; an outside review)."""

from __future__ import annotations

import pytest

from kanmon.store import InvalidValue, NewMessage, Store


def test_an_int_past_64_bits_is_an_invalid_value(store: Store) -> None:
    with pytest.raises(InvalidValue):
        store.get_task(10**30)


def test_text_with_a_lone_surrogate_where_it_is_not_made_storable_is_an_invalid_value(store: Store) -> None:
    with pytest.raises(InvalidValue):
        store.list_tasks("x\ud800")


def test_a_message_to_a_chat_whose_jid_no_backend_can_hold_changes_nothing(store: Store) -> None:
    with pytest.raises(InvalidValue):
        store.put_message(NewMessage(chat_jid="telegram:\ud800", content="x", direction="out"))
    assert store.new_messages(0) == []
