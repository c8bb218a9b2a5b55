"""A new operator finds a failed run's stderr, a dead letter and its chat from the CLI alone, and puts the dead
letter back so it runs again, exactly once (issue 18 item 1).

The gateway runs for real (process runtime, the echo agent, the real queue and store); the CLI reads the same store
as another process would.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.gated.exits import Exit
from kanmon.gateway import DEAD_LETTER_TEXT
from kanmon.queue import RetryPolicy
from kanmon.store import Run
from kanmon.store.lock import StoreLock
from tests.gateway_harness import Harness, process_group, running_gateway

FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.1)
CHAT = "web:doomed"


def gated(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)


def runs_of(h: Harness) -> list[Run]:
    return [run for run in reversed(h.store.recent_runs(1000)) if run.chat_jid == CHAT]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """None: the data dir's SQLite file; else a fresh PostgreSQL database, which the CLI is pointed at too."""
    url = None if request.param == "sqlite" else str(request.getfixturevalue("pg_database"))  # reads KANMON_TEST_*
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    if url is not None:
        monkeypatch.setenv("KANMON_STORE_URL", url)
    return url


async def test_a_failed_runs_stderr_and_its_dead_letter_are_found_and_the_retry_runs_once(
    tmp_path: Path, store_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    # two failing runs (the retry policy's two attempts) dead-letter the batch; the third run, after --retry, answers
    group = process_group("doomed", {"ECHO_FAIL_RUNS": 2, "ECHO_STDERR": "warming up with api_key=sk-not-for-logs"})
    async with running_gateway(data_dir, [group], retry=FAST_RETRY, store_url=store_url) as h:
        first = await h.send(CHAT, "first")
        await h.wait_for(lambda: any(row.status == "dead" for row in h.inbound(CHAT)), "the dead letter", timeout=120)
        await h.settled()
        assert [run.status for run in runs_of(h)] == ["error", "error"]
        failed = runs_of(h)[-1]

        status = gated(data_dir, "status", "--json")
        assert status.exit_code == Exit.ATTENTION, status.output
        assert json.loads(status.output)["problems"]["dead_letters"] == 1

        # the run's stderr, secrets blanked, from the run id `gated runs` gives
        listed = json.loads(gated(data_dir, "runs", "--group", "doomed", "--status", "error", "--json").output)
        assert [run["id"] for run in listed] == [run.id for run in reversed(runs_of(h))]
        log = json.loads(gated(data_dir, "run-log", failed.id, "--json").output)
        assert log["run"]["id"] == failed.id and log["run"]["status"] == "error"
        assert "warming up with api_key=[redacted]" in log["stderr"]
        assert "failing this run as ECHO_FAIL_RUNS asks" in log["stderr"]
        assert "sk-not-for-logs" not in gated(data_dir, "run-log", failed.id).output

        # the dead letter, its chat and the run that last tried it
        [dead] = json.loads(gated(data_dir, "dead", "--chat", CHAT, "--json").output)
        assert (dead["seq"], dead["chat_jid"], dead["content"], dead["last_run"]) == (
            first.seq,
            CHAT,
            "first",
            failed.id,
        )

        # put back: run again once, answered once; a second --retry finds nothing
        retried = json.loads(gated(data_dir, "dead", "--retry", "--json").output)
        assert retried == {"retried": [first.seq]}
        assert json.loads(gated(data_dir, "dead", "--retry", "--json").output) == {"retried": []}
        await h.wait_for(lambda: h.replies(CHAT) == ["echo: first"], "the answer to the retried message")
        await h.settled()
        await asyncio.sleep(1.0)  # longer than a poll interval: a second run would have started by now
        assert [run.status for run in runs_of(h)] == ["error", "error", "ok"]
        assert h.replies(CHAT) == ["echo: first"]
        assert [row.status for row in h.inbound(CHAT)] == ["done"]
        assert h.store.agent_cursor(CHAT) == first.seq

        assert gated(data_dir, "dead").output.strip() == "no dead letters"
        with StoreLock(h.store.engine, instance="harness"):  # the harness's gateway takes no lock, as gated run does
            assert gated(data_dir, "status").exit_code == Exit.OK
        replies = json.loads(gated(data_dir, "replies", CHAT, "--json").output)
        assert [reply["content"] for reply in replies][-1] == "echo: first"
        assert replies[-1]["run_id"] == runs_of(h)[-1].id


async def test_a_retried_dead_letter_gets_the_usual_attempts_and_is_dead_again_without_a_second_apology(
    tmp_path: Path, store_url: str | None
) -> None:
    """What the README says of `gated dead --retry`: a new batch with queue.max_attempts (here 2), not one run."""
    data_dir = tmp_path / "data"
    group = process_group("doomed", {"ECHO_FAIL_RUNS": 4})  # both attempts fail, and both again after --retry
    async with running_gateway(data_dir, [group], retry=FAST_RETRY, store_url=store_url) as h:
        first = await h.send(CHAT, "first")
        await h.wait_for(lambda: any(row.status == "dead" for row in h.inbound(CHAT)), "the dead letter", timeout=120)
        await h.settled()
        assert [row.content for row in h.outbound(CHAT)] == [DEAD_LETTER_TEXT]

        assert json.loads(gated(data_dir, "dead", "--retry", "--json").output) == {"retried": [first.seq]}
        await h.wait_for(lambda: len(runs_of(h)) == 4, "the retried batch's two attempts", timeout=120)
        await h.wait_for(lambda: [row.status for row in h.inbound(CHAT)] == ["dead"], "the dead letter again")
        await h.settled()
        assert [run.status for run in runs_of(h)] == ["error"] * 4
        # the apology has the first dead letter's id: sent once
        assert [row.content for row in h.outbound(CHAT)] == [DEAD_LETTER_TEXT]
        [dead] = json.loads(gated(data_dir, "dead", "--chat", CHAT, "--json").output)
        assert dead["seq"] == first.seq
