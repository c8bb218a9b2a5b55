"""The fake ``claude``'s MCP client (issue 15): plays a transcript whose ``fake_mcp_call`` lines call real tools.

Like Claude Code, it starts the ``kanmon`` stdio server named by ``--mcp-config`` (a JSON string or a file) with the
``mcp`` SDK's client, and for each ``{"type": "fake_mcp_call", "tool": T, "arguments": {...}}`` line calls ``T`` and
writes the two stream-JSON events Claude Code prints for a tool call: the assistant's ``tool_use`` of
``mcp__kanmon__T`` and the ``user`` message carrying its ``tool_result``. Other lines are written as they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

__all__ = ["play_with_tools"]


def server_parameters(config: str | None) -> StdioServerParameters:
    """The ``kanmon`` server of an ``--mcp-config`` value (inline JSON or a path to it)."""
    if not config:
        raise SystemExit("fake claude: a transcript calls MCP tools but no --mcp-config was given")
    text = config if config.lstrip().startswith("{") else Path(config).read_text(encoding="utf-8")
    server = json.loads(text)["mcpServers"]["kanmon"]
    return StdioServerParameters(command=server["command"], args=server.get("args", []), env=server.get("env"))


def play_with_tools(lines: list[str], config: str | None, write: Callable[[str], None]) -> None:
    """Write ``lines``, calling the tools of their ``fake_mcp_call`` lines on the way."""
    asyncio.run(_play(lines, server_parameters(config), write))


async def _play(lines: list[str], parameters: StdioServerParameters, write: Callable[[str], None]) -> None:
    async with Client(parameters) as client:
        for number, line in enumerate(lines):
            event = json.loads(line)
            if event.get("type") != "fake_mcp_call":
                write(line)
                continue
            result = await client.call_tool(event["tool"], event.get("arguments") or {})
            text = " ".join(str(getattr(part, "text", "")) for part in getattr(result, "content", []))
            call_id = f"toolu_fake{number:03d}"
            write(_event("assistant", [{"type": "tool_use", "id": call_id, "name": f"mcp__kanmon__{event['tool']}",
                                        "input": event.get("arguments") or {}}]))  # fmt: skip
            write(_event("user", [{"tool_use_id": call_id, "type": "tool_result", "content": text,
                                   "is_error": bool(getattr(result, "is_error", False))}]))  # fmt: skip


def _event(role: str, content: list[dict[str, Any]]) -> str:
    return json.dumps({
        "type": role, "message": {"role": role, "content": content}, "parent_tool_use_id": None,
        "session_id": "d4f8b2a1-5c3e-4f7a-8b2d-3e4f5a6b7c8d",
    })  # fmt: skip
