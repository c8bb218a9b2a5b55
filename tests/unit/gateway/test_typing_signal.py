"""The "agent is working" signal: on at run start, refreshed every interval, off at the first reply or the end.

Time is the injected clock: the test moves it and sees exactly which pings were sent when. The pings here record
what they are asked to send; the HTTP side is tested against real servers in tests/e2e/test_typing.py.
"""

from __future__ import annotations

import asyncio

from kanmon.clock import FakeClock
from kanmon.gateway import ChatFeed
from kanmon.gateway.typing import Ping, TypingSignal, Working, is_status_only


class Pings:
    """Records ``(time, chat, topic, on)`` of each ping; ``hang`` keeps every "on" ping waiting for ``release``."""

    def __init__(self, clock: FakeClock, *, hang: bool = False) -> None:
        self.clock = clock
        self.hang = hang
        self.release = asyncio.Event()
        self.answered = 0  # "on" pings that returned
        self.sent: list[tuple[float, str, str, bool]] = []

    def for_chat(self, chat_jid: str) -> Ping | None:
        return self.ping if chat_jid.startswith("telegram:") else None

    async def ping(self, chat_jid: str, topic: str, on: bool) -> None:
        self.sent.append((self.clock.monotonic(), chat_jid, topic, on))
        if self.hang and on:
            await self.release.wait()
        self.answered += on


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_pings_at_start_then_every_interval_until_the_first_reply_then_once_off() -> None:
    clock = FakeClock()
    pings, changes = Pings(clock), list[Working]()
    signal = TypingSignal(clock=clock, interval=4.0, pinger=pings.for_chat, on_change=changes.append)
    signal.started("run-1", "telegram:42", "7")
    assert signal.working("telegram:42", "7")
    await clock.wait_for_sleepers()
    for _ in range(3):
        clock.advance(4.0)
        await clock.wait_for_sleepers()
    signal.stopped("run-1")
    await settle()
    clock.advance(100.0)
    await settle()
    await signal.close()
    on = [(t, chat, topic) for t, chat, topic, is_on in pings.sent if is_on]
    assert on == [(0.0, "telegram:42", "7"), (4.0, "telegram:42", "7"), (8.0, "telegram:42", "7"),
                  (12.0, "telegram:42", "7")]  # fmt: skip
    assert pings.sent[-1] == (12.0, "telegram:42", "7", False)
    assert len(pings.sent) == 5
    assert changes == [Working("telegram:42", "7", True), Working("telegram:42", "7", False)]
    assert not signal.working("telegram:42", "7")


async def test_a_chat_without_a_typing_adapter_gets_no_ping_but_still_changes_state() -> None:
    clock = FakeClock()
    pings, changes = Pings(clock), list[Working]()
    signal = TypingSignal(clock=clock, interval=4.0, pinger=pings.for_chat, on_change=changes.append)
    signal.started("run-1", "web:corp", "t-1")
    await settle()
    clock.advance(10.0)
    signal.stopped("run-1")
    signal.stopped("run-1")  # the end after the first reply: nothing more
    await signal.close()
    assert pings.sent == []
    assert changes == [Working("web:corp", "t-1", True), Working("web:corp", "t-1", False)]


async def stopped_while_pinging() -> tuple[TypingSignal, Pings]:
    """A run of telegram:1 stopped while its first "on" ping waits for the adapter."""
    clock = FakeClock()
    pings = Pings(clock, hang=True)
    signal = TypingSignal(clock=clock, interval=4.0, pinger=pings.for_chat)
    signal.started("run-1", "telegram:1", "")
    await settle()
    signal.stopped("run-1")
    return signal, pings


async def test_the_off_goes_only_once_the_ping_in_flight_is_answered() -> None:
    """Cancelling the ping in flight left its request with the adapter, which could take it after the ``off``: the
    indicator came back after the reply (and the ping was never counted; tests/e2e/test_typing.py waited for it)."""
    signal, pings = await stopped_while_pinging()
    await settle()
    assert pings.sent == [(0.0, "telegram:1", "", True)]  # the "on" is still with the adapter: no "off" yet
    assert pings.answered == 0
    pings.release.set()  # the adapter answers (a real ping ends at its timeout at the latest)
    for _ in range(4):
        await settle()
    assert pings.answered == 1
    assert pings.sent == [(0.0, "telegram:1", "", True), (0.0, "telegram:1", "", False)]
    await signal.close()
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("kanmon-typing")] == []


async def test_close_cancels_a_ping_still_in_flight_and_leaves_no_task() -> None:
    signal, _ = await stopped_while_pinging()
    await signal.close()  # gated stopping: nothing waits for the adapter
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("kanmon-typing")] == []


async def test_close_ends_every_loop_of_runs_still_going() -> None:
    clock = FakeClock()
    pings = Pings(clock)
    signal = TypingSignal(clock=clock, interval=4.0, pinger=pings.for_chat)
    signal.started("run-1", "telegram:1", "")
    signal.started("run-2", "telegram:2", "")
    await clock.wait_for_sleepers(2)
    await signal.close()
    clock.advance(60.0)
    await settle()
    assert sorted(pings.sent) == [(0.0, "telegram:1", "", True), (0.0, "telegram:2", "", True)]
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("kanmon-typing")] == []


async def test_two_runs_replying_into_one_topic_keep_it_working_until_both_stopped() -> None:
    clock = FakeClock()
    changes: list[Working] = []
    signal = TypingSignal(clock=clock, interval=0.0, pinger=lambda jid: None, on_change=changes.append)
    signal.started("run-1", "web:corp", "")
    signal.started("run-2", "web:corp", "")
    signal.stopped("run-1")
    assert signal.working("web:corp", "")
    signal.stopped("run-2")
    await signal.close()
    assert changes == [Working("web:corp", "", True), Working("web:corp", "", False)]


async def test_working_topics_names_each_topic_of_a_chat_a_run_works_on() -> None:
    signal = TypingSignal(clock=FakeClock(), interval=0.0, pinger=lambda jid: None)
    for run, chat, topic in (("r1", "web:corp", "t-b"), ("r2", "web:corp", ""), ("r3", "web:corp", "t-b")):
        signal.started(run, chat, topic)
    signal.started("r4", "web:other", "t-c")
    assert signal.working_topics("web:corp") == ["", "t-b"]  # what a stream opening now is told, each topic once
    signal.stopped("r1")
    assert signal.working_topics("web:corp") == ["", "t-b"]  # r3 still works on t-b
    signal.stopped("r3")
    signal.stopped("r2")
    assert signal.working_topics("web:corp") == []
    assert signal.working_topics("web:other") == ["t-c"]
    await signal.close()


async def test_an_interval_of_zero_sends_no_pings() -> None:
    clock = FakeClock()
    pings = Pings(clock)
    signal = TypingSignal(clock=clock, interval=0.0, pinger=pings.for_chat)
    signal.started("run-1", "telegram:1", "")
    await settle()
    signal.stopped("run-1")
    await signal.close()
    assert pings.sent == []


def test_status_only_outputs_are_not_a_reply() -> None:
    assert is_status_only("⏳ searching")
    assert is_status_only("⏳ searching\n\n⏳ reading")
    assert not is_status_only("⏳ searching\nfound it")
    assert not is_status_only("the answer")
    assert not is_status_only("")


async def test_the_feed_hands_a_working_change_to_every_subscriber_of_its_chat_whatever_its_topic() -> None:
    feed = ChatFeed()
    async with (
        feed.subscribe("web:corp", topic="t1") as mine,
        feed.subscribe("web:corp", topic="t2") as other_topic,
        feed.subscribe("web:corp") as whole_chat,
        feed.subscribe("web:other", topic="t1") as other_chat,
    ):
        feed.signal(Working("web:corp", "t1", True))
        feed.close()
        assert [event async for event in mine.events()] == [Working("web:corp", "t1", True)]
        assert [event async for event in whole_chat.events()] == [Working("web:corp", "t1", True)]
        # a page following t2 marks t1 as being worked on in its topic list
        assert [event async for event in other_topic.events()] == [Working("web:corp", "t1", True)]
        assert [event async for event in other_chat.events()] == []
    async with feed.subscribe("web:corp", topic="t1") as messages_only:
        feed.signal(Working("web:corp", "t1", True))
        feed.close()
        assert [message async for message in messages_only.messages()] == []  # messages() never yields one
