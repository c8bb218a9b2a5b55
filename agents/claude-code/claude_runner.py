#!/usr/bin/env python3
"""kanmon's reference Claude Code agent: runs ``claude -p`` for one kanmon run and speaks kanmon's output protocol.

Standard library only (the image needs python3 and the ``claude`` CLI, nothing else). One run:

1. Read kanmon's input document on stdin (``docs/agent-protocol.md``; SPEC §9): ``prompt``, ``sessionId`` (absent
   for a new session), ``assistantName``, ``secrets`` (absent unless configured).
2. Start ``claude -p --output-format stream-json --verbose --permission-mode bypassPermissions
   [--resume SESSION] --append-system-prompt TEXT`` with the prompt on its **stdin** (print mode reads the prompt
   from stdin when no prompt argument is given: Claude Code CLI reference, "cat file | claude -p"), so the chat's
   text is never in argv. ``--verbose`` is required with stream-json in print mode since Claude Code 2.1 ("When
   using --print, --output-format=stream-json requires --verbose": nullclaw#125, and so does 2.1.332 here).
   ``bypassPermissions`` (= ``--dangerously-skip-permissions``) because nobody can answer a permission prompt
   here; the container is the sandbox (no capabilities, no network unless the group grants one, one folder).
3. The child's environment is this process's environment (kanmon puts no secrets there) plus the document's
   ``secrets`` (e.g. ``ANTHROPIC_API_KEY``, ``CLAUDE_CODE_OAUTH_TOKEN``), and nothing else gets them: not argv, not a
   file, not a log line. Every secret value (4 characters or more, like kanmon's own :mod:`kanmon.redaction`) is
   replaced by ``[redacted]`` in what the runner writes: the child's stderr (forwarded line by line to ours, which
   kanmon keeps for the run log), texts for the chat and error messages.
4. Translate the child's stream-JSON lines (Claude Code "Headless mode" / Agent SDK message types) as they arrive:

   * ``{"type":"system","subtype":"init","session_id":…}``: a heartbeat;
   * ``{"type":"assistant","message":{"content":[…]},"parent_tool_use_id":null,…}``: each non-empty ``text`` block
     becomes an output block ``{"status":"ok","result":TEXT}`` at once; ``tool_use`` and ``thinking`` blocks become
     heartbeats (or, with ``KANMON_CLAUDE_TOOL_STATUS=1``, a ``<status>Tool: description</status>`` line each, which
     the chat shows as ``⏳`` and which counts as output); a sub-agent's message (``parent_tool_use_id`` set) is only a
     heartbeat; an assistant message with an ``error`` field (the SDK's ``authentication_failed``, ``billing_error``,
     ``rate_limit``, …) is a failure, and its text is not sent to the chat;
   * ``{"type":"user",…}`` (tool results) and any other type: a heartbeat;
   * ``{"type":"result","subtype":"success"|"error_max_turns"|"error_during_execution"|…,"is_error":…,
     "result":…,"errors":[…],"session_id":…}``: ``is_error`` or a subtype other than ``success`` is a failure
     (described by its ``result`` and ``errors``: Claude Code 2.1.332 reports "No conversation found with session
     ID: …" there); a successful ``result`` whose text no assistant message carried is sent (never twice).

5. End with one block: ``{"status":"ok","result":null,"newSessionId":ID}`` and exit 0, where ID is the
   ``session_id`` of the ``result`` (else the last one seen). A failure (the above, or ``claude`` exiting non-zero,
   or ending without a ``result``) ends instead with ``{"status":"error","result":null,"error":WHY}`` and exit 1:
   before any text that is "an error without output", so kanmon evicts the session and retries the batch (SPEC §9;
   a stale ``--resume`` fails this way and the retry starts fresh); after text, the text already sent stands, the
   block also carries ``newSessionId`` and kanmon records the error with the batch answered.
   Either last block carries ``usage``, from the ``result`` message: ``input_tokens``, ``output_tokens``,
   ``cache_read_tokens`` (its ``cache_read_input_tokens``), ``cache_write_tokens`` (``cache_creation_input_tokens``)
   and ``cost_usd`` (``total_cost_usd``), once per run, so kanmon counts the run's spend once.

With ``KANMON_CLAUDE_HEARTBEAT=s`` a heartbeat also goes out every s seconds while ``claude`` runs. It is off by
default: claude's own events already reset kanmon's idle timer during long work, and a claude that hangs (one that
retries an unreachable API, say) should meet that timer rather than run until the hard timeout. Timeouts are
kanmon's: SIGTERM (and SIGINT) are forwarded to ``claude``, and the run ends as above when it has gone.

Knobs (environment, e.g. the group's ``--env``): ``KANMON_CLAUDE_BIN`` (default ``claude``),
``KANMON_CLAUDE_PERMISSION_MODE`` (default ``bypassPermissions``), ``KANMON_CLAUDE_SYSTEM_PROMPT`` (replaces the
appended system prompt; empty for none), ``KANMON_CLAUDE_TOOL_STATUS``, ``KANMON_CLAUDE_HEARTBEAT``. Claude Code's
own variables (``ANTHROPIC_MODEL``, ``ANTHROPIC_BASE_URL``, ``HTTPS_PROXY``, …) reach it the same way.

kanmon's agent actions (issue 15) are offered to Claude as the MCP tools ``send_message``, ``schedule_task``,
``list_tasks`` and ``cancel_task`` when ``action_bridge.py`` and ``kanmon_mcp.py`` are beside this file and the
``mcp`` package is importable (``KANMON_CLAUDE_MCP=0``: never): each call becomes one block with that action.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import IO, Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # noqa: PTH100, PTH120 - run as a script, with -I
try:  # the MCP tools (issue 15): optional, so an image with the runner alone still works
    from action_bridge import ActionBridge, close
except ImportError:  # pragma: no cover - an image without it
    ActionBridge = None  # type: ignore[assignment, misc]

    def close(bridge: ActionBridge | None) -> None:
        """Nothing to close."""


START = "---ARIZUKO_OUTPUT_START---"
END = "---ARIZUKO_OUTPUT_END---"
REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # as kanmon.redaction: shorter values would blank ordinary words
HEARTBEAT = {"heartbeat": True}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a UUID in practice; never an option in argv
_STDERR_TAIL = 5  # lines of the child's stderr quoted in an error message
DEFAULT_SYSTEM_PROMPT = (
    "You are {name}, an assistant in a group chat. Each prompt is the chat's new messages as XML: "
    "<messages><message sender=.. time=..>text</message>…</messages>. What you write is posted to the chat as "
    "your reply, so answer in plain text. Your working directory is your own folder and persists between turns."
)

Block = dict[str, Any]


class Redactor:
    """Replaces known secret values in text; values shorter than :data:`MIN_SECRET_CHARS` are left alone."""

    def __init__(self, values: Iterable[str]) -> None:
        forms = set()
        for value in values:
            if len(value) >= MIN_SECRET_CHARS:
                forms.update({value, json.dumps(value)[1:-1]})  # as is, and as it looks inside a JSON string
        self._forms = sorted(forms, key=len, reverse=True)  # a longer secret containing a shorter one goes first

    def __call__(self, text: str) -> str:
        """``text`` with every secret value replaced by ``[redacted]``."""
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text


def accepted_secrets(secrets: object) -> tuple[dict[str, str], list[str]]:
    """The secrets of the input document that can go into an environment, and notes on those that cannot.

    A secret must be a string without NUL under a valid environment variable name; anything else is skipped (the
    note names the key, never a value).
    """
    if secrets is None:
        return {}, []
    if not isinstance(secrets, dict):
        return {}, ["secrets is not an object: ignored"]
    accepted: dict[str, str] = {}
    notes: list[str] = []
    for name, value in secrets.items():
        if not _ENV_NAME.fullmatch(name) or not isinstance(value, str) or "\0" in value:
            notes.append(f"secret {name[:64]!r} skipped: needs a variable name and a string value")
            continue
        accepted[name] = value
    return accepted, notes


def child_environment(base: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """The ``claude`` child's environment: ``base`` (with a ``HOME``) plus ``secrets``."""
    return {"HOME": "/home/agent", **base, **secrets}


def claude_argv(request: Mapping[str, Any], env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The ``claude`` command line for ``request`` (never the prompt, never a secret) and notes for the log."""
    argv = [env.get("KANMON_CLAUDE_BIN") or "claude", "-p", "--output-format", "stream-json", "--verbose"]
    argv += ["--permission-mode", env.get("KANMON_CLAUDE_PERMISSION_MODE") or "bypassPermissions"]
    notes: list[str] = []
    session = request.get("sessionId")
    if isinstance(session, str) and _SESSION.fullmatch(session):
        argv += ["--resume", session]
    elif session is not None:
        notes.append("sessionId is not a session id: starting a new session")
    system = env.get("KANMON_CLAUDE_SYSTEM_PROMPT")
    if system is None:
        system = DEFAULT_SYSTEM_PROMPT.format(name=str(request.get("assistantName") or "the assistant"))
    if system:
        argv += ["--append-system-prompt", system]
    return argv, notes


class Translator:
    """Claude Code stream-JSON events in, kanmon output blocks out (the rules in the module docstring)."""

    def __init__(self, redact: Redactor, *, tool_status: bool = False) -> None:
        self.redact = redact
        self.tool_status = tool_status
        self.session_id: str | None = None
        self.texts = 0  # blocks sent with text for the chat
        self.failure: str | None = None
        self.result_seen = False
        self.usage: dict[str, int | float] | None = None  # what the result says the run used, for the last block

    def feed(self, event: object) -> list[Block]:
        """The blocks one parsed stream-JSON line gives (a heartbeat at least, for a sign of life)."""
        if not isinstance(event, dict):
            return [HEARTBEAT]
        if isinstance(event.get("session_id"), str) and event["session_id"]:
            self.session_id = event["session_id"]
        kind = event.get("type")
        if kind == "assistant":
            return self._assistant(event)
        if kind == "result":
            return self._result(event)
        return [HEARTBEAT]

    def _assistant(self, event: dict[str, Any]) -> list[Block]:
        message = event.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        parts = [part for part in content if isinstance(part, dict)] if isinstance(content, list) else []
        if event.get("error"):
            said = " ".join(str(part.get("text", "")) for part in parts if part.get("type") == "text").strip()
            self._fail(f"{event['error']}: {said}" if said else str(event["error"]))
            return [HEARTBEAT]
        if event.get("parent_tool_use_id"):
            return [HEARTBEAT]  # a sub-agent talking to the main agent, not to the chat
        blocks: list[Block] = []
        for part in parts:
            if part.get("type") == "text" and str(part.get("text", "")).strip():
                blocks.append(self._text(str(part["text"])))
            elif part.get("type") == "tool_use" and self.tool_status:
                blocks.append(self._text(f"<status>{_tool_line(part)}</status>", counts=False))
        return blocks or [HEARTBEAT]

    def _result(self, event: dict[str, Any]) -> list[Block]:
        self.result_seen = True
        self.usage = result_usage(event)
        said = event.get("result")
        text = said if isinstance(said, str) else ""
        subtype = event.get("subtype")
        if event.get("is_error") or subtype != "success":
            listed = event.get("errors")
            errors: list[object] = listed if isinstance(listed, list) else []
            details = [str(detail).strip() for detail in [text, *errors] if str(detail).strip()]
            self._fail(f"claude: {subtype or 'error'}" + (f": {'; '.join(details)}" if details else ""))
            return [HEARTBEAT]
        if text.strip() and not self.texts:
            return [self._text(text)]
        return [HEARTBEAT]

    def _text(self, text: str, *, counts: bool = True) -> Block:
        if counts:
            self.texts += 1
        return {"status": "ok", "result": self.redact(text)}

    def _fail(self, why: str) -> None:
        if self.failure is None:
            self.failure = self.redact(why)[:1000]

    def finish(self, exit_code: int, stderr_tail: Iterable[str], *, signalled: str | None = None) -> Block:
        """The last block, once ``claude`` has exited with ``exit_code``."""
        if self.failure is None and exit_code != 0:
            tail = " | ".join(line.strip() for line in stderr_tail if line.strip())
            why = f"stopped by {signalled}" if signalled else "failed"
            self.failure = self.redact(f"claude {why} (exit status {exit_code})" + (f": {tail}" if tail else ""))
        if self.failure is None and not self.result_seen:
            self.failure = "claude ended without a result"
        block: Block = {"status": "ok", "result": None, "newSessionId": self.session_id}
        if self.failure is not None:
            block = {"status": "error", "result": None, "error": self.failure}
            if self.texts and self.session_id:
                block["newSessionId"] = self.session_id  # the batch is answered: the session goes on
        if self.usage:
            block["usage"] = self.usage  # once per run, on its last block: spent whether it failed or not
        return block


#: kanmon's usage fields and the ``usage`` keys of Claude Code's ``result`` message they come from.
_USAGE_KEYS = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_write_tokens": "cache_creation_input_tokens",
}


def result_usage(event: Mapping[str, Any]) -> dict[str, int | float] | None:
    """kanmon's ``usage`` object from a ``result`` message: its ``usage`` token counts and ``total_cost_usd``
    (numbers that are missing or not counts are left out, so kanmon reads them as 0); None when there are none."""
    reported = event.get("usage")
    used: Mapping[str, Any] = reported if isinstance(reported, dict) else {}
    usage: dict[str, int | float] = {
        ours: value
        for ours, theirs in _USAGE_KEYS.items()
        if isinstance(value := used.get(theirs), int) and not isinstance(value, bool) and value >= 0
    }
    cost = event.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
        usage["cost_usd"] = cost
    return usage or None


def _tool_line(part: Mapping[str, Any]) -> str:
    """``Name: description`` of a tool call, for a status line (the description Claude gave, when it gave one)."""
    name = str(part.get("name") or "tool")
    details = part.get("input") if isinstance(part.get("input"), dict) else {}
    description = details.get("description") if isinstance(details, dict) else None
    return f"{name}: {description}" if isinstance(description, str) and description else name


class Output:
    """Writes blocks to stdout, whole and flushed, from any thread."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, block: Block) -> None:
        """Write one output block (three lines) and flush it."""
        with self._lock:
            self._stream.write(f"{START}\n{json.dumps(block, ensure_ascii=False)}\n{END}\n")
            self._stream.flush()


def _forward_stderr(pipe: IO[str], redact: Redactor, tail: deque[str]) -> None:
    for line in pipe:
        clean = redact(line.rstrip("\n"))
        tail.append(clean)
        sys.stderr.write(f"claude: {clean}\n")
        sys.stderr.flush()


def _feed_stdin(pipe: IO[str], prompt: str) -> None:
    try:
        pipe.write(prompt)
        pipe.close()
    except (BrokenPipeError, OSError):
        pass  # claude exited before reading its prompt: its exit status says why


def heartbeat_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between timed heartbeats (``KANMON_CLAUDE_HEARTBEAT``), or None: off unless a positive number."""
    try:
        interval = float(env.get("KANMON_CLAUDE_HEARTBEAT") or 0)
    except ValueError:
        return None
    return interval if 0 < interval < math.inf else None


def _heartbeats(out: Output, interval: float | None, done: threading.Event) -> None:
    while interval is not None and not done.wait(interval):
        out.emit(HEARTBEAT)


def run(request: Mapping[str, Any], out: Output, base_env: Mapping[str, str]) -> int:
    """Run ``claude`` for one input document; return the runner's exit status (0 ok, 1 failed)."""
    secrets, notes = accepted_secrets(request.get("secrets"))
    env = child_environment(base_env, secrets)
    argv, more = claude_argv(request, base_env)  # the runner's knobs come from its own environment, never a secret
    for note in [*notes, *more]:
        sys.stderr.write(f"claude-runner: {note}\n")
    redact = Redactor(secrets.values())
    translator = Translator(redact, tool_status=base_env.get("KANMON_CLAUDE_TOOL_STATUS", "") not in ("", "0"))
    out.emit(HEARTBEAT)
    bridge = ActionBridge(out.emit, redact) if ActionBridge is not None and ActionBridge.wanted(base_env) else None
    argv += bridge.claude_args() if bridge is not None else []
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
        )  # fmt: skip
    except OSError as exc:
        out.emit({"status": "error", "result": None, "error": redact(f"cannot start {argv[0]}: {exc}")})
        return 1
    signalled: list[str] = []

    def forward(signum: int, frame: object) -> None:
        signalled.append(signal.Signals(signum).name)
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    tail: deque[str] = deque(maxlen=_STDERR_TAIL)
    done = threading.Event()
    threads = [
        threading.Thread(target=_feed_stdin, args=(child.stdin, str(request.get("prompt", ""))), daemon=True),
        threading.Thread(target=_forward_stderr, args=(child.stderr, redact, tail), daemon=True),
        threading.Thread(target=_heartbeats, args=(out, heartbeat_interval(base_env), done)),
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for line in child.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            if line.strip():
                sys.stderr.write(f"claude (stdout): {redact(line.rstrip())}\n")
            continue
        for block in translator.feed(event):
            out.emit(block)
    code = child.wait()
    done.set()
    threads[1].join(timeout=5)  # the last lines of stderr, for the error message
    threads[2].join()
    close(bridge)
    last = translator.finish(code, tail, signalled=signalled[0] if signalled else None)
    out.emit(last)
    return 0 if last["status"] == "ok" else 1


def main() -> int:
    """Read the input document on stdin and run it; a document that cannot be read is an error block."""
    out = Output(sys.stdout)
    try:
        request = json.loads(sys.stdin.buffer.read())
        if not isinstance(request, dict):
            raise ValueError("the input document is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        out.emit({"status": "error", "result": None, "error": f"cannot read the input document: {exc}"})
        return 1
    return run(request, out, os.environ)


if __name__ == "__main__":
    sys.exit(main())
