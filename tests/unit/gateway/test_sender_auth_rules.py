"""The pure rules of sender authorisation and pairing codes (issue 16 item 1), with hypothesis where they parse."""

from __future__ import annotations

import datetime as dt
import random
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.gateway.auth import AuthConfig, is_allowed, refusal
from kanmon.gateway.pairing import ALPHABET, CODE_LENGTH, PairingError, code_hash, new_code, normalise_code
from kanmon.router.glob import glob_match
from kanmon.store import AllowEntry, Chat, Message
from kanmon.store.auth import literal_glob

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
codes = st.text(alphabet=ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH)


def entry(pattern: str, platform: str = "", folder: str = "") -> AllowEntry:
    return AllowEntry(id=1, platform=platform, folder=folder, pattern=pattern, note="", added_at=NOW)


def message(sender: str, chat: str = "tg:1", origin: str = "adapter:tg") -> Message:
    return Message(
        seq=1, id="m", chat_jid=chat, direction="in", sender=sender, sender_name="", content="hi", timestamp=NOW,
        received_at=NOW, verb="message", topic="", reply_to_id=None, reply_to_text=None, reply_to_sender=None,
        attachments=None, forwarded_from=None, is_bot_message=False, origin=origin, run_id=None, output_index=None,
        delivery_status=None, delivery_attempts=0, deliver_after=None, delivery_error=None, platform_message_id=None,
        status="new",
    )  # fmt: skip


@given(st.text(min_size=1), st.text(min_size=1))
def test_a_paired_sender_s_glob_matches_that_sender_only(sender: str, other: str) -> None:
    pattern = literal_glob(sender)
    assert glob_match(pattern, sender)
    assert glob_match(pattern, other) == (other == sender)


@given(codes, st.lists(st.sampled_from([" ", "-"]), max_size=3), st.booleans())
def test_typed_codes_are_normalised(code: str, separators: list[str], lower: bool) -> None:
    typed = code[:4] + "".join(separators) + code[4:]
    assert normalise_code(typed.lower() if lower else typed) == code


@given(st.text())
def test_anything_else_is_not_a_code(text: str) -> None:
    cleaned = text.replace(" ", "").replace("-", "").upper()
    if len(cleaned) == CODE_LENGTH and all(ch in ALPHABET for ch in cleaned):
        return
    with pytest.raises(PairingError):
        normalise_code(text)


def test_codes_come_from_the_injected_source_and_avoid_look_alikes() -> None:
    assert new_code(random.Random(1)) == new_code(random.Random(1))
    made = {new_code(random.Random(seed)) for seed in range(200)}
    assert len(made) == 200
    assert not set("".join(made)) & set("01OI")
    assert code_hash("salt", "ABCDEFGH") != code_hash("pepper", "ABCDEFGH")


def test_entries_apply_by_platform_and_group() -> None:
    entries = [entry("tg:1*", platform="tg"), entry("mx:*", folder="corp"), entry("*")]
    assert is_allowed(entries, platform="tg", folder="main", sender="tg:12")
    assert not is_allowed(entries[:2], platform="mx", folder="main", sender="tg:12")
    assert is_allowed(entries[:2], platform="mx", folder="corp", sender="mx:@a")
    assert not is_allowed(entries[:2], platform="mx", folder="main", sender="mx:@a")
    assert not is_allowed(entries, platform="tg", folder="main", sender="")  # no sender id: never allowed
    assert not is_allowed([entry("*")], platform="mx", folder="main", sender="@a:server/x")  # * stops at /


def test_platform_overrides_and_direct_chats() -> None:
    config = AuthConfig(mode="open", platforms=MappingProxyType({"tg": "allowlist"}))
    dm = Chat(jid="tg:1", channel="tg", is_group=False)
    assert refusal(message("mx:a", chat="mx:1"), config, [], "main", None) is None  # mx is open
    refused = refusal(message("tg:a"), config, [], "main", dm)
    assert refused is not None and refused.direct
    undescribed = refusal(message("tg:a"), config, [], "main", None)
    assert undescribed is not None and not undescribed.direct
    assert refusal(message("tg:a", origin="web"), config, [], "main", dm) is None
    assert not config.everyone_allowed and AuthConfig().everyone_allowed
