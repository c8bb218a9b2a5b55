"""Session resets in the store (issue 16 items 2 and 3): the one reset transaction and the flush's at-most-once claim.

Hermes lost flushes to a reset and reopened "expired" sessions after a restart; here the reset is one transaction
that is durable before any flush, and a flush claimed once is never claimed again (a crash mid-flush closes it).
Every test runs on both backends (the ``store`` fixture).
"""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.store import Dispatch, Group, NewMessage, Run, RunBegin, RunDraft, RunEnd, Store, UsageEntry
from kanmon.store.resets import ResetReason

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def reset(store: Store, topic: str = "", *, reason: ResetReason = "idle", flush: bool = True) -> None:
    store.reset_session(
        "corp",
        topic,
        chat_jid="telegram:1",
        reason=reason,
        detail=reason,
        flush=flush,
        now=NOW,
    )


def test_a_reset_forgets_the_session_and_keeps_the_old_id_for_the_flush(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    assert corp.get_session("corp", "") is None
    row = corp.get_reset("corp", "")
    assert row is not None and row.flush_session_id == "old" and not row.announced and row.automatic
    assert [r.flush_session_id for r in corp.pending_flushes("corp")] == ["old"]


def test_without_flush_no_old_session_is_kept(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp, flush=False)
    row = corp.get_reset("corp", "")
    assert row is not None and row.flush_session_id is None and corp.pending_flushes("corp") == []


def test_a_flush_is_claimed_once_so_a_crash_after_the_claim_never_runs_it_again(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    assert corp.claim_flush("corp", "", session_id="old", now=NOW) == "claimed"
    # gated dies here; the restarted one finds the claim and must not flush again
    assert corp.claim_flush("corp", "", session_id="old", now=NOW) == "closed"
    assert [r.flush_started_at for r in corp.pending_flushes("corp")] == [NOW]
    corp.end_flush("corp", "", session_id="old")
    assert corp.pending_flushes("corp") == []
    row = corp.get_reset("corp", "")
    assert row is not None and not row.announced  # the next prompt has not been told yet: the row stays for it


def test_a_crash_before_the_claim_leaves_the_reset_done_and_the_flush_pending(corp: Store, store_url: str) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    corp.close()  # gated dies before the flush; a new store on the same database is the restarted gated
    again = Store.open(store_url)
    try:
        assert again.get_session("corp", "") is None
        assert again.claim_flush("corp", "", session_id="old", now=NOW) == "claimed"
    finally:
        again.close()


def test_a_second_reset_before_the_flush_keeps_the_pending_flush(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    reset(corp, reason="new")  # /new with no session left: nothing new to flush
    row = corp.get_reset("corp", "")
    assert row is not None and row.flush_session_id == "old" and row.reason == "new" and not row.automatic


def test_topics_reset_separately(corp: Store) -> None:
    corp.set_session("corp", "", "a")
    corp.set_session("corp", "#t", "b")
    reset(corp, "#t")
    assert corp.get_session("corp", "") is not None and corp.get_session("corp", "#t") is None
    assert [r.topic for r in corp.pending_flushes("corp")] == ["#t"]


def test_removing_the_group_removes_its_resets(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    corp.remove_group("corp")
    assert corp.get_reset("corp", "") is None


def test_a_new_during_a_run_is_not_undone_by_the_runs_end(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    seq = corp.put_message(NewMessage(chat_jid="web:corp", content="hi", sender="alice")).message.seq
    corp.record_dispatch([Dispatch(seq, "new", "corp", "", None)], seq)
    draft = RunDraft(id="r1", instance="i", runtime="process", started_at=NOW)
    [start] = corp.begin_runs([RunBegin(draft=draft, folder="corp", accept=lambda head: True)], now=NOW)
    assert start is not None and start.session_id == "old"
    reset(corp, reason="new", flush=False)  # /new arrives while the run goes on
    end = RunEnd(run_id="r1", chat_jid="web:corp", seqs=[seq], rows="done", run_status="ok", folder="corp", topic="",
                 session_id="old")  # fmt: skip
    corp.finish_runs([end], now=NOW)
    assert corp.get_session("corp", "") is None  # the user's /new stands
    told = corp.get_reset("corp", "")
    assert told is not None and told.reason == "new" and not told.announced


def flush_turn(run_id: str, session_id: str | None = "old") -> Run:
    return Run(id=run_id, instance="i", group_folder="corp", topic="", chat_jid="telegram:1", runtime="process",
               status="running", started_at=NOW, session_id=session_id)  # fmt: skip


def test_a_claim_records_its_turn_as_a_run_and_a_second_claim_records_nothing(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    assert corp.claim_flush("corp", "", session_id="old", now=NOW, run=flush_turn("f1")) == "claimed"
    assert corp.claim_flush("corp", "", session_id="old", now=NOW, run=flush_turn("f2")) == "closed"
    assert [(r.id, r.status, r.session_id, r.first_seq) for r in corp.recent_runs()] == [("f1", "running", "old", None)]


def test_a_flush_turns_end_closes_the_flush_records_usage_and_leaves_the_session_alone(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    corp.claim_flush("corp", "", session_id="old", now=NOW, run=flush_turn("f1"))
    corp.set_session("corp", "", "fresh")  # a session begun since must not be touched by the turn's end
    before = corp.get_session("corp", "")
    usage = UsageEntry(run_id="f1", output_index=0, group_folder="corp", topic="", chat_jid="telegram:1",
                       session_id="old", day="2026-11-30", recorded_at=NOW, cost_usd=0.5)  # fmt: skip
    end = RunEnd(run_id="f1", chat_jid="telegram:1", seqs=[], rows="done", run_status="ok", folder="corp", topic="",
                 output_count=1, usage=[usage], flush_session="old")  # fmt: skip
    [ended] = corp.finish_runs([end], now=NOW + dt.timedelta(hours=1))
    assert ended.usage == [usage] and corp.spent("corp", "2026-11-30") == pytest.approx(0.5)
    assert corp.get_session("corp", "") == before
    assert corp.pending_flushes("corp") == []
    run = corp.get_run("f1")
    assert run is not None and (run.status, run.output_count) == ("ok", 1)


def test_session_chats_name_the_chat_of_each_sessions_latest_run(corp: Store) -> None:
    corp.add_group(Group(folder="ops"))
    for run_id, folder, topic, jid, minute in [
        ("r1", "corp", "", "telegram:1", 1), ("r2", "corp", "", "telegram:2", 2), ("r3", "corp", "#t", "web:x", 3),
        ("r4", "ops", "", "telegram:9", 4),
    ]:  # fmt: skip
        started = NOW + dt.timedelta(minutes=minute)
        corp.start_run(Run(id=run_id, instance="i", group_folder=folder, topic=topic, chat_jid=jid, runtime="process",
                           status="ok", started_at=started))  # fmt: skip
    for folder, topic in [("corp", ""), ("corp", "#t"), ("corp", "#hand"), ("ops", "")]:
        corp.set_session(folder, topic, f"s-{folder}{topic}")
    chats = {(s.group_folder, s.topic): (s.session_id, s.chat_jid) for s in corp.session_chats("corp")}
    assert chats == {
        ("corp", ""): ("s-corp", "telegram:2"),  # the latest run's chat
        ("corp", "#t"): ("s-corp#t", "web:x"),
        ("corp", "#hand"): ("s-corp#hand", None),  # set by hand: no run names its chat
    }
    assert {s.group_folder for s in corp.session_chats("corp", "ops")} == {"corp", "ops"}


def test_a_late_flush_turn_of_an_old_session_leaves_the_flush_of_the_next_one_pending(corp: Store) -> None:
    """The flush slot of ``(folder, topic)`` holds one session at a time. The turn of ``old`` is claimed and runs;
    meanwhile a session ``next`` began and a ``/new`` left it to flush. The ``old`` turn's end (or a failed turn's
    close) must not close the flush of ``next``: its turn would never run (an outside review)."""
    corp.set_session("corp", "", "old")
    reset(corp)
    assert corp.claim_flush("corp", "", session_id="old", now=NOW, run=flush_turn("f1")) == "claimed"
    corp.set_session("corp", "", "next")
    reset(corp, reason="new")  # the slot is now next's, not claimed
    end = RunEnd(run_id="f1", chat_jid="telegram:1", seqs=[], rows="done", run_status="ok", folder="corp", topic="",
                 flush_session="old")  # fmt: skip
    corp.finish_runs([end], now=NOW)
    corp.end_flush("corp", "", session_id="old")  # a turn closed without running: the same
    assert [(r.flush_session_id, r.flush_started_at) for r in corp.pending_flushes("corp")] == [("next", None)]
    assert corp.claim_flush("corp", "", session_id="next", now=NOW) == "claimed"
    corp.end_flush("corp", "", session_id="next")
    assert corp.pending_flushes("corp") == []


def test_a_turn_read_for_one_session_cannot_claim_the_flush_of_another(corp: Store) -> None:
    corp.set_session("corp", "", "old")
    reset(corp)
    [pending] = corp.pending_flushes("corp")  # the turn of old is about to start…
    corp.end_flush("corp", "", session_id="old")  # …when another gated (or a crash's reclaim) closes it
    corp.set_session("corp", "", "next")
    reset(corp)
    assert pending.flush_session_id == "old"
    assert corp.claim_flush("corp", "", session_id="old", now=NOW, run=flush_turn("f1")) == "closed"
    assert [(r.flush_session_id, r.flush_started_at) for r in corp.pending_flushes("corp")] == [("next", None)]
    assert corp.get_run("f1") is None


def test_a_flush_waits_while_a_run_of_another_lane_holds_its_session(corp: Store) -> None:
    """A forum thread 42 and a web topic 42 are two lanes on the session (corp, 42): `/new` in one with the memory flush
    on must not start the flush turn on the old session while the other's run resumes it (an outside review)."""
    corp.set_session("corp", "42", "old")
    seq = corp.put_message(NewMessage(chat_jid="telegram:1", content="hi", sender="a"), now=NOW).message.seq
    corp.record_dispatch([Dispatch(seq, "new", "corp", "42", None)], seq, now=NOW)
    draft = RunDraft(id="r1", instance="i", runtime="process", started_at=NOW)
    [running] = corp.begin_runs([RunBegin(draft=draft, folder="corp", accept=lambda head: True)], now=NOW)
    assert running is not None and running.session_id == "old"
    corp.reset_session("corp", "42", chat_jid="web:corp", reason="new", detail="/new", flush=True, now=NOW)

    assert corp.claim_flush("corp", "42", session_id="old", now=NOW, run=flush_turn("f1")) == "busy"
    assert corp.get_run("f1") is None and [r.flush_started_at for r in corp.pending_flushes("corp")] == [None]
    corp.finish_runs(
        [RunEnd(run_id="r1", chat_jid="telegram:1", seqs=[seq], rows="done", run_status="ok", folder="corp",
                topic="42", output_count=1)],
        now=NOW,
    )  # fmt: skip
    assert corp.claim_flush("corp", "42", session_id="old", now=NOW, run=flush_turn("f1")) == "claimed"
