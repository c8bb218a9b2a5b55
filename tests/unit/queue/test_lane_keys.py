"""Lanes (SPEC §2): chat JIDs share their folder's lane, web JIDs get one lane per topic."""

from __future__ import annotations

import pytest

from kanmon.queue import Lane, lane_for


@pytest.mark.parametrize(
    ("folder", "jid", "topic", "expected"),
    [
        pytest.param("support", "telegram:-1001234", "", Lane("support"), id="telegram-is-per-folder"),
        pytest.param("support", "discord:8812", "thread-9", Lane("support"), id="chat-topics-share-the-folder"),
        pytest.param("corp/eng", "local:corp/eng", "", Lane("corp/eng"), id="local-is-per-folder"),
        pytest.param("support", "web:support", "", Lane("support"), id="web-default-topic-is-the-folders-session"),
        pytest.param("support", "web:support", "billing", Lane("support", "billing"), id="web-named-topic"),
        pytest.param("support", "web:support", "#ops", Lane("support"), id="web-hash-topic-is-the-folders-session"),
        pytest.param("support", "telegram:-1001234", "#ops", Lane("support"), id="chat-hash-topic"),
    ],
)
def test_lane_for_keys_chats_by_folder_and_web_by_folder_and_topic(
    folder: str, jid: str, topic: str, expected: Lane
) -> None:
    assert lane_for(folder, jid, topic) == expected


def test_a_web_topic_lane_is_not_its_folders_chat_lane() -> None:
    assert lane_for("support", "web:support", "billing") != lane_for("support", "telegram:1")


def test_the_web_default_topic_shares_the_folders_lane_because_it_shares_its_session() -> None:
    # session (support, '') is resumed by both: two runs at once would resume one session twice
    assert lane_for("support", "web:support", "") == lane_for("support", "telegram:1")


@pytest.mark.parametrize("topic", ["#ops", "#a", "#"])
def test_a_hash_topic_is_one_lane_whichever_chat_uses_it_because_it_is_one_session(topic: str) -> None:
    # `#ops` (a prefix or a sticky topic, SPEC §6) is the group's session (support, '#ops') in every chat: a web chat
    # and a Telegram chat of the folder both using it ran two runs on it at once, one of them in the web topic's lane
    assert lane_for("support", "web:support", topic) == lane_for("support", "telegram:1", topic) == Lane("support")


def test_only_the_platform_before_the_first_colon_decides() -> None:
    assert lane_for("support", "webhook:web:support", "a") == Lane("support")


def test_lanes_print_as_folder_or_folder_hash_topic() -> None:
    assert str(Lane("corp/eng")) == "corp/eng"
    assert str(Lane("support", "billing")) == "support#billing"


def test_lanes_are_hashable_values() -> None:
    assert {Lane("a"), Lane("a"), Lane("a", "t")} == {Lane("a"), Lane("a", "t")}
