"""A run's bookkeeping (hardening items 4 and 9): what the agent says is stored whatever its bytes, kanmon's own
trouble is never the agent's failure, one run cannot flood a chat, and replies are recorded many per transaction
(but a run's first without waiting for the rest).

Each agent writes a record of its input per run (``ECHO_RECORD``), so "the agent ran once" is counted, not assumed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kanmon.store import InvalidValue, Message, NewMessage, RunEnd, RunEnded, Store
from tests.gateway_harness import RECORD, inputs, process_group, running_gateway
from tests.pgdb import harness_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None for the harness's SQLite store, or a fresh PostgreSQL database."""
    with harness_database(request) as url:
        yield url


@pytest.mark.parametrize(
    ("raw", "stored"),
    [('"plan \\ud83d ok"', "plan \ufffd ok"), ('"nul \\u0000 byte"', "nul \ufffd byte")],
    ids=["lone-surrogate", "nul"],
)
async def test_a_reply_no_backend_can_hold_as_is_is_stored_once_and_the_agent_runs_once(
    tmp_path: Path, store_url: str | None, raw: str, stored: str
) -> None:
    group = process_group("corp", {"ECHO_RESULT_JSON": raw, "ECHO_RECORD": RECORD})
    async with running_gateway(tmp_path / "data", [group], store_url=store_url) as h:
        await h.send("web:corp", "say something odd")
        await h.settled()
        assert h.replies("web:corp") == [stored]
        assert len(inputs(h, "corp")) == 1  # run once: no retries, no apology
        [run] = h.store.recent_runs()
        assert (run.status, run.output_count) == ("ok", 1)


async def test_a_reply_the_store_refuses_is_kanmons_trouble_not_the_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refusing a streamed reply: the run is recorded as an error with the reason, its batch is done (the
    agent already answered), and the agent is not run again."""
    group = process_group("corp", {"ECHO_HANG": 0.5, "ECHO_RECORD": RECORD})  # replies stream before it exits
    async with running_gateway(tmp_path / "data", [group]) as h:

        def refuse(replies: Sequence[NewMessage], *, now: dt.datetime) -> list[Message]:
            raise InvalidValue("the database refused a value: injected")

        monkeypatch.setattr(h.store, "record_replies", refuse)
        await h.send("web:corp", "hello")
        await h.settled()
        [run] = h.store.recent_runs()
        assert run.status == "error" and "could not be stored" in (run.error or "")
        assert [row.status for row in h.inbound("web:corp")] == ["done"]
        assert len(inputs(h, "corp")) == 1
        assert h.store.runs_in_flight() == []


async def test_an_outcome_the_store_refuses_still_closes_the_run_and_never_reruns_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp", {"ECHO_RECORD": RECORD})]) as h:
        finish = h.store.finish_runs
        refusals = [InvalidValue("the database refused a value: injected")]

        def flaky(ends: Sequence[RunEnd], *, now: dt.datetime) -> list[RunEnded]:
            if refusals and any(end.run_id is not None for end in ends):
                raise refusals.pop()
            return finish(ends, now=now)

        monkeypatch.setattr(h.store, "finish_runs", flaky)
        await h.send("web:corp", "hello")
        await h.settled()
        [run] = h.store.recent_runs()
        assert run.status == "error" and "could not record this run's outcome" in (run.error or "")
        assert [row.status for row in h.inbound("web:corp")] == ["done"]
        assert len(inputs(h, "corp")) == 1
        assert h.store.runs_in_flight() == []  # never left running while gated lives


async def test_one_run_cannot_flood_a_chat_and_its_replies_go_in_few_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = process_group("corp", {"ECHO_REPEAT": 100_000, "ECHO_RECORD": RECORD})
    async with running_gateway(tmp_path / "data", [group], max_replies=50) as h:
        writes: list[int] = []
        record = h.store.record_replies

        def counting(replies: Sequence[NewMessage], *, now: dt.datetime) -> list[Message]:
            writes.append(len(replies))
            return record(replies, now=now)

        monkeypatch.setattr(h.store, "record_replies", counting)
        await h.send("web:corp", "flood")
        await h.settled(timeout=60)
        replies = h.replies("web:corp")
        assert replies == [f"echo ({n}/100000): flood" for n in range(1, 51)]
        [run] = h.store.recent_runs()
        assert run.status == "error" and "after 50 replies" in (run.error or "") and run.output_count == 50
        assert [row.status for row in h.inbound("web:corp")] == ["done"]  # it answered: not run again
        assert len(inputs(h, "corp")) == 1
        assert len(writes) <= 3, writes  # many replies per transaction, not one each


async def test_a_runs_first_reply_is_stored_while_the_run_goes_on_and_the_next_waits_for_its_window(
    tmp_path: Path,
) -> None:
    # the first reply is what the chat waits for: stored within the first 5 ms window, not held for the (here 60 s)
    # window of later replies nor for the run's end; the second is stored with the run's end, a second later
    group = process_group("corp", {"ECHO_REPEAT": 2, "ECHO_DELAY": 1.0})
    async with running_gateway(tmp_path / "data", [group], reply_flush=60.0) as h:
        await h.send("web:corp", "hi")
        await h.wait_for(lambda: h.replies("web:corp") != [], "the first reply")
        assert h.replies("web:corp") == ["echo (1/2): hi"]  # alone: not stored with the second in the run's end
        assert h.gateway.queue.running()
        await h.wait_for(lambda: len(h.replies("web:corp")) == 2, "the second reply", timeout=30)
        await h.settled()
        [run] = h.store.recent_runs()
        assert (run.status, run.output_count) == ("ok", 2)


def test_the_store_backend_fixture_is_not_shared(store_url: str | None) -> None:
    # a guard for the fixture above: PostgreSQL runs get a database of their own
    if store_url is not None:
        store = Store.open(store_url)
        try:
            assert store.max_seq() == 0
        finally:
            store.close()
