"""The match language: key=glob terms split at the first '=', all must hold, unknown keys see ''."""

from __future__ import annotations

import pytest

from kanmon.router import MessageFields, parse_match

TG = MessageFields(chat_jid="telegram:-1001234", sender="telegram:42", verb="message")


@pytest.mark.parametrize(
    ("match", "fields", "expected"),
    [
        pytest.param("", TG, True, id="empty-is-wildcard"),
        pytest.param("   ", TG, True, id="blank-is-wildcard"),
        pytest.param("platform=telegram", TG, True, id="platform"),
        pytest.param("platform=discord", TG, False, id="other-platform"),
        pytest.param("platform=tele*", TG, True, id="platform-glob"),
        pytest.param("room=-1001234", TG, True, id="room"),
        pytest.param("room=-100*", TG, True, id="room-glob"),
        pytest.param("chat_jid=telegram:-1001234", TG, True, id="chat-jid"),
        pytest.param("chat_jid=telegram:*", TG, True, id="chat-jid-glob"),
        pytest.param("sender=telegram:42", TG, True, id="sender"),
        pytest.param("sender=telegram:4?", TG, True, id="sender-question"),
        pytest.param("verb=message", TG, True, id="verb"),
        pytest.param("verb=react", TG, False, id="other-verb"),
        pytest.param("platform=telegram room=-1001234 verb=message", TG, True, id="all-terms-hold"),
        pytest.param("platform=telegram room=-1", TG, False, id="one-term-fails"),
        pytest.param("Platform=telegram", TG, False, id="keys-are-case-sensitive"),
        pytest.param("platform=Telegram", TG, False, id="globs-are-case-sensitive"),
        pytest.param("platform=telegram\troom=*", TG, True, id="tab-separates-terms"),
        pytest.param("  platform=telegram   room=*  ", TG, True, id="extra-spaces"),
    ],
)
def test_match_expression_evaluates_every_term(match: str, fields: MessageFields, expected: bool) -> None:
    assert parse_match(match).matches(fields) is expected


def test_term_is_split_at_the_first_equals_so_a_glob_may_contain_one() -> None:
    expr = parse_match("room=a=b*")
    assert [(t.key, t.pattern) for t in expr.terms] == [("room", "a=b*")]
    assert expr.matches(MessageFields("web:a=bc"))


def test_tokens_without_equals_or_with_an_empty_key_are_ignored() -> None:
    expr = parse_match("telegram =x platform=telegram junk")
    assert [t.text for t in expr.terms] == ["platform=telegram"]
    assert parse_match("nonsense =*").is_wildcard


def test_unknown_key_sees_the_empty_string() -> None:
    assert parse_match("colour=*").matches(TG)
    assert parse_match("colour=").matches(TG)
    assert not parse_match("colour=?*").matches(TG)
    assert not parse_match("colour=red").matches(TG)


def test_empty_glob_matches_only_an_empty_value() -> None:
    assert not parse_match("sender=").matches(TG)
    assert parse_match("sender=").matches(MessageFields("telegram:1"))


def test_absent_verb_is_message() -> None:
    assert parse_match("verb=message").matches(MessageFields("web:x"))
    assert parse_match("verb=message").matches(MessageFields("web:x", verb=""))
    assert not parse_match("verb=").matches(MessageFields("web:x", verb=""))


def test_room_star_matches_an_empty_room_but_not_a_room_with_a_slash() -> None:
    assert parse_match("room=*").matches(MessageFields("web:"))
    assert parse_match("room=*").matches(MessageFields("web"))
    assert not parse_match("room=*").matches(MessageFields("local:corp/eng"))
    assert parse_match("room=*/*").matches(MessageFields("local:corp/eng"))


def test_sender_glob_with_a_prefix_does_not_match_an_empty_sender() -> None:
    assert not parse_match("sender=telegram:*").matches(MessageFields("telegram:1", sender=""))


@pytest.mark.parametrize(
    ("jid", "platform", "room"),
    [
        pytest.param("telegram:-1001234", "telegram", "-1001234", id="plain"),
        pytest.param("local:corp/eng", "local", "corp/eng", id="folder-room"),
        pytest.param("matrix:!abc:example.org", "matrix", "!abc:example.org", id="room-with-colons"),
        pytest.param("nocolon", "nocolon", "", id="no-colon"),
        pytest.param("", "", "", id="empty"),
    ],
)
def test_platform_and_room_split_the_jid_at_its_first_colon(jid: str, platform: str, room: str) -> None:
    fields = MessageFields(jid)
    assert (fields.value("platform"), fields.value("room"), fields.value("chat_jid")) == (platform, room, jid)


def test_a_malformed_glob_makes_the_whole_expression_match_nothing() -> None:
    expr = parse_match("platform=* room=[")
    assert not expr.matches(TG)
    assert not expr.matches(MessageFields("web:["))
    ((term, error),) = expr.errors
    assert term.key == "room"
    assert "unclosed" in error.reason


def test_a_malformed_glob_on_an_unknown_key_still_matches_nothing() -> None:
    assert not parse_match("colour=\\").matches(TG)


def test_evaluation_explains_each_term_and_stops_at_the_first_failure() -> None:
    results = list(parse_match("platform=telegram verb=react sender=*").evaluate(TG))
    assert [r.matched for r in results] == [True, False]
    assert results[0].describe() == "platform='telegram' matches 'telegram'"
    assert results[1].describe() == "verb='message' does not match 'react'"


def test_explanation_says_when_a_key_is_unknown() -> None:
    (result,) = parse_match("colour=red").evaluate(TG)
    assert "unknown key" in result.describe()
    assert "does not match" in result.describe()
