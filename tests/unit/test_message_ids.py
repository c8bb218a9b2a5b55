"""The ids gated derives for its own rows (kanmon.message_ids): every one in the reserved namespace, each in the very
form gated wrote before the namespace was named (so rows stored then are found again), and nothing else reserved."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanmon.gateway.actions import action_id
from kanmon.gateway.budget import notice_id as budget_notice_id
from kanmon.gateway.context import reply_id
from kanmon.gateway.onboarding import repost_id as onboard_repost_id
from kanmon.gateway.schedule import occurrence_id
from kanmon.gateway.session_reset import notice_id as reset_notice_id
from kanmon.gateway.watch import output_id
from kanmon.message_ids import DERIVED_PREFIXES, derived_id, derived_id_problem, is_derived
from kanmon.store import Message

NOW = dt.datetime(2026, 1, 2, 9, 30, tzinfo=dt.UTC)
ROW = Message(
    seq=7, id="42", chat_jid="telegram:1", direction="in", sender="telegram:2", sender_name="", content="/ping",
    timestamp=NOW, received_at=NOW, verb="message", topic="", reply_to_id=None, reply_to_text=None,
    reply_to_sender=None, attachments=None, forwarded_from=None, is_bot_message=False, origin="adapter:tg",
    run_id=None, output_index=None, delivery_status=None, delivery_attempts=0, deliver_after=None,
    delivery_error=None, platform_message_id=None, status="new",
)  # fmt: skip

# each derived id as gated builds it now, and as it spelled it before kanmon.message_ids existed
FORMS = [
    (reply_id(ROW), "gw-reply-42"),
    (output_id("20260102093000-0a1b2c3d", 3), "run-20260102093000-0a1b2c3d-3"),
    (action_id("20260102093000-0a1b2c3d", 3, 1), "run-20260102093000-0a1b2c3d-3-a1"),
    (budget_notice_id("corp/eng", "2026-01-02"), "budget-corp/eng-2026-01-02"),
    (onboard_repost_id(7), "onboard-7"),
    (occurrence_id(5, NOW), "task:5:2026-01-02T09:30:00Z"),
    (occurrence_id(5, NOW, manual=True), "task:5:manual:2026-01-02T09:30:00Z"),
    (reset_notice_id("s" * 300), ("reset-" + "s" * 300)[:200]),
]


@pytest.mark.parametrize(("built", "before"), FORMS)
def test_a_derived_id_keeps_its_old_form_and_is_reserved(built: str, before: str) -> None:
    assert built == before
    assert is_derived(built) and derived_id_problem(built) is not None


def test_the_problem_is_one_line_naming_the_id_and_the_namespace() -> None:
    problem = derived_id_problem("gw-reply-42")
    assert problem is not None and "\n" not in problem
    assert "'gw-reply-42' is an id kanmon derives" in problem and all(p in problem for p in DERIVED_PREFIXES)


def test_a_new_kind_of_derived_id_must_be_reserved_first() -> None:
    with pytest.raises(ValueError, match="not a prefix of derived message ids"):
        derived_id("mine-", 1)


@given(st.text(max_size=30))
def test_an_id_is_refused_exactly_when_it_is_in_the_namespace(message_id: str) -> None:
    reserved = any(message_id.startswith(prefix) for prefix in DERIVED_PREFIXES)
    assert is_derived(message_id) is reserved
    assert (derived_id_problem(message_id) is not None) is reserved


@pytest.mark.parametrize("platform_id", ["42", "42:edit:7", "42:react:9", "$event:hs", "3EB0A1", "tg-1", "GW-reply-1"])
def test_the_ids_platforms_give_are_not_reserved(platform_id: str) -> None:
    # Telegram's (with the edit and reaction forms kanmon's adapter sends), Matrix's, WhatsApp's, the tests' own
    assert not is_derived(platform_id)


def test_the_adapter_protocol_names_every_reserved_prefix() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "adapter-protocol.md").read_text(encoding="utf-8")
    assert [prefix for prefix in DERIVED_PREFIXES if f"`{prefix}`" not in doc] == []
