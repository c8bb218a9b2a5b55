"""The built-in channels (``web:``, ``local:``): the chats whose readers read the store, named once.

A row to such a chat is delivered by being stored; a gateway delivers them through its built-in channels and adapters
may not register their names or prefixes. All of it follows :data:`kanmon.gateway.channels.STORE_READ_PREFIXES`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.gateway import Gateway, GatewayConfig, RunDefaults
from kanmon.gateway.channels import STORE_READ_PREFIXES, StoreReadChannel, owner, read_from_store, store_read_channels
from kanmon.gateway.dispatch import DAEMON_PREFIX, daemon_jid
from kanmon.store import Store, upgrade
from kanmon.web.adapter_bodies import RESERVED_NAMES, RESERVED_PREFIXES


async def test_a_gateway_delivers_every_store_read_chat_by_storing_it_and_nothing_else(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    gateway = Gateway(store, {}, GatewayConfig(run=RunDefaults(instance="t", data_dir=tmp_path)))
    try:
        deliverers = await gateway.deliverers()
    finally:
        gateway.db.close()
        store.close()
    for prefix in STORE_READ_PREFIXES:
        channel = owner(f"{prefix}corp", None, deliverers)
        assert isinstance(channel, StoreReadChannel), prefix
        assert read_from_store(f"{prefix}corp")
    assert owner("telegram:-7", None, deliverers) is None
    assert not read_from_store("telegram:-7")


@pytest.mark.parametrize("channel", store_read_channels(), ids=lambda channel: channel.name)
def test_adapters_may_not_take_a_built_in_channel_name_or_prefix(channel: StoreReadChannel) -> None:
    assert channel.name in RESERVED_NAMES
    assert channel.prefixes[0] in RESERVED_PREFIXES
    assert f"{channel.name}:" == channel.prefixes[0]


def test_daemon_outboxes_are_reserved_too() -> None:
    assert daemon_jid("hook").startswith(DAEMON_PREFIX)
    assert DAEMON_PREFIX in RESERVED_PREFIXES
    assert set(RESERVED_PREFIXES) == {*STORE_READ_PREFIXES, DAEMON_PREFIX}
