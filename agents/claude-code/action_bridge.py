"""The Claude Code runner's side of kanmon's MCP tools (issue 15; ``kanmon_mcp.py`` is the server's side).

Claude Code starts ``kanmon_mcp.py`` from the ``--mcp-config`` this gives the runner; the server hands each tool call
here over a Unix socket in a private temporary directory (``KANMON_ACTIONS_SOCKET``), one JSON line each way, and
this writes the action as one output block ``{"status": "ok", "result": null, "actions": [ACTION]}`` on the runner's
stdout, with secret values redacted. Standard library only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ACTION_TYPES", "MCP_SERVER", "MCP_TOOLS", "ActionBridge"]

MCP_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kanmon_mcp.py")  # noqa: PTH100, PTH118, PTH120
MCP_TOOLS = ("send_message", "schedule_task", "list_tasks", "cancel_task")
ACTION_TYPES = ("send", "schedule", "cancel_task", "list_tasks")
#: A tool's answer to Claude: kanmon acts when it reads the block, and answers in the next prompt.
HANDED = (
    "Handed to kanmon. It is applied once this turn's output is read; a refusal or answer (a new task's id, the task "
    "list) comes in your next prompt."
)


class ActionBridge:
    """kanmon's actions as MCP tools: Claude Code starts ``kanmon_mcp.py`` (``--mcp-config``), which hands each tool
    call here over a Unix socket (``KANMON_ACTIONS_SOCKET``); each becomes one output block ``{"actions": [ACTION]}``.
    Offered when the server file is beside the runner and the ``mcp`` package is importable (unless
    ``KANMON_CLAUDE_MCP=0``)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], redact: Callable[[str], str]) -> None:
        self.emit, self.redact = emit, redact
        self.directory = tempfile.mkdtemp(prefix="kanmon-mcp-")
        self.path = os.path.join(self.directory, "actions.sock")  # noqa: PTH118
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def wanted(env: Mapping[str, str]) -> bool:
        """True when the tools can and may be offered."""
        usable = os.path.exists(MCP_SERVER) and importlib.util.find_spec("mcp") is not None  # noqa: PTH110
        return usable and env.get("KANMON_CLAUDE_MCP", "1") not in ("", "0")

    def claude_args(self) -> list[str]:
        """``--mcp-config`` (the server, by this interpreter) and ``--allowedTools`` for its four tools."""
        server = {"type": "stdio", "command": sys.executable, "args": [MCP_SERVER],
                  "env": {"KANMON_ACTIONS_SOCKET": self.path}}  # fmt: skip
        tools = ",".join(f"mcp__kanmon__{tool}" for tool in MCP_TOOLS)
        return ["--mcp-config", json.dumps({"mcpServers": {"kanmon": server}}), "--allowedTools", tools]

    def take(self, action: object) -> str:
        """Write ``action`` as an output block; the tool's answer."""
        if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES:
            return "not an action: nothing was done"
        self.emit({"status": "ok", "result": None, "actions": [json.loads(self.redact(json.dumps(action)))]})
        return HANDED

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    message = self.take(json.loads(conn.makefile("rb").readline()))
                except ValueError as exc:
                    message = f"not an action ({exc}): nothing was done"
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"message": message}).encode() + b"\n")

    def close(self) -> None:
        """Stop listening and remove the socket."""
        self.listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def close(bridge: ActionBridge | None) -> None:
    """Close ``bridge`` if there is one."""
    if bridge is not None:
        bridge.close()
