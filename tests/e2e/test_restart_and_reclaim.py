"""Stopping and starting gated around runs in flight (SPEC §14): drained, detached, reclaimed, never answered twice.

arizuko and NanoClaw lost every in-flight reply when the gateway restarted (the stdout pipe was gone) and then killed
the orphaned containers; the messages ran again and were answered twice. Here a run outlives its gated, and the
next gated of the same instance re-attaches it, replays its output from the start, stores only what it had not
stored, and applies its outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kanmon.container.docker import DockerRuntime
from kanmon.container.process import ProcessRuntime
from kanmon.store import Dispatch, Group, NewMessage, Run, RunEnd, RunEnded, Store, StoreUnavailable, upgrade
from tests.gateway_harness import Harness, crashed_store, docker_group, process_group, running_gateway

RUNTIMES = ["process", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture
def instance() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=RUNTIMES)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def world(runtime_kind: str, instance: str, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The group factory and gateway options of the runtime under test; Docker leftovers removed afterwards."""
    if runtime_kind == "process":
        yield {"group": process_group, "options": {}}
        return
    client = request.getfixturevalue("docker_client")
    image = request.getfixturevalue("echo_image")
    yield {
        "group": lambda folder, env: docker_group(folder, image, env),
        "options": {"docker_client": client},
    }
    for container in client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
        container.remove(force=True)


def runtime_of(h: Harness, kind: str) -> ProcessRuntime | DockerRuntime:
    runtime = h.gateway.runner._runtimes[kind]
    assert isinstance(runtime, ProcessRuntime | DockerRuntime)
    return runtime


def started(h: Harness) -> bool:
    """True once a run's container (or process) exists: its session_log row says running."""
    return any(run.status == "running" for run in h.store.recent_runs())


async def live_runs(h: Harness, kind: str) -> list[Any]:
    return [run for run in await runtime_of(h, kind).list_runs(h.instance) if run.running]


async def test_a_short_run_finishes_during_the_drain(
    tmp_path: Path, instance: str, runtime_kind: str, world: dict[str, Any]
) -> None:
    group: Group = world["group"]("corp", {"ECHO_DELAY": 1.0})
    async with running_gateway(
        tmp_path / "data", [group], instance=instance, drain_timeout=30, **world["options"]
    ) as h:
        await h.send("web:corp", "quick one")
        await h.wait_for(lambda: bool(h.gateway.queue.running()), "the run to start")
    # the context has stopped the gateway: the run had up to 30 s and needed about one
    assert h.replies("web:corp") == ["echo: quick one"]
    assert [run.status for run in h.store.recent_runs()] == ["ok"]
    assert h.store.runs_in_flight(instance) == []


async def test_a_run_left_running_at_shutdown_is_reclaimed_and_answered_once(
    tmp_path: Path, instance: str, runtime_kind: str, world: dict[str, Any]
) -> None:
    group: Group = world["group"]("corp", {"ECHO_DELAY": 3.0})
    data = tmp_path / "data"
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.2, **world["options"]) as h:
        await h.send("web:corp", "slow question")
        await h.wait_for(lambda: started(h), "the run to start")
        await asyncio.sleep(0.5)
    # detached, not stopped: the agent still works on it, nobody is reading
    [left] = h.store.runs_in_flight(instance)
    assert left.status == "running"
    assert h.replies("web:corp") == []

    async with running_gateway(data, [group], instance=instance, **world["options"]) as again:
        assert [run.run_id for run in await live_runs(again, runtime_kind)] in ([left.id], [])
        await again.wait_for(lambda: again.replies("web:corp") == ["echo: slow question"], "the reclaimed reply")
        await again.settled()
        await asyncio.sleep(0.5)  # a second delivery would show up now
        assert again.replies("web:corp") == ["echo: slow question"]
        reclaimed = again.store.get_run(left.id)
        assert reclaimed is not None and (reclaimed.status, reclaimed.output_count) == ("ok", 1)
        assert [run.id for run in again.store.recent_runs()] == [left.id]  # the batch did not run a second time
        assert await runtime_of(again, runtime_kind).list_runs(instance) == []  # released after its output


async def test_a_run_that_finished_while_gated_was_down_is_completed_from_its_logs(
    tmp_path: Path, instance: str, runtime_kind: str, world: dict[str, Any]
) -> None:
    group: Group = world["group"]("corp", {"ECHO_DELAY": 1.0, "ECHO_LAST_ONLY": 1})
    data = tmp_path / "data"
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.1, **world["options"]) as h:
        await h.send("web:corp", "answer me while I am away")
        await h.wait_for(lambda: started(h), "the run to start")
        await asyncio.sleep(0.3)
    runtime = runtime_of(h, runtime_kind)
    for _ in range(200):  # until the agent has exited on its own, with nobody reading
        runs = await runtime.list_runs(instance)
        if runs and not runs[0].running:
            break
        await asyncio.sleep(0.05)
    [finished] = await runtime.list_runs(instance)
    assert not finished.running and finished.exit_code == 0

    async with running_gateway(data, [group], instance=instance, **world["options"]) as again:
        await again.wait_for(lambda: again.replies("web:corp") == ["echo: answer me while I am away"], "the reply")
        await again.settled()
        [run] = again.store.recent_runs()
        assert (run.id, run.status) == (finished.run_id, "ok")
        assert again.store.agent_cursor("web:corp") == again.inbound("web:corp")[-1].seq
        assert await runtime_of(again, runtime_kind).list_runs(instance) == []


async def test_a_reply_stored_before_the_crash_is_not_stored_again(tmp_path: Path, instance: str) -> None:
    # two outputs a second apart; gated goes away after the first was stored, before the second
    group = process_group("corp", {"ECHO_DELAY": 1.5})
    data = tmp_path / "data"
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.1) as h:
        await h.send("web:corp", "one")
        await h.send("web:corp", "two")
        await h.wait_for(lambda: len(h.replies("web:corp")) >= 1, "the first reply")
    first = h.replies("web:corp")
    async with running_gateway(data, [group], instance=instance) as again:
        await again.settled()
        replies = again.replies("web:corp")
        assert sorted(set(replies)) == sorted(replies)  # no reply twice
        assert first[0] in replies and len(again.outbound("web:corp")) == len(replies)


@pytest.mark.docker
async def test_containers_of_another_instance_are_never_touched(
    tmp_path: Path, instance: str, docker_client: Any, echo_image: str
) -> None:
    # another kanmon install on the same engine, with a run in flight and a finished one not yet removed
    other = f"{instance}-other"
    labels = {"kanmon.instance": other, "kanmon.run": "r-live", "kanmon.folder": "corp"}
    live = docker_client.containers.run(echo_image, ["sleep", "60"], labels=labels, detach=True)
    done = docker_client.containers.run(echo_image, ["true"], labels={**labels, "kanmon.run": "r-done"}, detach=True)
    try:
        done.wait(timeout=30)
        group = docker_group("corp", echo_image)
        async with running_gateway(tmp_path / "data", [group], instance=instance, docker_client=docker_client) as h:
            await h.send("web:corp", "hello")
            await h.settled()
            assert h.replies("web:corp") == ["echo: hello"]
        live.reload()
        assert live.status == "running"
        assert docker_client.containers.get(done.id).status == "exited"  # not removed as a "leftover"
    finally:
        live.remove(force=True)
        done.remove(force=True)


async def test_a_run_that_never_got_its_container_fails_without_output_and_its_batch_runs_again(
    tmp_path: Path, instance: str
) -> None:
    # gated died after recording the run (`starting`) and before the runtime started anything
    data = tmp_path / "data"
    crashed_store(data, "lost in the crash", instance=instance)

    async with running_gateway(data, [], instance=instance) as h:
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: lost in the crash"], "the batch to run again")
        await h.settled()
        runs = {run.id: run for run in h.store.recent_runs()}
        assert runs["ghost-run"].status == "error" and "never started" in (runs["ghost-run"].error or "")
        assert [run.status for run in runs.values() if run.id != "ghost-run"] == ["ok"]


async def test_a_runs_container_is_removed_only_after_its_outcome_is_recorded(
    tmp_path: Path, instance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # removed first, a crash in between would leave a run in flight with no container, and its answered batch
    # would run again (the chaos test once found exactly that)
    async with running_gateway(tmp_path / "data", [process_group("corp")], instance=instance) as h:
        runs_dir = h.data_dir / "runs" / instance
        present_at_record: list[bool] = []
        record = h.store.finish_runs

        def recording(ends: Sequence[RunEnd], *, now: dt.datetime) -> list[RunEnded]:
            present_at_record.append(runs_dir.is_dir() and any(runs_dir.iterdir()))
            return record(ends, now=now)

        monkeypatch.setattr(h.store, "finish_runs", recording)
        await h.send("web:corp", "hello")
        await h.settled()
        assert present_at_record == [True]
        assert not any(runs_dir.iterdir())  # and removed right after


async def test_a_reclaimed_run_whose_container_is_gone_but_which_answered_is_not_run_again(
    tmp_path: Path, instance: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store.open(f"sqlite:///{data / 'kanmon.db'}")
    upgrade(store.engine)
    store.add_group(process_group("corp"))
    seq = store.put_message(NewMessage(chat_jid="web:corp", content="answered once", sender="u")).message.seq
    store.record_dispatch([Dispatch(seq, "new", "corp", "", None)], seq)
    run = Run(
        id="spoke-run", instance=instance, group_folder="corp", topic="", chat_jid="web:corp", runtime="process",
        status="running", started_at=dt.datetime.now(dt.UTC), first_seq=seq, last_seq=seq, message_count=1,
    )  # fmt: skip
    store.start_run(run)
    reply = NewMessage(
        chat_jid="web:corp", id="run-spoke-run-0", content="echo: answered once", direction="out",
        run_id="spoke-run", output_index=0,
    )  # fmt: skip
    store.put_message(reply)
    store.close()

    async with running_gateway(data, [], instance=instance) as h:
        await h.settled()
        await asyncio.sleep(1)  # a second run would start within a poll interval or two
        assert h.replies("web:corp") == ["echo: answered once"]
        [only] = h.store.recent_runs()
        assert (only.id, only.status) == ("spoke-run", "error")  # an error with output: the batch is done
        assert [row.status for row in h.inbound("web:corp")] == ["done"]


async def test_a_runs_bookkeeping_waits_out_a_database_that_refuses_for_a_while(
    tmp_path: Path, instance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], instance=instance) as h:
        record = h.store.finish_runs
        refusals = [StoreUnavailable("database is locked")] * 2

        def flaky(ends: Sequence[RunEnd], *, now: dt.datetime) -> list[RunEnded]:
            if refusals:
                raise refusals.pop()
            return record(ends, now=now)

        monkeypatch.setattr(h.store, "finish_runs", flaky)
        await h.send("web:corp", "hello")
        await h.settled(timeout=30)
        assert refusals == []
        assert h.replies("web:corp") == ["echo: hello"]
        assert [(run.status, run.output_count) for run in h.store.recent_runs()] == [("ok", 1)]  # not retried


class Untouchable:
    """A runtime nothing here uses: reclaim must not even list its runs (a process-only install has no engine)."""

    listed = 0

    async def list_runs(self, instance: str) -> list[Any]:
        Untouchable.listed += 1
        return []


async def test_reclaim_lists_leftovers_only_in_the_runtimes_groups_use(tmp_path: Path, instance: str) -> None:
    data = tmp_path / "data"
    runtimes = {"process": ProcessRuntime(data / "runs", data_dir=data), "docker": Untouchable()}
    async with running_gateway(data, [process_group("corp")], instance=instance, runtimes=runtimes) as h:
        await h.send("web:corp", "hello")
        await h.settled()
    assert Untouchable.listed == 0
