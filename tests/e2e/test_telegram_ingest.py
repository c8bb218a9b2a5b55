"""Every kind of Telegram update reaches gated's store as the message it is, through the adapter and gated's API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from kanmon.store import Message
from tests.e2e.telegram_world import SECRET, telegram_world
from tests.telegram_fake import BOT, message, running_fake, user

pytestmark = pytest.mark.slow
ANN = user(42, "Ann", last_name="Lee", username="ann")
BOB = user(43, "Bob")


def rows(h: object, jid: str) -> dict[str, Message]:
    return {row.id: row for row in h.inbound(jid)}  # type: ignore[attr-defined]


async def test_every_message_kind_is_stored_as_what_it_is(tmp_path: Path) -> None:
    with running_fake() as fake:
        private = fake.chat(42, "private", title="Ann")
        group = fake.chat(-1001, "supergroup", title="Team")
        forum = fake.chat(-1002, "supergroup", title="Forum", forum=True)
        fake.add_update(message=message(private, 1, ANN, "hello there"))
        fake.add_update(
            message=message(
                group, 2, ANN, caption="look at this", photo=[
                    {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 100},
                    {"file_id": "big", "file_unique_id": "b", "width": 900, "height": 900, "file_size": 9000},
                ],
            )
        )  # fmt: skip
        fake.add_update(message=message(group, 3, BOB, "a reply", reply_to_message=message(group, 2, ANN, "orig")))
        topic_start = message(forum, 10, ANN, forum_topic_created={"name": "Plans", "icon_color": 1})
        fake.add_update(
            message=message(forum, 11, ANN, "in the topic", message_thread_id=10, is_topic_message=True,
                            reply_to_message=topic_start)
        )  # fmt: skip
        fake.add_update(message=message(group, 4, BOB, "thread but no forum", message_thread_id=3))
        fake.add_update(
            message=message(group, 5, ANN, "@kanmon_test_bot what's up", entities=[
                {"type": "mention", "offset": 0, "length": 16}])
        )  # fmt: skip
        fake.add_update(
            message=message(group, 6, ANN, "/ping@kanmon_test_bot", entities=[
                {"type": "bot_command", "offset": 0, "length": 21}])
        )  # fmt: skip
        fake.add_update(message=message(group, 7, BOB, "to the bot", reply_to_message=message(group, 99, BOT, "hi")))
        fake.add_update(
            message=message(private, 8, ANN, document={
                "file_id": "doc1", "file_unique_id": "d1", "file_name": "report.pdf", "mime_type": "application/pdf",
                "file_size": 1234})
        )  # fmt: skip
        fake.add_update(
            message=message(private, 9, ANN, voice={
                "file_id": "v1", "file_unique_id": "v1u", "duration": 3, "mime_type": "audio/ogg", "file_size": 50})
        )  # fmt: skip
        edit = fake.add_update(
            edited_message=message(private, 1, ANN, "hello there (edited)", edit_date=int(time.time()))
        )
        react = fake.add_update(
            message_reaction={
                "chat": group, "message_id": 2, "user": BOB, "date": int(time.time()),
                "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}],
            }
        )  # fmt: skip
        last = fake.add_update(message=message(group, 12, ANN, new_chat_members=[BOB]))  # a service message
        fake.add_file("v1", "voice/file_1.oga", b"OggS-voice-bytes")

        async with telegram_world(tmp_path, fake, routes=False) as w:
            await w.until(lambda: fake.confirmed > last or (fake.pending() == 0 and len(w.h.inbound()) >= 12), "ingest")
            await w.until(lambda: len(w.h.inbound()) == 12, "12 stored messages")
            dm, team, topic = rows(w.h, "telegram:42"), rows(w.h, "telegram:-1001"), rows(w.h, "telegram:-1002")

            hello = dm["1"]
            assert (hello.content, hello.sender, hello.sender_name, hello.verb, hello.topic) == (
                "hello there",
                "telegram:42",
                "Ann Lee",
                "message",
                "",
            )
            assert hello.origin == "adapter:telegram"
            assert w.h.store.get_chat("telegram:42").is_group is False  # type: ignore[union-attr]
            assert w.h.store.get_chat("telegram:-1001").is_group is True  # type: ignore[union-attr]
            assert w.h.store.get_chat("telegram:-1001").name == "Team"  # type: ignore[union-attr]

            photo = team["2"]
            assert photo.content == "[Photo] look at this"
            (attachment,) = photo.attachments or []
            assert attachment["type"] == "photo" and attachment["file_id"] == "big"  # the largest size
            assert attachment["url"] == f"{w.adapter_url}/files/big"
            assert attachment["mime_type"] == "image/jpeg" and attachment["width"] == 900

            reply = team["3"]
            assert (reply.reply_to_id, reply.reply_to_text, reply.reply_to_sender) == ("2", "orig", "telegram:42")

            in_topic = topic["11"]
            assert in_topic.topic == "10" and in_topic.reply_to_id is None  # the topic's creation is no reply
            assert team["4"].topic == ""  # a reply thread in an ordinary supergroup is not a topic

            assert (team["5"].verb, team["5"].content) == ("mention", "@kanmon_test_bot what's up")
            assert (team["6"].verb, team["6"].content) == ("mention", "/ping@kanmon_test_bot")  # unchanged
            assert team["7"].verb == "mention" and team["7"].reply_to_sender == "telegram:999"

            document = dm["8"]
            assert document.content == "[Document: report.pdf]"
            assert document.attachments == [{
                "type": "document", "file_id": "doc1", "file_unique_id": "d1", "mime_type": "application/pdf",
                "filename": "report.pdf", "file_size": 1234, "url": f"{w.adapter_url}/files/doc1"}]  # fmt: skip
            voice = dm["9"]
            assert voice.content == "[Voice message]" and voice.attachments[0]["duration"] == 3  # type: ignore[index]

            edited = dm[f"1:edit:{edit}"]
            assert (edited.verb, edited.content, edited.reply_to_id) == ("edit", "hello there (edited)", "1")
            reaction = team[f"2:react:{react}"]
            assert (reaction.verb, reaction.content, reaction.reply_to_id, reaction.sender) == (
                "react",
                "👍",
                "2",
                "telegram:43",
            )

            # the attachment's URL serves the file, fetched from the Bot API, to whoever has the channel secret
            async with httpx.AsyncClient() as client:
                got = await client.get(voice.attachments[0]["url"], headers={"Authorization": f"Bearer {SECRET}"})  # type: ignore[index]
                assert got.status_code == 200 and got.content == b"OggS-voice-bytes"
                refused = await client.get(voice.attachments[0]["url"])  # type: ignore[index]
                assert refused.status_code == 401
            await w.until(lambda: fake.confirmed > last, "every update to be confirmed to Telegram")
            assert json.loads((w.state_dir / "offset").read_text()) == {"bot": BOT["id"], "offset": last + 1}


async def test_a_new_bot_on_the_old_bots_state_directory_misses_none_of_its_updates(tmp_path: Path) -> None:
    # update ids are each bot's own sequence: the offset one bot saved means nothing to another, and handed to the
    # new bot's getUpdates it confirms (drops) every update of that bot below it, now and until its ids pass it
    with running_fake() as old:
        old.start_updates_at(5000)
        last = old.add_update(message=message(old.chat(42), 1, ANN, "to the old bot"))
        async with telegram_world(tmp_path, old) as w:
            await w.until(lambda: old.confirmed > last, "the old bot's update to be confirmed")
    with running_fake() as new:  # another token, another bot; its update ids start low
        new.token, new.bot = "2002:another-bot-token", {**BOT, "id": 2002, "username": "kanmon_other_bot"}
        new.add_update(message=message(new.chat(42), 2, ANN, "to the new bot"))
        async with telegram_world(tmp_path, new) as w:
            await w.until(lambda: "2" in rows(w.h, "telegram:42"), "the new bot's message stored")
            assert rows(w.h, "telegram:42")["2"].content == "to the new bot"
            await w.until(lambda: new.confirmed > 1, "the new bot's update to be confirmed")
            saved = new.confirmed
    with running_fake() as same:  # the new bot again, restarted: it resumes at its own offset, nothing again
        same.token, same.bot = new.token, new.bot
        same.start_updates_at(saved)
        later = same.add_update(message=message(same.chat(42), 3, ANN, "later"))
        async with telegram_world(tmp_path, same) as w:
            await w.until(lambda: "3" in rows(w.h, "telegram:42"), "the later message stored")
            assert same.calls_of("getUpdates")[0].params["offset"] == saved == later
