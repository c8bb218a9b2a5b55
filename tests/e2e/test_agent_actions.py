"""Agent actions through a whole gateway (issue 15): the echo agent's output blocks send, schedule, list and cancel;
refusals reach the run log and the agent's next prompt; a reclaimed run replaying its output acts once, and one
whose container is gone after the restart but which acted is not run again (its actions would repeat)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kanmon.container import InProcessRuntime
from kanmon.container.inprocess import AgentCall
from kanmon.gateway.scheduler import SchedulerConfig
from kanmon.store import Group, NewMessage
from tests.gateway_harness import RECORD, Harness, inputs, process_group, running_gateway

ENV = {"ECHO_ACTIONS": 1, "ECHO_RECORD": RECORD}


def actions(*items: dict[str, Any]) -> str:
    return "actions " + json.dumps(list(items))


def family() -> list[Group]:
    corp = process_group("corp", ENV)
    eng = process_group("corp/eng", ENV)
    return [corp, Group(folder=eng.folder, parent="corp", container_config=eng.container_config),
            process_group("other", ENV)]  # fmt: skip


async def test_a_root_group_sends_schedules_and_lists_and_the_answers_come_next_turn(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family()) as h:
        await h.send("web:corp", actions(
            {"type": "send", "chat": "web:other", "text": "hello other"},
            {"type": "schedule", "every": "1h", "prompt": "ping the team", "folder": "corp/eng"},
            {"type": "list_tasks", "folder": "corp/eng"},
        ))  # fmt: skip
        await h.settled()
        assert h.replies("web:corp") == ["acted: 3"]
        [sent] = [row for row in h.outbound("web:other")]
        assert (sent.content, sent.id) == ("hello other", f"run-{sent_run(h)}-0-a0")
        [task] = h.store.list_tasks("corp/eng")
        assert (task.prompt, task.created_by, task.chat_jid) == ("ping the team", sent_run(h), "web:corp/eng")
        await h.send("web:corp", "what did you do?")
        await h.settled()
        prompt = inputs(h, "corp")[-1]["prompt"]
        assert f"Task {task.id} scheduled" in prompt and "ping the team" in prompt  # the listing, next turn
        assert h.replies("web:corp") == ["acted: 3", "echo: what did you do?"]


def sent_run(h: Harness) -> str:
    [run] = [run for run in h.store.recent_runs() if run.group_folder == "corp"][-1:]
    return run.id


async def test_a_child_may_not_send_to_another_family_and_hears_why_next_turn(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family()) as h:
        operator_task = h.store.list_tasks("corp")
        assert operator_task == []
        await h.send("web:corp/eng", actions(
            {"type": "send", "chat": "web:other", "text": "sneaky"},
            {"type": "send", "chat": "web:corp", "text": "to my parent"},
            {"type": "schedule", "every": "1h", "prompt": "x", "folder": "corp"},
            {"type": "cancel_task", "id": 99},
            {"type": "launch"},
        ))  # fmt: skip
        await h.settled()
        assert h.outbound("web:other") == []
        assert [row.content for row in h.outbound("web:corp")] == ["to my parent"]
        assert h.store.list_tasks() == []
        [run] = h.store.recent_runs()
        assert run.status == "error" and run.error is not None  # answered: its batch is not run again
        assert run.error.count("refused") == 4, run.error
        await h.send("web:corp/eng", "and now?")
        await h.settled()
        prompt = inputs(h, "corp/eng")[-1]["prompt"]
        assert "belongs to other" in prompt and "only a root group" in prompt and "no task 99" in prompt
        assert "type must be one of" in prompt


async def test_an_agent_cancels_its_own_task_but_not_another_groups(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family()) as h:
        standup = {"type": "schedule", "cron": "0 9 * * *", "tz": "Europe/Berlin", "prompt": "standup"}
        await h.send("web:corp/eng", actions(standup))
        await h.send("web:other", actions(standup))
        await h.settled()
        [mine], [theirs] = h.store.list_tasks("corp/eng"), h.store.list_tasks("other")
        await h.send("web:corp/eng", actions({"type": "cancel_task", "id": theirs.id}))
        await h.send("web:corp/eng", actions({"type": "cancel_task", "id": mine.id}))
        await h.settled()
        after, untouched = h.store.get_task(mine.id), h.store.get_task(theirs.id)
        assert after is not None and after.status == "done" and after.reason is not None
        assert after.reason.startswith("cancelled by run")
        assert untouched is not None and untouched.status == "active"
        errors = [run.error for run in h.store.recent_runs() if run.group_folder == "corp/eng" and run.error]
        assert errors == [f"action 0.0 (cancel_task) refused: no task {theirs.id} in corp/eng"]


async def test_a_task_created_by_an_agent_action_and_replayed_from_a_reclaimed_run_is_one_task(
    tmp_path: Path,
) -> None:
    instance = f"t{uuid.uuid4().hex[:10]}"
    group = process_group("corp", {**ENV, "ECHO_HANG": 3})  # the run goes on after its action block
    data = tmp_path / "data"
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.1) as h:
        await h.send("web:corp", actions({"type": "schedule", "every": "2h", "prompt": "once only"},
                                         {"type": "send", "chat": "web:corp", "text": "sent once"}))  # fmt: skip
        await h.wait_for(lambda: len(h.store.list_tasks("corp")) == 1, "the task of the action block")
    # gated went away after the action was applied, while the run still works
    [left] = h.store.runs_in_flight(instance)
    async with running_gateway(data, [group], instance=instance) as again:
        await again.settled()
        await again.wait_for(lambda: again.store.get_run(left.id).status == "ok", "the reclaimed run's end")  # type: ignore[union-attr]
        [task] = again.store.list_tasks("corp")
        assert task.created_by == left.id
        assert [row.content for row in again.outbound("web:corp")].count("sent once") == 1
        assert [(a.output_index, a.action_index) for a in again.store.run_actions(left.id)] == [(0, 0), (0, 1)]
        assert [run.id for run in again.store.recent_runs()] == [left.id]  # replayed, not run again


PLANTS = {"type": "schedule", "every": "2h", "prompt": "water the plants"}


async def acts_then_works_on(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": None, "actions": [PLANTS]})  # acts at once, answers much later
    await asyncio.sleep(30)
    call.emit({"status": "ok", "result": "done"})
    return 0


async def acts_and_answers(call: AgentCall) -> int:
    call.emit({"status": "ok", "result": None, "actions": [PLANTS]})
    call.emit({"status": "ok", "result": "done"})
    return 0


async def test_a_run_that_acted_and_whose_container_is_gone_after_a_restart_is_not_run_again(tmp_path: Path) -> None:
    """An outside review found the batch run again (Reclaimer.gone counted only stored replies): two tasks."""
    instance = f"t{uuid.uuid4().hex[:10]}"
    group = Group(folder="corp", container_config={"runtime": "inproc", "command": ["unused"]})
    data = tmp_path / "data"
    first = {"inproc": InProcessRuntime(acts_then_works_on)}
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.1, runtimes=first) as h:
        await h.send("web:corp", "please schedule the plant watering")
        await h.wait_for(lambda: len(h.store.list_tasks("corp")) == 1, "the task of the action block")
    [left] = h.store.runs_in_flight(instance)
    # gated restarts; the in-process run did not outlive it, as a container removed meanwhile would not
    again_runtimes = {"inproc": InProcessRuntime(acts_and_answers)}
    async with running_gateway(data, [group], instance=instance, runtimes=again_runtimes) as again:
        await again.settled()
        [task] = again.store.list_tasks("corp")
        assert task.created_by == left.id
        [run] = again.store.recent_runs()
        assert run.id == left.id and run.status == "error"  # SPEC §9: an error after output, not a retry
        assert [row.status for row in again.inbound("web:corp")] == ["done"]


async def test_actions_with_values_no_schedule_or_store_can_hold_are_refused_and_the_run_answers_once(
    tmp_path: Path,
) -> None:
    """Before, each of these raised out of the run (OverflowError, UnicodeEncodeError): the batch ran three times,
    the send before it went out three times, the answer was lost and the batch was dead-lettered (an outside
    review). Now each is refused, and everything else of the run stands."""
    bad: list[dict[str, Any]] = [
        {"type": "schedule", "every": "600000w", "prompt": "x"},
        {"type": "schedule", "at": "+600000w", "prompt": "x"},
        {"type": "schedule", "at": "9999-12-31T23:59:59", "tz": "America/New_York", "prompt": "x"},
        {"type": "cancel_task", "id": 10**30},
    ]  # text no store can hold (a lone surrogate): tests/store/test_unstorable_values.py
    async with running_gateway(tmp_path / "data", family()) as h:
        await h.send("web:corp", actions({"type": "send", "chat": "web:other", "text": "first"}, *bad))
        await h.settled()
        assert h.replies("web:corp") == ["acted: 5"]
        assert [row.content for row in h.outbound("web:other")] == ["first"]
        assert len(inputs(h, "corp")) == 1 and h.store.list_tasks("corp") == []
        [run] = h.store.recent_runs()
        assert run.status == "error" and run.error is not None  # answered, with refusals: not run again
        assert run.error.count("refused") == len(bad), run.error
        await h.send("web:corp", "what happened?")
        await h.settled()
        prompt = inputs(h, "corp")[-1]["prompt"]
        assert prompt.count("refused") >= len(bad)


async def test_actions_count_against_the_reply_cap(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family(), max_replies=2) as h:
        await h.wait_for(lambda: h.gateway.loop.ticks > 0, "the loop's first tick")
        for _ in range(3):  # stored without waking the loop, then read as one batch: one run with three actions
            h.store.put_message(NewMessage(chat_jid="web:corp", content=actions({"type": "list_tasks"}), sender="u"))
        h.gateway.wake()
        await h.settled()
        [run] = h.store.recent_runs()
        assert [row.output_index for row in h.store.run_actions(run.id)] == [0, 1]
        assert run.error is not None and "stopped after 2 replies" in run.error


async def test_a_send_carries_files_of_the_agents_folder_and_names_those_it_cannot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_gateway(data, family()) as h:
        (data / "groups" / "corp" / "out").mkdir(parents=True)
        (data / "groups" / "corp" / "out" / "notes.txt").write_text("release notes\n")
        await h.send("web:corp", actions({
            "type": "send", "chat": "web:other", "text": "see the notes",
            "attachments": [{"path": "out/notes.txt", "name": "release.txt"}, {"path": "../other/secret"}],
        }))  # fmt: skip
        await h.settled()
        [row] = h.outbound("web:other")
        assert row.content.startswith("see the notes\n\n⚠ not sent: attachment '../other/secret'")
        [stored] = row.attachments or []
        assert (stored["name"], stored["size"]) == ("release.txt", len("release notes\n"))


async def test_a_schedule_without_a_zone_is_read_in_the_configured_timezone(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family(), timezone="Europe/Berlin") as h:
        await h.send("web:corp", actions(
            {"type": "schedule", "cron": "0 9 * * *", "prompt": "standup"},
            {"type": "schedule", "cron": "0 9 * * *", "tz": "Asia/Tokyo", "prompt": "tokyo"},
        ))  # fmt: skip
        await h.settled()
        made = {task.prompt: task for task in h.store.list_tasks("corp")}
        assert {prompt: task.timezone for prompt, task in made.items()} == {
            "standup": "Europe/Berlin", "tokyo": "Asia/Tokyo"
        }  # fmt: skip
        standup = made["standup"].next_fire_at
        assert standup is not None and standup.astimezone(ZoneInfo("Europe/Berlin")).hour == 9


async def test_a_task_an_agent_schedules_wakes_the_scheduler(tmp_path: Path) -> None:
    # the scheduler looks at the tasks once an hour by itself: a task due in a second must not wait for that
    hourly = SchedulerConfig(interval=3600.0)
    async with running_gateway(tmp_path / "data", family(), scheduler=hourly) as h:
        await h.send("web:corp", actions({"type": "schedule", "at": "+1s", "prompt": "soon"}))
        await h.wait_for(lambda: "echo: soon" in h.replies("web:corp"), "the task's occurrence answered", timeout=30)
        [task] = h.store.list_tasks("corp")
        [fired] = [row for row in h.store.new_messages(0, 100) if row.origin == "scheduler"]
        assert fired.id.startswith(f"task:{task.id}:") and task.status == "done"


async def test_a_topic_a_web_chat_could_not_open_is_refused_and_a_good_one_is_kept(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", family()) as h:
        await h.send("web:corp", actions(
            {"type": "send", "chat": "web:other", "text": "lost", "topic": "bad topic!"},
            {"type": "schedule", "every": "1h", "prompt": "x", "topic": "../x"},
            {"type": "send", "chat": "web:other", "text": "found", "topic": "t-1"},
        ))  # fmt: skip
        await h.settled()
        assert [(row.content, row.topic) for row in h.outbound("web:other")] == [("found", "t-1")]
        assert h.store.list_tasks() == []
        [run] = h.store.recent_runs()
        assert run.error is not None and run.error.count("invalid topic") == 2, run.error
