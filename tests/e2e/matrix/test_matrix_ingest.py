"""Every kind of Matrix message reaches gated as what it is: text, mentions, replies, threads, media, edits,
reactions, in rooms and in direct chats; notices and the bot's own messages do not.

arizuko's adapters dropped media (research/arizuko.md §6.8: the attachment was lost before the agent saw it) and
flattened replies; here each event is checked as gated stored it.
"""

from __future__ import annotations

import httpx
import pytest

from kanmon.store import Store
from tests.matrix_harness import CHANNEL_SECRET, Homeserver, Human, Stack, room_with_bot

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

AUTH_HEADER = {"Authorization": f"Bearer {CHANNEL_SECRET}"}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\0" * 40


async def test_every_message_kind_is_ingested_as_what_it_is(stack: Stack, alice: Human, synapse: Homeserver) -> None:
    bob = await Human.login(synapse, synapse.register("bob"))
    try:
        room = await room_with_bot(alice, stack, bob.user_id, name="team room")
        await bob.client.join(room)
        await alice.joined(room, bob.user_id)
        bot = stack.bot.user_id
        ids: dict[str, str] = {}
        ids["text"] = await alice.send(room, "plain words")
        ids["mention"] = await alice.send(
            room, {"msgtype": "m.text", "body": "bot, look", "m.mentions": {"user_ids": [bot]}}
        )
        ids["legacy_mention"] = await bob.send(room, f"hey {bot} are you there")
        ids["reply"] = await bob.send(
            room,
            {"msgtype": "m.text", "body": f"> <{alice.user_id}> plain words\n\nI agree",
             "m.relates_to": {"m.in_reply_to": {"event_id": ids["text"]}}},
        )  # fmt: skip
        ids["thread"] = await alice.send(
            room,
            {"msgtype": "m.text", "body": "threaded",
             "m.relates_to": {"rel_type": "m.thread", "event_id": ids["text"], "is_falling_back": True,
                              "m.in_reply_to": {"event_id": ids["text"]}}},
        )  # fmt: skip
        ids["emote"] = await alice.send(room, {"msgtype": "m.emote", "body": "waves"})
        mxc = await alice.upload(PNG, "image/png", "cat.png")
        ids["image"] = await alice.send(
            room, {"msgtype": "m.image", "body": "cat.png", "url": mxc, "info": {"mimetype": "image/png", "size": 57}}
        )
        ids["captioned"] = await alice.send(
            room, {"msgtype": "m.file", "body": "the report, see p. 2", "filename": "report.pdf", "url": mxc}
        )
        ids["edit"] = await alice.send(
            room,
            {"msgtype": "m.text", "body": "* plain words!",
             "m.new_content": {"msgtype": "m.text", "body": "plain words!"},
             "m.relates_to": {"rel_type": "m.replace", "event_id": ids["text"]}},
        )  # fmt: skip
        ids["react"] = await bob.send(
            room, {"m.relates_to": {"rel_type": "m.annotation", "event_id": ids["text"], "key": "👍"}}, "m.reaction"
        )
        notice = await alice.send(room, {"msgtype": "m.notice", "body": "I am a bot too"})

        dm = await alice.create_room(bot, direct=True)
        await alice.joined(dm, bot)
        ids["direct"] = await alice.send(dm, "just us")

        await stack.wait_stored(lambda rows: set(ids.values()) <= {r.id for r in rows}, "every kind stored")
        rows = {row.id: row for row in stack.messages("in")}
        jid = f"matrix:{room}"
        assert {rows[i].chat_jid for k, i in ids.items() if k != "direct"} == {jid}
        assert rows[ids["text"]].verb == "message" and rows[ids["text"]].content == "plain words"
        assert rows[ids["text"]].sender_name  # the display name from the room state
        assert rows[ids["mention"]].verb == "mention"
        assert rows[ids["legacy_mention"]].verb == "mention"
        reply = rows[ids["reply"]]
        assert (reply.content, reply.reply_to_id) == ("I agree", ids["text"])
        assert (reply.reply_to_text, reply.reply_to_sender) == ("plain words", alice.user_id)
        assert rows[ids["thread"]].topic == ids["text"] and rows[ids["thread"]].reply_to_id is None
        assert rows[ids["emote"]].content == "* waves"
        image = rows[ids["image"]]
        assert image.content == "[image: cat.png]"
        assert image.attachments is not None
        [attachment] = image.attachments
        assert attachment["kind"] == "image" and attachment["mxc"] == mxc
        assert (attachment["filename"], attachment["mime"], attachment["size"]) == ("cat.png", "image/png", 57)
        captioned = rows[ids["captioned"]]
        assert captioned.content == "the report, see p. 2"
        assert captioned.attachments and captioned.attachments[0]["filename"] == "report.pdf"
        assert (rows[ids["edit"]].verb, rows[ids["edit"]].content) == ("edit", "plain words!")
        react = rows[ids["react"]]
        assert (react.verb, react.content, react.reply_to_id) == ("react", "👍", ids["text"])
        assert notice not in rows  # notices are bots talking
        assert not [row for row in rows.values() if row.sender == bot]  # nor its own answers

        # the media URL serves the file to gated (with the channel secret), from the homeserver's content repository
        async with httpx.AsyncClient() as http:
            served = await http.get(attachment["url"], headers=AUTH_HEADER)
            assert served.status_code == 200 and served.content == PNG
            assert (await http.get(attachment["url"])).status_code == 401

        store = Store.open(f"sqlite:///{stack.data_dir / 'kanmon.db'}")
        try:
            group, direct = store.get_chat(jid), store.get_chat(f"matrix:{dm}")
        finally:
            store.close()
        assert group is not None and direct is not None
        assert (group.name, group.is_group, group.channel) == ("team room", True, "matrix")
        assert direct.is_group is False  # two members: a direct chat
        assert rows[ids["direct"]].content == "just us"
    finally:
        await bob.close()
