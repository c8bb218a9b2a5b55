#!/usr/bin/env python3
"""A stand-in ``claude`` for tests: replays recorded stream-JSON transcripts, as ``claude -p`` would print them.

The real service is not reachable where kanmon's tests run, so the runner is tested against this program, installed
as ``claude`` on ``PATH`` (the test image copies it to ``/usr/local/bin/claude``). Standard library only.

It accepts what Claude Code's print mode accepts here (``-p``/``--print``, ``--output-format stream-json``,
``--verbose``, ``--resume ID``, ``--permission-mode MODE``, ``--append-system-prompt TEXT``, ``--model M``) and
checks what the real CLI checks: without ``--verbose``, stream-json output is refused with the real error message
(Claude Code 2.1: "When using --print, --output-format=stream-json requires --verbose"), and ``--resume`` of an
unknown session fails as Claude Code 2.1.332 does: the ``result`` of ``transcripts/no-conversation.jsonl`` (a real
recording, for the requested id) on stdout, "No conversation found with session ID: …" on stderr, exit 1.

A transcript is a file ``<scenario>.jsonl`` (one invocation: every line is printed as is) or a series
``<scenario>.1.jsonl``, ``<scenario>.2.jsonl``, … (one invocation each: without ``--resume`` the first is played;
``--resume ID`` plays the file after the one whose ``result`` had ``session_id`` ID). The exit status is 1 when the
played ``result`` has ``is_error``, else 0 (Claude Code's print mode).

Two transcripts are real recordings of Claude Code 2.1.332 (the npm package's linux-x64 binary) run as ``claude -p
--output-format stream-json --verbose --permission-mode bypassPermissions``, with only paths replaced by
``/home/agent``: ``auth-error.jsonl`` without credentials, ``no-conversation.jsonl`` with ``--resume`` of an unknown
session. The others are written in the same format (the system ``init``, the ``assistant``/``user`` messages and the
``result`` of Claude Code's headless mode and Agent SDK message types).
``multi-turn.2.jsonl``, the resumed turn, reports a session id of its own, as Claude Code did before 2.1
(anthropics/claude-code#8069); 2.1.332 keeps the resumed id. The runner keeps whichever id the ``result`` reports.

Knobs, from the environment (the runner passes its environment on):

* ``FAKE_CLAUDE_SCENARIO`` (default ``multi-turn``); ``FAKE_CLAUDE_TRANSCRIPTS``: the directory of transcripts
  (default ``transcripts`` beside this file);
* ``FAKE_CLAUDE_DELAY=s``: sleep before each line after the first;
* ``FAKE_CLAUDE_HANG=s``: sleep after the last line (a run that does not end by itself);
* ``FAKE_CLAUDE_STDERR=text``: write this line to stderr first;
* a transcript line ``{"type": "fake_mcp_call", "tool": T, "arguments": {...}}`` is no recording: the fake calls
  tool ``T`` of the ``kanmon`` server of ``--mcp-config`` (a stdio server it starts, as Claude Code does, through
  the ``mcp`` SDK's client; only then is ``mcp`` imported) and prints what Claude Code prints for a tool call: the
  assistant's ``tool_use`` of ``mcp__kanmon__T`` and the ``user`` message with its ``tool_result``;
* ``FAKE_CLAUDE_RECORD=path``: write ``{"argv", "env", "stdin"}`` of this invocation to ``path`` (JSON), and append
  ``"SIGTERM"`` to ``path + ".signals"`` when terminated.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_VALUED = {"--output-format", "--resume", "-r", "--permission-mode", "--append-system-prompt", "--model",
           "--mcp-config", "--allowedTools"}  # fmt: skip


def parse_args(argv: list[str]) -> dict[str, Any]:
    """The options of ``argv`` as a dict: flags map to True, valued options to their value; exits 1 on others."""
    options: dict[str, Any] = {}
    args = iter(argv)
    for arg in args:
        if arg in ("-p", "--print", "--verbose"):
            options[arg.lstrip("-")] = True
        elif arg in _VALUED:
            value = next(args, None)
            if value is None:
                fail(f"error: option '{arg}' argument missing")
            options["resume" if arg == "-r" else arg.lstrip("-")] = value
        else:
            fail(f"error: unknown option '{arg}'")
    return options


def fail(message: str) -> None:
    """Exit 1 with ``message`` on stderr, as the CLI does for bad usage."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def transcript(directory: Path, scenario: str, resume: str | None) -> Path:
    """The transcript to play for ``scenario``, resuming ``resume`` (a session id) when given."""
    single = directory / f"{scenario}.jsonl"
    if single.exists() and resume is None:
        return single
    turn = 1
    while (directory / f"{scenario}.{turn}.jsonl").exists():
        path = directory / f"{scenario}.{turn}.jsonl"
        if resume is None:
            return path
        if result_session(path) == resume and (directory / f"{scenario}.{turn + 1}.jsonl").exists():
            return directory / f"{scenario}.{turn + 1}.jsonl"
        turn += 1
    if resume is not None:
        no_conversation(directory, resume)
    fail(f"fake claude: no transcript {scenario!r} in {directory}")
    raise AssertionError("unreachable")


def no_conversation(directory: Path, session: str) -> None:
    """Fail like Claude Code asked to resume a session it does not have: the recorded result, for ``session``."""
    recorded = json.loads((directory / "no-conversation.jsonl").read_text(encoding="utf-8"))
    line = json.dumps(recorded, separators=(",", ":")).replace(recorded["session_id"], session)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    fail(f"No conversation found with session ID: {session}")


def result_session(path: Path) -> str | None:
    """The ``session_id`` of the ``result`` line of a transcript."""
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("type") == "result":
            return str(event.get("session_id"))
    return None


def record(path: str, argv: list[str], stdin: str) -> None:
    """Write what this invocation got (argv, environment, stdin) to ``path``."""
    Path(path).write_text(json.dumps({"argv": argv, "env": dict(os.environ), "stdin": stdin}), encoding="utf-8")

    def on_term(signum: int, frame: object) -> None:
        with Path(path + ".signals").open("a", encoding="utf-8") as signals:
            signals.write("SIGTERM\n")
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)


def play(lines: list[str], mcp_config: str | None, write: Callable[[str], None]) -> None:
    """Write each line; a transcript that calls MCP tools is played by :mod:`fake_mcp` (which needs the mcp SDK)."""
    if not any('"fake_mcp_call"' in line for line in lines):
        for line in lines:
            write(line)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fake_mcp import play_with_tools  # only transcripts that call tools need the mcp SDK

    play_with_tools(lines, mcp_config, write)


def main() -> int:
    """Check the arguments like Claude Code's print mode, then replay the transcript on stdout."""
    argv = sys.argv[1:]
    options = parse_args(argv)
    if not options.get("p") and not options.get("print"):
        fail("fake claude: only print mode (-p) is replayed")
    if options.get("output-format") != "stream-json":
        fail("fake claude: only --output-format stream-json is replayed")
    if not options.get("verbose"):
        fail("Error: When using --print, --output-format=stream-json requires --verbose")
    stdin = sys.stdin.read()  # the prompt: print mode reads it from stdin when no prompt argument is given
    if os.environ.get("FAKE_CLAUDE_RECORD"):
        record(os.environ["FAKE_CLAUDE_RECORD"], argv, stdin)
    if not stdin.strip():
        fail("Error: Input must be provided either through stdin or as a prompt argument when using --print")
    if os.environ.get("FAKE_CLAUDE_STDERR"):
        sys.stderr.write(os.environ["FAKE_CLAUDE_STDERR"] + "\n")
        sys.stderr.flush()
    directory = Path(os.environ.get("FAKE_CLAUDE_TRANSCRIPTS") or Path(__file__).resolve().parent / "transcripts")
    path = transcript(directory, os.environ.get("FAKE_CLAUDE_SCENARIO") or "multi-turn", options.get("resume"))
    delay = float(os.environ.get("FAKE_CLAUDE_DELAY") or 0)
    errors: list[bool] = []

    def write(line: str) -> None:
        if errors and delay:
            time.sleep(delay)
        event = json.loads(line)
        errors.append(event.get("type") == "result" and bool(event.get("is_error")))
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    play(path.read_text(encoding="utf-8").splitlines(), options.get("mcp-config"), write)
    is_error = any(errors)
    time.sleep(float(os.environ.get("FAKE_CLAUDE_HANG") or 0))
    return 1 if is_error else 0


if __name__ == "__main__":
    sys.exit(main())
