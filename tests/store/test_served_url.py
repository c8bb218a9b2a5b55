"""Where the gated on a store serves HTTP, recorded for commands of other processes (their printed links)."""

from __future__ import annotations

import pytest

from kanmon.store import Store, StoreFenced


def test_the_served_address_is_recorded_and_cleared(store: Store) -> None:
    assert store.served_url() is None  # no gated ever served on this store
    store.fence = store.take_epoch()
    store.set_served_url("http://127.0.0.1:41234")
    assert store.served_url() == "http://127.0.0.1:41234"
    store.set_served_url("")  # the gated stopped
    assert store.served_url() is None


def test_a_gated_that_lost_the_store_cannot_overwrite_the_holders_address(store_url: str) -> None:
    first, second = Store.open(store_url), Store.open(store_url)
    try:
        first.fence = first.take_epoch()
        first.set_served_url("http://127.0.0.1:1111")
        second.fence = second.take_epoch()  # the next gated took the store over
        second.set_served_url("http://127.0.0.1:2222")
        with pytest.raises(StoreFenced):
            first.set_served_url("")  # the first one's stop clears nothing of the second's
        assert second.served_url() == first.served_url() == "http://127.0.0.1:2222"
    finally:
        first.close()
        second.close()
