"""Sender authorisation and DM pairing (issue 16 item 1) through the loop's dispatcher, on SQLite and PostgreSQL.

Each test drives :class:`~kanmon.gateway.dispatch.Dispatcher` ticks with a fake clock and a seeded random source
against a real store: what is routed, what is refused and counted, which codes are sent, what an approval does.
"A restart" is a new Store, registry and dispatcher on the same database.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway import IdleQueue
from kanmon.gateway.auth import AuthConfig
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.pairing import PairingError, approve, deny
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Group, Message, NewMessage, Store

DM = "tg:dm-stranger"
PUBLIC = "tg:public"
STRANGER = "tg:666"
FRIEND = "tg:42"
ALLOWLIST = AuthConfig(mode="allowlist", pairing_ttl=3600, pairing_window=600, pairing_max_pending=3)
CODE = re.compile(r"pairing code is ([A-Z2-9]{8})")


@dataclass
class World:
    """A store with root group ``main`` owning every ``tg:`` chat, and a dispatcher ticking over it."""

    url: str
    clock: FakeClock = field(default_factory=FakeClock)
    config: AuthConfig = ALLOWLIST
    store: Store = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    cursor: int = 0
    n: int = 0

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A fresh store object, registry and dispatcher on the same database (what a gated restart builds)."""
        if hasattr(self, "store"):
            self.store.close()
        self.store = Store.open(self.url)
        self.cursor = self.store.start_cursor()
        dispatch = DispatchConfig(poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=False)
        dispatch = DispatchConfig(**{**dispatch.__dict__, "auth": self.config})
        self.dispatcher = Dispatcher(
            self.store,
            Registry(self.store),
            dispatch,
            metrics=self.metrics,
            clock=self.clock,
            rng=random.Random(len(self.url) + self.n),
        )

    def say(self, chat: str, sender: str, text: str = "hello", *, is_group: bool) -> Message:
        """An adapter stores a message (and has described the chat)."""
        self.n += 1
        self.store.ensure_chat(chat, channel="tg", is_group=is_group)
        new = NewMessage(chat_jid=chat, content=text, sender=sender, id=f"m{self.n}", origin="adapter:tg")
        return self.store.put_message(new).message

    def tick(self) -> None:
        work = self.dispatcher.tick(self.cursor, IdleQueue())
        if work.rows:
            self.cursor = work.rows[-1].seq

    def row(self, message: Message) -> Message:
        found = self.store.get_message(message.chat_jid, message.id)
        assert found is not None
        return found

    def answers(self, chat: str) -> list[str]:
        return [m.content for m in self.store.chat_messages(chat) if m.direction == "out"]

    def codes(self, chat: str) -> list[str]:
        return [match.group(1) for text in self.answers(chat) for match in [CODE.search(text)] if match]


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    setup = Store.open(store_url)
    setup.add_group(Group(folder="main"))
    setup.add_route(seq=0, match="chat_jid=tg:*", target="main")
    setup.close()
    world = World(store_url)
    yield world
    world.store.close()


def test_open_by_default_routes_everyone(world: World) -> None:
    world.config = AuthConfig()
    world.restart()
    row = world.say(PUBLIC, STRANGER, is_group=True)
    world.tick()
    assert world.row(row).routed_folder == "main"


def test_a_stranger_in_a_group_is_refused_silently_and_counted(world: World) -> None:
    world.store.add_allow(FRIEND, now=world.clock.now())
    rows = [world.say(PUBLIC, STRANGER, f"hi {i}", is_group=True) for i in range(3)]
    friend = world.say(PUBLIC, FRIEND, "let me in", is_group=True)
    world.tick()
    assert [world.row(r).status for r in rows] == ["skipped"] * 3
    assert all(world.row(r).routed_folder is None for r in rows)
    assert world.row(friend).routed_folder == "main"
    assert world.answers(PUBLIC) == []  # a group never gets an answer
    refused, senders, messages = world.store.refused_senders()
    assert (senders, messages) == (1, 3)
    refused_total = world.metrics.registry.get_sample_value("kanmon_messages_refused_total", {"platform": "tg"})
    assert refused_total == 3
    assert (refused[0].sender, refused[0].first_seq, refused[0].last_seq) == (STRANGER, rows[0].seq, rows[2].seq)


def test_a_re_read_batch_counts_refusals_once(world: World) -> None:
    row = world.say(PUBLIC, STRANGER, is_group=True)
    world.tick()
    world.cursor = 0  # the batch is read again (a crash before the cursor moved)
    world.tick()
    assert world.store.refused_senders()[2] == 1
    assert world.row(row).status == "skipped"


def test_globs_platform_and_group_entries(world: World) -> None:
    world.store.add_group(Group(folder="other"))
    world.store.add_route(seq=-1, match="chat_jid=tg:other*", target="other")
    now = world.clock.now()
    world.store.add_allow("tg:4*", platform="tg", now=now)  # any tg:4… sender, every group
    world.store.add_allow("tg:7", folder="other", now=now)  # tg:7 only in other's chats
    world.store.add_allow("tg:8", platform="matrix", now=now)  # another platform's entry
    cases = [(PUBLIC, "tg:41", "main"), (PUBLIC, "tg:7", None), ("tg:other-1", "tg:7", "other"), (PUBLIC, "tg:8", None)]
    rows = [world.say(chat, sender, is_group=True) for chat, sender, _ in cases]
    world.tick()
    assert [world.row(r).routed_folder for r in rows] == [want for *_, want in cases]


def test_an_allowlist_change_counts_from_the_next_tick(world: World) -> None:
    first = world.say(PUBLIC, FRIEND, is_group=True)
    world.tick()
    entry, created = world.store.add_allow(FRIEND, now=world.clock.now())
    second = world.say(PUBLIC, FRIEND, is_group=True)
    world.tick()
    world.store.remove_allow(entry.id)
    third = world.say(PUBLIC, FRIEND, is_group=True)
    world.tick()
    assert created
    assert [world.row(r).status for r in (first, second, third)] == ["skipped", "new", "skipped"]


def test_rows_not_from_adapters_are_not_checked(world: World) -> None:
    row = world.store.put_message(NewMessage(chat_jid=PUBLIC, content="from the operator", origin="cli")).message
    world.tick()
    assert world.row(row).routed_folder == "main"


def test_a_dm_stranger_gets_one_code_per_window_and_one_notice(world: World) -> None:
    for _ in range(5):
        world.say(DM, STRANGER, is_group=False)
        world.tick()
        world.clock.advance(60)
    codes = world.codes(DM)
    assert len(codes) == 1 and len(world.answers(DM)) == 1
    assert len(world.store.pairing_codes(live_at=world.clock.now())) == 1
    # the code is live for an hour: no second code even after the window, while it is live
    world.clock.advance(1200)
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    assert len(world.answers(DM)) == 1
    # once it expired (and the window passed), the sender may get a new one
    world.clock.advance(3600)
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    assert len(world.codes(DM)) == 2 and world.codes(DM)[0] != world.codes(DM)[1]


def test_the_window_holds_across_a_restart(world: World) -> None:
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    world.clock.advance(300)
    world.restart()
    world.say(DM, STRANGER, "still there?", is_group=False)
    world.tick()
    assert len(world.answers(DM)) == 1
    assert world.store.refused_senders()[2] == 2


def test_a_chat_no_adapter_described_gets_no_code(world: World) -> None:
    world.store.put_message(NewMessage(chat_jid="tg:unknown", content="hi", sender=STRANGER, origin="adapter:tg"))
    world.tick()
    assert world.answers("tg:unknown") == []


def test_pending_codes_per_platform_are_limited(world: World) -> None:
    for i in range(5):
        world.say(f"tg:dm-{i}", f"tg:{100 + i}", is_group=False)
    world.tick()
    assert [len(world.codes(f"tg:dm-{i}")) for i in range(5)] == [1, 1, 1, 0, 0]


def test_an_approved_code_survives_a_restart_and_lets_the_sender_in(world: World) -> None:
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    (code,) = world.codes(DM)
    world.clock.advance(1800)
    world.restart()
    request, entry = approve(world.store, code.lower(), by="test", now=world.clock.now())
    assert (request.sender, entry.pattern, entry.platform, entry.folder) == (STRANGER, STRANGER, "tg", "")
    assert world.answers(DM)[-1].startswith("You're paired")
    row = world.say(DM, STRANGER, "now?", is_group=False)
    world.tick()
    assert world.row(row).routed_folder == "main"
    with pytest.raises(PairingError, match="no live pairing code"):
        approve(world.store, code, by="test", now=world.clock.now())  # used once


def test_an_expired_code_is_refused(world: World) -> None:
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    (code,) = world.codes(DM)
    world.clock.advance(3601)
    world.restart()
    with pytest.raises(PairingError, match="no live pairing code"):
        approve(world.store, code, by="test", now=world.clock.now())
    assert world.store.list_allow() == []


def test_approve_for_one_group_and_deny(world: World) -> None:
    world.store.add_group(Group(folder="other"))
    world.say(DM, STRANGER, is_group=False)
    world.say("tg:dm-2", "tg:777", is_group=False)
    world.tick()
    (code,) = world.codes(DM)
    (other,) = world.codes("tg:dm-2")
    with pytest.raises(PairingError, match="no group 'nope'"):
        approve(world.store, code, by="test", now=world.clock.now(), folder="nope")
    _, entry = approve(world.store, code, by="test", now=world.clock.now(), folder="other")
    assert entry.folder == "other"
    denied = deny(world.store, other, by="test", now=world.clock.now())
    assert denied.status == "denied" and denied.sender == "tg:777"
    row = world.say(DM, STRANGER, "main owns this chat", is_group=False)
    world.tick()
    assert world.row(row).status == "skipped"  # allowed in other, not in main


def test_wrong_codes_lock_approvals_for_an_hour(world: World) -> None:
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    (code,) = world.codes(DM)
    for _ in range(5):
        with pytest.raises(PairingError, match="no live pairing code"):
            approve(world.store, "ZZZZZZZZ" if code != "ZZZZZZZZ" else "YYYYYYYY", by="test", now=world.clock.now())
    with pytest.raises(PairingError, match="locked"):
        approve(world.store, code, by="test", now=world.clock.now())
    world.clock.advance(3599)
    with pytest.raises(PairingError, match="locked"):
        approve(world.store, code, by="test", now=world.clock.now())
    world.clock.advance(1)  # the lockout ends, the code (an hour old) has expired too: a new one is needed
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    fresh = world.codes(DM)[-1]
    approve(world.store, fresh, by="test", now=world.clock.now())


def test_malformed_codes_are_one_clear_line(world: World) -> None:
    with pytest.raises(PairingError, match="8 characters"):
        approve(world.store, "abc", by="test", now=world.clock.now())


def test_pair_from_a_root_group_allows_the_sender(world: World) -> None:
    world.config = replace(world.config, operators=(FRIEND,))  # an allowlisted sender is not an operator by itself
    world.restart()
    world.store.add_group(Group(folder="main/sub", parent="main"))
    world.store.add_route(seq=-1, match="chat_jid=tg:sub", target="main/sub")
    world.store.add_allow(FRIEND, now=world.clock.now())
    world.say(DM, STRANGER, is_group=False)
    world.tick()
    (code,) = world.codes(DM)
    world.say("tg:sub", FRIEND, f"/pair {code}", is_group=True)  # a child group may not
    world.say(PUBLIC, STRANGER, f"/pair {code}", is_group=True)  # nor a stranger in the root group's chat
    world.tick()
    assert world.answers("tg:sub") == ["Permission denied: root groups only."]
    assert world.answers(PUBLIC) == []
    world.say(PUBLIC, FRIEND, f"/pair {code}", is_group=True)
    row = world.say(DM, STRANGER, "in the same batch", is_group=False)
    world.tick()
    assert world.answers(PUBLIC)[-1].startswith(f"Paired {STRANGER}")
    assert world.row(row).routed_folder == "main"
    world.say(PUBLIC, FRIEND, "/pair ABCDEFGH", is_group=True)
    world.tick()
    assert "no live pairing code" in world.answers(PUBLIC)[-1]


def test_expired_undecided_codes_are_pruned_when_a_new_one_is_issued(world: World) -> None:
    world.say(DM, STRANGER, is_group=False)
    world.say("tg:dm-friend", FRIEND, is_group=False)
    world.tick()
    (code,) = world.codes("tg:dm-friend")
    approve(world.store, code, by="test", now=world.clock.now())
    world.clock.advance(3600 + 600)  # the stranger's code expired, and its window passed
    world.restart()
    assert {c.sender for c in world.store.pairing_codes()} == {STRANGER, FRIEND}  # nothing pruned by time alone
    world.say("tg:dm-other", "tg:777", is_group=False)
    world.tick()
    assert {(c.sender, c.status) for c in world.store.pairing_codes()} == {(FRIEND, "approved"), ("tg:777", "pending")}
    # the pruned stranger may get a new code, as before
    world.say(DM, STRANGER, "again", is_group=False)
    world.tick()
    assert len(world.codes(DM)) == 2
