"""/metrics end to end (SPEC §12): the Prometheus text a scraper gets, parsed, moves exactly as messages flow.

A real gateway with process-runtime echo groups and the real app (through ``httpx.ASGITransport``). Messages are sent
one at a time and each is answered before the next, so every counter has one expected value: one run, one container
start, one reply delivered to the web channel per message. A group whose agent always fails shows the dead-letter
counter and the failed runs; a slow agent shows ``kanmon_cursor_lag`` rise while rows wait and fall back to 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kanmon.gateway import DEAD_LETTER_TEXT
from kanmon.web import create_app
from tests.gateway_harness import FAST_RETRY, Harness, process_group, running_gateway

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Every series SPEC §12 names (plus the request counter of issue 5), as the sample names the text format carries.
SPEC_SERIES = {
    "kanmon_messages_ingested_total",
    "kanmon_poll_seconds_count",
    "kanmon_cursor_lag",
    "kanmon_impulse_held",
    "kanmon_queue_running",
    "kanmon_queue_waiting",
    "kanmon_runs_total",
    "kanmon_run_seconds_count",
    "kanmon_container_start_seconds_count",
    "kanmon_deliveries_total",
    "kanmon_delivery_lag_seconds_count",
    "kanmon_dead_letters_total",
    "kanmon_http_requests_total",
}


# ---------------------------------------------------------------------------------------------------- helpers
@asynccontextmanager
async def served(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway's app, once the loop has ticked (the gauges are set from the first tick on)."""
    app = create_app(h.gateway)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kanmon") as client:
        await h.wait_for(lambda: h.gateway.loop.ticks > 0, "a first tick")
        yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    """GET /metrics, parsed: every sample by (name, sorted labels)."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled child that does not exist yet (a counter that never moved)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape_until(
    client: httpx.AsyncClient, condition: Callable[[Samples], bool], what: str, timeout: float = 60.0
) -> Samples:
    """Scrape until ``condition`` holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(client)
        if condition(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def answered(h: Harness, jid: str, text: str) -> None:
    """Send ``text`` from ``jid``; wait until its echo is delivered to the web channel and its run has ended."""
    await h.send(jid, text)

    def delivered() -> bool:
        rows = [row for row in h.outbound(jid) if row.content == f"echo: {text}"]
        return len(rows) == 1 and rows[0].delivery_status == "sent"

    await h.wait_for(delivered, f"the echo of {text!r} to be delivered")
    await h.settled()  # the reply is stored before its run ends: wait until the run is counted and its slot freed


# ---------------------------------------------------------------------------------------------------- tests
async def test_counters_move_by_exactly_what_flowed_through_the_pipeline(tmp_path: Path) -> None:
    groups = [process_group("corp"), process_group("flaky", {"ECHO_FAIL_RUNS": 100})]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.2, retry=FAST_RETRY) as h, served(h) as c:
        before = await scrape(c)

        for text in ("one", "two"):
            await answered(h, "web:corp", text)
        for _ in range(2):
            assert (await c.get("/healthz")).status_code == 200
        after = await scrape(c)

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert moved("kanmon_messages_ingested_total", platform="web") == 2
        assert moved("kanmon_runs_total", result="ok", folder="corp") == 2
        assert moved("kanmon_run_seconds_count") == 2
        assert moved("kanmon_container_start_seconds_count") == 2
        assert moved("kanmon_deliveries_total", channel="web", result="sent") == 2
        assert moved("kanmon_delivery_lag_seconds_count") == 2
        assert moved("kanmon_http_requests_total", route="/healthz", status="200") == 2
        assert moved("kanmon_http_requests_total", route="/metrics", status="200") == 1  # the first scrape
        assert moved("kanmon_poll_seconds_count") > 0
        assert moved("kanmon_dead_letters_total", folder="flaky") == 0
        assert moved("kanmon_runs_total", result="error", folder="corp") == 0

        # A dead letter: every attempt fails (FAST_RETRY: 3 attempts), then one apology is delivered to the chat.
        await h.send("web:flaky", "doomed")
        await h.wait_for(
            lambda: [row.status for row in h.inbound("web:flaky")] == ["dead"], "the row to be dead-lettered"
        )

        def apologised() -> bool:
            return [(row.content, row.delivery_status) for row in h.outbound("web:flaky")] == [
                (DEAD_LETTER_TEXT, "sent")
            ]

        await h.wait_for(apologised, "the apology to be delivered")
        await h.settled()
        last = await scrape(c)
        flaky, corp = {"folder": "flaky"}, {"folder": "corp"}
        dead = "kanmon_dead_letters_total"
        assert value(last, dead, **flaky) - value(after, dead, **flaky) == 1
        error = {"result": "error", **flaky}
        assert value(last, "kanmon_runs_total", **error) - value(after, "kanmon_runs_total", **error) == 3
        ok = {"result": "ok", **corp}
        assert value(last, "kanmon_runs_total", **ok) == value(after, "kanmon_runs_total", **ok)
        web_sent = {"channel": "web", "result": "sent"}
        assert (
            value(last, "kanmon_deliveries_total", **web_sent) - value(after, "kanmon_deliveries_total", **web_sent)
            == 1
        )
        ingested = value(last, "kanmon_messages_ingested_total", platform="web")
        assert ingested - value(after, "kanmon_messages_ingested_total", platform="web") == 1


async def test_every_series_the_spec_names_is_exposed(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=0.2) as h, served(h) as c:
        await answered(h, "web:corp", "hello")
        await scrape(c)  # a request is counted once answered: the second scrape shows the first
        samples = await scrape(c)
    names = {name for name, _ in samples}
    assert SPEC_SERIES - names == set()
    for gauge in ("kanmon_cursor_lag", "kanmon_impulse_held", "kanmon_queue_running", "kanmon_queue_waiting"):
        assert value(samples, gauge) >= 0


async def test_cursor_lag_counts_rows_waiting_for_a_slow_agent_and_returns_to_zero(tmp_path: Path) -> None:
    # Each answer takes 2 s: the three rows are all stored long before the first run can end, and a row waits
    # (status new) until the run that took it ends.
    groups = [process_group("slow", {"ECHO_DELAY": 2})]
    async with running_gateway(tmp_path / "data", groups, poll_interval=0.2) as h, served(h) as c:
        idle = await scrape(c)
        assert value(idle, "kanmon_cursor_lag") == 0

        for text in ("a", "b", "c"):
            await h.send("web:slow", text)
        await scrape_until(c, lambda s: value(s, "kanmon_cursor_lag") == 3, "the lag to count the three rows")

        await h.settled()
        await scrape_until(c, lambda s: value(s, "kanmon_cursor_lag") == 0, "the lag to return to 0")
        assert sorted(h.replies("web:slow")) == ["echo: a", "echo: b", "echo: c"]
