"""Onboarding end to end (SPEC §11): chats nobody owns wait on a list until a root group (or the terminal) decides.

A real gateway with process-runtime echo groups: ``root`` and ``corp`` are root groups, ``root/child`` is not. The
decisions arrive the way an operator sends them: ``/approve`` and ``/reject`` in a group's web chat, or
``gated onboarding …`` on the same data dir while gated runs. What must hold: with onboarding off nothing is listed;
with it on a chat is listed once however many messages it sends; approval routes the chat and answers exactly the
newest waiting message (older ones stay skipped), later messages flow normally; rejection keeps the chat quiet for
good; a non-root group cannot decide; bad input from the terminal is one line, exit 2, nothing changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.gateway.onboarding import Entry, entries, get_entry, repost_id
from kanmon.store import Message, Store
from tests.clocks import ShiftedClock
from tests.gateway_harness import Harness, process_group, running_gateway

GROUPS = [process_group("root"), process_group("root/child"), process_group("corp")]


ROOT_CHAT = "web:root"
CHILD_CHAT = "web:root/child"


# ---------------------------------------------------------------------------------------------------- helpers
def own_rows(h: Harness, jid: str) -> list[Message]:
    """The inbound rows the chat itself sent (not the copy approval posts, which keeps their sender and origin), in
    seq order."""
    rows = h.inbound(jid)
    copies = {repost_id(row.seq) for row in rows}
    return [row for row in rows if row.id not in copies]


async def send_unowned(h: Harness, jid: str, *texts: str, **fields: str) -> list[Message]:
    """Send ``texts`` from ``jid`` and wait until the loop has skipped every one of them."""
    sent = [await h.send(jid, text, **fields) for text in texts]
    seqs = {row.seq for row in sent}

    def skipped() -> bool:
        return all(row.status == "skipped" for row in h.inbound(jid) if row.seq in seqs)

    await h.wait_for(skipped, f"{len(sent)} rows of {jid} to be skipped")
    return sent


def answers(h: Harness, jid: str) -> list[str]:
    """What the gateway itself said in ``jid`` (command answers), in seq order."""
    return [row.content for row in h.outbound(jid) if row.run_id is None]


async def command(h: Harness, jid: str, text: str) -> str:
    """Send a chat command from ``jid`` and return the gateway's answer to it."""
    before = len(answers(h, jid))
    await h.send(jid, text)
    await h.wait_for(lambda: len(answers(h, jid)) > before, f"the answer to {text!r}")
    return answers(h, jid)[before]


def entry(h: Harness, jid: str) -> Entry:
    found = get_entry(h.store, jid)
    assert found is not None, f"{jid} is not on the onboarding list"
    return found


def gated(data_dir: Path, *args: str) -> Result:
    """`gated --data-dir DATA ARGS…` in-process, with no KANMON_* setting from the test environment leaking in."""
    env = {name: None for name in os.environ if name.startswith("KANMON_")}
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env=env, catch_exceptions=False)


# ---------------------------------------------------------------------------------------------------- off
async def test_with_onboarding_off_unowned_rows_are_skipped_and_nothing_is_listed(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", GROUPS, poll_interval=0.2) as h:
        await send_unowned(h, "tg:100", "hello", "anyone?")
        assert entries(h.store) == []
        assert h.store.system_messages_for("root") == []
        assert h.outbound("tg:100") == []


# ---------------------------------------------------------------------------------------------------- pending
async def test_an_unowned_chat_is_listed_once_and_root_groups_are_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kanmon.gateway.onboarding")
    clock = ShiftedClock(dt.timedelta(days=365))  # a stamp from it cannot be the wall clock's time
    async with running_gateway(tmp_path / "data", GROUPS, poll_interval=0.2, onboarding=True, clock=clock) as h:
        first, _, last = await send_unowned(h, "tg:100", "one", "two", "three", sender="tg:alice", sender_name="Alice")
        await send_unowned(h, "tg:100", "typing", verb="typing")  # weighs nothing: not a waiting message

        [listed] = entries(h.store)
        assert (listed.jid, listed.state, listed.folder) == ("tg:100", "pending", None)
        assert listed.waiting is not None
        assert listed.waiting.count == 3
        assert (listed.waiting.first_sender, listed.waiting.first_sender_name) == ("tg:alice", "Alice")
        assert (listed.waiting.first_seq, listed.waiting.last_seq, listed.waiting.last_id) == (
            first.seq,
            last.seq,
            last.id,
        )
        assert [row.status for row in own_rows(h, "tg:100")] == ["skipped"] * 4
        notes = {folder: h.store.system_messages_for(folder) for folder in ("root", "corp", "root/child")}
        assert [(n.event, "tg:100" in n.body) for n in notes["root"]] == [("onboarding", True)]
        assert [(n.event, "tg:100" in n.body) for n in notes["corp"]] == [("onboarding", True)]
        assert notes["root/child"] == []
        # stamped by the gateway's clock, not the wall clock
        assert all(n.created_at > dt.datetime.now(dt.UTC) + dt.timedelta(days=300) for n in notes["root"])
    waiting_logs = [r for r in caplog.records if "is waiting for approval" in r.getMessage()]
    assert len(waiting_logs) == 1 and "tg:100" in waiting_logs[0].getMessage()


# ---------------------------------------------------------------------------------------------------- approve
async def test_approve_from_a_root_group_routes_the_chat_and_answers_only_the_newest_waiting_message(
    tmp_path: Path,
) -> None:
    async with running_gateway(tmp_path / "data", GROUPS, poll_interval=0.2, onboarding=True) as h:
        waited = await send_unowned(h, "tg:100", "first", "second", "third")
        routes_before = len(h.store.list_routes())

        answer = await command(h, ROOT_CHAT, "/approve tg:100 corp")

        [route] = h.store.list_routes()[routes_before:]
        assert (route.match, route.target) == ("chat_jid=tg:100", "corp")
        assert answer == f"Approved tg:100 → corp (route {route.id}). Answering its newest waiting message."
        await h.wait_for(lambda: h.replies("tg:100") == ["echo: third"], "the newest waiting message's answer")
        await h.settled()
        assert h.replies("tg:100") == ["echo: third"]
        assert [row.status for row in own_rows(h, "tg:100")] == ["skipped"] * 3  # the older ones stay skipped
        copy = h.store.get_message("tg:100", repost_id(waited[-1].seq))
        assert copy is not None and (copy.status, copy.routed_folder) == ("done", "corp")
        assert entry(h, "tg:100").state == "approved" and entry(h, "tg:100").folder == "corp"

        await h.send("tg:100", "fourth")  # owned now: routed like any message
        await h.wait_for(lambda: h.replies("tg:100") == ["echo: third", "echo: fourth"], "the next answer")

        again = await command(h, ROOT_CHAT, "/approve tg:100 corp")
        assert again == "Approved tg:100 → corp already."
        assert len(h.store.list_routes()) == routes_before + 1
        await h.settled()
        assert h.replies("tg:100") == ["echo: third", "echo: fourth"]


async def test_approve_from_a_group_that_is_not_a_root_group_is_refused(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", GROUPS, poll_interval=0.2, onboarding=True) as h:
        await send_unowned(h, "tg:300", "let me in")

        answer = await command(h, CHILD_CHAT, "/approve tg:300 root/child")

        assert answer == "Permission denied: root groups only."
        assert h.store.list_routes() == []
        assert entry(h, "tg:300").state == "pending"
        await h.settled()
        assert h.replies("tg:300") == []


# ---------------------------------------------------------------------------------------------------- reject
async def test_reject_keeps_later_messages_skipped_and_off_the_pending_list(tmp_path: Path) -> None:
    async with running_gateway(tmp_path / "data", GROUPS, poll_interval=0.2, onboarding=True) as h:
        await send_unowned(h, "tg:200", "buy cheap stuff", "really cheap")
        notes_before = len(h.store.system_messages_for("root"))

        assert await command(h, ROOT_CHAT, "/reject tg:200") == "Rejected tg:200."
        await send_unowned(h, "tg:200", "still here", "hello?")

        rejected = entry(h, "tg:200")
        assert rejected.state == "rejected"
        assert rejected.waiting is not None and rejected.waiting.count == 2  # nothing counted after the rejection
        assert [e.jid for e in entries(h.store) if e.state == "pending"] == []
        assert len(h.store.system_messages_for("root")) == notes_before
        assert [row.status for row in own_rows(h, "tg:200")] == ["skipped"] * 4
        assert h.store.list_routes() == []
        await h.settled()
        assert h.outbound("tg:200") == []


# ---------------------------------------------------------------------------------------------------- the terminal
async def test_gated_onboarding_list_approve_and_reject_work_while_gated_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running_gateway(data_dir, GROUPS, poll_interval=0.2, onboarding=True) as h:
        empty = gated(data_dir, "onboarding", "list")
        assert empty.exit_code == 0, empty.output
        assert empty.output.startswith("no chats on the onboarding list")

        await send_unowned(h, "tg:500", "b1", "b2", sender="tg:bob", sender_name="Bob")
        await send_unowned(h, "tg:600", "spam")

        listing = gated(data_dir, "onboarding", "list")
        assert listing.exit_code == 0, listing.output
        lines = listing.output.splitlines()
        assert [line.split("\t")[:3] for line in lines] == [
            ["tg:500", "pending", "2 messages waited"],
            ["tg:600", "pending", "1 message waited"],
        ]
        assert "first from Bob (tg:bob) at " in lines[0]

        approved = gated(data_dir, "onboarding", "approve", "tg:500", "corp")
        assert approved.exit_code == 0, approved.output
        [route] = h.store.list_routes()
        copy = h.store.get_message("tg:500", repost_id(own_rows(h, "tg:500")[-1].seq))
        assert copy is not None and copy.content == "b2"
        assert approved.output.strip() == (
            f"approved tg:500 -> corp (route {route.id}); its newest waiting message (of 2) goes to corp as seq "
            f"{copy.seq}"
        )
        # gated was not woken: it finds the route and the copy at its next poll
        await h.wait_for(lambda: h.replies("tg:500") == ["echo: b2"], "the approved chat's newest message answered")

        rejected = gated(data_dir, "onboarding", "reject", "tg:600")
        assert (rejected.exit_code, rejected.output.strip()) == (0, "rejected tg:600; its messages will be skipped")
        await send_unowned(h, "tg:600", "more spam")

        final = gated(data_dir, "onboarding", "list").output.splitlines()
        assert [line.split("\t")[:2] for line in final] == [["tg:500", "approved -> corp"], ["tg:600", "rejected"]]
        await h.settled()
        assert h.replies("tg:500") == ["echo: b2"]
        assert h.outbound("tg:600") == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("approve", "tg:700", "ghost"), "group 'ghost' not found", id="unknown-folder"),
        pytest.param(("approve", "tg:700", "../etc"), "group '../etc' not found", id="bad-folder-name"),
        pytest.param(("approve", "nojid", "corp"), "is not a chat JID", id="jid-without-platform"),
        pytest.param(("approve", "tg:7 00", "corp"), "is not a chat JID", id="jid-with-a-space"),
        pytest.param(("approve", "tg:", "corp"), "is not a chat JID", id="jid-without-room"),
        pytest.param(("approve", "web:corp", "corp"), "belong to their folder directly", id="web-jid"),
        pytest.param(("approve", "tg:owned", "root"), "tg:owned already belongs to corp", id="already-owned"),
        pytest.param(("reject", "nojid"), "is not a chat JID", id="reject-bad-jid"),
        pytest.param(("reject", "tg:owned"), "tg:owned belongs to corp", id="reject-owned"),
    ],
)
def test_gated_onboarding_bad_input_is_one_line_exit_2_and_changes_nothing(
    tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    data_dir = tmp_path / "data"
    assert gated(data_dir, "group", "add", "corp").exit_code == 0
    assert gated(data_dir, "group", "add", "root").exit_code == 0
    assert gated(data_dir, "route", "add", "--match", "chat_jid=tg:owned", "--target", "corp").exit_code == 0
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        store.set_state("onboarding:tg:700", "pending")
        before = (store.list_routes(), store.states(""), store.max_seq(), store.list_groups())

        result = gated(data_dir, "onboarding", *args)

        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], result.output
        assert "Traceback" not in result.output
        assert (store.list_routes(), store.states(""), store.max_seq(), store.list_groups()) == before
    finally:
        store.close()
