"""PII redaction (issue 16 item 5): pseudonyms are stable, distinct and carry no real id; the input document of a
redacted platform shows none of its real ids, whichever field or text holds one, and other platforms are untouched."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.container import PromptAttachment
from kanmon.gateway.privacy import MIN_TEXT_ID_CHARS, Privacy, Redactor
from kanmon.gateway.prompt import Batch, input_document, redactor, render_note
from kanmon.store import LaneHead, Message, NewMessage, Store
from kanmon.store.aio import AsyncStore

SALT = "0123456789abcdef-salt"
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
long_ids = st.text(st.characters(codec="utf-8"), min_size=MIN_TEXT_ID_CHARS, max_size=40)
salts = st.text(min_size=16, max_size=64)


@given(salts, ids)
def test_a_pseudonym_is_stable_across_instances(salt: str, real: str) -> None:
    assert Privacy(frozenset(), salt).user(real) == Privacy(frozenset(), salt).user(real)
    assert Privacy(frozenset(), salt).chat(f"telegram:{real}") == Privacy(frozenset(), salt).chat(f"telegram:{real}")


@given(salts, ids, ids)
def test_distinct_ids_get_distinct_pseudonyms(salt: str, one: str, other: str) -> None:
    privacy = Privacy(frozenset(), salt)
    assert (privacy.user(one) == privacy.user(other)) == (one == other)
    assert (privacy.chat(f"t:{one}") == privacy.chat(f"t:{other}")) == (one == other)
    assert privacy.user(one) != privacy.bare_chat(f"t:{one}")  # a person and a chat never look alike


@given(salts, salts, ids)
def test_another_salt_gives_another_pseudonym(salt: str, other: str, real: str) -> None:
    assert (Privacy(frozenset(), salt).user(real) == Privacy(frozenset(), other).user(real)) == (salt == other)


@given(salts, st.text(st.characters(codec="utf-8"), min_size=8, max_size=40))
def test_no_pseudonym_contains_the_real_id(salt: str, real: str) -> None:
    # 8 characters at least: a shorter id of hex digits could turn up among 16 random ones by chance (2e-9 at 8)
    privacy = Privacy(frozenset({"telegram"}), salt)
    jid = f"telegram:{real}"
    for shown in (privacy.user(real), privacy.bare_chat(jid)):
        assert real not in shown
    assert real not in privacy.chat(jid).removeprefix("telegram:")


@given(long_ids.filter(lambda real: real.strip() == real and "\x00" not in real), st.text(max_size=30))
def test_a_known_id_never_survives_in_a_text(real: str, around: str) -> None:
    redact = Redactor(Privacy(frozenset({"telegram"}), SALT))
    redact.know_sender(real)
    text = redact.text(f"{around} {real} {around}")
    assert f" {real} " not in text


def test_a_short_salt_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Privacy(frozenset({"telegram"}), "short")


def test_ids_inside_longer_words_and_ordinary_numbers_are_left_alone() -> None:
    redact = Redactor(Privacy(frozenset({"telegram"}), SALT))
    redact.know_sender("1234")
    assert redact.text("call 1234 at 12345 or x1234") == f"call {redact.sender('telegram:1', '1234')} at 12345 or x1234"
    assert redact.text("short ids like 42 stay") == "short ids like 42 stay"


def _row(seq: int, chat: str, sender: str, content: str, **extra: object) -> Message:
    fields: dict[str, object] = {
        "seq": seq, "id": f"m{seq}", "chat_jid": chat, "direction": "in", "sender": sender, "sender_name": "Alice",
        "content": content, "timestamp": T0, "received_at": T0, "verb": "message", "topic": "", "reply_to_id": None,
        "reply_to_text": None, "reply_to_sender": None, "attachments": None, "forwarded_from": None,
        "is_bot_message": False, "origin": "adapter", "run_id": None, "output_index": None, "delivery_status": None,
        "delivery_attempts": 0, "deliver_after": None, "delivery_error": None, "platform_message_id": None,
        "status": "new",
    }  # fmt: skip
    fields.update(extra)
    return Message(**fields)  # type: ignore[arg-type]


async def _document(store: Store, rows: list[Message], privacy: Privacy | None, **extra: object) -> dict[str, object]:
    head = LaneHead("corp", rows[0].chat_jid, "", rows[0].forwarded_from, rows[0].seq, len(rows))
    batch = Batch(head, rows)
    db = AsyncStore(store)
    try:
        redact = await redactor(db, batch, privacy)
    finally:
        db.close()
    document = input_document(
        batch, folder="corp", run_id="r1", session_id=None, now=T0, assistant_name="kanmon", secrets={},
        redact=redact, **extra,  # type: ignore[arg-type]
    )  # fmt: skip
    return document.to_dict()


async def test_every_field_of_a_redacted_platforms_document_loses_its_real_ids(store: Store) -> None:
    privacy = Privacy(frozenset({"telegram"}), SALT, names=True)
    rows = [
        _row(1, "telegram:-1007", "88880001", "hello from 88880001 in telegram:-1007", reply_to_id="q-99990002",
             reply_to_sender="99990002"),
        _row(2, "local:corp", "77770003", "delegated", forwarded_from="telegram:-1007"),
    ]  # fmt: skip
    files = {1: [PromptAttachment(name="scan-88880001.pdf", mime="application/pdf", error="88880001 sent nothing")]}
    note = render_note("gateway", "note", "88880001 asked about telegram:-1007 and telegram:555666")
    # someone who wrote in the chat before: a system message names them though no row of the batch does
    store.put_message(NewMessage(chat_jid="telegram:-1007", content="earlier", sender="66660004"))
    note += render_note("gateway", "note", "66660004 was here before")
    document = await _document(store, rows, privacy, files=files, notes=[note])
    shown = json.dumps(document)
    for real in ("88880001", "99990002", "77770003", "66660004", "-1007", "555666", "Alice"):
        assert real not in shown
    assert document["chatJid"] == privacy.chat("telegram:-1007")
    assert document["sender"] == privacy.user("77770003")
    assert privacy.chat("telegram:555666") in shown  # a chat no row carries, named in a system message


async def test_a_platform_not_listed_is_shown_as_it_is(store: Store) -> None:
    privacy = Privacy(frozenset({"telegram"}), SALT)
    rows = [_row(1, "matrix:!room:example.org", "@bob:example.org", "hi @bob:example.org")]
    plain = await _document(store, rows, None, notes=[])
    assert await _document(store, rows, privacy, notes=[]) == plain
    assert "@bob:example.org" in json.dumps(plain)
