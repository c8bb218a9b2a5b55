"""How a run's ending decides the state of its batch (SPEC §8 queue retries and dead letters, §9 outcome rules).

Anchor bugs (arizuko §11, nanoclaw §8): an agent that failed without output left the cursor advanced and the batch
lost, or was retried for ever and answered the same thing again and again; a run that failed *after* answering was
retried and answered twice; equal idle and hard timeouts made every idle run end as a hard timeout, so the same
answer went out every 30 minutes; NanoClaw dropped a batch silently after its retries. Here each ending is driven
for real (echo agent, real store, real queue) and its rows, cursor, session, replies, runs and metrics are
asserted exactly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kanmon.container import InvalidRunSpec
from kanmon.gated.settings import RuntimeSettings
from kanmon.gateway import DEAD_LETTER_TEXT, RunDefaults
from kanmon.gateway.spec import build_spec
from kanmon.queue import Lane, RetryPolicy
from kanmon.store import Group, Run
from tests.gateway_harness import Harness, docker_group, process_group, running_gateway

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.2)
# Longer than every backoff of FAST_RETRY (0.2 s, 0.4 s): a retry that was going to happen has happened by then.
BEYOND_BACKOFF = 1.5
STALE_SESSION = "stale-session-0001"

GroupFactory = Callable[..., Group]


@dataclass(frozen=True)
class Backend:
    """How a test makes its groups and what it hands to ``running_gateway`` for one runtime."""

    name: str
    make_group: GroupFactory
    docker_client: Any
    instance: str


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    instance = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "process":
        yield Backend("process", process_group, None, instance)
        return
    client = request.getfixturevalue("docker_client")
    image = request.getfixturevalue("echo_image")

    def make(folder: str, env: Mapping[str, Any] | None = None, **config: Any) -> Group:
        return docker_group(folder, image, env, **config)

    try:
        yield Backend("docker", make, client, instance)
    finally:
        for container in client.containers.list(all=True, filters={"label": f"kanmon.instance={instance}"}):
            container.remove(force=True)


# ----------------------------------------------------------------------------------------- reading helpers
def runs_of(h: Harness, jid: str) -> list[Run]:
    """The runs of ``jid``, oldest first."""
    return [run for run in reversed(h.store.recent_runs(1000)) if run.chat_jid == jid]


def statuses(h: Harness, jid: str) -> list[str]:
    return [run.status for run in runs_of(h, jid)]


def row_status(h: Harness, seq: int) -> str | None:
    [row] = [row for row in h.inbound() if row.seq == seq]
    return row.status


def outbound_texts(h: Harness, jid: str) -> list[str]:
    return [row.content for row in h.outbound(jid)]


def apologies(h: Harness, jid: str) -> int:
    return outbound_texts(h, jid).count(DEAD_LETTER_TEXT)


def dead_letters(h: Harness) -> float:
    families = [family for family in h.gateway.metrics.registry.collect() if family.name == "kanmon_dead_letters"]
    return sum(sample.value for family in families for sample in family.samples)  # over every folder


def session_id(h: Harness, folder: str, topic: str = "") -> str | None:
    session = h.store.get_session(folder, topic)
    return None if session is None else session.session_id


def is_uuid(text: str | None) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Sample:
    """The chat's state read while no run of it had succeeded yet."""

    failed_runs: int
    cursor: int
    session: str | None
    row: str | None


class FailureSampler:
    """A ``wait_for`` condition that samples cursor, session and row state while the runs are still failing.

    A run's outcome (row status, cursor, session, run status) is written in one transaction, so the state is kept
    only when the runs read before and after it are the same: then it belongs to exactly that many failures.
    """

    def __init__(self, h: Harness, jid: str, folder: str, seq: int, done: Callable[[list[Run]], bool]) -> None:
        self.h, self.jid, self.folder, self.seq, self.done = h, jid, folder, seq, done
        self.samples: list[Sample] = []

    def __call__(self) -> bool:
        before = runs_of(self.h, self.jid)
        cursor = self.h.store.agent_cursor(self.jid)
        session = session_id(self.h, self.folder)
        row = row_status(self.h, self.seq)
        runs = runs_of(self.h, self.jid)
        stable = [(run.id, run.status) for run in before] == [(run.id, run.status) for run in runs]
        if stable and not any(run.status == "ok" for run in runs):
            failed = sum(1 for run in runs if run.status in ("error", "timeout"))
            self.samples.append(Sample(failed, cursor, session, row))
        return self.done(runs)

    def after(self, failed_runs: int) -> list[Sample]:
        """Samples taken after exactly ``failed_runs`` failures."""
        return [sample for sample in self.samples if sample.failed_runs == failed_runs]


# ----------------------------------------------------------------------------------------- 1 and 2: both runtimes
async def test_two_failures_without_output_then_success_answer_once_and_move_the_cursor_once(
    tmp_path: Path, backend: Backend
) -> None:
    group = backend.make_group("flaky", {"ECHO_FAIL_RUNS": 2})
    async with running_gateway(
        tmp_path / "data",
        [group],
        instance=backend.instance,
        docker_client=backend.docker_client,
        retry=FAST_RETRY,
    ) as h:
        h.store.set_session("flaky", "", STALE_SESSION)
        message = await h.send("web:flaky", "hello")
        sampler = FailureSampler(
            h, "web:flaky", "flaky", message.seq, lambda runs: len(runs) == 3 and runs[-1].status == "ok"
        )
        await h.wait_for(sampler, "three runs, the last one ok", timeout=120)
        await h.settled()

        # while failing: the cursor never moved, the rows kept waiting, and the stale session was gone
        for failures in (1, 2):
            seen = sampler.after(failures)
            assert seen, f"no sample was taken after failure {failures}"
            assert {(s.cursor, s.session, s.row) for s in seen} == {(0, None, "new")}

        runs = runs_of(h, "web:flaky")
        assert [run.status for run in runs] == ["error", "error", "ok"]
        # the first attempt ran with the stored session; its failure evicted it, so the retries started fresh
        assert [run.session_id for run in runs] == [STALE_SESSION, None, None]
        assert all(run.error and run.error.startswith("exit code 1") for run in runs[:2])
        assert [run.output_count for run in runs] == [0, 0, 1]
        assert outbound_texts(h, "web:flaky") == ["echo: hello"]
        assert h.replies("web:flaky") == ["echo: hello"]
        assert h.store.agent_cursor("web:flaky") == message.seq
        assert row_status(h, message.seq) == "done"
        stored = session_id(h, "flaky")
        assert stored != STALE_SESSION and is_uuid(stored)  # the successful run's newSessionId
        assert dead_letters(h) == 0

        await asyncio.sleep(BEYOND_BACKOFF)
        assert len(runs_of(h, "web:flaky")) == 3


async def test_three_failures_without_output_dead_letter_the_batch_and_a_new_message_starts_clean(
    tmp_path: Path, backend: Backend
) -> None:
    group = backend.make_group("doomed", {"ECHO_FAIL_RUNS": 3})
    async with running_gateway(
        tmp_path / "data",
        [group],
        instance=backend.instance,
        docker_client=backend.docker_client,
        retry=FAST_RETRY,
    ) as h:
        h.store.set_session("doomed", "", STALE_SESSION)
        first = await h.send("web:doomed", "first")
        second = await h.send("web:doomed", "second")
        await h.wait_for(lambda: dead_letters(h) == 1, "the dead letter", timeout=120)
        await h.settled()

        runs = runs_of(h, "web:doomed")
        assert [run.status for run in runs] == ["error", "error", "error"]
        # every attempt starts at the first row; a retry takes the rows that arrived meanwhile too
        assert [run.first_seq for run in runs] == [first.seq] * 3
        assert runs[-1].last_seq == second.seq
        assert [row_status(h, first.seq), row_status(h, second.seq)] == ["dead", "dead"]
        assert outbound_texts(h, "web:doomed") == [DEAD_LETTER_TEXT]
        assert h.replies("web:doomed") == []
        assert h.store.agent_cursor("web:doomed") == second.seq
        assert h.store.get_session("doomed", "") is None

        await asyncio.sleep(BEYOND_BACKOFF)
        assert len(runs_of(h, "web:doomed")) == 3, "a dead-lettered batch was run a 4th time"
        assert dead_letters(h) == 1

        # the failures are behind us: a new message is answered normally, with no second apology
        again = await h.send("web:doomed", "again")
        await h.wait_for(lambda: h.replies("web:doomed") == ["echo: again"], "the answer to the new message")
        await h.settled()
        runs = runs_of(h, "web:doomed")
        assert [run.status for run in runs] == ["error", "error", "error", "ok"]
        assert (runs[-1].first_seq, runs[-1].last_seq, runs[-1].session_id) == (again.seq, again.seq, None)
        assert outbound_texts(h, "web:doomed") == [DEAD_LETTER_TEXT, "echo: again"]
        assert h.store.agent_cursor("web:doomed") == again.seq
        assert row_status(h, again.seq) == "done"
        assert is_uuid(session_id(h, "doomed"))
        assert dead_letters(h) == 1


# ----------------------------------------------------------------------------------------- process runtime
async def test_a_run_that_fails_after_answering_is_not_retried_and_keeps_its_session(tmp_path: Path) -> None:
    group = process_group("halfway", {"ECHO_LAST_ONLY": 1, "ECHO_EXIT": 1})
    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        message = await h.send("web:halfway", "answer then crash")
        await h.wait_for(lambda: statuses(h, "web:halfway") == ["error"], "the run to end as error")
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        [run] = runs_of(h, "web:halfway")
        assert run.status == "error" and run.output_count == 1
        assert run.error is not None and run.error.startswith("exit code 1")
        assert outbound_texts(h, "web:halfway") == ["echo: answer then crash"]
        assert h.store.agent_cursor("web:halfway") == message.seq
        assert row_status(h, message.seq) == "done"
        assert is_uuid(session_id(h, "halfway"))  # the newSessionId it sent before failing was stored, not evicted
        assert dead_letters(h) == 0


async def test_stop_ends_a_live_run_as_stopped_without_a_retry(tmp_path: Path) -> None:
    group = process_group("stuck", {"ECHO_SILENT": 1, "ECHO_HANG": 30})
    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        h.store.set_session("stuck", "", STALE_SESSION)
        message = await h.send("web:stuck", "think forever")
        # "running" is recorded once the runtime has started the agent, so there is something to stop
        await h.wait_for(lambda: statuses(h, "web:stuck") == ["running"], "the agent to be running")
        assert h.gateway.queue.running() == [Lane("stuck")]  # the web chat's default topic: the folder's lane

        stop = await h.send("web:stuck", "/stop")
        await h.wait_for(lambda: statuses(h, "web:stuck") == ["stopped"], "the run to end as stopped", timeout=30)
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        [run] = runs_of(h, "web:stuck")
        assert (run.status, run.output_count, run.error) == ("stopped", 0, None)
        assert outbound_texts(h, "web:stuck") == ["Container stopped."]
        assert h.replies("web:stuck") == []
        assert [row_status(h, message.seq), row_status(h, stop.seq)] == ["done", "done"]
        assert h.store.agent_cursor("web:stuck") == stop.seq
        assert session_id(h, "stuck") == STALE_SESSION  # a stop is not a failure: the session stays
        assert dead_letters(h) == 0


async def test_an_idle_timeout_after_heartbeats_only_is_a_failure_without_output(tmp_path: Path) -> None:
    # A few heartbeats, then silence while the process lives on: the idle timer (1 s) must fire.
    env = {"ECHO_SILENT": 1, "ECHO_HEARTBEATS": 3, "ECHO_HEARTBEAT_INTERVAL": 0.1, "ECHO_HANG": 30}
    group = process_group("dozy", env, idle_timeout=1.0, timeout=31.5)
    retry = RetryPolicy(max_attempts=2, base_delay=0.2)
    async with running_gateway(tmp_path / "data", [group], retry=retry) as h:
        h.store.set_session("dozy", "", STALE_SESSION)
        message = await h.send("web:dozy", "are you there?")
        sampler = FailureSampler(h, "web:dozy", "dozy", message.seq, lambda runs: len(runs) == 2)
        await h.wait_for(sampler, "the retry after the first timeout", timeout=60)
        # after the first timeout: rows still waiting, cursor unmoved, session evicted
        assert sampler.after(1), "no sample was taken after the first timeout"
        assert {(s.cursor, s.session, s.row) for s in sampler.after(1)} == {(0, None, "new")}

        await h.wait_for(lambda: dead_letters(h) == 1, "the dead letter after the second timeout", timeout=60)
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        runs = runs_of(h, "web:dozy")
        assert [run.status for run in runs] == ["timeout", "timeout"]
        assert [run.session_id for run in runs] == [STALE_SESSION, None]
        assert all(run.output_count == 0 and run.error and "idle_timeout" in run.error for run in runs)
        assert row_status(h, message.seq) == "dead"
        assert outbound_texts(h, "web:dozy") == [DEAD_LETTER_TEXT]
        assert h.store.agent_cursor("web:dozy") == message.seq
        assert h.store.get_session("dozy", "") is None


async def test_heartbeats_keep_a_run_alive_past_the_idle_timeout(tmp_path: Path) -> None:
    # 30 heartbeats 0.1 s apart outlast the 1 s idle timeout only because each one resets it.
    env = {"ECHO_HEARTBEATS": 30, "ECHO_HEARTBEAT_INTERVAL": 0.1}
    group = process_group("patient", env, idle_timeout=1.0, timeout=31.5)
    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        message = await h.send("web:patient", "take your time")
        await h.wait_for(lambda: statuses(h, "web:patient") == ["ok"], "the run to end ok", timeout=60)
        await h.settled()
        assert outbound_texts(h, "web:patient") == ["echo: take your time"]
        assert h.store.agent_cursor("web:patient") == message.seq


async def test_a_group_whose_hard_timeout_equals_its_idle_timeout_is_refused_and_dead_lettered(
    tmp_path: Path,
) -> None:
    # The anchor: equal timeouts made every idle run a hard timeout, re-sending the same answer every 30 minutes.
    group = process_group("equal", idle_timeout=60.0, timeout=60.0)
    defaults = RunDefaults(instance="test", data_dir=tmp_path / "data", runtime="process")
    with pytest.raises(InvalidRunSpec, match="must be at least the idle timeout"):
        build_spec(group, defaults, run_id="r1", stdin=b"{}")

    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        message = await h.send("web:equal", "hello")
        await h.wait_for(lambda: dead_letters(h) == 1, "the dead letter", timeout=60)
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        runs = runs_of(h, "web:equal")
        assert [run.status for run in runs] == ["error", "error", "error"]
        for run in runs:
            assert run.container is None  # nothing was ever started
            assert run.error is not None and run.error.startswith("start failed: timeout 60s must be at least")
        assert row_status(h, message.seq) == "dead"
        assert outbound_texts(h, "web:equal") == [DEAD_LETTER_TEXT]
        assert h.store.agent_cursor("web:equal") == message.seq
        assert dead_letters(h) == 1


def test_the_default_timeouts_are_idle_30_minutes_and_hard_60_minutes() -> None:
    settings = RuntimeSettings()
    assert (settings.idle_timeout, settings.timeout) == (1800, 3600)
    defaults = RunDefaults(instance="x", data_dir=Path("/nonexistent"))
    assert (defaults.idle_timeout, defaults.timeout) == (1800, 3600)


async def test_an_agent_that_exits_0_and_says_nothing_is_done_not_retried(tmp_path: Path) -> None:
    group = process_group("quiet", {"ECHO_SILENT": 1})
    async with running_gateway(tmp_path / "data", [group], retry=FAST_RETRY) as h:
        message = await h.send("web:quiet", "nothing to say?")
        await h.wait_for(lambda: statuses(h, "web:quiet") == ["ok"], "the run to end ok")
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        [run] = runs_of(h, "web:quiet")
        assert (run.status, run.output_count, run.error) == ("ok", 0, None)
        assert outbound_texts(h, "web:quiet") == []
        assert h.store.agent_cursor("web:quiet") == message.seq
        assert row_status(h, message.seq) == "done"
        assert dead_letters(h) == 0


async def test_a_message_for_a_group_removed_before_its_run_is_dead_lettered_once(tmp_path: Path) -> None:
    # One slot, held by a hanging run of "busy", keeps the message for "gone" waiting in the queue while its group
    # is removed; stopping "busy" then frees the slot.
    busy = process_group("busy", {"ECHO_SILENT": 1, "ECHO_HANG": 30})
    gone = process_group("gone")
    async with running_gateway(tmp_path / "data", [busy, gone], max_concurrent=1, retry=FAST_RETRY) as h:
        await h.send("web:busy", "occupy the slot")
        await h.wait_for(lambda: statuses(h, "web:busy") == ["running"], "busy's agent to be running")
        message = await h.send("web:gone", "hello?")
        await h.wait_for(lambda: Lane("gone") in h.gateway.queue.waiting(), "gone's lane to wait for the slot")
        [row] = [row for row in h.inbound("web:gone") if row.seq == message.seq]
        assert (row.status, row.routed_folder) == ("new", "gone")

        h.store.remove_group("gone")
        await h.send("web:busy", "/stop")
        await h.wait_for(lambda: dead_letters(h) == 1, "the dead letter of gone's batch", timeout=30)
        await h.settled()
        await asyncio.sleep(BEYOND_BACKOFF)

        assert statuses(h, "web:busy") == ["stopped"]
        assert runs_of(h, "web:gone") == []  # no run was started for a group that no longer exists
        assert row_status(h, message.seq) == "dead"
        assert outbound_texts(h, "web:gone") == [DEAD_LETTER_TEXT]
        assert h.store.agent_cursor("web:gone") == message.seq
        assert dead_letters(h) == 1

        # later messages have no owner at all: kept as skipped, never run, never apologised for again
        later = await h.send("web:gone", "anyone?")
        await h.wait_for(lambda: row_status(h, later.seq) == "skipped", "the later message to be skipped")
        await h.settled()
        assert runs_of(h, "web:gone") == []
        assert outbound_texts(h, "web:gone") == [DEAD_LETTER_TEXT]
        assert dead_letters(h) == 1
