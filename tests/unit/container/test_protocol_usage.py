"""Output blocks that report what the model used (``usage``): parsed into :class:`Usage`, or dropped with a reason
while the block itself still counts (its text is delivered)."""

from __future__ import annotations

from typing import Any

import pytest

from kanmon.container.events import Output, Usage
from kanmon.container.protocol import OutputParser, encode_block


def parse_one(value: dict[str, Any]) -> Output:
    parser = OutputParser()
    [event] = parser.feed(encode_block(value)) + parser.close()
    assert isinstance(event, Output)
    return event


def test_a_block_reports_the_five_numbers() -> None:
    usage = {"input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 1000, "cache_write_tokens": 5,
             "cost_usd": 0.0123}  # fmt: skip
    event = parse_one({"status": "ok", "result": "hi", "usage": usage})
    assert event.usage == Usage(120, 30, 1000, 5, 0.0123)
    assert event.usage_problem is None
    assert event.text == "hi"


def test_missing_numbers_count_as_zero_and_a_usage_only_block_is_not_deliverable() -> None:
    event = parse_one({"status": "ok", "result": None, "usage": {"cost_usd": 2}})
    assert event.usage == Usage(cost_usd=2.0)
    assert not event.deliverable


def test_a_block_without_usage_has_none() -> None:
    event = parse_one({"status": "ok", "result": "x"})
    assert event.usage is None
    assert event.usage_problem is None


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        ("lots", "usage must be an object"),
        ({"input_tokens": "12"}, "usage.input_tokens must be a whole number >= 0"),
        ({"output_tokens": -1}, "usage.output_tokens must be a whole number >= 0"),
        ({"cache_read_tokens": 1.5}, "usage.cache_read_tokens must be a whole number >= 0"),
        ({"cache_write_tokens": True}, "usage.cache_write_tokens must be a whole number >= 0"),
        ({"cost_usd": -0.5}, "usage.cost_usd must be a number from 0 to 1e+06"),
        ({"cost_usd": "1"}, "usage.cost_usd must be a number from 0 to 1e+06"),
        ({"cost_usd": 1e308}, "usage.cost_usd must be a number from 0 to 1e+06"),  # two of them: inf in a sum
        ({"input_tokens": 10**16}, "usage.input_tokens must be a whole number >= 0"),
        ({"cost_usd": 10**400}, "usage.cost_usd must be a number from 0 to 1e+06"),  # once OverflowError: a lost run
    ],
)
def test_a_malformed_usage_is_dropped_but_the_block_is_delivered(usage: object, problem: str) -> None:
    event = parse_one({"status": "ok", "result": "still here", "usage": usage})
    assert event.usage is None
    assert event.usage_problem is not None and event.usage_problem.startswith(problem)
    assert event.text == "still here"


def test_unknown_keys_in_usage_are_ignored() -> None:
    event = parse_one({"status": "ok", "result": "x", "usage": {"input_tokens": 1, "model": "m"}})
    assert event.usage == Usage(input_tokens=1)
