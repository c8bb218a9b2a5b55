"""The hook plugin manager (issue 16 item 6): what loads, what is refused with one line, and how a call into a
plugin that raises, hangs or answers nonsense is contained."""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kanmon.gateway.hooks import HOOK_NAMES, Drop, HookConfig, Hooks, PluginError, Retarget, RunExtras, hookimpl
from kanmon.gateway.hooks import manager as hook_manager
from kanmon.store import Group

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


def plugin(**hooks: Any) -> SimpleNamespace:
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def routed(hooks: Hooks, folder: str = "corp") -> Drop | Retarget | None:
    message: Any = SimpleNamespace(seq=1, chat_jid="web:corp", content="hi")
    return hooks.route(message, folder, "", known=lambda name: name in ("corp", "corp/eng"))


def test_the_hooks_are_the_eight_of_the_issue() -> None:
    assert HOOK_NAMES == (
        "message_stored", "message_routed", "run_starting", "run_finished", "session_reset", "delivery_failed",
        "dead_letter", "task_fired",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (plugin(message_routd=lambda message: None), "no such hook: message_routd"),
        (plugin(message_routed=lambda message, colour: None), "colour"),
    ],
)
def test_an_unknown_hook_or_argument_is_refused_with_one_line(bad: object, problem: str) -> None:
    with pytest.raises(PluginError) as caught:
        Hooks([("bad", bad)])
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_configured_module_that_cannot_be_imported_is_one_line() -> None:
    with pytest.raises(PluginError, match=r"hooks\.modules: cannot import no_such_hooks_module: ModuleNotFoundError"):
        Hooks.load(HookConfig(modules=("no_such_hooks_module",)))


def test_a_broken_entry_point_is_left_out_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    points = [
        EntryPoint(name="audit", value="audit_hooks", group="kanmon.hooks"),
        EntryPoint(name="broken", value="no_such_hooks_module", group="kanmon.hooks"),
    ]
    monkeypatch.setattr(hook_manager, "entry_points", lambda group: points if group == "kanmon.hooks" else [])
    hooks = Hooks.load(HookConfig(entry_points=True))
    [audit, broken] = hooks.plugins
    assert (audit.name, audit.error, "message_routed" in audit.hooks) == ("audit", None, True)
    assert broken.name == "broken" and "no_such_hooks_module" in str(broken.error)
    assert Hooks.load(HookConfig(entry_points=False)).plugins == []


def test_deciders_chain_and_only_registered_folders_count() -> None:
    hooks = Hooks(
        [
            ("first", plugin(message_routed=lambda folder: Retarget("corp/eng") if folder == "corp" else None)),
            ("nowhere", plugin(message_routed=lambda: Retarget("no/such"))),
        ]
    )
    # pluggy's order: the last registered first; the unknown folder is ignored, the other re-targets
    assert routed(hooks) == Retarget("corp/eng", "")
    assert routed(Hooks([("drop", plugin(message_routed=lambda: Drop()))])) == Drop()
    assert routed(Hooks([("silly", plugin(message_routed=lambda: 42))])) is None


async def test_run_starting_merges_extras_and_ignores_what_is_not_strings() -> None:
    hooks = Hooks(
        [
            ("a", plugin(run_starting=lambda: RunExtras(env={"A": "1", "B": "a"}, notes=["from a"]))),
            ("b", plugin(run_starting=lambda group: RunExtras(env={"B": group.folder}))),
            ("bad", plugin(run_starting=lambda: RunExtras(env={"C": 3}))),  # type: ignore[dict-item]
        ]
    )
    extras = await hooks.run_starting("r1", Group(folder="corp"), "process")
    assert extras == RunExtras(env={"A": "1", "B": "a"}, notes=["from a"])  # a registered before b: a runs last


def test_a_stuck_hook_is_skipped_without_piling_up_calls() -> None:
    release, calls = threading.Event(), []

    def sleepy(message: Any) -> None:
        calls.append(message)
        release.wait()

    hooks = Hooks([("sleepy", plugin(message_routed=sleepy))], timeout=0.05)
    try:
        assert routed(hooks) is None  # waited one timeout, then went on
        for _ in range(20):
            assert routed(hooks) is None  # stuck: skipped without another call
        assert len(calls) == 1
    finally:
        release.set()
        hooks.close()


def test_observers_see_events_in_order_on_their_own_thread() -> None:
    seen: list[tuple[int, str]] = []
    done = threading.Event()

    def stored(message: Any) -> None:
        seen.append((message, threading.current_thread().name))
        if message == 99:
            done.set()

    hooks = Hooks([("watcher", plugin(message_stored=stored))])
    assert hooks.observed("message_stored") and not hooks.observed("dead_letter")
    assert not Hooks().observed("message_stored")
    for n in range(100):
        hooks.notify("message_stored", message=n)
    assert done.wait(30)
    hooks.close()
    assert [n for n, _ in seen] == list(range(100))
    assert {name for _, name in seen} == {"kanmon-hook-watcher.message_stored"}
