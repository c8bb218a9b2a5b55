"""Session resets in the store (issue 16 items 2 and 3): the one reset transaction and the flush's at-most-once claim.

Hermes lost flushes to a reset and reopened "expired" sessions after a restart; here the reset is one transaction
that is durable before any flush, and a flush claimed once is never claimed again (a crash mid-flush closes it).
Every test runs on both backends (the ``store`` fixture).
"""

from __future__ import annotations

import datetime as dt

import pytest

from kanmon.store import Dispatch, Group, NewMessage, RunBegin, RunDraft, RunEnd, Store
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
    assert corp.claim_flush("corp", "", now=NOW)
    # gated dies here; the restarted one finds the claim and must not flush again
    assert not corp.claim_flush("corp", "", now=NOW)
    assert [r.flush_started_at for r in corp.pending_flushes("corp")] == [NOW]
    corp.end_flush("corp", "")
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
        assert again.claim_flush("corp", "", now=NOW)
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
