"""Running the reference Claude Code runner (``agents/claude-code``) against the replaying fake ``claude``.

The runner's stdout is read with kanmon's own parser (:class:`kanmon.container.protocol.OutputParser`), so what these
tests accept is exactly what kanmon accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kanmon.container.events import Exited, ExitReason, Heartbeat, Output
from kanmon.container.protocol import InvalidBlock, OutputParser, ParserEvent
from kanmon.gateway.outcome import Ending, Outcome, judge

AGENT_DIR = Path(__file__).resolve().parents[3] / "agents" / "claude-code"
RUNNER = AGENT_DIR / "claude_runner.py"
FAKE = AGENT_DIR / "fake" / "fake_claude.py"
TRANSCRIPTS = AGENT_DIR / "fake" / "transcripts"
PROMPT = '<messages><message sender="Ann" time="2026-01-02T03:04:00Z">hi &amp; hello</message></messages>'


def transcript(name: str) -> list[dict[str, Any]]:
    """The stream-JSON events of a recorded transcript."""
    lines = (TRANSCRIPTS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def result_of(name: str) -> dict[str, Any]:
    """The ``result`` event of a recorded transcript."""
    return next(event for event in transcript(name) if event["type"] == "result")


def fake_bin(directory: Path) -> Path:
    """A directory holding ``claude``: the fake, run by this interpreter."""
    directory.mkdir(parents=True, exist_ok=True)
    claude = directory / "claude"
    claude.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    claude.chmod(0o755)
    return directory


@dataclass
class Run:
    """What one run of the runner wrote, parsed by kanmon's parser."""

    code: int
    events: list[ParserEvent]
    stdout: str
    stderr: str

    @property
    def outputs(self) -> list[Output]:
        return [event for event in self.events if isinstance(event, Output)]

    @property
    def texts(self) -> list[str]:
        """What the chat sees, in order."""
        return [output.text for output in self.outputs if output.deliverable]

    @property
    def heartbeats(self) -> int:
        return sum(isinstance(event, Heartbeat) for event in self.events)

    @property
    def last(self) -> Output:
        return self.outputs[-1]

    def outcome(self) -> Outcome:
        """What kanmon makes of this run (SPEC §9's table, :func:`kanmon.gateway.outcome.judge`)."""
        delivered = len(self.texts)
        error_block = next((o.error for o in self.outputs if o.status == "error" and not o.deliverable), None)
        exited = Exited(self.code, ExitReason.EXIT, len(self.outputs), delivered, self.stderr)
        return judge(Ending(exited=exited, produced=delivered, error_block=error_block))


def parse(stdout: bytes) -> list[ParserEvent]:
    """Every event kanmon's parser finds in ``stdout``; a block it would skip fails the test."""
    parser = OutputParser()
    events = parser.feed(stdout) + parser.close()
    invalid = [event for event in events if isinstance(event, InvalidBlock)]
    assert not invalid, invalid
    return events


def runner_env(tmp_path: Path, **extra: Any) -> dict[str, str]:
    """A small environment for the runner: the fake first on PATH, a HOME, and ``extra`` (knobs)."""
    path = f"{fake_bin(tmp_path / 'bin')}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {"PATH": path, "HOME": str(tmp_path), "LANG": "C.UTF-8", **{k: str(v) for k, v in extra.items()}}


def run_runner(tmp_path: Path, document: Mapping[str, Any] | bytes, **env: Any) -> Run:
    """Run the runner once with ``document`` on stdin and the fake's knobs in ``env``."""
    stdin = document if isinstance(document, bytes) else json.dumps(document).encode()
    done = subprocess.run(
        [sys.executable, "-I", str(RUNNER)], input=stdin, capture_output=True, env=runner_env(tmp_path, **env),
        cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    return Run(done.returncode, parse(done.stdout), done.stdout.decode(), done.stderr.decode())


def recorded(path: Path) -> dict[str, Any]:
    """What the fake ``claude`` recorded of its invocation (``FAKE_CLAUDE_RECORD``)."""
    value: dict[str, Any] = json.loads(path.read_text())
    return value
