"""The loop's work in the store: dispatch with the poll cursor, lanes and batches, a run's end, the outbox.

The anchors lost messages at exactly these seams: a cursor moved past rows that failed (arizuko §11 B4), a web topic
finishing first moved a shared cursor backwards or past another topic's rows (B5), a re-read batch was routed twice.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from kanmon.store import Dispatch, Group, LaneHead, NewMessage, RunBegin, RunDraft, RunEnd, Store

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def put(store: Store, chat: str = "telegram:1", content: str = "hi", **fields: object) -> int:
    return store.put_message(NewMessage(chat_jid=chat, content=content, sender="alice", **fields)).message.seq  # type: ignore[arg-type]


def route(store: Store, seqs: list[int], folder: str = "corp", topic: str = "") -> None:
    store.record_dispatch([Dispatch(seq, "new", folder, topic, None) for seq in seqs], max(seqs))


def end(store: Store, head: LaneHead, seqs: list[int], rows: str = "done", **fields: object) -> int:
    values: dict[str, object] = {
        "run_id": None,
        "chat_jid": head.chat_jid,
        "seqs": seqs,
        "rows": rows,
        "run_status": "ok",
        "folder": head.folder,
        "topic": head.topic,
    }
    [ended] = store.finish_runs([RunEnd(**{**values, **fields})], now=NOW)  # type: ignore[arg-type]
    return ended.cursor


@pytest.fixture
def corp(store: Store) -> Store:
    store.add_group(Group(folder="corp"))
    return store


def test_record_dispatch_routes_rows_and_moves_the_poll_cursor_in_one_step(corp: Store) -> None:
    a, b, c = put(corp, content="@child hi"), put(corp, content="/ping"), put(corp, "telegram:2")
    corp.record_dispatch(
        [Dispatch(a, "new", "corp", "#t", "hi"), Dispatch(b, "done"), Dispatch(c, "skipped")], last_seq=c
    )
    rows = {row.seq: row for row in corp.new_messages(0)}
    assert (rows[a].status, rows[a].routed_folder, rows[a].routed_topic, rows[a].agent_text) == (
        "new",
        "corp",
        "#t",
        "hi",
    )
    assert rows[b].status == "done" and rows[b].routed_folder is None
    assert rows[c].status == "skipped"
    assert corp.poll_cursor() == c


def test_a_delegated_row_is_settled_with_the_folder_and_topic_its_copy_went_to(corp: Store) -> None:
    """So whoever follows its answer finds the copy (``kanmon.gateway.delegation``); a re-read changes nothing."""
    a, b = put(corp, content="@child hi"), put(corp, content="/ping")
    corp.record_dispatch([Dispatch(a, "done", "corp/child", "t"), Dispatch(b, "done")], last_seq=b)
    corp.record_dispatch([Dispatch(a, "done", "other", ""), Dispatch(b, "done", "other", "")], last_seq=b)
    rows = {row.seq: row for row in corp.new_messages(0)}
    assert (rows[a].status, rows[a].routed_folder, rows[a].routed_topic) == ("done", "corp/child", "t")
    assert (rows[b].status, rows[b].routed_folder) == ("done", None)


def test_record_dispatch_stores_the_ticks_sticky_settings_with_its_decisions(corp: Store) -> None:
    corp.ensure_chat("telegram:1", sticky_group="corp", sticky_topic="#old")
    seq = put(corp)
    corp.record_dispatch(
        [Dispatch(seq, "done")],
        seq,
        steering={"telegram:1": {"sticky_group": None}, "telegram:9": {"sticky_topic": "#ops"}},
    )
    chats = corp.get_chats(["telegram:1", "telegram:9"])
    assert (chats["telegram:1"].sticky_group, chats["telegram:1"].sticky_topic) == (None, "#old")  # only what changed
    assert (chats["telegram:9"].sticky_group, chats["telegram:9"].sticky_topic) == (None, "#ops")  # created


@pytest.mark.parametrize("field", ["agent_cursor", "channel", "jid"])
def test_record_dispatch_refuses_steering_anything_but_the_sticky_settings_and_stores_nothing(
    corp: Store, field: str
) -> None:
    seq = put(corp)
    with pytest.raises(ValueError, match="not a sticky setting"):
        corp.record_dispatch([Dispatch(seq, "done")], seq, steering={"telegram:1": {field: "x"}})
    assert corp.poll_cursor() == 0 and corp.new_messages(0)[0].status == "new"


def test_a_ticks_routes_land_each_on_its_own_row_and_leave_decided_rows_alone(corp: Store) -> None:
    # PostgreSQL routes a tick's rows in one statement (arrays), SQLite one row after another: the same rows result
    seqs = [put(corp, f"telegram:{n % 3}", content=f"m{n}") for n in range(7)]
    corp.record_dispatch([Dispatch(seqs[2], "done")], seqs[2])
    corp.record_dispatch(
        [Dispatch(seq, "new", f"f{n}", f"#t{n % 2}" if n % 3 else "", None if n == 4 else f"c{n}") for n, seq in
         enumerate(seqs)],
        seqs[-1],
    )  # fmt: skip
    rows = {row.seq: row for row in corp.new_messages(0)}
    routed = [
        (rows[seq].status, rows[seq].routed_folder, rows[seq].routed_topic, rows[seq].routed_content) for seq in seqs
    ]
    expected: list[tuple[str, str | None, str | None, str | None]] = [
        ("new", f"f{n}", f"#t{n % 2}" if n % 3 else "", None if n == 4 else f"c{n}") for n in range(7)
    ]
    expected[2] = ("done", None, None, None)  # settled before the tick: not routed
    assert routed == expected


def test_a_re_read_batch_changes_nothing_a_run_has_done_since(corp: Store) -> None:
    seq = put(corp)
    route(corp, [seq])
    [head] = corp.lane_heads()
    end(corp, head, [seq])
    # the loop crashed before its own commit and reads the batch again: the row stays done, routing unchanged
    corp.record_dispatch([Dispatch(seq, "new", "elsewhere", "", None)], seq)
    row = corp.new_messages(0)[0]
    assert (row.status, row.routed_folder) == ("done", "corp")
    assert corp.lane_heads() == []


def test_the_poll_cursor_never_moves_back(corp: Store) -> None:
    first, second = put(corp), put(corp)
    corp.record_dispatch([], second)
    corp.record_dispatch([], first)
    assert corp.poll_cursor() == second


def test_lane_heads_group_waiting_rows_by_chat_topic_and_origin_oldest_first(corp: Store) -> None:
    a1 = put(corp, "telegram:1")
    b1 = put(corp, "telegram:2")
    a2 = put(corp, "telegram:1")
    d1 = put(corp, "local:corp", forwarded_from="telegram:3")
    route(corp, [a1, b1, a2, d1])
    heads = corp.lane_heads("corp")
    assert [(h.chat_jid, h.forwarded_from, h.first_seq, h.count) for h in heads] == [
        ("telegram:1", None, a1, 2),
        ("telegram:2", None, b1, 1),
        ("local:corp", "telegram:3", d1, 1),
    ]
    assert corp.lane_heads("other") == []


def test_a_batch_is_one_topics_consecutive_rows_and_respects_the_limit(corp: Store) -> None:
    seqs = [put(corp, content=f"m{i}") for i in range(5)]
    route(corp, seqs[:2], topic="#a")
    route(corp, seqs[2:3], topic="#b")
    route(corp, seqs[3:], topic="#a")
    head = corp.lane_heads()[0]
    assert [m.seq for m in corp.lane_batch(head)] == seqs[:2]  # stops where #b begins: one session per run
    assert [m.seq for m in corp.lane_batch(head, limit=1)] == seqs[:1]


def test_the_cursor_advances_to_the_batch_and_stays_below_rows_still_waiting(corp: Store) -> None:
    seqs = [put(corp, content=f"m{i}") for i in range(4)]
    route(corp, seqs[:2], topic="#a")
    route(corp, seqs[2:], topic="#b")
    heads = {h.topic: h for h in corp.lane_heads()}
    # #b finishes first (web topics run in parallel): the cursor may not jump over #a's waiting rows
    assert end(corp, heads["#b"], seqs[2:]) == 0
    assert end(corp, heads["#a"], seqs[:2]) == seqs[-1]
    assert corp.agent_cursor("telegram:1") == seqs[-1]


def test_a_failed_batch_leaves_rows_waiting_and_the_cursor_where_it_was(corp: Store) -> None:
    seq = put(corp)
    route(corp, [seq])
    [head] = corp.lane_heads()
    corp.set_session("corp", "", "s-old")
    assert end(corp, head, [seq], rows="new", run_status="error", evict_session=True) == 0
    assert corp.new_messages(0)[0].status == "new"
    assert corp.get_session("corp", "") is None
    assert corp.lane_heads() == [head]


def test_a_dead_letter_marks_rows_dead_and_moves_the_cursor_past_them(corp: Store) -> None:
    seq = put(corp)
    route(corp, [seq])
    [head] = corp.lane_heads()
    assert end(corp, head, [seq], rows="dead", run_status="error", evict_session=True) == seq
    assert corp.new_messages(0)[0].status == "dead"
    assert corp.counts()["dead_letters"] == 1


def begin(store: Store, run_id: str = "r1", **fields: object) -> RunBegin:
    draft = RunDraft(id=run_id, instance="i", runtime="process", started_at=NOW)
    values: dict[str, object] = {"draft": draft, "folder": "corp", "accept": lambda head: True, **fields}
    return RunBegin(**values)  # type: ignore[arg-type]


def test_a_new_session_id_is_stored_and_the_run_is_closed_with_the_batch(corp: Store) -> None:
    seq = put(corp)
    route(corp, [seq])
    corp.add_system_message("corp", origin="gateway", event="new_day", body="it is Monday")
    [start] = corp.begin_runs([begin(corp)], now=NOW)
    assert start is not None and [row.seq for row in start.rows] == [seq] and not start.more
    assert [n.body for n in start.notes] == ["it is Monday"]
    assert corp.system_messages_for("corp") == []  # flushed with the run's record, once
    recorded = corp.get_run("r1")
    assert recorded is not None and (recorded.status, recorded.first_seq, recorded.last_seq) == ("starting", seq, seq)
    end(corp, start.head, [seq], run_id="r1", session_id="s-new", output_count=2)
    stored = corp.get_run("r1")
    assert stored is not None and (stored.status, stored.output_count, stored.ended_at) == ("ok", 2, NOW)
    session = corp.get_session("corp", "")
    assert session is not None and session.session_id == "s-new"


def test_begin_takes_the_first_stream_the_lane_accepts_and_says_when_more_waits(corp: Store) -> None:
    held = [put(corp, "telegram:1") for _ in range(2)]
    free = [put(corp, "telegram:2") for _ in range(3)]
    route(corp, held + free)
    not_held = begin(corp, accept=lambda head: head.chat_jid != "telegram:1", limit=2)
    [start] = corp.begin_runs([not_held], now=NOW)
    assert start is not None and [row.seq for row in start.rows] == free[:2] and start.more  # past the limit
    assert corp.begin_runs([begin(corp, "r2", accept=lambda head: False)], now=NOW) == [None]
    assert corp.get_run("r2") is None  # nothing to take: nothing recorded


def test_the_first_run_after_a_reset_is_told_once_and_the_next_resumes(corp: Store) -> None:
    corp.set_session("corp", "", "old-session")
    corp.reset_session("corp", "", chat_jid="telegram:1", reason="idle", detail="idle for 2h", flush=False, now=NOW)
    route(corp, [put(corp)])
    [start] = corp.begin_runs([begin(corp)], now=NOW)
    assert start is not None and start.session_id is None and start.reset is not None
    assert (start.reset.reason, start.reset.detail, start.reset.automatic) == ("idle", "idle for 2h", True)
    assert corp.get_reset("corp", "") is None  # told, and no flush left: gone
    end(corp, start.head, [row.seq for row in start.rows], session_id="fresh", run_id=start.run.id)
    route(corp, [put(corp)])
    [again] = corp.begin_runs([begin(corp, "r2")], now=NOW)
    assert again is not None and again.session_id == "fresh" and again.reset is None


def test_replies_recorded_twice_are_stored_once_with_or_without_the_outcome(corp: Store) -> None:
    seq = put(corp)
    route(corp, [seq])
    [start] = corp.begin_runs([begin(corp)], now=NOW)
    assert start is not None

    def reply(index: int) -> NewMessage:
        return NewMessage(
            chat_jid="telegram:1", id=f"run-r1-{index}", content=f"part {index}", direction="out", run_id="r1",
            output_index=index,
        )  # fmt: skip

    assert [row.content for row in corp.record_replies([reply(0), reply(1)], now=NOW)] == ["part 0", "part 1"]
    assert corp.record_replies([reply(1)], now=NOW) == []  # a replay after a restart stores nothing twice
    [ended] = corp.finish_runs(
        [RunEnd(run_id="r1", chat_jid="telegram:1", seqs=[seq], rows="done", run_status="ok", folder="corp",
                topic="", output_count=3, replies=[reply(1), reply(2)])],
        now=NOW,
    )  # fmt: skip
    assert [row.content for row in ended.stored] == ["part 2"] and ended.cursor >= seq
    assert [row.content for row in corp.new_messages(0) if row.direction == "out"] == ["part 0", "part 1", "part 2"]


def test_a_lost_poll_cursor_starts_past_every_decided_row(corp: Store) -> None:
    decided = [put(corp) for _ in range(5)]
    route(corp, decided)
    corp.put_message(NewMessage(chat_jid="web:corp", content="a reply", direction="out"))
    assert corp.start_cursor() == corp.max_seq()  # nothing undecided: start at the end
    undecided = put(corp, content="new since")
    corp.set_state("last_seq", "0")  # lost, or restored from an old backup
    assert corp.start_cursor() == undecided - 1


class CommitsBetweenStatements:
    """After the first statement of ``store`` whose SQL contains ``marker``, another writer (an adapter, the
    driver of the failover test) commits a message: the read that follows in the same transaction must not see a
    world in which it exists and a world in which it does not."""

    def __init__(self, store: Store, writer: Store, marker: str) -> None:
        self.store, self.writer, self.marker, self.seq = store, writer, marker, 0

    def __enter__(self) -> CommitsBetweenStatements:
        event.listen(self.store.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.store.engine, "after_cursor_execute", self._after)

    def _after(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if not self.seq and self.marker in statement:
            self.seq = put(self.writer, "web:corp", "arrived in between")


def test_a_row_committed_while_the_start_cursor_is_read_is_never_skipped(corp: Store, store_url: str) -> None:
    """The failover test lost one message on PostgreSQL: the start cursor read "nothing undecided" and then the
    newest seq in two snapshots, with the driver's first message committed in between, and started past it."""
    writer = Store.open(store_url)
    try:
        with CommitsBetweenStatements(corp, writer, "min(messages.seq)") as between:
            cursor = corp.start_cursor()
        assert between.seq and cursor < between.seq
    finally:
        writer.close()


def test_a_row_committed_while_a_run_ends_keeps_the_chat_cursor_before_it(corp: Store, store_url: str) -> None:
    if corp.dialect == "sqlite":
        pytest.skip("SQLite has one writer at a time: nothing commits while a run's end holds the write lock")
    seq = put(corp, "web:corp")
    route(corp, [seq])
    [head] = corp.lane_heads("corp")
    writer = Store.open(store_url)
    try:
        with CommitsBetweenStatements(corp, writer, "min(messages.seq)") as between:
            cursor = end(corp, head, [seq])
        assert between.seq and cursor < between.seq
    finally:
        writer.close()


def test_every_change_to_groups_routes_or_channels_moves_the_configuration_version(corp: Store) -> None:
    versions = [corp.config_version()]
    corp.add_group(Group(folder="other"))
    versions.append(corp.config_version())
    route_id = corp.add_route(seq=1, match="", target="corp").id
    versions.append(corp.config_version())
    corp.remove_route(route_id)
    versions.append(corp.config_version())
    corp.remove_group("other")
    versions.append(corp.config_version())
    assert versions == sorted(set(versions)) and len(versions) == 5
    put(corp)  # messages are not configuration
    assert corp.config_version() == versions[-1]


def test_pending_deliveries_are_per_channel_in_seq_order_and_marked_once(corp: Store) -> None:
    web = put(corp, "web:corp", "reply 1", direction="out")
    put(corp, "telegram:1", "reply 2", direction="out")
    web2 = put(corp, "web:corp", "reply 3", direction="out")
    assert [m.seq for m in corp.pending_deliveries(["web:"], now=dt.datetime.now(dt.UTC))] == [web, web2]
    assert corp.mark_delivery(web, "sent")
    assert not corp.mark_delivery(web, "sent")  # already sent: a second attempt is refused
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert corp.mark_delivery(web2, "pending", error="503", deliver_after=later)
    assert corp.pending_deliveries(["web:"], now=dt.datetime.now(dt.UTC)) == []  # backing off
    assert (
        corp.pending_deliveries(["web_"], now=dt.datetime.now(dt.UTC)) == []
    )  # a prefix is literal, not a LIKE pattern


def test_chat_lag_counts_rows_waiting_per_chat(corp: Store) -> None:
    seqs = [put(corp) for _ in range(3)]
    route(corp, seqs)
    [lag] = corp.chat_lag()
    assert (lag.chat_jid, lag.waiting, lag.oldest_seq, lag.agent_cursor) == ("telegram:1", 3, seqs[0], 0)


def test_mark_sent_marks_only_pending_outbound_rows_in_one_go(corp: Store) -> None:
    first = put(corp, "web:corp", "a", direction="out")
    second = put(corp, "web:corp", "b", direction="out")
    inbound = put(corp, "web:corp", "question")
    assert corp.mark_sent([first, second, inbound]) == 2
    assert corp.mark_sent([first]) == 0
    assert corp.pending_deliveries(["web:"], now=dt.datetime.now(dt.UTC)) == []


def test_get_chats_reads_the_known_chats_of_a_batch_at_once(corp: Store) -> None:
    corp.ensure_chat("telegram:1", sticky_group="corp")
    chats = corp.get_chats(["telegram:1", "telegram:2", "telegram:1"])
    assert list(chats) == ["telegram:1"] and chats["telegram:1"].sticky_group == "corp"
    assert corp.get_chats([]) == {}


def test_the_platform_s_message_id_is_kept_when_a_delivery_is_taken(corp: Store) -> None:
    """An adapter (or daemon) answers ``{"ok": true, "id": …}``; the id lands in ``platform_message_id``."""
    seq = put(corp, "telegram:1", "reply", direction="out")
    assert corp.mark_delivery(seq, "pending", error="503")
    assert corp.mark_delivery(seq, "sent", platform_message_id="tg-981")
    [row] = [m for m in corp.new_messages(0) if m.seq == seq]
    assert (row.delivery_status, row.delivery_attempts, row.platform_message_id) == ("sent", 2, "tg-981")
    assert row.is_bot_message


def test_pending_deliveries_of_whole_jids_leave_out_the_jids_they_begin(corp: Store) -> None:
    """A daemon's outbox ``daemon:hook`` is one chat: ``daemon:hook-2``'s rows are not its to send."""
    hook = put(corp, "daemon:hook", "for hook", direction="out")
    put(corp, "daemon:hook-2", "for hook-2", direction="out")
    now = dt.datetime.now(dt.UTC)
    assert [m.seq for m in corp.pending_deliveries(["daemon:hook"], now=now, exact=True)] == [hook]
    assert len(corp.pending_deliveries(["daemon:hook"], now=now)) == 2  # as a prefix it takes both


@pytest.mark.parametrize("directions", ["i", "o", "iooio", "ooiiooo"])
def test_inbound_after_says_whether_an_inbound_row_lies_past_a_seq_and_how_far_it_looked(
    corp: Store, directions: str
) -> None:
    """The loop's check for rows another process stored (``watch_interval``): outbound rows never count, and the seq
    it returns is where the next check starts, so rows are read once however long a run's replies go on."""
    stored = [
        (put(corp, "web:corp") if kind == "i" else put(corp, "web:corp", "a reply", direction="out"), kind)
        for kind in directions
    ]
    top = stored[-1][0]
    for after in range(stored[0][0] - 1, top + 2):
        expected = any(kind == "i" and seq > after for seq, kind in stored)
        assert corp.inbound_after(after) == (expected, max(top, after)), after
