"""The people of a chat, for PII redaction (issue 16 item 5): who wrote in it or was quoted there, and nobody else."""

from __future__ import annotations

from kanmon.store import NewMessage, Store


def test_chat_senders_lists_writers_and_quoted_people_of_those_chats_only(store: Store) -> None:
    store.put_message(NewMessage(chat_jid="telegram:1", content="a", sender="111", reply_to_sender="222"))
    store.put_message(NewMessage(chat_jid="telegram:1", content="b", sender="111"))
    store.put_message(NewMessage(chat_jid="telegram:2", content="c", sender="333"))
    store.put_message(NewMessage(chat_jid="telegram:3", content="d", sender="444"))
    store.put_message(NewMessage(chat_jid="telegram:1", content="reply", sender="bot", direction="out"))

    assert store.chat_senders(["telegram:1", "telegram:2"]) == ["111", "222", "333"]
    assert store.chat_senders([]) == []
    assert len(store.chat_senders(["telegram:1", "telegram:2"], limit=2)) == 2
