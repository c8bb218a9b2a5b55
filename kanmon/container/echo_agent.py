"""The reference agent: speaks the kanmon/arizuko container protocol (SPEC §9) and echoes what it is told.

Runs as ``python3 -m kanmon.container.echo_agent`` or as this file alone (standard library only, no kanmon
imports), e.g. copied into an image. It reads the input document on stdin, writes a heartbeat, then one output
block per message, ``{"status": "ok", "result": "echo: <text>", "newSessionId": ...}``, where the session id is
the input's ``sessionId`` or a new one.

Knobs for tests, from the environment (all optional):

* ``ECHO_LAST_ONLY=1``: one output for the last message instead of one per message;
* ``ECHO_DELAY=s``: sleep before each output;
* ``ECHO_REPEAT=n``: answer each message n times, ``echo (i/n): <text>`` (several replies to one message);
* ``ECHO_DELAY_MAX=s``: sleep a random 0–s seconds before each output (on top of ``ECHO_DELAY``);
* ``ECHO_HEARTBEATS=n`` / ``ECHO_HEARTBEAT_INTERVAL=s``: n more heartbeats, s apart, before the outputs;
* ``ECHO_SILENT=1``: no output at all (heartbeats still go out);
* ``ECHO_HANG=s``: sleep after the outputs (a run that does not end by itself);
* ``ECHO_FLOOD=n``: first write n bytes inside a block that never ends (the output cap);
* ``ECHO_IGNORE_TERM=1``: ignore SIGTERM (so a stop must end in a kill);
* ``ECHO_TOUCH=name``: create this file in the working directory;
* ``ECHO_STDERR=text``: write this to stderr;
* ``ECHO_EXIT=n``: exit status;
* ``ECHO_FAIL_RUNS=n``: the first n runs in this working directory exit 1 with no output (counted in the file
  ``.echo-runs``), later runs answer normally;
* ``ECHO_RECORD=name``: append the input document to this file in the working directory, one JSON line per run;
* ``ECHO_FILES=1``: after each message's echo, one reply per ``<attachment/>`` of it: ``file <name>: sha256 <hex>``
  of the file at its ``path`` as this agent reads it, or ``file <name>: <error>`` (the note kanmon wrote, or why
  the file could not be read);
* ``ECHO_ATTACH=1``: a message ``attach NAME`` makes the agent write ``out/NAME`` (a 96x64 PNG when NAME ends in
  ``.png``, else a line of text) and list it in its output's ``attachments``; ``list PATH`` lists PATH as is,
  writing nothing (a file that is not there, or not the agent's to send);
* ``ECHO_ACTIONS=1``: a message ``actions JSON`` (an action object or a list of them, issue 15) makes the agent
  write one block with those ``actions`` and the result ``acted: <n>`` instead of its echo;
* ``ECHO_RESULT_JSON=json``: the raw JSON of each output's ``result`` instead of ``"echo: <text>"``, written as is
  (so a test can send what Python cannot print, such as a lone surrogate ``"\\ud83d"``);
* ``ECHO_USAGE=json``: this raw JSON as each output's ``usage`` (what the model used: tokens and ``cost_usd``);
* ``ECHO_STATUS=text``: before each echo, an output ``<status>text</status>`` (a ``⏳`` line: still at work).
"""

from __future__ import annotations

import binascii
import hashlib
import html
import json
import os
import random
import re
import signal
import struct
import sys
import time
import uuid
import zlib
from typing import Any

START = "---ARIZUKO_OUTPUT_START---"
END = "---ARIZUKO_OUTPUT_END---"
_MESSAGE = re.compile(r"<message\b[^>]*>(.*?)</message>", re.DOTALL)
_ATTACHMENT = re.compile(r"<attachment\b([^>]*)/>")
_ATTRIBUTE = re.compile(r'([a-z_]+)="([^"]*)"')


def emit(block: dict[str, Any]) -> None:
    """Write one output block to stdout, flushed (the protocol is streamed)."""
    sys.stdout.write(f"{START}\n{json.dumps(block, ensure_ascii=False)}\n{END}\n")
    sys.stdout.flush()


def messages(prompt: str) -> list[str]:
    """The texts of the ``<message>`` elements of an XML prompt, unescaped; the whole prompt if there are none."""
    found = [html.unescape(_ATTACHMENT.sub("", text)).strip() for text in _MESSAGE.findall(prompt)]
    return found or [prompt.strip()]


def attachments(prompt: str) -> list[list[dict[str, str]]]:
    """The attributes of each message's ``<attachment/>`` elements, unescaped, one list per message."""
    return [
        [{key: html.unescape(value) for key, value in _ATTRIBUTE.findall(attrs)} for attrs in _ATTACHMENT.findall(body)]
        for body in _MESSAGE.findall(prompt)
    ]


def file_report(attachment: dict[str, str]) -> str:
    """``file <name>: sha256 <hex>`` of the file at the attachment's path, or why there is none."""
    name = attachment.get("name", "")
    if not attachment.get("path"):
        return f"file {name}: {attachment.get('error', 'no path')}"
    try:
        with open(attachment["path"], "rb") as received:  # noqa: PTH123 - kept plain for any Python 3
            return f"file {name}: sha256 {hashlib.sha256(received.read()).hexdigest()}"
    except OSError as exc:
        return f"file {name}: cannot read {attachment['path']}: {exc.strerror}"


def knob(name: str, default: float = 0.0) -> float:
    """A numeric test knob from the environment."""
    return float(os.environ.get(name) or default)


def main() -> int:
    """Read the input document, answer it, exit with ``ECHO_EXIT``."""
    if os.environ.get("ECHO_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        request = json.load(sys.stdin)
        prompt = str(request.get("prompt", ""))
    except (ValueError, AttributeError) as exc:
        emit({"status": "error", "result": None, "error": f"Failed to parse input: {exc}"})
        return 1
    _side_effects(request)
    if _failing_run():
        sys.stderr.write("echo agent: failing this run as ECHO_FAIL_RUNS asks\n")
        return 1
    flood = int(knob("ECHO_FLOOD"))
    if flood:
        sys.stdout.write(START + "\n")
        for _ in range(0, flood, 65536):
            sys.stdout.write("x" * 65535 + "\n")
        sys.stdout.flush()
    emit({"heartbeat": True})
    for _ in range(int(knob("ECHO_HEARTBEATS"))):
        time.sleep(knob("ECHO_HEARTBEAT_INTERVAL", 0.1))
        emit({"heartbeat": True})
    session = request.get("sessionId") or str(uuid.uuid4())
    if not os.environ.get("ECHO_SILENT"):
        _answer_all(prompt, session)
    time.sleep(knob("ECHO_HANG"))
    return int(knob("ECHO_EXIT"))


def _answer_all(prompt: str, session: str) -> None:
    """The replies: each message echoed (``ECHO_REPEAT`` times), then, with ``ECHO_FILES``, its files' reports."""
    texts = messages(prompt)
    files = attachments(prompt) if os.environ.get("ECHO_FILES") else []
    files += [[]] * (len(texts) - len(files))
    repeat = max(1, int(knob("ECHO_REPEAT", 1)))
    answered = list(zip(texts, files, strict=True))
    for text, received in answered[-1:] if os.environ.get("ECHO_LAST_ONLY") else answered:
        if os.environ.get("ECHO_ACTIONS") and text.startswith("actions "):
            actions = json.loads(text[len("actions ") :])
            actions = actions if isinstance(actions, list) else [actions]
            emit({"status": "ok", "result": f"acted: {len(actions)}", "actions": actions, "newSessionId": session})
            continue
        if os.environ.get("ECHO_STATUS"):
            emit({"status": "ok", "result": f"<status>{os.environ['ECHO_STATUS']}</status>", "newSessionId": session})
        for n in range(1, repeat + 1):
            time.sleep(knob("ECHO_DELAY") + random.uniform(0.0, knob("ECHO_DELAY_MAX")))  # noqa: S311 - not secret
            label = "echo" if repeat == 1 else f"echo ({n}/{repeat})"
            _answer(f"{label}: {text}", session, _attachments(text))
        for attachment in received:
            _answer(file_report(attachment), session)


def _answer(result: str, session: str, attachments: list[dict[str, str]] | None = None) -> None:
    """One output block with ``result`` (or, with ``ECHO_RESULT_JSON``, that raw JSON instead)."""
    raw = os.environ.get("ECHO_RESULT_JSON")
    if raw is None:
        block: dict[str, Any] = {"status": "ok", "result": result, "newSessionId": session}
        if attachments:
            block["attachments"] = attachments
        if os.environ.get("ECHO_USAGE"):
            block["usage"] = json.loads(os.environ["ECHO_USAGE"])
        emit(block)
        return
    text = f'{{"status": "ok", "result": {raw}, "newSessionId": {json.dumps(session)}}}'
    sys.stdout.write(f"{START}\n{text}\n{END}\n")
    sys.stdout.flush()


def _attachments(text: str) -> list[dict[str, str]] | None:
    """With ``ECHO_ATTACH``: the file ``attach NAME`` asks for (written first), or the path ``list PATH`` names."""
    if not os.environ.get("ECHO_ATTACH"):
        return None
    verb, _, argument = text.partition(" ")
    if verb == "list" and argument:
        return [{"path": argument}]
    if verb != "attach" or not argument or "/" in argument:
        return None
    os.makedirs("out", exist_ok=True)  # noqa: PTH103 - kept plain for any Python 3
    with open(os.path.join("out", argument), "wb") as file:  # noqa: PTH118, PTH123 - kept plain for any Python 3
        file.write(png(96, 64) if argument.endswith(".png") else f"{argument}, written by the echo agent\n".encode())
    return [{"path": f"out/{argument}", "name": argument}]


def png(width: int, height: int) -> bytes:
    """A small PNG of colour stripes: a real image a browser shows (standard library only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", binascii.crc32(kind + data))

    pixel = [[bytes((255 * x // width, 96, 255 * y // height)) for x in range(width)] for y in range(height)]
    rows = b"".join(b"\x00" + b"".join(row) for row in pixel)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _side_effects(request: dict[str, Any]) -> None:
    """The knobs that leave traces: the record of inputs, a touched file, a line on stderr."""
    if os.environ.get("ECHO_RECORD"):
        with open(os.environ["ECHO_RECORD"], "a") as record:  # noqa: PTH123 - kept plain for any Python 3
            record.write(json.dumps(request) + "\n")
    if os.environ.get("ECHO_STDERR"):
        sys.stderr.write(os.environ["ECHO_STDERR"] + "\n")
        sys.stderr.flush()
    if os.environ.get("ECHO_TOUCH"):
        with open(os.environ["ECHO_TOUCH"], "w") as touched:  # noqa: PTH123 - kept plain for any Python 3
            touched.write("written by the echo agent\n")


def _failing_run() -> bool:
    """True while fewer than ``ECHO_FAIL_RUNS`` runs have happened in this directory (this one is counted)."""
    limit = int(knob("ECHO_FAIL_RUNS"))
    if not limit:
        return False
    try:
        with open(".echo-runs") as counter:  # noqa: PTH123 - kept plain for any Python 3
            runs = int(counter.read() or 0)
    except FileNotFoundError:
        runs = 0
    with open(".echo-runs", "w") as counter:  # noqa: PTH123 - kept plain for any Python 3
        counter.write(str(runs + 1))
    return runs < limit


if __name__ == "__main__":
    sys.exit(main())
