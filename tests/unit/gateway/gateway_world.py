"""The layer tests' world: the store and a fake queue, with helpers that read like the scenarios they set up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kanmon.gateway import Decision, LayerContext, process_batch
from kanmon.queue import Lane
from kanmon.store import Group, Message, NewMessage, Store

CHAT = "telegram:-100"
SENDER = "telegram:42"


@dataclass
class FakeQueue:
    """A queue double: counts are set by the test; ``stop`` records the lane and answers from ``live``."""

    running: int = 0
    waiting: int = 0
    live: set[tuple[str, str]] = field(default_factory=set)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    offered: list[Lane] = field(default_factory=list)

    def stop(self, lane: Lane) -> bool:
        key = (lane.folder, lane.topic or "")
        self.stopped.append(key)
        return key in self.live

    def running_count(self) -> int:
        return self.running

    def waiting_count(self) -> int:
        return self.waiting

    def offer(self, lane: Lane) -> None:
        self.offered.append(lane)


@dataclass
class World:
    """The store and queue the layers see, with helpers that read like the scenario they set up."""

    store: Store
    queue: FakeQueue
    _counter: int = 0

    def ctx(self, **overrides: Any) -> LayerContext:
        return LayerContext(self.store, self.queue, **overrides)

    def group(self, folder: str, name: str = "") -> None:
        self.store.add_group(Group(folder=folder, name=name))

    def route(self, match: str, target: str, seq: int = 0, impulse: str | None = None) -> int:
        return self.store.add_route(seq=seq, match=match, target=target, impulse_config=impulse).id

    def inbound(self, content: str, chat: str = CHAT, **fields: Any) -> Message:
        self._counter += 1
        fields.setdefault("sender", SENDER)
        new = NewMessage(chat_jid=chat, content=content, id=f"m{self._counter}", **fields)
        return self.store.put_message(new).message

    def send(self, *contents: str, chat: str = CHAT, ctx: LayerContext | None = None) -> list[Decision]:
        """Store every message first, then run the batch through the layers the way the loop does."""
        batch = [self.inbound(content, chat) for content in contents]
        return process_batch(batch, ctx or self.ctx())

    def replies(self, chat: str = CHAT) -> list[str]:
        return [m.content for m in self.store.new_messages(0, 10_000) if m.chat_jid == chat and m.direction == "out"]

    def inbound_rows(self, chat: str = CHAT) -> list[Message]:
        return [m for m in self.store.new_messages(0, 10_000) if m.chat_jid == chat and m.direction == "in"]
