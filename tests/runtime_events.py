"""Helpers shared by the runtimes' behavioural suites (process and Docker): one spec shape, one way to read events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kanmon.container.base import RunSpec
from kanmon.container.events import Exited, Output, RunEvent
from kanmon.container.handle import RunHandle

# two messages, one with an entity, so "each message" and escaping are both visible in the echo
PROMPT = '<messages><message sender="ann">hi &amp; bye</message><message sender="bob">second</message></messages>'


def run_spec(data_dir: Path, run_id: str, instance: str, **overrides: Any) -> RunSpec:
    """A spec for group ``corp/eng`` feeding ``PROMPT``; ``env`` values may be any type, ``payload`` any JSON."""
    env = {key: str(value) for key, value in overrides.pop("env", {}).items()}
    payload = overrides.pop("payload", {"prompt": PROMPT})
    fields: dict[str, Any] = {
        "run_id": run_id,
        "instance": instance,
        "folder": "corp/eng",
        "group_dir": data_dir / "groups" / "corp" / "eng",
        "env": env,
        "stdin": json.dumps(payload).encode(),
    }
    return RunSpec(**{**fields, **overrides})


async def collect(handle: RunHandle) -> list[RunEvent]:
    """Every event of a run, up to and including its Exited."""
    return [event async for event in handle]


def outputs(events: list[RunEvent]) -> list[Output]:
    """The Output events among ``events``."""
    return [event for event in events if isinstance(event, Output)]


def exited(events: list[RunEvent]) -> Exited:
    """The final Exited event (failing the test if the run did not end with one)."""
    last = events[-1]
    assert isinstance(last, Exited)
    return last
