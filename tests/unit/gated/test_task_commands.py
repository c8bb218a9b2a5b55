"""`gated task …` (issue 15): add, list, show, pause, resume, rm and run-now; bad input is one line, exit 2, and
changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.gated.exits import Exit
from kanmon.store import Store
from tests.cli_world import Gated, gated_cli, ok, sqlite_store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    return gated_cli(data_dir, monkeypatch, "corp")


@pytest.fixture
def store(data_dir: Path, gated: Gated) -> Iterator[Store]:
    with sqlite_store(data_dir) as opened:
        yield opened


def test_add_a_cron_task_in_a_zone(gated: Gated, store: Store) -> None:
    out = ok(gated("task", "add", "corp", "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", "--prompt", "inbox"))
    assert out.startswith("task 1 added: cron '0 9 * * 1-5' Europe/Berlin → web:corp; next fire ")
    assert "09:00 CE" in out and "UTC)" in out
    [task] = store.list_tasks()
    assert (task.group_folder, task.chat_jid, task.kind, task.timezone, task.created_by) == (
        "corp", "web:corp", "cron", "Europe/Berlin", "operator"
    )  # fmt: skip
    assert task.next_fire_at is not None and task.next_fire_at.astimezone().minute == 0


def test_the_default_zone_comes_from_the_configuration(gated: Gated, store: Store, data_dir: Path) -> None:
    (data_dir / "kanmon.yaml").write_text("scheduler:\n  timezone: America/New_York\n")
    ok(gated("task", "add", "corp", "--at", "2099-01-01T09:00", "--prompt", "p"))
    [task] = store.list_tasks()
    assert task.timezone == "America/New_York" and task.next_fire_at is not None
    assert task.next_fire_at.isoformat() == "2099-01-01T14:00:00+00:00"


def test_every_and_at_and_their_options(gated: Gated, store: Store) -> None:
    ok(gated("task", "add", "corp", "--every", "1h30m", "--prompt", "p", "--topic", "ops", "--missed", "all"))
    ok(gated("task", "add", "corp", "--at", "+2h", "--prompt", "q", "--chat", "web:corp"))
    every, at = store.list_tasks()
    assert (every.kind, every.expression, every.topic, every.missed) == ("every", "5400", "ops", "all")
    assert at.kind == "at" and at.next_fire_at is not None


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--prompt", "p"], "exactly one of"),
        (["--cron", "0 9 * * *", "--every", "1h", "--prompt", "p"], "exactly one of"),
        (["--cron", "0 9 * *", "--prompt", "p"], "invalid cron expression"),
        (["--cron", "0 9 * * *", "--tz", "Mars/Base", "--prompt", "p"], "unknown time zone"),
        (["--every", "1h", "--tz", "UTC", "--prompt", "p"], "--tz applies to --cron and --at"),
        (["--every", "10s", "--prompt", "p"], "too short"),
        (["--at", "2001-01-01T00:00", "--prompt", "p"], "not in the future"),
        (["--every", "1h", "--prompt", "  "], "needs a prompt"),
        (["--every", "1h", "--prompt", "p", "--chat", "telegram:1"], "does not belong to corp"),
        (["--every", "1h", "--prompt", "p", "--chat", "nocolon"], "invalid chat JID"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_adds_nothing(gated: Gated, store: Store, args: list[str], error: str) -> None:
    result = gated("task", "add", "corp", *args)
    assert result.exit_code == 2 and error in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert store.list_tasks() == []


def test_a_task_of_an_unknown_group_is_refused(gated: Gated, store: Store) -> None:
    result = gated("task", "add", "ghost", "--every", "1h", "--prompt", "p")
    assert result.exit_code == 2 and "group ghost is not registered" in result.output
    assert store.list_tasks() == []


def test_list_and_show(gated: Gated) -> None:
    assert "no tasks" in ok(gated("task", "list"))
    ok(gated("task", "add", "corp", "--cron", "30 2 * * *", "--tz", "America/New_York", "--prompt", "nightly"))
    line = ok(gated("task", "list")).strip()
    assert line.startswith("1\tactive\tcorp → web:corp\tcron '30 2 * * *' America/New_York\tnext ")
    assert line.endswith("\tnightly") and "UTC)" in line
    [item] = json.loads(ok(gated("task", "list", "--json")))
    assert item["next_fire_local"].endswith(("-05:00", "-04:00")) and item["next_fire_at"].endswith("+00:00")
    assert item["next_fire_local"][11:16] in ("02:30", "03:30")
    unknown = gated("task", "list", "--json", "--group", "other")  # no such group: exit 2, as for every command
    assert unknown.exit_code == 2 and "no group 'other'" in unknown.output
    shown = ok(gated("task", "show", "1"))
    assert "prompt: nightly\n" in shown and "status: active\n" in shown and "fire_count: 0\n" in shown
    assert gated("task", "show", "9").exit_code == 2


def test_pause_resume_and_rm(gated: Gated, store: Store) -> None:
    ok(gated("task", "add", "corp", "--every", "1h", "--prompt", "p"))
    assert ok(gated("task", "pause", "1")) == "task 1 paused\n"
    paused = store.get_task(1)
    assert paused is not None and paused.status == "paused" and paused.next_fire_at is None
    assert "not active" in gated("task", "pause", "1").output
    assert "resumed; next fire" in ok(gated("task", "resume", "1"))
    resumed = store.get_task(1)
    assert resumed is not None and resumed.status == "active" and resumed.next_fire_at is not None
    assert "not paused" in gated("task", "resume", "1").output
    assert ok(gated("task", "rm", "1")) == "removed task 1\n"
    assert gated("task", "rm", "1").exit_code == 2 and store.list_tasks() == []


def test_run_now_puts_one_manual_occurrence(gated: Gated, store: Store) -> None:
    ok(gated("task", "add", "corp", "--every", "1d", "--prompt", "report", "--topic", "daily"))
    out = ok(gated("task", "run-now", "1"))
    assert out.startswith("task 1 fired: task:1:manual:")
    [row] = [row for row in store.new_messages(0) if row.chat_jid == "web:corp"]
    assert row.id.startswith("task:1:manual:") and row.content == "report" and row.topic == "daily"
    assert (row.verb, row.origin) == ("task", "scheduler")
    task = store.get_task(1)
    assert task is not None and task.fire_count == 1 and task.status == "active"
    ok(gated("group", "rm", "corp"))
    assert "group corp is not registered" in gated("task", "run-now", "1").output


def test_status_shows_the_next_fires(gated: Gated) -> None:
    assert "next task fires: none" in ok(gated("status"), Exit.ATTENTION)  # no gated serves here
    ok(gated("task", "add", "corp", "--at", "2099-01-01T09:00", "--tz", "Europe/Berlin", "--prompt", "later"))
    ok(gated("task", "add", "corp", "--at", "2098-01-01T09:00Z", "--prompt", "sooner"))
    ok(gated("task", "add", "corp", "--every", "1h", "--prompt", "paused"))
    ok(gated("task", "pause", "3"))
    out = ok(gated("status"), Exit.ATTENTION)
    listed = out[out.index("next task fires:") :].splitlines()
    assert listed[0] == "next task fires: 2 active task(s)"
    assert listed[1].startswith("  2098-01-01 09:00 UTC  task 2  corp → web:corp  at ")
    assert listed[2].startswith("  2099-01-01 09:00 CET (2099-01-01 08:00 UTC)  task 1  corp → web:corp  at ")
