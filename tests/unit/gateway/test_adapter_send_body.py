"""The ``/send`` body gated POSTs to a channel adapter carries what the adapter needs to place the reply."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kanmon.gateway.adapters import adapter_body
from kanmon.store import Message

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def outbound(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "seq": 7, "id": "out-7", "chat_jid": "matrix:!room:hs", "direction": "out", "sender": "", "sender_name": "",
        "content": "hi", "timestamp": NOW, "received_at": NOW, "verb": "message", "topic": "$root",
        "reply_to_id": "$asked", "reply_to_text": None, "reply_to_sender": None, "attachments": None,
        "forwarded_from": None, "is_bot_message": True, "origin": "gateway", "run_id": "r1", "output_index": 0,
        "delivery_status": "pending", "delivery_attempts": 0, "deliver_after": None, "delivery_error": None,
        "platform_message_id": None, "status": None,
    }  # fmt: skip
    return Message(**{**values, **fields})


async def test_the_body_names_the_thread_the_reply_and_the_key() -> None:
    assert await adapter_body(outbound(), "k1-7") == {
        "chat_jid": "matrix:!room:hs", "content": "hi", "format": "markdown", "reply_to": "$asked",
        "thread_id": "$root", "idempotency_key": "k1-7",
    }  # fmt: skip


async def test_a_reply_with_files_carries_them() -> None:
    files = [{"url": "mxc://hs/abc", "filename": "plot.png", "mime": "image/png"}]
    assert (await adapter_body(outbound(attachments=files), "k1-7"))["attachments"] == files
