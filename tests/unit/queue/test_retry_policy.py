"""RetryPolicy (SPEC §8): tenacity's exponential waits, the attempt limit, and jitter from an injected generator."""

from __future__ import annotations

import random

import pytest

from kanmon.queue import RetryPolicy


def test_delays_double_from_the_base_delay() -> None:
    policy = RetryPolicy(max_attempts=6)

    assert [policy.delay(n) for n in range(1, 6)] == [5.0, 10.0, 20.0, 40.0, 80.0]


def test_the_base_delay_is_configurable() -> None:
    assert [RetryPolicy(base_delay=0.5).delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_no_delay_exceeds_max_delay() -> None:
    policy = RetryPolicy(max_attempts=20, max_delay=60.0)

    assert policy.delay(10) == 60.0
    assert policy.delay(1000) == 60.0


def test_the_policy_gives_up_after_max_attempts_failures() -> None:
    policy = RetryPolicy()

    assert [policy.gives_up_after(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_jitter_adds_at_most_its_bound_drawn_from_the_given_generator() -> None:
    policy = RetryPolicy(jitter=2.0)

    delays = [policy.delay(1, random.Random(seed)) for seed in range(50)]

    assert all(5.0 <= d <= 7.0 for d in delays)
    assert policy.delay(1, random.Random(7)) == policy.delay(1, random.Random(7))
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"max_attempts": 0}, id="no-attempts"),
        pytest.param({"base_delay": -1.0}, id="negative-base"),
        pytest.param({"max_delay": -1.0}, id="negative-max"),
        pytest.param({"jitter": -0.5}, id="negative-jitter"),
    ],
)
def test_nonsense_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(0)
