#!/usr/bin/env python3
"""kanmon's agent actions as MCP tools (issue 15): a stdio MCP server that Claude Code starts for the runner.

Tools: ``send_message``, ``schedule_task``, ``list_tasks`` and ``cancel_task``, named ``mcp__kanmon__<tool>`` in
Claude Code. A call does not act by itself: it hands the action (an object of ``docs/agent-protocol.md``,
"Actions") to the runner that started Claude Code, over the Unix socket named by ``KANMON_ACTIONS_SOCKET``, one JSON
line each way; the runner writes it as an output block's ``actions`` and answers ``{"message": ...}``, which is the
tool's result. kanmon checks and applies the action when it reads the block; what it has to say (a refusal, a new
task's id, the task list) comes in the next prompt, so the tools say so.

Built with the ``mcp`` Python SDK (2.x: ``MCPServer``, stdio transport).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from mcp.server.mcpserver import MCPServer

SOCKET_ENV = "KANMON_ACTIONS_SOCKET"
TIMEOUT = 30.0  # seconds to wait for the runner's answer

server = MCPServer("kanmon", instructions="Act in kanmon's chats: message other chats and manage scheduled tasks.")


def hand_over(action: dict[str, Any]) -> str:
    """Give ``action`` to the runner and return its answer; the reason as text when the runner cannot be reached."""
    path = os.environ.get(SOCKET_ENV)
    if not path:
        return f"kanmon is not listening ({SOCKET_ENV} is not set): nothing was done"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(TIMEOUT)
            conn.connect(path)
            conn.sendall(json.dumps(action, ensure_ascii=False).encode() + b"\n")
            line = conn.makefile("rb").readline()
        return str(json.loads(line)["message"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"kanmon did not take the action ({exc}): nothing was done"


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value not in (None, "")}


@server.tool()
def send_message(chat: str, text: str, topic: str = "", attachments: list[str] | None = None) -> str:
    """Send a message to another chat: one of your group's, your parent group's or a child group's (a root group:
    any). ``chat`` is a JID such as ``telegram:-1001234`` or ``web:corp``; ``attachments`` are paths of files in your
    folder to send with it. A refusal comes in your next prompt."""
    files = [{"path": path} for path in attachments or []]
    return hand_over(_given(type="send", chat=chat, text=text, topic=topic, attachments=files or None))


@server.tool()
def schedule_task(
    prompt: str,
    cron: str | None = None,
    every: str | None = None,
    at: str | None = None,
    tz: str | None = None,
    chat: str | None = None,
    topic: str = "",
    missed: str = "latest",
    folder: str | None = None,
) -> str:
    """Schedule ``prompt`` to be put into a chat of your group (default: its web chat) and answered by you: give
    exactly one of ``cron`` (five fields, read in ``tz``, an IANA zone, default: kanmon's), ``every`` (``90m``, ``2h``,
    ``1d``) or ``at`` (ISO 8601 such as ``2026-12-01T09:00``, or ``+2h``). ``missed`` is what happens after downtime:
    latest, skip or all. The new task's id comes in your next prompt."""
    action = _given(type="schedule", prompt=prompt, cron=cron, every=every, at=at, tz=tz, chat=chat, topic=topic,
                    folder=folder)  # fmt: skip
    if missed != "latest":
        action["missed"] = missed
    return hand_over(action)


@server.tool()
def list_tasks(folder: str | None = None) -> str:
    """Ask for your group's scheduled tasks (a root group may name another ``folder``); the list comes in your next
    prompt, as a system note."""
    return hand_over(_given(type="list_tasks", folder=folder))


@server.tool()
def cancel_task(id: int) -> str:
    """End the scheduled task ``id`` (one of your group's); the confirmation or refusal comes in your next prompt."""
    return hand_over({"type": "cancel_task", "id": id})


if __name__ == "__main__":
    server.run("stdio")
