"""gated's runtimes get their settings: what the configuration says reaches every run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kanmon.container import echo_agent
from kanmon.gated.daemon import make_runtimes
from kanmon.gated.settings import RuntimeSettings, Settings
from tests.runtime_events import collect, outputs, run_spec

# the echo agent answers "echo: <text>": the text carries a reasoning section in the configured tag
PROMPT = "<message>&lt;Scratch note='x'&gt;SECRET&lt;/scratch&gt;shown &lt;think&gt;kept&lt;/think&gt;</message>"


async def test_the_configured_reasoning_tags_are_hidden_from_every_output(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", instance="t", runtime=RuntimeSettings(reasoning_tags=("scratch",)))
    runtimes = make_runtimes(settings)
    assert runtimes["docker"].reasoning_tags == ("scratch",)  # type: ignore[attr-defined]
    spec = run_spec(
        settings.data_dir, "r1", "t", command=(sys.executable, "-I", echo_agent.__file__), payload={"prompt": PROMPT}
    )
    events = await collect(await runtimes["process"].start(spec))
    assert [o.text for o in outputs(events)] == ["echo: shown <think>kept</think>"]
    assert json.dumps([o.result for o in outputs(events)]).count("SECRET") == 1, "the raw result is kept as sent"
