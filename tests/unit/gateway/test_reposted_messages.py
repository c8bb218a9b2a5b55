"""A user's message that kanmon posts again keeps what its sender may do (an outside review found three ways around).

kanmon re-posted a user's text in three places: an approved onboarding posts the chat's waiting message again,
``/new <text>`` posted its text as a new message (it now routes the text as the message's own), and a prefix or
route that sends a message to a group other than its chat's owner copies it into that group's ``local:`` inbox. The
first two were posted as kanmon's own
(origin ``gateway``): the allowlist did not apply to them and their sender counted as an operator, so a stranger's
``/approve`` ran with operator rights once the operator approved the stranger's chat, and so did ``/new /approve``
from any sender. A delegated copy was read by the command layer again in the inbox, so ``#x /approve …`` ran a
root group's command that the operators list had refused in the chat. The copy also lost the topic the prefix
layer chose.
"""

from __future__ import annotations

import random

from kanmon.clock import FakeClock
from kanmon.gateway import IdleQueue, onboarding
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Group, Message, NewMessage, Store

ALLOWLIST = AuthConfig(mode="allowlist", operators=("tg:boss",))


class World:
    def __init__(self, store: Store, *, auth: AuthConfig = ALLOWLIST, onboarding: bool = False) -> None:
        self.store, self.cursor, self.clock = store, 0, FakeClock()
        config = DispatchConfig(
            poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=onboarding, auth=auth
        )
        registry = Registry(store)
        self.dispatcher = Dispatcher(
            store, registry, config, metrics=GatewayMetrics(), clock=self.clock, rng=random.Random(1)
        )

    def send(self, chat: str, text: str, sender: str = "tg:42") -> None:
        self.store.put_message(NewMessage(chat_jid=chat, content=text, sender=sender, origin="adapter:tg"))

    def ticks(self, count: int = 3) -> None:
        for _ in range(count):
            work = self.dispatcher.tick(self.cursor, IdleQueue())
            if work.rows:
                self.cursor = work.rows[-1].seq

    def answers(self, chat: str) -> list[str]:
        return [row.content for row in self.store.chat_messages(chat) if row.direction == "out"]

    def inbound(self, chat: str) -> list[Message]:
        return [row for row in self.store.chat_messages(chat) if row.direction == "in"]

    def approved(self) -> list[str]:
        return [route.match for route in self.store.list_routes() if "victim" in route.match]


def test_a_strangers_message_posted_again_by_an_approval_still_meets_the_allowlist_and_the_operators(
    store: Store,
) -> None:
    store.add_group(Group(folder="main"))
    world = World(store, onboarding=True)
    store.ensure_chat("tg:new", channel="tg", is_group=True)
    world.send("tg:new", "/approve tg:victim main", sender="tg:666")
    world.ticks()
    onboarding.approve(store, "tg:new", "main", by="cli")  # the operator approves the chat, not its senders
    world.ticks()
    assert world.approved() == []
    assert [row.status for row in world.inbound("tg:new")] == ["skipped", "skipped"]  # refused: not allowlisted


def test_the_text_after_new_is_given_to_the_agent_and_never_run_as_a_command(store: Store) -> None:
    store.add_group(Group(folder="main"))
    store.add_route(seq=0, match="platform=tg", target="main")
    store.add_allow("tg:42", now=FakeClock().now())  # may talk; not an operator
    world = World(store)
    world.send("tg:pub", "/new /approve tg:victim main")
    world.ticks()
    assert world.approved() == []
    assert world.answers("tg:pub") == ["Session cleared. Processing your message..."]
    [row] = world.inbound("tg:pub")
    assert (row.agent_text, row.routed_folder, row.status) == ("/approve tg:victim main", "main", "new")


def test_a_copy_delegated_to_another_group_is_never_read_as_a_command(store: Store) -> None:
    for folder in ("main", "tg-42"):
        store.add_group(Group(folder=folder))
    store.add_route(seq=0, match="platform=tg", target="{sender}")  # a root group per sender
    store.add_route(seq=1, match="platform=tg", target="main")
    store.add_allow("tg:42", now=FakeClock().now())
    store.ensure_chat("tg:pub", channel="tg", is_group=True)
    world = World(store)
    world.send("tg:pub", "/approve tg:victim main")
    world.send("tg:pub", "#x /approve tg:victim main")  # not a command in the chat; the copy is bare text
    world.ticks()
    assert world.answers("tg:pub") == ["Permission denied: operators only (auth.operators)."]
    assert world.approved() == []
    [copy] = world.inbound("local:tg-42")
    assert (copy.content, copy.status, copy.routed_folder) == ("/approve tg:victim main", "new", "tg-42")


def test_a_delegated_copy_keeps_the_topic_the_prefix_chose(store: Store) -> None:
    for folder in ("corp", "corp/eng"):
        store.add_group(Group(folder=folder))
    store.add_route(seq=0, match="platform=tg", target="corp")
    world = World(store, auth=AuthConfig())
    world.send("tg:1", "@eng #release ship it")
    world.ticks()
    [copy] = world.inbound("local:corp/eng")
    assert (copy.topic, copy.routed_folder, copy.routed_topic) == ("#release", "corp/eng", "#release")
