"""router_state beyond get/set: compare-and-set (two writers cannot overwrite each other) and listing by key prefix."""

from __future__ import annotations

from kanmon.store import Store


def test_swap_from_absent_inserts_only_when_the_key_is_missing(store: Store) -> None:
    assert store.swap_state("onboarding:tg:1", None, "pending") is True
    assert store.swap_state("onboarding:tg:1", None, "other") is False
    assert store.get_state("onboarding:tg:1") == "pending"


def test_swap_changes_the_value_only_when_it_holds_the_expected_one(store: Store) -> None:
    store.set_state("k", "a")
    assert store.swap_state("k", "b", "c") is False
    assert store.get_state("k") == "a"
    assert store.swap_state("k", "a", "c") is True
    assert store.get_state("k") == "c"


def test_swap_of_a_missing_key_with_an_expected_value_changes_nothing(store: Store) -> None:
    assert store.swap_state("missing", "a", "b") is False
    assert store.get_state("missing") is None


def test_states_lists_the_keys_with_a_prefix_in_key_order(store: Store) -> None:
    for key, value in [("p:b", "2"), ("p:a", "1"), ("q:a", "x"), ("p", "no colon"), ("last_seq", "9")]:
        store.set_state(key, value)
    assert store.states("p:") == {"p:a": "1", "p:b": "2"}
    assert store.states("none:") == {}


def test_states_takes_like_wildcards_in_the_prefix_literally(store: Store) -> None:
    store.set_state("a_b:1", "literal")
    store.set_state("axb:1", "wildcard would match")
    store.set_state("a%:1", "percent")
    assert store.states("a_b:") == {"a_b:1": "literal"}
    assert store.states("a%") == {"a%:1": "percent"}


def test_the_idempotency_prefix_is_the_first_askers_for_every_gated_after_it(store: Store) -> None:
    assert store.idempotency_prefix("k1a2b3c4d") == "k1a2b3c4d"
    assert store.idempotency_prefix("standby") == "k1a2b3c4d"  # another gated, another instance name: the same keys
