"""Lifecycle hooks in a served gateway (issue 16 item 6): plugins see and steer events, and a plugin that raises or
hangs never keeps the loop from answering (Hermes' hook that blocked its loop is the trap).

Real store, loop, queue, runner and echo agents (:mod:`tests.gateway_harness`); plugins are plain modules of hook
functions registered with :class:`kanmon.gateway.hooks.Hooks`, and the example of docs/examples/audit_hooks.py is
loaded by its module name, as ``hooks.modules`` does.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kanmon.gateway.hooks import HookConfig, Hooks, Retarget, hookimpl
from kanmon.store import Message, NewTask
from tests.gateway_harness import RECORD, Harness, inputs, process_group, running_gateway

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"
TIMEOUT = 0.2  # hooks.timeout of these tests: the sleeping hook outlasts it by far


def plugin(**hooks: Any) -> SimpleNamespace:
    """A plugin object whose functions are ``hooks`` (each marked as a hook implementation)."""
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def every_hook(body: Any) -> SimpleNamespace:
    """A plugin implementing every hook with ``body`` (which takes no arguments)."""
    names = ("message_stored", "message_routed", "run_starting", "run_finished", "session_reset")
    return plugin(**{name: (lambda body=body: body()) for name in names})


def answered(h: Harness, count: int) -> bool:
    return len(h.replies("web:corp")) == count


def _raise() -> None:
    raise RuntimeError("a plugin's bug")


async def test_a_raising_and_a_sleeping_hook_never_stop_the_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    hooks = Hooks([("raising", every_hook(_raise)), ("sleeping", every_hook(release.wait))], timeout=TIMEOUT)
    try:
        async with running_gateway(tmp_path / "data", [process_group("corp")], hooks=hooks) as h:
            for n in range(5):
                await h.send("web:corp", f"hello {n}")
                await h.wait_for(functools.partial(answered, h, n + 1), f"answer {n}")
            await h.send("web:corp", "/new")
            await h.send("web:corp", "after the reset")
            await h.wait_for(lambda: len(h.replies("web:corp")) == 6, "the answer after /new")
            assert h.replies("web:corp") == [*(f"echo: hello {n}" for n in range(5)), "echo: after the reset"]

            def calls(hook: str, result: str) -> float:  # kanmon_hook_calls_total{hook, result}
                found = h.gateway.metrics.registry.get_sample_value(
                    "kanmon_hook_calls_total", {"hook": hook, "result": result}
                )
                return found or 0.0

            assert calls("raising.message_routed", "error") >= 6 and calls("raising.message_routed", "ok") == 0
            assert calls("sleeping.message_routed", "late") == 1  # then stuck: its later calls are dropped
            assert calls("sleeping.message_routed", "dropped") >= 5
    finally:
        release.set()
    logged = [record.getMessage() for record in caplog.records if record.name == "kanmon.gateway.hooks"]
    assert any("hook raising.message_routed raised RuntimeError: a plugin's bug" in line for line in logged)
    assert any("hook raising.run_starting raised RuntimeError" in line for line in logged)
    assert any("hook sleeping.message_routed took longer than 0.2s" in line for line in logged)
    # one thread and one timeout per sleeping hook, not one per message: the rest is skipped while it is stuck
    assert any("sleeping.message_routed has been running for over 0.2s" in line for line in logged)


async def test_a_routed_hook_drops_or_retargets_and_observers_see_the_run(tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []

    def routed(message: Message, folder: str) -> Retarget | None:
        return Retarget("corp/eng") if "for eng" in message.content else None

    observer = plugin(
        message_routed=routed,
        run_finished=lambda run, status: seen.append(("finished", (run.group_folder, status))),
        message_stored=lambda message: seen.append(("stored", message.content)),
    )
    groups = [process_group("corp"), process_group("corp/eng", env={"ECHO_RECORD": RECORD})]
    async with running_gateway(tmp_path / "data", groups, hooks=Hooks([("observer", observer)])) as h:
        await h.send("web:corp", "for eng: build it")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: for eng: build it"], "eng's answer in corp's chat")
        await h.wait_for(lambda: ("finished", ("corp/eng", "ok")) in seen, "run_finished of eng's run")
    assert [document["groupFolder"] for document in inputs(h, "corp/eng")] == ["corp/eng"]
    assert ("stored", "for eng: build it") in seen and ("stored", "echo: for eng: build it") in seen


async def test_the_example_audit_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("KANMON_AUDIT_LOG", str(audit))
    hooks = Hooks.load(HookConfig(modules=("audit_hooks",), timeout=5.0))
    assert [(p.name, p.source) for p in hooks.plugins] == [("audit_hooks", "hooks.modules")]
    group = process_group("corp", env={"ECHO_RECORD": RECORD})
    async with running_gateway(tmp_path / "data", [group], hooks=hooks) as h:
        await h.send("web:corp", "#private do not tell the agent")
        await h.send("web:corp", "hello")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hello"], "the answer")
        await h.send("web:corp", "/new")
        await h.wait_for(lambda: audit.exists() and '"session_reset"' in audit.read_text(), "the reset's line")
        await h.wait_for(lambda: '"run_finished"' in audit.read_text(), "the run's line")
        private = h.inbound("web:corp")[0]
        assert private.status == "done"
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    told = [e["event"] for e in events if e["event"] != "session_reset"]
    # the lane may be offered once more after the run (/new came while it ran): that start finds nothing to run
    assert told[:3] == ["dropped", "run_starting", "run_finished"] and set(told[3:]) <= {"run_starting"}, told
    [finished] = [event for event in events if event["event"] == "run_finished"]
    assert finished["status"] == "ok" and finished["folder"] == "corp"
    assert [event["reason"] for event in events if event["event"] == "session_reset"] == ["new"]
    [document] = inputs(h, "corp")  # the dropped message never reached the agent; the plugin's note did
    assert "#private" not in document["prompt"]
    assert 'origin="hook" event="run_starting">Runs of corp are audited.</system>' in document["prompt"]


async def test_dead_letters_failed_deliveries_and_fired_tasks_are_told(tmp_path: Path) -> None:
    seen: dict[str, list[Any]] = {"dead_letter": [], "delivery_failed": [], "task_fired": []}
    observer = plugin(
        dead_letter=lambda folder, messages: seen["dead_letter"].append((folder, [m.content for m in messages])),
        delivery_failed=lambda message, final: seen["delivery_failed"].append((message.chat_jid, final)),
        task_fired=lambda task, stored: seen["task_fired"].append((task.prompt, stored)),
    )
    groups = [process_group("corp"), process_group("broken", env={"ECHO_EXIT": 1, "ECHO_SILENT": 1})]
    daemons = {"sink": "http://127.0.0.1:9/nothing-listens-here"}
    async with running_gateway(tmp_path / "data", groups, hooks=Hooks([("observer", observer)]), daemons=daemons) as h:
        h.store.add_route(seq=0, match="chat_jid=telegram:7", target="daemon:sink")
        h.store.add_route(seq=1, match="platform=telegram", target="corp")  # the chat's owner
        await h.send("web:broken", "this fails every time")
        await h.send("telegram:7", "for the daemon")
        now = h.gateway.clock.now()
        h.store.add_task(
            NewTask(group_folder="corp", chat_jid="web:corp", prompt="daily report", kind="at",
                    expression=now.isoformat(), next_fire_at=now, created_at=now)
        )  # fmt: skip
        h.gateway.scheduler.wake()
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: daily report"], "the task's answer")
        await h.wait_for(lambda: bool(seen["dead_letter"] and seen["delivery_failed"]), "the failures")
    assert seen["dead_letter"] == [("broken", ["this fails every time"])]
    assert seen["delivery_failed"][0] == ("daemon:sink", False)
    assert seen["task_fired"] == [("daily report", 1)]
