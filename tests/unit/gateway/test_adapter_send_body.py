"""The body gated POSTs to an adapter's /send: arizuko's fields, the idempotency key, and attachments when any."""

from __future__ import annotations

import datetime as dt
import hashlib

import httpx

from kanmon.gateway.adapters import AdapterDeliveryConfig, HttpDeliverer, adapter_deliverer
from kanmon.store import Channel, Message

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def row(**fields: object) -> Message:
    values: dict[str, object] = {
        "seq": 7, "id": "out-1", "chat_jid": "telegram:42", "direction": "out", "sender": "", "sender_name": "",
        "content": "hi", "timestamp": NOW, "received_at": NOW, "verb": "message", "topic": "10", "reply_to_id": "5",
        "reply_to_text": None, "reply_to_sender": None, "attachments": None, "forwarded_from": None,
        "is_bot_message": False, "origin": "gateway", "run_id": "r1", "output_index": 0, "delivery_status": "pending",
        "delivery_attempts": 0, "deliver_after": None, "delivery_error": None, "platform_message_id": None,
        "status": None,
    }  # fmt: skip
    values.update(fields)
    return Message(**values)  # type: ignore[arg-type]


def deliverer() -> HttpDeliverer:
    channel = Channel(
        name="tg", url="http://a", token_hash="h", jid_prefixes=["telegram:"], capabilities={}, registered_at=NOW
    )
    return adapter_deliverer(channel, httpx.AsyncClient(), AdapterDeliveryConfig(), instance="k1")


async def test_a_reply_without_attachments_has_arizukos_fields_and_the_key() -> None:
    assert await deliverer().body(row()) == {
        "chat_jid": "telegram:42",
        "content": "hi",
        "format": "markdown",
        "reply_to": "5",
        "thread_id": "10",
        "idempotency_key": f"k1-7-{hashlib.sha256(b'out-1').hexdigest()[:12]}",
    }


async def test_a_reply_with_attachments_carries_them() -> None:
    files = [{"type": "photo", "file_id": "AgAD"}]
    assert (await deliverer().body(row(attachments=files)))["attachments"] == files


def test_the_key_is_the_stores_prefix_the_seq_and_the_rows_id_so_a_seq_handed_out_again_is_a_new_key() -> None:
    """A store restored from a backup, or a PostgreSQL database made anew, hands out seqs again: before, an adapter
    that had journaled <prefix>-<seq> took a new reply for the old one and posted nothing (an outside review)."""
    from kanmon.gateway.adapters import idempotency_key

    first = idempotency_key("k1", row())
    assert first == idempotency_key("k1", row()) and first.startswith("k1-7-")  # every retry: the same key
    assert idempotency_key("k1", row(id="run-other-0")) != first  # the same seq, another reply
    assert idempotency_key("", row()).startswith("kanmon-7-")
