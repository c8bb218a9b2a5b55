"""An output block's ``actions`` (issue 15): parsed into actions, a malformed entry refused alone, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kanmon.container.actions import (
    MAX_ACTIONS,
    BadAction,
    CancelTaskAction,
    ListTasksAction,
    ScheduleAction,
    SendAction,
    parse_actions,
)
from kanmon.container.events import AttachmentRef, Output
from kanmon.container.protocol import InvalidBlock, OutputParser, encode_block


def parse_one(block: dict[str, Any]) -> Output | InvalidBlock:
    [event] = OutputParser().feed(encode_block(block))
    assert isinstance(event, Output | InvalidBlock)
    return event


def test_each_action_type_is_parsed_beside_a_result() -> None:
    output = parse_one({
        "status": "ok",
        "result": "done",
        "actions": [
            {"type": "send", "chat": "telegram:-1", "text": "hi", "attachments": [{"path": "out/a.txt"}]},
            {"type": "schedule", "cron": "0 9 * * 1-5", "tz": "Europe/Berlin", "prompt": "inbox"},
            {"type": "schedule", "every": "2h", "prompt": "ping", "chat": "web:corp", "missed": "skip"},
            {"type": "cancel_task", "id": 7},
            {"type": "list_tasks"},
        ],
    })  # fmt: skip
    assert isinstance(output, Output) and output.text == "done"
    assert output.actions == (
        SendAction("telegram:-1", "hi", (AttachmentRef("out/a.txt"),)),
        ScheduleAction(kind="cron", expression="0 9 * * 1-5", prompt="inbox", tz="Europe/Berlin"),
        ScheduleAction(kind="every", expression="2h", prompt="ping", chat="web:corp", missed="skip"),
        CancelTaskAction(7),
        ListTasksAction(),
    )


def test_a_block_of_only_actions_has_nothing_to_deliver() -> None:
    output = parse_one({"status": "ok", "result": None, "actions": [{"type": "list_tasks"}]})
    assert isinstance(output, Output) and not output.deliverable and output.actions == (ListTasksAction(),)


def test_a_malformed_entry_is_refused_alone() -> None:
    output = parse_one({
        "status": "ok",
        "result": "x",
        "actions": [
            {"type": "launch"}, {"type": "cancel_task", "id": "7"}, {"type": "schedule", "prompt": "p"},
            {"type": "schedule", "cron": "* * * * *", "every": "1h", "prompt": "p"},
            {"type": "send", "text": "no chat"}, "send", {"type": "list_tasks"},
        ],
    })  # fmt: skip
    assert isinstance(output, Output)
    *bad, last = output.actions
    assert last == ListTasksAction()
    assert [type(action) for action in bad] == [BadAction] * 6
    assert [action.reason.split(":")[0] for action in bad if isinstance(action, BadAction)] == [
        f"actions[{index}]" for index in range(6)
    ]


def test_actions_that_are_not_a_list_or_too_many_make_the_block_invalid() -> None:
    assert isinstance(parse_one({"status": "ok", "actions": {"type": "list_tasks"}}), InvalidBlock)
    too_many = [{"type": "list_tasks"}] * (MAX_ACTIONS + 1)
    assert isinstance(parse_one({"status": "ok", "actions": too_many}), InvalidBlock)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
_ENTRY = st.fixed_dictionaries(
    {"type": st.sampled_from(["send", "schedule", "cancel_task", "list_tasks", "x"])},
    optional={
        key: _JSON | st.text(max_size=10)
        for key in ("chat", "text", "cron", "every", "at", "prompt", "tz", "id", "folder", "topic", "attachments")
    },
)


@settings(deadline=None)  # a loaded shared machine is no reason to fail
@given(st.lists(_ENTRY | _JSON, max_size=MAX_ACTIONS))
def test_any_entries_parse_to_one_action_each_without_raising(entries: list[Any]) -> None:
    actions = parse_actions(entries)
    assert len(actions) == len(entries)
    for action, entry in zip(actions, entries, strict=True):
        if not isinstance(entry, dict) or entry.get("type") not in ("send", "schedule", "cancel_task", "list_tasks"):
            assert isinstance(action, BadAction)
    # and the same through the parser, from bytes
    [event] = OutputParser().feed(encode_block({"status": "ok", "result": json.dumps(entries), "actions": entries}))
    assert isinstance(event, Output) and event.actions == actions
