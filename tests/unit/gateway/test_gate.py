"""The impulse gate as tables of (time, event) -> what fires; the hold is measured from the first held message."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kanmon.gateway.gate import ImpulseGate
from kanmon.router import ImpulseConfig

J = "telegram:-1"
K = "discord:7"
MIN = 60.0
DEFAULTS = ImpulseConfig()
TRICKLE = ImpulseConfig().merged({"weights": {"nudge": 10}})


@dataclass(frozen=True)
class Offer:
    """offer(jid, verb, seq, at) must answer ``fires``."""

    at: float
    verb: str
    fires: bool
    jid: str = J
    config: ImpulseConfig = DEFAULTS


@dataclass(frozen=True)
class Tick:
    """tick(at) must hand back exactly ``released``."""

    at: float
    released: tuple[str, ...] = ()


Event = Offer | Tick


def play(events: list[Event]) -> ImpulseGate:
    gate = ImpulseGate()
    for seq, event in enumerate(events, start=1):
        if isinstance(event, Offer):
            got = gate.offer(event.jid, event.verb, seq, event.at, event.config)
            assert got is event.fires, f"event {seq}: {event}"
        else:
            assert tuple(gate.tick(event.at)) == event.released, f"event {seq}: {event}"
    return gate


SCENARIOS = [
    pytest.param(
        [Offer(0, "react", False), Offer(1, "react", False), Offer(2, "react", False), Offer(3, "message", True)],
        id="three-reactions-then-a-message-fire-together",
    ),
    pytest.param(
        [
            Offer(0, "react", False),
            Offer(1 * MIN, "react", False),
            Offer(2 * MIN, "react", False),
            Tick(5 * MIN - 0.001),
            Tick(5 * MIN, (J,)),
            Tick(10 * MIN),
        ],
        id="three-reactions-alone-flush-five-minutes-after-the-first",
    ),
    pytest.param(
        [
            Offer(0, "nudge", False, config=TRICKLE),
            Tick(1 * MIN),
            Offer(1 * MIN, "nudge", False, config=TRICKLE),
            Tick(2 * MIN),
            Offer(2 * MIN, "nudge", False, config=TRICKLE),
            Tick(3 * MIN),
            Offer(3 * MIN, "nudge", False, config=TRICKLE),
            Tick(4 * MIN),
            Offer(4 * MIN, "nudge", False, config=TRICKLE),
            Tick(5 * MIN, (J,)),
            Offer(5 * MIN, "nudge", False, config=TRICKLE),
            Tick(9 * MIN),
            Tick(10 * MIN, (J,)),
        ],
        id="a-trickle-of-weight-10-every-minute-still-flushes-five-minutes-after-the-first",
    ),
    pytest.param(
        [Offer(0, "react", True, config=DEFAULTS.merged({"threshold": 0})), Tick(10 * MIN)],
        id="threshold-zero-fires-at-once-even-for-a-reaction",
    ),
    pytest.param(
        [Offer(0, "message", True), Offer(1, "mention", True), Offer(2, "reply", True)],
        id="every-ordinary-message-fires-on-its-own",
    ),
    pytest.param(
        [Offer(0, "message", True), Offer(1, "react", False), Tick(5 * MIN), Tick(5 * MIN + 1, (J,))],
        id="firing-resets-the-hold-so-the-next-hold-starts-at-its-own-first-message",
    ),
    pytest.param(
        [
            Offer(0, "react", False),
            Tick(5 * MIN, (J,)),
            Offer(6 * MIN, "react", False),
            Tick(10 * MIN),
            Tick(11 * MIN, (J,)),
        ],
        id="after-a-flush-a-new-hold-starts-from-scratch",
    ),
    pytest.param(
        [
            Offer(0, "react", False, jid=K),
            Offer(10, "typing", False),
            Offer(20, "message", True),
            Tick(5 * MIN, (K,)),
        ],
        id="chats-are-held-independently",
    ),
    pytest.param(
        [
            Offer(0, "react", False),
            Offer(MIN, "react", False, jid=K),
            Tick(7 * MIN, (J, K)),
        ],
        id="due-chats-come-back-earliest-deadline-first",
    ),
    pytest.param(
        [
            Offer(0, "nudge", False, config=TRICKLE.merged({"max_hold_ms": 600_000})),
            Offer(MIN, "nudge", False, config=TRICKLE.merged({"max_hold_ms": 120_000})),
            Tick(2 * MIN, (J,)),
        ],
        id="a-stricter-later-config-pulls-the-deadline-in",
    ),
    pytest.param(
        [
            Offer(0, "nudge", False, config=TRICKLE.merged({"max_hold_ms": 60_000})),
            Offer(30, "nudge", False, config=TRICKLE.merged({"max_hold_ms": 600_000})),
            Tick(MIN, (J,)),
        ],
        id="a-lenient-later-config-never-pushes-the-deadline-out",
    ),
    pytest.param(
        [
            Offer(0, "nudge", False, config=TRICKLE),
            Offer(1, "nudge", True, config=TRICKLE.merged({"threshold": 20})),
        ],
        id="accumulated-weight-reaching-the-threshold-fires",
    ),
]


@pytest.mark.parametrize("events", SCENARIOS)
def test_gate_scenario(events: list[Event]) -> None:
    play(events)


def test_a_replayed_seq_is_not_counted_twice() -> None:
    gate = ImpulseGate()
    config = TRICKLE.merged({"threshold": 20})
    assert gate.offer(J, "nudge", 5, 0, config) is False
    assert gate.offer(J, "nudge", 5, 1, config) is False
    assert gate.offer(J, "nudge", 4, 2, config) is False
    held = gate.holding(J)
    assert held is not None
    assert (held.weight, held.count, held.first_seq, held.last_seq) == (10, 1, 5, 5)
    assert gate.offer(J, "nudge", 6, 3, config) is True


def test_due_reports_without_forgetting_and_tick_forgets() -> None:
    gate = ImpulseGate()
    gate.offer(J, "react", 1, 0)
    assert gate.due(5 * MIN) == [J]
    assert gate.due(5 * MIN) == [J]
    assert gate.held() == 1
    assert gate.tick(5 * MIN) == [J]
    assert gate.held() == 0
    assert gate.due(5 * MIN) == []


def test_release_forgets_a_chat_whose_rows_were_taken_another_way() -> None:
    gate = ImpulseGate()
    gate.offer(J, "react", 1, 0)
    assert gate.release(J) is True
    assert gate.release(J) is False
    assert gate.tick(10 * MIN) == []


def test_a_message_that_fired_before_a_hold_began_is_let_through_and_a_run_taking_the_held_rows_ends_the_hold() -> None:
    gate = ImpulseGate()
    assert gate.offer(J, "message", seq=10, now=0.0)  # fires: its run is on its way
    assert not gate.offer(J, "edit", seq=11, now=0.1)  # a low-value event holds the chat again
    assert gate.lets_through(J, 10) and not gate.lets_through(J, 11) and gate.lets_through(K, 11)
    assert not gate.taken(J, [10])  # the run took only the message: the edit is still held
    assert gate.holding(J) is not None
    assert gate.taken(J, [10, 11])  # it took the edit too: nothing is left to wait for
    assert gate.holding(J) is None and gate.lets_through(J, 12)
    assert not gate.taken(K, [99])


def test_a_run_of_another_topic_whose_rows_surround_the_held_ones_does_not_end_the_hold() -> None:
    # One chat, two topics: a reaction in topic B (seq 12) and one (seq 14) are held; a run takes topic A's
    # messages 10, 11, 13 and 15. It took none of the held rows, though its last row is past them: the hold stays.
    gate = ImpulseGate()
    assert not gate.offer(J, "react", seq=12, now=0.0)
    assert not gate.offer(J, "react", seq=14, now=0.1)
    assert not gate.taken(J, [10, 11, 13, 15])
    assert gate.holding(J) is not None and not gate.lets_through(J, 12)
    assert not gate.taken(J, [12, 13, 15])  # one of the two held rows
    assert gate.taken(J, [12, 14])
    assert gate.holding(J) is None


def test_next_deadline_is_the_earliest_hold_end() -> None:
    gate = ImpulseGate()
    assert gate.next_deadline() is None
    gate.offer(K, "react", 1, 30)
    gate.offer(J, "react", 2, 10)
    gate.offer(J, "react", 3, 200)
    assert gate.next_deadline() == 10 + 5 * MIN


def test_held_state_rebuilds_from_stored_rows_with_their_own_times() -> None:
    # Given rows past the agent cursor that arrived before a restart (two reactions, 4 and 3 minutes ago)
    now = 1000.0
    gate = ImpulseGate()
    # When they are offered again with their arrival times
    assert gate.offer(J, "react", 41, now - 4 * MIN) is False
    assert gate.offer(J, "react", 42, now - 3 * MIN) is False
    # Then the deadline is where it was: one minute from now, not five
    assert gate.tick(now) == []
    assert gate.tick(now + MIN) == [J]


def test_a_chat_of_only_zero_weight_events_is_still_flushed() -> None:
    gate = ImpulseGate()
    for seq, verb in enumerate(["react", "typing", "join", "edit", "delete"], start=1):
        assert gate.offer(J, verb, seq, float(seq)) is False
    held = gate.holding(J)
    assert held is not None
    assert (held.weight, held.count, held.first_at) == (0, 5, 1.0)
    assert gate.tick(1 + 5 * MIN) == [J]


@pytest.mark.parametrize(
    "config",
    [DEFAULTS, ImpulseConfig(threshold=1000), DEFAULTS.merged({"weights": {"task": 0}, "threshold": 500})],
)
def test_a_task_occurrence_fires_its_chat_at_once_whatever_the_route_says(config: ImpulseConfig) -> None:
    """Issue 15: a scheduled task is the reason to wake the agent; a route that holds chatter holds no task."""
    gate = ImpulseGate()
    assert not gate.offer(J, "react", 1, 0.0, config)
    assert gate.offer(J, "task", 2, 1.0, config)
    assert gate.holding(J) is None
