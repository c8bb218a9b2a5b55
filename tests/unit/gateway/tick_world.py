"""One chat ``tg:team`` owned by ``corp`` (with a child ``corp/eng``), and a real dispatcher ticking over the store."""

from __future__ import annotations

import random

from kanmon.clock import FakeClock
from kanmon.gateway import IdleQueue
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Group, NewMessage, Store

CHAT = "tg:team"


class TickWorld:
    def __init__(self, store: Store) -> None:
        store.add_group(Group(folder="corp"))
        store.add_group(Group(folder="corp/eng"))
        store.add_route(seq=0, match=f"chat_jid={CHAT}", target="corp")
        self.store, self.cursor = store, 0
        config = DispatchConfig(poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=False)
        self.dispatcher = Dispatcher(
            store, Registry(store), config, metrics=GatewayMetrics(), clock=FakeClock(), rng=random.Random(1)
        )

    def send(self, *texts: str) -> None:
        for text in texts:
            self.store.put_message(NewMessage(chat_jid=CHAT, content=text, sender="tg:42", origin="adapter:tg"))

    def tick(self) -> None:
        work = self.dispatcher.tick(self.cursor, IdleQueue())
        if work.rows:
            self.cursor = work.rows[-1].seq

    def answers(self) -> list[str]:
        """The chat's outbound rows (command and sticky answers), in order."""
        return [row.content for row in self.store.chat_messages(CHAT) if row.direction == "out"]
