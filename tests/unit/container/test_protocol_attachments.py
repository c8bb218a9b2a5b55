"""Output blocks that list files the agent wrote (``attachments``): parsed into :class:`AttachmentRef`s, or refused."""

from __future__ import annotations

from typing import Any

import pytest

from kanmon.container.events import AttachmentRef, Output
from kanmon.container.protocol import MAX_ATTACHMENTS, InvalidBlock, OutputParser, encode_block


def parse_one(value: dict[str, Any]) -> object:
    parser = OutputParser()
    [event] = parser.feed(encode_block(value)) + parser.close()
    return event


def test_a_block_lists_files_by_path_and_optional_name() -> None:
    event = parse_one(
        {
            "status": "ok",
            "result": "here",
            "attachments": [{"path": "out/chart.png", "name": "chart.png"}, {"path": "notes.txt"}],
        }
    )
    assert isinstance(event, Output)
    assert event.attachments == (AttachmentRef("out/chart.png", "chart.png"), AttachmentRef("notes.txt", None))


def test_a_block_with_files_and_no_text_is_still_deliverable() -> None:
    event = parse_one({"status": "ok", "result": None, "attachments": [{"path": "a.png"}]})
    assert isinstance(event, Output)
    assert event.text == ""
    assert event.deliverable


def test_a_block_without_attachments_has_none() -> None:
    event = parse_one({"status": "ok", "result": "x"})
    assert isinstance(event, Output)
    assert event.attachments == ()
    assert event.deliverable


@pytest.mark.parametrize(
    ("attachments", "reason"),
    [
        pytest.param("out/a.png", "attachments must be a list", id="not-a-list"),
        pytest.param(["out/a.png"], "attachments[0] must be an object", id="item-not-object"),
        pytest.param([{"name": "a"}], "attachments[0].path must be a non-empty string", id="no-path"),
        pytest.param([{"path": ""}], "attachments[0].path must be a non-empty string", id="empty-path"),
        pytest.param([{"path": 3}], "attachments[0].path must be a non-empty string", id="path-not-string"),
        pytest.param([{"path": "a", "name": 1}], "attachments[0].name must be a string", id="name-not-string"),
        pytest.param([{"path": "a"}] * (MAX_ATTACHMENTS + 1), f"at most {MAX_ATTACHMENTS} attachments", id="too-many"),
    ],
)
def test_a_malformed_attachment_list_makes_the_block_invalid(attachments: object, reason: str) -> None:
    event = parse_one({"status": "ok", "result": "x", "attachments": attachments})
    assert isinstance(event, InvalidBlock)
    assert reason in event.reason


def test_null_attachments_are_none() -> None:
    event = parse_one({"status": "ok", "result": "x", "attachments": None})
    assert isinstance(event, Output)
    assert event.attachments == ()
