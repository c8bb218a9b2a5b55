"""Messages another process stores reach a running gated within its watch interval, not at its next poll.

``gated send`` and ``gated chat`` against a running ``gated run`` write to the store from another process, so no
in-process wake-up tells the loop. Between two polls the loop checks, every ``watch_interval``, whether an inbound
row lies past its cursor (one indexed read); its own replies never make it tick. Here the poll interval is 30 s, so
a reply within a few seconds can only come from the watch; with the watch off, the same message waits for the poll.
The other process is a second engine on the same store, as the CLI opens it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.store import NewMessage, Store, StoreUnavailable
from tests.gateway_harness import Harness, process_group, running_gateway
from tests.pgdb import backend_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
POLL = 30.0  # far longer than any wait below: only the watch (or a wake-up) can start a tick


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store's URL: an SQLite file of this test, or a fresh PostgreSQL database."""
    with backend_database(request, tmp_path / "kanmon.db") as url:
        yield url


def elsewhere(url: str, new: NewMessage) -> None:
    """Store ``new`` through an engine of its own, as ``gated send`` in another process does."""
    other = Store.open(url)
    try:
        other.put_message(new)
    finally:
        other.close()


async def first_tick(h: Harness) -> None:
    await h.wait_for(lambda: h.gateway.loop.ticks > 0, "the loop's first tick")


async def test_a_message_stored_by_another_process_is_answered_within_the_watch_interval(
    tmp_path: Path, store_url: str
) -> None:
    async with running_gateway(
        tmp_path / "data", [process_group("corp")], poll_interval=POLL, store_url=store_url
    ) as h:
        await first_tick(h)
        for n in range(2):  # the second after the loop has moved its cursor past the first and its reply
            text = f"from the CLI {n}"
            await asyncio.to_thread(elsewhere, store_url, NewMessage(chat_jid="web:corp", content=text, sender="u:1"))
            await h.wait_for(lambda: f"echo: {text}" in h.replies("web:corp"), "the reply", timeout=5)  # noqa: B023


async def test_with_the_watch_off_such_a_message_waits_for_the_next_poll(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kanmon.db'}"
    group = process_group("corp")
    async with running_gateway(tmp_path / "data", [group], poll_interval=POLL, watch_interval=0, store_url=url) as h:
        await first_tick(h)
        ticks = h.gateway.loop.ticks
        await asyncio.to_thread(elsewhere, url, NewMessage(chat_jid="web:corp", content="hello", sender="u:1"))
        await asyncio.sleep(1.5)
        assert (h.gateway.loop.ticks, h.replies("web:corp")) == (ticks, [])
        await h.send("web:corp", "and now")  # an in-process wake-up still ticks at once, and takes both
        await h.wait_for(lambda: len(h.replies("web:corp")) == 2, "both replies", timeout=5)


async def test_rows_that_are_not_inbound_never_make_the_loop_tick_and_are_read_once(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch looks for inbound rows only: outbound rows stored elsewhere (a reply, a notice) and the gated's own
    replies leave the loop waiting for its poll. Each check starts where the last one ended, not at the cursor."""
    async with running_gateway(
        tmp_path / "data", [process_group("corp")], poll_interval=POLL, store_url=store_url
    ) as h:
        await first_tick(h)
        await h.send("web:corp", "hi")
        await h.wait_for(lambda: h.replies("web:corp") == ["echo: hi"], "the reply", timeout=5)
        await asyncio.sleep(0.5)  # the wake-ups of the run's end are over
        ticks = h.gateway.loop.ticks
        asked = counting_checks(h, monkeypatch)
        notice = NewMessage(chat_jid="web:corp", content="a notice", sender="kanmon", direction="out")
        await asyncio.to_thread(elsewhere, store_url, notice)
        await asyncio.sleep(1.5)  # six watch intervals
        assert h.gateway.loop.ticks == ticks
        top = h.outbound("web:corp")[-1].seq  # the notice
        assert len(asked) >= 2 and asked[-1] == top and asked[0] < top  # read once, then asked from past it


def counting_checks(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every seq the loop's watch asks the store about from now on."""
    asked: list[int] = []
    check = h.store.inbound_after

    def counted(seq: int) -> tuple[bool, int]:
        asked.append(seq)
        return check(seq)

    monkeypatch.setattr(h.store, "inbound_after", counted)
    return asked


async def test_the_watch_keeps_still_while_ticks_fail_and_while_fenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing tick keeps its backoff (a check finding rows must not cut it short), and a fenced gated, which routes
    nothing, asks nothing."""
    async with running_gateway(tmp_path / "data", [process_group("corp")], poll_interval=POLL) as h:
        await first_tick(h)
        asked = counting_checks(h, monkeypatch)
        await asyncio.sleep(0.6)
        assert asked, "the watch checks while the loop waits for its poll"

        failed: list[int] = []

        def down() -> int:
            failed.append(1)
            raise StoreUnavailable("database unavailable: the test took it away")

        monkeypatch.setattr(h.store, "config_version", down)  # the tick's first read
        h.gateway.loop.wake()
        await h.wait_for(lambda: bool(failed), "a failing tick", timeout=5)
        asked.clear()
        await asyncio.sleep(1.5)  # backoff waits of 0.5 s and more: each would hold checks
        assert asked == []

        monkeypatch.undo()  # the store answers again: a good tick, the watch checks again; then it is taken over
        ticks = h.gateway.loop.ticks
        h.gateway.loop.wake()
        await h.wait_for(lambda: h.gateway.loop.ticks > ticks, "a good tick", timeout=5)
        asked = counting_checks(h, monkeypatch)
        await asyncio.sleep(0.6)
        assert asked, "the watch checks again once a tick has gone well"
        asked.clear()
        h.gateway.fence("another gated took the store over (test)")
        await asyncio.sleep(1.5)
        assert asked == []
