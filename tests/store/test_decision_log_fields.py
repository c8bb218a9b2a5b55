"""Lines logged while the loop decides a message carry its chat as a field (issue 18 item 6), whoever logs them:
the command layer, the routing layer, sender authorisation. The chat is bound once per row by the dispatcher
(:mod:`kanmon.logcontext`), so none of those lines writes the chat into its text as well."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator

import pytest

from kanmon.clock import FakeClock
from kanmon.gated.logs import configure_logging
from kanmon.gateway import IdleQueue
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Group, NewMessage, Store
from tests.unit.gated.test_logs import restore_logging

__all__ = ["restore_logging"]  # autouse: the root logger is process-wide


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    store.add_group(Group(folder="main"))
    store.add_route(seq=0, match="chat_jid=tg:*", target="main")
    store.add_allow("tg:42", platform="tg", note="a friend", now=FakeClock().now())
    yield store
    store.close()


def test_every_line_about_deciding_a_message_names_its_chat_once(store: Store) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    config = DispatchConfig(
        poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=False,
        auth=AuthConfig(mode="allowlist", pairing=False),
    )  # fmt: skip
    dispatcher = Dispatcher(
        store, Registry(store), config, metrics=GatewayMetrics(), clock=FakeClock(), rng=random.Random(1)
    )
    for n, (chat, sender, text) in enumerate(
        [("tg:1", "tg:42", "/tasks cancel 99"), ("tg:2", "tg:666", "let me in"), ("tg:3", "tg:42", "hello")]
    ):
        store.put_message(NewMessage(chat_jid=chat, id=f"m{n}", content=text, sender=sender, origin="adapter:tg"))
    dispatcher.tick(store.start_cursor(), IdleQueue())

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    said = {entry["message"].split(":")[0].split(" seq=")[0]: entry for entry in entries}
    assert said["command failed command=tasks"]["chat"] == "tg:1"
    assert said["refused"]["chat"] == "tg:2"
    assert said["routed"]["chat"] == "tg:3"  # the pipeline's DEBUG line of every routed message
    for entry in [e for e in entries if e["logger"] != "kanmon.gateway.registry"]:  # its refresh is about no chat
        assert "chat" in entry, entry
        assert f"chat={entry['chat']}" not in entry["message"] and entry["chat"] not in entry["message"], entry
