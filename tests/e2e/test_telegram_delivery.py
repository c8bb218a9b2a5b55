"""Replies out to Telegram: threaded, split, HTML with a plain fallback, 429 honoured, files, typing, never twice.

The adapter's ``/send`` is called as gated calls it (and, in the first test, by gated itself after the echo agent
answered); the fake Bot API checks every request as Telegram would (its HTML, length, thread and reply target).
"""

from __future__ import annotations

import asyncio
import errno
import re
from pathlib import Path

import pytest

from kanmon.adapters.state import AdapterState, SentPart
from tests.e2e.telegram_world import telegram_world
from tests.telegram_fake import message, running_fake, user

pytestmark = pytest.mark.slow
ANN = user(42, "Ann")


async def test_an_agent_reply_goes_back_to_the_topic_it_came_from_in_reply_to_it(tmp_path: Path) -> None:
    with running_fake() as fake:
        forum = fake.chat(-1002, "supergroup", title="Forum", forum=True)
        private = fake.chat(42)
        fake.add_update(message=message(forum, 11, ANN, "in the topic", message_thread_id=10, is_topic_message=True))
        fake.add_update(message=message(private, 12, ANN, "in private"))
        async with telegram_world(tmp_path, fake) as w:
            sent = await w.until(lambda: len(fake.sent_messages()) == 2 and fake.sent_messages(), "two replies")
            by_text = {reply["text"]: reply for reply in sent}
            topic = by_text["echo: in the topic"]["params"]
            assert topic["message_thread_id"] == 10 and topic["reply_parameters"]["message_id"] == 11
            assert topic["parse_mode"] == "HTML"
            dm = by_text["echo: in private"]["params"]
            assert "message_thread_id" not in dm and dm["reply_parameters"]["message_id"] == 12
            await w.h.wait_for(
                lambda: [r.delivery_status for r in w.h.outbound() if r.run_id] == ["sent", "sent"], "sent rows"
            )
            ids = {row.content: row.platform_message_id for row in w.h.outbound() if row.run_id}
            assert ids["echo: in private"] == str(by_text["echo: in private"]["message_id"])


async def test_a_long_reply_is_split_formatted_and_only_its_first_part_replies(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(-1002, "supergroup", forum=True)
        async with telegram_world(tmp_path, fake, routes=False) as w:
            code = "```python\n" + "\n".join(f"value_{n} = {n} * 2  # <{n}> & co" for n in range(150)) + "\n```"
            prose = "\n\n".join(f"**Part {n}.** " + "Some words here. " * 40 for n in range(8))
            text = f"{prose}\n\n{code}\n\nThe end."
            answer = await w.send({"chat_jid": "telegram:-1002", "content": text, "reply_to": "5", "thread_id": "10"})
            assert answer.status_code == 200, answer.text
            sent = fake.sent_messages()
            assert len(sent) >= 3
            assert answer.json() == {"ok": True, "id": str(sent[0]["message_id"])}
            assert all(part["params"]["parse_mode"] == "HTML" for part in sent)  # every part valid Telegram HTML
            assert all(part["params"]["message_thread_id"] == 10 for part in sent)
            assert sent[0]["params"]["reply_parameters"]["message_id"] == 5
            assert all("reply_parameters" not in part["params"] for part in sent[1:])
            visible = "".join(part["text"] for part in sent)
            assert "**" not in visible and "Part 7." in visible  # Markdown became entities
            assert "<b>Part 0.</b>" in sent[0]["params"]["text"]
            code_lines = re.findall(r"value_\d+ = \d+ \* 2  # <\d+> & co", visible)
            assert len(code_lines) == 150  # every line of code arrived whole, once
            assert visible.rstrip().endswith("The end.")


async def test_html_telegram_refuses_is_sent_again_as_plain_text(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(42)
        fake.refuse_entities = "<b>tricky</b>"  # Telegram refuses these entities (as it may for any)
        async with telegram_world(tmp_path, fake, routes=False) as w:
            answer = await w.send({"chat_jid": "telegram:42", "content": "a **tricky** one", "reply_to": "3"})
            assert answer.status_code == 200, answer.text
            first, second = fake.calls_of("sendMessage")
            assert first.status == 400 and first.params["parse_mode"] == "HTML"
            assert second.status == 200 and "parse_mode" not in second.params
            assert second.params["text"] == "a **tricky** one"  # the Markdown as written: nothing but formatting lost
            assert second.params["reply_parameters"]["message_id"] == 3
            assert [m["text"] for m in fake.sent_messages()] == ["a **tricky** one"]


async def test_a_short_429_is_waited_out_for_its_retry_after(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(42)
        fake.flood("sendMessage", 1)
        async with telegram_world(tmp_path, fake, routes=False) as w:
            answer = await w.send({"chat_jid": "telegram:42", "content": "after the flood"}, key="k-1")
            assert answer.status_code == 200
            refused, accepted = fake.calls_of("sendMessage")
            assert refused.status == 429 and accepted.status == 200
            assert accepted.at - refused.at >= 1.0  # not before retry_after had passed


async def test_a_long_429_is_handed_back_and_the_retry_resumes_at_the_next_part(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(42)
        async with telegram_world(tmp_path, fake, routes=False, max_inline_wait=0.5) as w:
            text = "A" * 4000 + "\n\n" + "B" * 4000 + "\n\n" + "C" * 100
            fake.flood("sendMessage", 2, after=1)  # after the first part: longer than the adapter waits inline
            answer = await w.send({"chat_jid": "telegram:42", "content": text}, key="k-2")
            assert answer.status_code == 429 and answer.headers["Retry-After"] == "2"
            assert [m["text"][0] for m in fake.sent_messages()] == ["A"]
            early = await w.send({"chat_jid": "telegram:42", "content": text}, key="k-2")
            assert early.status_code == 429  # still within retry_after: Telegram is not even asked
            calls = len(fake.calls_of("sendMessage"))
            await asyncio.sleep(2.1)
            answer = await w.send({"chat_jid": "telegram:42", "content": text}, key="k-2")
            assert answer.status_code == 200
            assert [m["text"][0] for m in fake.sent_messages()] == ["A", "B", "C"]  # A was not posted again
            assert len(fake.calls_of("sendMessage")) == calls + 2


async def test_a_retried_send_is_posted_once_even_across_a_restart(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(42)
        body = {"chat_jid": "telegram:42", "content": "only once", "idempotency_key": "body-key"}
        async with telegram_world(tmp_path, fake, routes=False) as w:
            first = await w.send(body, key="kanmon-7")
            again = await w.send(body, key="kanmon-7")
            concurrent = await asyncio.gather(*(w.send(body, key="kanmon-8") for _ in range(3)))
            assert first.json() == again.json()
            assert len({answer.json()["id"] for answer in concurrent}) == 1
            by_body = await w.send(body)  # no header: the body's key
            assert by_body.status_code == 200
        assert len(fake.sent_messages()) == 3
        async with telegram_world(tmp_path, fake, routes=False) as w:  # the adapter restarted: its journal did not
            after = await w.send(body, key="kanmon-7")
            assert after.json() == first.json()
        assert len(fake.sent_messages()) == 3


async def test_a_journal_that_cannot_be_written_never_makes_a_retry_post_the_reply_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: Telegram took the part, the journal write failed. Before, the adapter answered 500, gated tried
    again with the same key, and the reply was posted again on every try (an outside review)."""

    def full(self: AdapterState, key: str, part: SentPart, at: float) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with running_fake() as fake:
        fake.chat(42)
        body = {"chat_jid": "telegram:42", "content": "only once", "idempotency_key": "kanmon-7"}
        async with telegram_world(tmp_path, fake, routes=False) as w:
            monkeypatch.setattr(AdapterState, "_append", full)  # the journal's write to disk
            answers = [await w.send(body, key="kanmon-7") for _ in range(4)]
            assert [answer.status_code for answer in answers] == [200] * 4  # it was posted: said so
            assert len({answer.json()["id"] for answer in answers}) == 1
        assert [posted["text"] for posted in fake.sent_messages()] == ["only once"]


async def test_typing_shows_while_the_agent_works_and_stops_with_the_reply(tmp_path: Path) -> None:
    with running_fake() as fake:
        private = fake.chat(42)
        fake.chat(-1001, "supergroup")
        async with telegram_world(tmp_path, fake, routes=False, typing_limit=30.0) as w:
            fake.add_update(message=message(private, 1, ANN, "are you there?"))
            await w.until(lambda: fake.calls_of("sendChatAction"), "a typing action")
            assert fake.calls_of("sendChatAction")[0].params == {"chat_id": 42, "action": "typing"}
            await w.send({"chat_jid": "telegram:42", "content": "yes"})
            await asyncio.sleep(0.2)
            count = len(fake.calls_of("sendChatAction"))
            await asyncio.sleep(5)
            assert len(fake.calls_of("sendChatAction")) == count  # stopped by the reply


async def test_a_topic_that_is_no_telegram_thread_is_not_sent_as_one(tmp_path: Path) -> None:
    with running_fake() as fake:
        fake.chat(-1001, "supergroup")
        async with telegram_world(tmp_path, fake, routes=False) as w:
            answer = await w.send({"chat_jid": "telegram:-1001", "content": "x", "thread_id": "#support"})
            assert answer.status_code == 200  # a kanmon topic (#support) names no Telegram thread: the chat itself
            assert "message_thread_id" not in fake.sent_messages()[0]["params"]
            refused = await w.send({"chat_jid": "telegram:-1001", "content": "x", "thread_id": "10"})
            assert refused.status_code == 422  # Telegram: this group has no topic 10; gated marks the row failed


@pytest.mark.parametrize(
    ("body", "secret", "status"),
    [
        ({"chat_jid": "telegram:42", "content": "x"}, "wrong", 401),
        ({"chat_jid": "discord:42", "content": "x"}, None, 400),
        ({"chat_jid": "telegram:abc", "content": "x"}, None, 400),
        ({"chat_jid": "telegram:777", "content": "x"}, None, 422),  # Telegram: chat not found
        ({"chat_jid": "telegram:42", "content": "  "}, None, 422),
    ],
)
async def test_bad_sends_are_refused_with_a_status_gated_understands(
    tmp_path: Path, body: dict[str, str], secret: str | None, status: int
) -> None:
    with running_fake() as fake:
        fake.chat(42)
        async with telegram_world(tmp_path, fake, routes=False) as w:
            answer = await (w.send(body) if secret is None else w.send(body, secret=secret))
            assert answer.status_code == status, answer.text
            assert fake.sent_messages() == []
