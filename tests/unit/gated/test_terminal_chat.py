"""``gated chat`` on a terminal: a reply arriving while the ``you>`` prompt waits is printed above it, the prompt
shown again; Ctrl-D says what happens next (issue 18 item 2)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.gated.terminal import Prompt, TerminalChat
from kanmon.store import Group, NewMessage, PutResult, Store, upgrade
from kanmon.store.aio import AsyncStore

CLEAR = "\r\x1b[K"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'kanmon.db'}")
    upgrade(store.engine)
    store.add_group(Group(folder="corp"))
    yield store
    store.close()


def test_a_line_is_printed_plainly_while_no_prompt_is_shown() -> None:
    screen = io.StringIO()
    Prompt("you> ", stream=screen).print_above("corp> hi")
    assert screen.getvalue() == "corp> hi\n"


def test_a_line_goes_above_the_prompt_which_is_shown_again() -> None:
    screen = io.StringIO()
    Prompt("you> ", stream=screen, shown=True).print_above("corp> hi")
    assert screen.getvalue() == f"{CLEAR}corp> hi\nyou> "


async def test_replies_and_the_end_of_input_notice_go_above_the_prompt(store: Store) -> None:
    screen = io.StringIO()
    prompt = Prompt("you> ", stream=screen, shown=True)  # the user is at the prompt the whole time
    db = AsyncStore(store)

    async def answer(new: NewMessage) -> PutResult:
        """The gateway, at once: the message is stored, answered and consumed."""
        put = store.put_message(new)
        reply = NewMessage(chat_jid=new.chat_jid, topic=new.topic, content=f"echo: {new.content}", direction="out")
        store.put_message(reply)
        store.mark_messages([put.message.seq], "done")
        return put

    chat = TerminalChat(db, "corp", put=answer, output=screen, prompt=prompt, reply_timeout=5.0)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ("hello", None):
        lines.put_nowait(line)
    assert await chat.run(lines) == 0
    printed = screen.getvalue()
    assert f"{CLEAR}corp> echo: hello\nyou> " in printed
    assert "you> corp>" not in printed


async def test_ctrl_d_with_replies_due_says_it_waits_for_them(store: Store) -> None:
    screen = io.StringIO()
    chat = TerminalChat(
        AsyncStore(store), "corp", output=screen, prompt=Prompt("you> ", stream=screen), reply_timeout=0.2
    )
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ("anyone?", None):
        lines.put_nowait(line)
    assert await chat.run(lines) == 1  # nobody runs gated here
    assert screen.getvalue().splitlines() == [
        "(end of input: waiting up to 0.2s for the replies still due)",
        "(no reply yet to 1 message(s); is gated running?)",
    ]


async def test_a_status_line_but_no_answer_in_time_does_not_ask_whether_gated_runs(store: Store) -> None:
    """A newcomer's report: after a ⏳ line (so gated was plainly running) it still asked 'is gated running?'."""
    screen = io.StringIO()

    async def working(new: NewMessage) -> PutResult:
        """The gateway, still working: a status line came, the message is not consumed yet."""
        put = store.put_message(new)
        store.put_message(NewMessage(chat_jid=new.chat_jid, topic=new.topic, content="⏳ thinking", direction="out"))
        return put

    chat = TerminalChat(AsyncStore(store), "corp", put=working, output=screen, reply_timeout=0.2)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ("hard question", None):
        lines.put_nowait(line)
    assert await chat.run(lines) == 1
    printed = screen.getvalue().splitlines()
    assert printed[0] == "corp> ⏳ thinking"
    assert "is gated running" not in printed[-1] and "has not finished with 1 message(s) in 0.2s" in printed[-1]
