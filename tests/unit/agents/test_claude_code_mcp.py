"""The reference Claude Code runner offers kanmon's actions as MCP tools (issue 15): the replaying fake ``claude``
starts the runner's stdio MCP server (``kanmon_mcp.py``, the ``mcp`` SDK) from ``--mcp-config`` and calls its tools;
each call comes out of the runner as an output block with that action, which kanmon's parser reads."""

from __future__ import annotations

import json
from pathlib import Path

from kanmon.container.actions import CancelTaskAction, ListTasksAction, ScheduleAction, SendAction
from kanmon.queue import LaneResult
from tests.unit.agents.claude_code import PROMPT, recorded, result_of, run_runner

REMINDER = "Remind Ann about the release"
TOOLS = "mcp__kanmon__send_message,mcp__kanmon__schedule_task,mcp__kanmon__list_tasks,mcp__kanmon__cancel_task"


def test_each_tool_call_becomes_one_action_block_in_order(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="mcp-tools", FAKE_CLAUDE_RECORD=record)
    assert run.code == 0, run.stderr
    acted = [output.actions for output in run.outputs if output.actions]
    assert acted == [
        (SendAction("web:corp/eng", "Release is on Friday"),),
        (ScheduleAction(kind="cron", expression="0 9 * * 5", tz="Europe/Berlin", prompt=REMINDER),),
        (ListTasksAction(),),
        (CancelTaskAction(3),),
    ]
    assert run.texts == ["I will tell the team and set the reminder.", "Done: the team knows, and the reminder is set."]
    assert run.last.new_session_id == result_of("mcp-tools.jsonl")["session_id"]
    assert run.outcome().result is LaneResult.OK
    argv = recorded(record)["argv"]
    config = json.loads(argv[argv.index("--mcp-config") + 1])["mcpServers"]["kanmon"]
    assert config["args"][0].endswith("kanmon_mcp.py") and argv[argv.index("--allowedTools") + 1] == TOOLS
    assert not Path(config["env"]["KANMON_ACTIONS_SOCKET"]).exists(), "the socket is removed when the run ends"


def test_the_tools_are_not_offered_when_the_group_turns_them_off(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    run = run_runner(tmp_path, {"prompt": PROMPT}, FAKE_CLAUDE_SCENARIO="multi-turn", FAKE_CLAUDE_RECORD=record,
                     KANMON_CLAUDE_MCP="0")  # fmt: skip
    assert run.code == 0, run.stderr
    assert "--mcp-config" not in recorded(record)["argv"]
