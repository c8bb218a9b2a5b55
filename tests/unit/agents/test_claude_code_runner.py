"""The reference Claude Code runner against recorded stream-JSON transcripts replayed by a fake ``claude``.

Each test runs ``agents/claude-code/claude_runner.py`` as kanmon would (the input document on stdin) with the fake
first on PATH, and reads its stdout with kanmon's parser; the outcome is judged by kanmon's own SPEC §9 table.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kanmon.container.events import Output, Usage
from kanmon.queue import LaneResult
from tests.unit.agents.claude_code import (
    PROMPT,
    RUNNER,
    parse,
    recorded,
    result_of,
    run_runner,
    runner_env,
    transcript,
)

TOOL_USE_ANSWER = str(result_of("tool-use.jsonl")["result"])


def test_a_conversation_goes_on_in_the_session_claude_reported(tmp_path: Path) -> None:
    first = run_runner(tmp_path, {"prompt": PROMPT, "assistantName": "Andy"}, FAKE_CLAUDE_SCENARIO="multi-turn")
    turn1 = result_of("multi-turn.1.jsonl")
    assert first.code == 0, first.stderr
    assert first.texts == [turn1["result"]]
    assert first.last.status == "ok" and first.last.new_session_id == turn1["session_id"]
    assert first.outcome().result is LaneResult.OK

    record = tmp_path / "record.json"
    document = {"prompt": PROMPT, "sessionId": first.last.new_session_id}
    second = run_runner(tmp_path, document, FAKE_CLAUDE_SCENARIO="multi-turn", FAKE_CLAUDE_RECORD=record)
    argv = recorded(record)["argv"]
    assert argv[argv.index("--resume") + 1] == turn1["session_id"]
    turn2 = result_of("multi-turn.2.jsonl")
    assert second.texts == [turn2["result"]]
    assert second.last.new_session_id == turn2["session_id"], "the id the resumed run reports is the one to keep"


def test_claude_runs_headless_with_the_prompt_on_stdin_never_in_argv(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    run = run_runner(tmp_path, {"prompt": PROMPT, "assistantName": "Andy"}, FAKE_CLAUDE_RECORD=record)
    assert run.code == 0
    got = recorded(record)
    assert got["stdin"] == PROMPT
    assert got["argv"][:4] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert "--resume" not in got["argv"], "a run without sessionId starts a new session"
    assert got["argv"][got["argv"].index("--permission-mode") + 1] == "bypassPermissions"
    assert not any("hi &amp; hello" in arg or "hi & hello" in arg for arg in got["argv"])
    assert "Andy" in got["argv"][got["argv"].index("--append-system-prompt") + 1]


def test_a_session_id_that_could_be_an_option_is_never_passed(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    run = run_runner(tmp_path, {"prompt": PROMPT, "sessionId": "--dangerous"}, FAKE_CLAUDE_RECORD=record)
    assert "--resume" not in recorded(record)["argv"] and "--dangerous" not in recorded(record)["argv"]
    assert run.code == 0 and "not a session id" in run.stderr


def test_a_session_claude_cannot_resume_is_an_error_without_output_so_kanmon_retries_fresh(tmp_path: Path) -> None:
    stale = str(uuid.uuid4())
    run = run_runner(tmp_path, {"prompt": PROMPT, "sessionId": stale})
    assert run.code == 1 and run.texts == []
    assert run.last.status == "error" and run.last.new_session_id is None
    assert f"No conversation found with session ID: {stale}" in (run.last.error or "")
    assert run.outcome().result is LaneResult.RETRY and run.outcome().evict_session


def test_tool_use_is_heartbeats_and_only_the_assistants_texts_reach_the_chat(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="tool-use")
    texts = [
        part["text"]
        for event in transcript("tool-use.jsonl")
        if event["type"] == "assistant"
        for part in event["message"]["content"]
        if part["type"] == "text"
    ]
    assert run.code == 0
    assert run.texts == texts == ["Let me look at your folder.", result_of("tool-use.jsonl")["result"]]
    # one at the start, then init, two tool calls and their two results: each a sign of life for the idle timer
    assert run.heartbeats >= 6
    assert run.last.new_session_id == result_of("tool-use.jsonl")["session_id"]


def test_tool_calls_become_status_lines_when_the_group_asks(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="tool-use", KANMON_CLAUDE_TOOL_STATUS=1)
    assert run.texts == [
        "Let me look at your folder.",
        "⏳ Bash: List files in the folder",
        "⏳ Read",
        result_of("tool-use.jsonl")["result"],
    ]


def test_an_error_before_any_text_is_an_error_block_without_output(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="error")
    assert run.code == 1 and run.texts == []
    assert [o.status for o in run.outputs] == ["error"]
    assert "error_during_execution" in (run.last.error or "")
    assert run.outcome().result is LaneResult.RETRY


def test_an_assistant_message_that_reports_an_error_is_not_sent_to_the_chat(tmp_path: Path) -> None:
    # recorded from the real Claude Code 2.1.332 without credentials: the "answer" is the CLI's error, and the
    # result says is_error with subtype "success"
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="auth-error")
    assert run.code == 1 and run.texts == [], "'Not logged in' is claude's error, not the assistant's answer"
    assert "authentication_failed: Not logged in · Please run /login" in (run.last.error or "")
    assert run.outcome().result is LaneResult.RETRY


def test_an_error_after_text_keeps_the_text_and_reports_the_error_with_the_session(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="error-after-text")
    result = result_of("error-after-text.jsonl")
    assert run.code == 1
    assert run.texts == ["I'll go through the logs one by one."]
    assert run.last.status == "error" and "error_max_turns" in (run.last.error or "")
    assert run.last.new_session_id == result["session_id"]
    outcome = run.outcome()
    assert outcome.result is LaneResult.OK and outcome.status == "error", "answered: never run a second time"


def test_secrets_reach_only_claudes_environment(tmp_path: Path) -> None:
    secret = f"sk-ant-api03-{uuid.uuid4().hex}"
    token = f"oat-{uuid.uuid4().hex}"
    record = tmp_path / "record.json"
    document = {"prompt": PROMPT, "secrets": {"ANTHROPIC_API_KEY": secret, "CLAUDE_CODE_OAUTH_TOKEN": token}}
    run = run_runner(
        tmp_path, document, FAKE_CLAUDE_RECORD=record, FAKE_CLAUDE_STDERR=f"debug: using key {secret} and {token}"
    )
    got = recorded(record)
    assert got["env"]["ANTHROPIC_API_KEY"] == secret and got["env"]["CLAUDE_CODE_OAUTH_TOKEN"] == token
    assert not any(secret in arg or token in arg for arg in got["argv"])
    assert secret not in got["stdin"]
    assert run.code == 0
    for written in (run.stdout, run.stderr):
        assert secret not in written and token not in written
    assert "debug: using key [redacted] and [redacted]" in run.stderr, "claude's stderr is forwarded, redacted"


def test_secrets_that_cannot_be_variables_are_skipped_by_name_only(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    secrets = {"BAD NAME": "value-one-secret", "NOT_TEXT": 12345, "GOOD": "value-two-secret"}
    run = run_runner(tmp_path, {"prompt": PROMPT, "secrets": secrets}, FAKE_CLAUDE_RECORD=record)
    env = recorded(record)["env"]
    assert env["GOOD"] == "value-two-secret" and "BAD NAME" not in env and "NOT_TEXT" not in env
    assert "'BAD NAME' skipped" in run.stderr and "'NOT_TEXT' skipped" in run.stderr
    assert "value-one-secret" not in run.stderr


def test_claudes_text_reaches_the_chat_while_claude_still_works_and_sigterm_is_forwarded(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    env = runner_env(
        tmp_path, FAKE_CLAUDE_SCENARIO="tool-use", FAKE_CLAUDE_DELAY=0.05, FAKE_CLAUDE_HANG=60,
        FAKE_CLAUDE_RECORD=record,
    )  # fmt: skip
    runner = subprocess.Popen(
        [sys.executable, "-I", str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert runner.stdin is not None and runner.stdout is not None
    runner.stdin.write(json.dumps({"prompt": PROMPT}).encode())
    runner.stdin.close()
    runner.stdin = None  # communicate() below must not flush it
    seen = b""
    while TOOL_USE_ANSWER.encode() not in seen:  # the last text, streamed before claude exits (it hangs for 60 s)
        line = runner.stdout.readline()
        assert line, "the runner ended before the text arrived"
        seen += line
    seen += runner.stdout.readline()  # the END marker
    started = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    stdout, stderr = runner.communicate(timeout=20)
    assert time.monotonic() - started < 10, "claude was stopped, not waited for"
    assert Path(f"{record}.signals").read_text() == "SIGTERM\n"
    outputs = [event for event in parse(seen + stdout) if isinstance(event, Output)]
    assert [o.text for o in outputs if o.deliverable] == ["Let me look at your folder.", TOOL_USE_ANSWER]
    assert outputs[-1].status == "error" and "SIGTERM" in (outputs[-1].error or ""), stderr
    assert runner.returncode == 1


def test_an_input_that_is_not_a_document_is_an_error_block(tmp_path: Path) -> None:
    run = run_runner(tmp_path, b"not json at all")
    assert run.code == 1 and run.texts == [] and run.last.status == "error"
    assert "cannot read the input document" in (run.last.error or "")


def test_a_missing_claude_is_an_error_block_not_a_crash(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, KANMON_CLAUDE_BIN=str(tmp_path / "no-such-claude"))
    assert run.code == 1 and run.texts == [] and "cannot start" in (run.last.error or "")
    assert run.outcome().result is LaneResult.RETRY


def test_a_quiet_claude_gets_timed_heartbeats_only_when_the_group_asks(tmp_path: Path) -> None:
    # by default the idle timer sees claude's own activity only, so a claude that hangs is stopped by it
    quick = run_runner(tmp_path, {"prompt": PROMPT})
    quiet = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_HANG=1.2)
    asked = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_HANG=1.2, KANMON_CLAUDE_HEARTBEAT=0.25)
    assert quiet.heartbeats == quick.heartbeats
    assert asked.heartbeats >= quick.heartbeats + 3
    assert quiet.texts == asked.texts == [result_of("multi-turn.1.jsonl")["result"]]


def test_a_secret_never_configures_the_runner(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    secrets = {"KANMON_CLAUDE_BIN": "/no/such/claude-from-a-secret", "KANMON_CLAUDE_SYSTEM_PROMPT": "secret prompt"}
    run = run_runner(tmp_path, {"prompt": PROMPT, "secrets": secrets}, FAKE_CLAUDE_RECORD=record)
    assert run.code == 0, run.stderr
    got = recorded(record)
    assert got["env"]["KANMON_CLAUDE_BIN"] == secrets["KANMON_CLAUDE_BIN"], "claude still gets it"
    assert not any("secret prompt" in arg for arg in got["argv"]), "a secret's value is never an argument"


def test_the_last_block_reports_what_claude_said_the_run_used(tmp_path: Path) -> None:
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="multi-turn")
    result = result_of("multi-turn.1.jsonl")
    used = result["usage"]
    assert run.last.usage == Usage(
        input_tokens=used["input_tokens"], output_tokens=used["output_tokens"],
        cache_read_tokens=used["cache_read_input_tokens"], cache_write_tokens=used["cache_creation_input_tokens"],
        cost_usd=result["total_cost_usd"],
    )  # fmt: skip
    assert run.last.usage_problem is None
    assert [output.usage for output in run.outputs[:-1]] == [None] * (len(run.outputs) - 1), "counted once"
