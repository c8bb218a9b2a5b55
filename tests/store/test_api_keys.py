"""API keys of the OpenAI-compatible API: stored as hashes with the groups they may use, on every backend."""

from __future__ import annotations

import pytest

from kanmon.errors import InvalidFolder
from kanmon.store import Conflict, Group, NotFound, Store


def test_a_key_is_stored_with_its_hash_and_groups(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_group(Group(folder="corp/eng"))
    added = store.add_api_key("k1", "hash-1", ["corp/eng", "corp", "corp"], name="laptop")
    assert added.groups == ("corp", "corp/eng")
    assert store.get_api_key("k1") == added
    assert store.list_api_keys() == [added]
    assert store.get_api_key("nope") is None


def test_a_key_for_an_unknown_group_is_refused_and_nothing_is_written(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    with pytest.raises(NotFound, match="no group 'ghost'"):
        store.add_api_key("k1", "h", ["corp", "ghost"])
    with pytest.raises(NotFound, match="at least one group"):
        store.add_api_key("k1", "h", [])
    with pytest.raises(InvalidFolder):
        store.add_api_key("k1", "h", ["../etc"])
    assert store.list_api_keys() == []


def test_a_taken_id_is_a_conflict_and_keeps_the_first(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_api_key("k1", "first", ["corp"])
    with pytest.raises(Conflict):
        store.add_api_key("k1", "second", ["corp"])
    key = store.get_api_key("k1")
    assert key is not None and key.key_hash == "first"


def test_removing_a_group_takes_it_off_every_key_for_good(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_group(Group(folder="ops"))
    store.add_api_key("k1", "h", ["corp", "ops"])
    store.remove_group("ops")
    store.add_group(Group(folder="ops"))  # the same folder again is not given back to the old key
    key = store.get_api_key("k1")
    assert key is not None and key.groups == ("corp",)


def test_removing_a_key_removes_it_and_its_grants(store: Store) -> None:
    store.add_group(Group(folder="corp"))
    store.add_api_key("k1", "h", ["corp"])
    store.add_api_key("k2", "h2", ["corp"])
    assert store.remove_api_key("k1") is True
    assert store.remove_api_key("k1") is False
    assert [key.id for key in store.list_api_keys()] == ["k2"]
    store.remove_group("corp")  # no grant of k1 was left behind to block it
