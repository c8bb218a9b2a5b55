"""A test agent that reports what it sees, as one JSON reply, without ever repeating a secret's value.

Standard library only, so it runs as a process agent and inside any image with python3 (copied into the group
folder, which is the container's ``/home/agent``). It reads the input document on stdin and answers with one output
block whose ``result`` is a JSON object:

* ``pid``, ``ppid``: its own process and its parent (so a test can read ``/proc/<pid>/environ`` while it waits);
* ``secrets``: each secret it received on stdin, by name, as ``sha256:<hex>`` of its value (proof of receipt that
  does not carry the value);
* ``secret_in_env``, ``secret_in_argv``: whether any received value is in its environment or its argv;
* ``env``: the variables named by ``PROBE_ENV`` (comma-separated), None when unset;
* ``read``: for each path in ``PROBE_READ``, its text or ``error: <errno name>``;
* ``write``: for each path in ``PROBE_WRITE``, ``ok`` once a file was written there, or ``error: <errno name>``;
* ``call``: with ``PROBE_CALL=PATH``, what a POST of ``{"probe": true}`` to ``$ANTHROPIC_BASE_URL`` + PATH with
  ``x-api-key: $ANTHROPIC_API_KEY`` (as Anthropic's SDK sends it) answered: ``status`` and ``body`` (its chunks, as
  they arrived), or ``error``. ``PROBE_CALL_KEY`` overrides the key sent.

Then, with ``PROBE_WAIT_FOR=name``, it waits (at most ``PROBE_WAIT_MAX`` seconds, default 60) until a file of that
name appears in its working directory, so the test can look at the live process or container before it ends.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

START = "---ARIZUKO_OUTPUT_START---"
END = "---ARIZUKO_OUTPUT_END---"


def _names(variable: str) -> list[str]:
    return [item for item in os.environ.get(variable, "").split(",") if item]


def _error(exc: OSError) -> str:
    return f"error: {errno.errorcode.get(exc.errno or 0, 'unknown')}"


def _read(path: str) -> str:
    try:
        with open(path) as file:  # noqa: PTH123 - plain Python for any image
            return file.read()
    except OSError as exc:
        return _error(exc)


def _write(path: str) -> str:
    try:
        with open(path, "w") as file:  # noqa: PTH123 - plain Python for any image
            file.write("written by the probe agent\n")
    except OSError as exc:
        return _error(exc)
    return "ok"


def _call(path: str) -> dict[str, Any]:
    base = os.environ.get("ANTHROPIC_BASE_URL", "")
    key = os.environ.get("PROBE_CALL_KEY", os.environ.get("ANTHROPIC_API_KEY", ""))
    request = urllib.request.Request(
        base + path, data=b'{"probe": true}', headers={"x-api-key": key, "content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            chunks = []
            while chunk := answer.read1(65536):
                chunks.append(chunk.decode(errors="replace"))
            return {"status": answer.status, "body": chunks}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": [exc.read().decode(errors="replace")]}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def report(request: dict[str, Any]) -> dict[str, Any]:
    """What the agent sees, secrets only as digests."""
    secrets = {str(k): str(v) for k, v in (request.get("secrets") or {}).items()}
    values = [value for value in secrets.values() if value]
    environment = "\0".join(f"{k}={v}" for k, v in os.environ.items())
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "secrets": {name: "sha256:" + hashlib.sha256(value.encode()).hexdigest() for name, value in secrets.items()},
        "secret_in_env": any(value in environment for value in values),
        "secret_in_argv": any(value in arg for value in values for arg in sys.argv),
        "env": {name: os.environ.get(name) for name in _names("PROBE_ENV")},
        "read": {path: _read(path) for path in _names("PROBE_READ")},
        "write": {path: _write(path) for path in _names("PROBE_WRITE")},
        "call": _call(os.environ["PROBE_CALL"]) if os.environ.get("PROBE_CALL") else None,
    }


def main() -> int:
    request = json.load(sys.stdin)
    block = {"status": "ok", "result": json.dumps(report(request)), "newSessionId": "probe"}
    sys.stdout.write(f"{START}\n{json.dumps(block)}\n{END}\n")
    sys.stdout.flush()
    wait_for = os.environ.get("PROBE_WAIT_FOR")
    deadline = time.monotonic() + float(os.environ.get("PROBE_WAIT_MAX") or 60)
    while wait_for and not os.path.exists(wait_for) and time.monotonic() < deadline:  # noqa: PTH110
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
