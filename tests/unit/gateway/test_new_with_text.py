"""``/new some text`` clears the session and gives the agent ``some text`` in the message's own place (SPEC §6.2).

The text used to be posted again as a new row: it took a later seq than every row that arrived after the ``/new``
and was routed in a later tick. ``[/new first, second]`` reached the agent as "second", "first"; a sticky
``@folder`` sent right after the ``/new`` carried its text to the other group; and the copy's text was read as a
command again (``/new /new /new …`` reset the session once per word, one tick each).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kanmon.clock import FakeClock
from kanmon.gateway.dispatch import DispatchConfig, Dispatcher
from kanmon.gateway.hooks import Hooks
from kanmon.gateway.metrics import GatewayMetrics
from kanmon.gateway.registry import Registry
from kanmon.router import ImpulseConfig
from kanmon.store import Message, Store, StoreUnavailable
from tests.unit.gateway.tick_world import CHAT, TickWorld


class World(TickWorld):
    def waiting(self, folder: str = "corp") -> list[tuple[str, str]]:
        """What ``folder``'s agent will be shown, in the order it is shown (seq), with each row's session topic."""
        rows = self.store.chat_messages(CHAT) + self.store.chat_messages(f"local:{folder}")
        ready = [row for row in rows if row.direction == "in" and row.routed_folder == folder and row.status == "new"]
        return [(row.agent_text, row.routed_topic or "") for row in sorted(ready, key=_seq)]

    def inbound(self) -> list[Message]:
        return [row for row in self.store.chat_messages(CHAT) if row.direction == "in"]


def _seq(row: Message) -> int:
    return row.seq


def test_the_text_reaches_the_agent_before_the_rows_sent_after_it(store: Store) -> None:
    world = World(store)
    world.send("/new first", "second")
    world.tick()
    assert world.waiting() == [("first", ""), ("second", "")]
    assert len(world.inbound()) == 2  # no copy of the text was stored
    assert world.answers() == ["Session cleared. Processing your message..."]


def test_a_sticky_setting_sent_after_the_new_does_not_carry_its_text_away(store: Store) -> None:
    world = World(store)
    world.send("/new summarise this", "@corp/eng", "for eng")
    world.tick()
    world.tick()
    assert world.waiting("corp") == [("summarise this", "")]
    assert world.waiting("corp/eng") == [("for eng", "")]


def test_the_text_of_new_with_a_topic_goes_to_that_topic_session(store: Store) -> None:
    world = World(store)
    store.set_session("corp", "#t", "old")
    world.send("/new #t draft it")
    world.tick()
    assert store.get_session("corp", "#t") is None
    assert world.waiting() == [("draft it", "#t")]


def test_the_text_is_given_to_the_agent_and_never_run_as_a_command(store: Store) -> None:
    world = World(store)
    store.set_session("corp", "", "old")
    world.send("/new /new /new /ping")
    world.tick()
    world.tick()
    assert world.answers() == ["Session cleared. Processing your message..."]  # one reset, no /ping answer
    assert world.waiting() == [("/new /new /ping", "")]


def test_a_tick_that_fails_after_the_reset_gives_the_text_to_the_agent_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(store)
    world.send("before", "/new summarise this", "after")
    real, failed = store.record_dispatch, list[int]()

    def fail_once_after_the_reset(*args: object, **kwargs: object) -> object:
        if not failed and store.get_session("corp", "") is None:
            failed.append(1)
            raise StoreUnavailable("the database went away")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    store.set_session("corp", "", "old")
    monkeypatch.setattr(store, "record_dispatch", fail_once_after_the_reset)
    for _ in range(3):
        try:
            world.tick()
        except StoreUnavailable:
            continue  # the loop backs off and reads the batch again
    assert failed, "the failure was never injected"
    assert world.waiting() == [("before", ""), ("summarise this", ""), ("after", "")]
    assert world.answers() == ["Session cleared. Processing your message..."]


def test_the_text_of_a_chat_routed_to_a_builtin_does_not_answer_twice_under_one_id(store: Store) -> None:
    # the built-in's answer took the id of /new's own answer: the tick's transaction failed on it, again and again
    world = World(store)
    store.add_route(seq=-1, match="sender=tg:42", target="builtin:ping")
    world.send("/new hello", "ping")
    world.tick()
    assert world.answers() == ["Session cleared. Processing your message...", "pong"]
    assert [row.status for row in world.inbound()] == ["done", "done"]


def test_a_message_routed_hook_sees_the_text_after_new(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # docs/examples/audit_hooks.py drops `#private …`; `/new #private …` reached the agent past it
    monkeypatch.syspath_prepend(str(Path(__file__).parents[3] / "docs" / "examples"))
    monkeypatch.setenv("KANMON_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    import audit_hooks  # type: ignore[import-not-found]

    world = World(store)
    config = DispatchConfig(poll_batch=100, bot_names=frozenset(), impulse=ImpulseConfig(), onboarding=False)
    world.dispatcher = Dispatcher(
        store, Registry(store), config, metrics=GatewayMetrics(), clock=FakeClock(), rng=random.Random(1),
        hooks=Hooks([("audit", audit_hooks)]),
    )  # fmt: skip
    world.send("#private my salary is 1", "/new #private my salary is 2", "#t fine")
    world.tick()
    assert world.waiting() == [("fine", "#t")]
