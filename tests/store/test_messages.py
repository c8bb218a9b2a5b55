"""The message log: the sole appender, idempotency, the seq cursor, per-chat cursors and router_state."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from kanmon.errors import InvalidInput
from kanmon.store import NewMessage, Store


def inbound(chat: str = "telegram:1", content: str = "hi", **fields: object) -> NewMessage:
    return NewMessage(chat_jid=chat, content=content, sender="alice", **fields)  # type: ignore[arg-type]


def test_put_message_stores_a_new_row_with_a_generated_id(store: Store) -> None:
    result = store.put_message(inbound())
    assert result.created
    assert result.message.id
    assert result.message.seq >= 1
    assert result.message.status == "new"
    assert result.message.direction == "in"
    assert store.get_message("telegram:1", result.message.id) == result.message


def test_put_message_generates_distinct_ids_for_messages_without_one(store: Store) -> None:
    ids = {store.put_message(inbound()).message.id for _ in range(5)}
    assert len(ids) == 5


def test_reposting_the_same_id_returns_the_existing_row_and_changes_nothing(store: Store) -> None:
    first = store.put_message(inbound(id="m1", content="original"))
    again = store.put_message(inbound(id="m1", content="edited by a retry", verb="edit"))
    assert not again.created
    assert again.message == first.message
    assert store.max_seq() == first.message.seq
    assert len(store.new_messages(0)) == 1


def test_two_chats_may_reuse_the_same_message_id(store: Store) -> None:
    a = store.put_message(inbound(chat="telegram:1", id="42"))
    b = store.put_message(inbound(chat="telegram:2", id="42"))
    assert a.created and b.created
    assert a.message.seq != b.message.seq


def test_a_reply_recorded_twice_for_the_same_run_output_is_stored_once(store: Store) -> None:
    reply = NewMessage(chat_jid="web:support", content="answer", direction="out", run_id="r1", output_index=0)
    first = store.put_message(reply)
    again = store.put_message(reply)
    assert first.created and not again.created
    assert again.message.seq == first.message.seq
    assert first.message.delivery_status == "pending"
    assert first.message.status is None


def test_put_messages_appends_each_in_order_in_one_transaction(store: Store) -> None:
    """The gateway's group commit of puts (Gateway.put_message): one transaction, each put's own result and time."""
    commits = []
    event.listen(store.engine, "commit", lambda conn: commits.append(conn))
    now = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC)
    results = store.put_messages([(inbound(id="a"), now), (inbound(id="b"), None), (inbound(id="a", content="x"), now)])
    assert len(commits) == 1
    assert [result.created for result in results] == [True, True, False]
    assert results[2].message == results[0].message  # put twice in one batch: stored once, the repeat gets its row
    assert results[0].message.seq < results[1].message.seq
    assert results[0].message.received_at == now
    assert [message.id for message in store.new_messages(0)] == ["a", "b"]


def test_put_messages_with_one_refused_message_stores_none_of_them(store: Store) -> None:
    with pytest.raises(InvalidInput):
        store.put_messages([(inbound(id="a"), None), (inbound(chat="no-colon"), None)])
    assert store.new_messages(0) == []


def test_timestamps_are_stored_in_utc_and_returned_aware(store: Store) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    sent = dt.datetime(2026, 1, 2, 9, 30, tzinfo=tokyo)
    message = store.put_message(inbound(timestamp=sent)).message
    assert message.timestamp == sent
    assert message.timestamp.utcoffset() == dt.timedelta(0)
    assert message.timestamp.hour == 0
    assert message.received_at.tzinfo is not None


def test_a_naive_timestamp_is_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        store.put_message(inbound(timestamp=dt.datetime(2026, 1, 1)))
    assert store.max_seq() == 0


@pytest.mark.parametrize("jid", ["", "nocolon"])
def test_a_malformed_jid_is_refused(store: Store, jid: str) -> None:
    with pytest.raises(InvalidInput, match="JID"):
        store.put_message(inbound(chat=jid))
    assert store.max_seq() == 0


def test_attachments_and_reply_fields_round_trip(store: Store) -> None:
    attachments = [{"mime": "image/png", "url": "file:///x.png", "size": 3}]
    message = store.put_message(
        inbound(attachments=attachments, reply_to_id="7", reply_to_text="earlier", reply_to_sender="bob", topic="#t")
    ).message
    stored = store.new_messages(0)[0]
    assert stored == message
    assert stored.attachments == attachments
    assert (stored.reply_to_id, stored.reply_to_text, stored.reply_to_sender, stored.topic) == (
        "7",
        "earlier",
        "bob",
        "#t",
    )


def test_new_messages_returns_rows_after_the_cursor_in_seq_order_up_to_the_limit(store: Store) -> None:
    seqs = [store.put_message(inbound(content=str(i))).message.seq for i in range(10)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 10
    page = store.new_messages(after_seq=seqs[2], limit=4)
    assert [m.seq for m in page] == seqs[3:7]
    assert [m.content for m in page] == ["3", "4", "5", "6"]
    assert store.new_messages(after_seq=seqs[-1]) == []


def test_new_messages_ignores_timestamps_entirely(store: Store) -> None:
    # a platform clock running behind must not hide a message: only seq decides what is new
    late = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    first = store.put_message(inbound(content="now")).message
    second = store.put_message(inbound(content="from a slow clock", timestamp=late)).message
    assert [m.seq for m in store.new_messages(after_seq=first.seq)] == [second.seq]


def test_agent_cursor_starts_at_zero_and_moves_per_chat(store: Store) -> None:
    assert store.agent_cursor("telegram:1") == 0
    store.set_agent_cursor("telegram:1", 5)
    store.set_agent_cursor("telegram:2", 9)
    store.set_agent_cursor("telegram:1", 7)
    assert store.agent_cursor("telegram:1") == 7
    assert store.agent_cursor("telegram:2") == 9


def test_pending_for_chat_is_inbound_new_rows_past_the_agent_cursor(store: Store) -> None:
    a = store.put_message(inbound(content="a")).message
    b = store.put_message(inbound(content="b")).message
    store.put_message(inbound(chat="telegram:2", content="other chat"))
    store.put_message(NewMessage(chat_jid="telegram:1", content="reply", direction="out", origin="gateway"))
    c = store.put_message(inbound(content="c")).message
    d = store.put_message(inbound(content="d")).message
    store.mark_messages([d.seq], "dead")
    assert [m.content for m in store.pending_for_chat("telegram:1")] == ["a", "b", "c"]
    store.set_agent_cursor("telegram:1", b.seq)
    assert [m.seq for m in store.pending_for_chat("telegram:1")] == [c.seq]
    assert a.seq < b.seq


def test_mark_messages_rejects_an_unknown_status(store: Store) -> None:
    seq = store.put_message(inbound()).message.seq
    with pytest.raises(InvalidInput):
        store.mark_messages([seq], "bogus")
    assert store.new_messages(0)[0].status == "new"


def test_ensure_chat_creates_once_and_updates_given_fields(store: Store) -> None:
    chat = store.ensure_chat("telegram:1")
    assert chat.agent_cursor == 0 and chat.sticky_group is None
    store.set_agent_cursor("telegram:1", 3)
    chat = store.ensure_chat("telegram:1", sticky_group="corp/eng", name="Eng")
    assert (chat.sticky_group, chat.name, chat.agent_cursor) == ("corp/eng", "Eng", 3)
    assert store.ensure_chat("telegram:1").sticky_group == "corp/eng"


def test_router_state_get_returns_default_until_set_then_the_latest_value(store: Store) -> None:
    assert store.get_state("last_seq") is None
    assert store.get_state("last_seq", "0") == "0"
    store.set_state("last_seq", "10")
    store.set_state("last_seq", "12")
    assert store.get_state("last_seq") == "12"


def test_text_no_backend_takes_is_stored_the_same_on_both_as_the_replacement_character(store: Store) -> None:
    """A lone surrogate cannot be UTF-8 at all and PostgreSQL refuses NUL: both become U+FFFD, on both backends,
    in every text column and inside attachments (hardening item 4: the reply is stored, not lost to its bytes)."""
    stored = store.put_message(
        inbound(
            content="plan \ud83d ok \x00 end",
            sender_name="na\x00me",
            attachments=[{"name": "f\udc00.txt", "n\x00": ["\ud800"]}],
        )
    ).message
    assert stored.content == "plan \ufffd ok \ufffd end"
    assert stored.sender_name == "na\ufffdme"
    assert stored.attachments == [{"name": "f\ufffd.txt", "n\ufffd": ["\ufffd"]}]
    assert store.new_messages(0)[0].content == stored.content  # read back exactly as stored


def test_every_outbound_row_is_the_bot_s_own_message_and_inbound_rows_keep_their_sender_s_flag(store: Store) -> None:
    """Replies, gateway answers and apologies are kanmon speaking: ``is_bot_message`` is true on every ``out`` row,
    whatever the writer passed; an inbound row keeps the flag its channel gave (another bot's message is one too)."""
    reply = store.put_message(NewMessage(chat_jid="telegram:1", content="answer", direction="out", run_id="r1"))
    answer = store.put_message(NewMessage(chat_jid="web:corp", content="pong", direction="out", origin="gateway"))
    assert reply.message.is_bot_message and answer.message.is_bot_message
    assert not store.put_message(inbound(id="u1")).message.is_bot_message
    assert store.put_message(inbound(id="b1", is_bot_message=True)).message.is_bot_message


def test_a_copy_the_gateway_posts_keeps_the_original_sender_s_flag(store: Store) -> None:
    """A delegation copy or an onboarding re-post is inbound and speaks for its original sender, not for kanmon."""
    user = store.put_message(inbound(id="u1")).message
    bot = store.put_message(inbound(id="b1", is_bot_message=True)).message
    user_copy = store.put_message(user.copy_as(chat_jid="local:corp", id="dlg-1", origin="gateway")).message
    bot_copy = store.put_message(bot.copy_as(chat_jid="local:corp", id="dlg-2", origin="gateway")).message
    assert (user_copy.direction, user_copy.is_bot_message) == ("in", False)
    assert (bot_copy.direction, bot_copy.is_bot_message) == ("in", True)
