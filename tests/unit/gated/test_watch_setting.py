"""``watch_interval`` (the loop's check for messages another process stored) reaches the loop, and 0 turns it off."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon.gated.config import ConfigError
from kanmon.gated.daemon import gateway_config
from kanmon.gateway import LoopConfig
from tests.cli_world import settings_of


@pytest.mark.parametrize(("value", "expected"), [(None, LoopConfig.watch_interval), ("0", 0.0), ("1.5", 1.5)])
def test_the_watch_interval_reaches_the_loop(tmp_path: Path, value: str | None, expected: float) -> None:
    environ = {} if value is None else {"KANMON_WATCH_INTERVAL": value}
    assert gateway_config(settings_of(tmp_path, **environ)).loop.watch_interval == expected


def test_a_negative_watch_interval_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_of(tmp_path, KANMON_WATCH_INTERVAL="-1")
    message = str(raised.value)
    assert "\n" not in message and "watch_interval" in message and "KANMON_WATCH_INTERVAL" in message
