"""The examples the OpenAPI document shows for the web chat's bodies and events (:mod:`kanmon.web.webchat`)."""

from __future__ import annotations

from pydantic.config import JsonDict

from kanmon.web.webchat_attachments import ATTACHMENT_EXAMPLE

__all__ = ["CHAT_EVENT_EXAMPLE", "ME_EXAMPLE", "POST_EXAMPLE", "TOPICS_EXAMPLE", "TOPIC_NAME_EXAMPLE"]

POST_EXAMPLE: JsonDict = {"content": "What is on the agenda today?", "topic": "t-3f9a"}
CHAT_EVENT_EXAMPLE: JsonDict = {
    "seq": 42,
    "id": "r-8",
    "direction": "out",
    "role": "assistant",
    "sender": "corp",
    "sender_name": "",
    "content": "Here is the chart.",
    "topic": "t-3f9a",
    "time": "2026-11-30T12:00:02+00:00",
    "attachments": [ATTACHMENT_EXAMPLE],
}
TOPICS_EXAMPLE: JsonDict = {
    "topics": [
        {
            "topic": "t-7c21",
            "name": "Next week",
            "last_seq": 0,
            "last_time": "2026-11-30T12:05:00+00:00",
            "messages": 0,
        },
        {"topic": "t-3f9a", "name": "", "last_seq": 42, "last_time": "2026-11-30T12:00:02+00:00", "messages": 2},
    ]
}
TOPIC_NAME_EXAMPLE: JsonDict = {"topic": "t-7c21", "name": "Next week"}
ME_EXAMPLE: JsonDict = {"sender": "web:anon-5d41402a", "name": "anon-5d41402a"}
