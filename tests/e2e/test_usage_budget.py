"""Usage and per-group daily budgets through a whole gateway (issue 16 item 4), on SQLite and PostgreSQL.

The echo agent reports a fixed usage per output (``ECHO_USAGE``); the gateway's clock is the real one shifted by an
offset the test moves (so waits stay real while "the day" is the test's to choose). The runtimes time runs by the
wall clock, so the shift is kept within the day and the runs' hard timeout is two days. The group counts its days in
Asia/Tokyo (UTC+9, no daylight saving), so the test can tell the group's day from UTC's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.gateway.budget import notice_id
from kanmon.store import Store
from tests.clocks import ShiftedClock
from tests.gateway_harness import RECORD, Harness, gateway_answers, inputs, process_group, running_gateway
from tests.pgdb import harness_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
USAGE = {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 1000, "cache_write_tokens": 3, "cost_usd": 0.03}
CHAT = "web:corp"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the harness's SQLite store, or a fresh PostgreSQL database."""
    with harness_database(request) as url:
        yield url


async def test_a_spent_budget_holds_new_runs_until_the_groups_next_day(tmp_path: Path, store_url: str | None) -> None:
    today = dt.datetime.now(dt.UTC).date()
    day, next_day = today.isoformat(), (today + dt.timedelta(days=1)).isoformat()
    clock = ShiftedClock.starting_at(dt.datetime.combine(today, dt.time(14, 0), dt.UTC))  # 23:00 in Tokyo
    env = {"ECHO_USAGE": json.dumps(USAGE), "ECHO_RECORD": RECORD, "ECHO_LAST_ONLY": 1}  # $0.03 a run
    group = process_group("corp", env, daily_budget=0.05, timezone="Asia/Tokyo")
    notice = notice_id("corp", day)
    options = {"store_url": store_url, "clock": clock, "poll_interval": 0.2, "timeout": 2 * 86400.0}

    def notices(h: Harness) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in h.outbound():
            if row.id == notice:
                assert row.content.startswith("⚠ The daily budget of $0.05 is spent ($0.06 on ")
                found[row.chat_jid] = found.get(row.chat_jid, 0) + 1
        return found

    async with running_gateway(tmp_path / "data", [group], **options) as h:  # type: ignore[arg-type]
        h.store.add_route(seq=0, match="chat_jid=telegram:*", target="corp")
        await h.send(CHAT, "one")
        await h.wait_for(lambda: h.replies(CHAT) == ["echo: one"], "the first answer")
        await h.send(CHAT, "two")  # $0.03 spent: under the budget, so this run starts, and crosses it
        await h.wait_for(lambda: len(h.replies(CHAT)) == 2, "the second answer")
        await h.send(CHAT, "three")
        await h.wait_for(lambda: notices(h) == {CHAT: 1}, "the budget notice")
        await h.send(CHAT, "four")
        await h.send("telegram:7", "from telegram")  # another chat of the group: told once too
        await h.wait_for(lambda: notices(h) == {CHAT: 1, "telegram:7": 1}, "the other chat's notice")
        for _ in range(5):  # several sweeps offer the lane again: no run, no second notice
            await h.gateway.clock.sleep(0.2)
        assert len(inputs(h, "corp")) == 2
        assert h.store.counts()["dead_letters"] == 0
        assert [s.key["day"] for s in h.store.usage_sums(("day",))] == [day]

    async with running_gateway(tmp_path / "data", [group], **options) as h:  # type: ignore[arg-type]
        for _ in range(5):  # a restarted gated remembers nothing, and the store still says: held, told
            await h.gateway.clock.sleep(0.2)
        assert notices(h) == {CHAT: 1, "telegram:7": 1} and len(inputs(h, "corp")) == 2

        clock.advance(dt.timedelta(minutes=90))  # 15:30 UTC, the same day there: 00:30 the next day in Tokyo
        await h.wait_for(lambda: len(h.replies(CHAT)) == 3, "the held messages to be answered the next day")
        await h.wait_for(lambda: h.replies("telegram:7") == ["echo: from telegram"], "the other chat's answer")
        assert h.replies(CHAT)[2:] == ["echo: four"]  # three and four in one run, answered once (ECHO_LAST_ONLY)
        assert len(gateway_answers(h, CHAT)) == 1 and h.store.counts()["dead_letters"] == 0

        await h.settled()  # usage is stored with a run's end, which may follow its reply (kanmon/gateway/recorder.py)
        days = {s.key["day"]: (s.outputs, round(s.cost_usd, 6)) for s in h.store.usage_sums(("day",), folder="corp")}
        assert days == {day: (2, 0.06), next_day: (2, 0.06)}
        [total] = h.store.usage_sums(())
        assert (total.input_tokens, total.output_tokens, total.cache_read_tokens, total.cache_write_tokens) == (
            400, 80, 4000, 12
        )  # fmt: skip
        metrics = h.gateway.metrics.registry  # this gated's counters: what it recorded
        # counted once a run's end has committed and its result is back on the loop, a moment after the rows
        # are readable: wait for it rather than race it
        await h.wait_for(
            lambda: metrics.get_sample_value("kanmon_usage_cost_usd_total", {"folder": "corp"}) == pytest.approx(0.06),
            "this gated's cost counter",
        )
        sample = metrics.get_sample_value("kanmon_usage_tokens_total", {"folder": "corp", "kind": "cache_read"})
        assert sample == 2000


async def test_a_group_without_a_budget_runs_and_counts_per_session(tmp_path: Path) -> None:
    group = process_group("corp", {"ECHO_USAGE": json.dumps(USAGE)})
    async with running_gateway(tmp_path / "data", [group]) as h:
        await h.send(CHAT, "one")
        await h.send(CHAT, "two", topic="t-1")
        await h.wait_for(lambda: len(h.replies()) == 2, "both answers")
        await h.settled()
        by_topic = {(s.key["topic"], s.outputs) for s in h.store.usage_sums(("topic", "session_id"))}
        assert by_topic == {("", 1), ("t-1", 1)}


async def test_a_reclaimed_run_replaying_its_output_counts_its_usage_once(
    tmp_path: Path, store_url: str | None
) -> None:
    # one message, two outputs 1.5 s apart; gated goes away after the first reply was stored, and the next one
    # re-attaches the run and replays its output from the start
    group = process_group("corp", {"ECHO_DELAY": 1.5, "ECHO_REPEAT": 2, "ECHO_USAGE": json.dumps(USAGE)})
    data, instance = tmp_path / "data", "usage-replay"
    async with running_gateway(data, [group], instance=instance, drain_timeout=0.1, store_url=store_url) as h:
        await h.send(CHAT, "one")
        await h.wait_for(lambda: len(h.replies(CHAT)) >= 1, "the first reply")
    # gated went away (its store is closed: this reads through a store of its own)
    left = Store.open(h.store.engine.url.render_as_string(hide_password=False))
    try:
        replies = [row for row in left.new_messages(0) if row.chat_jid == CHAT and row.run_id is not None]
        assert len(replies) == 1 and left.usage_sums(()) == []  # usage is recorded with the run's end
    finally:
        left.close()
    async with running_gateway(data, [group], instance=instance, store_url=store_url) as again:
        await again.wait_for(lambda: len(again.replies(CHAT)) == 2, "both replies")
        await again.settled()
        [run] = again.store.recent_runs()
        assert run.status == "ok"
        [by_run] = again.store.usage_sums(("run_id",))
        assert (by_run.key["run_id"], by_run.outputs, round(by_run.cost_usd, 6)) == (run.id, 2, 0.06)
