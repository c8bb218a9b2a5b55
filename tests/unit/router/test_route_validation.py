"""A route that could never work is refused before it is written (SPEC §6.4): its match, its target, its impulse.

The match must be ``key=glob`` terms with known keys (a missing ``=`` would make a catch-all, an unknown key would
never match); a folder target must name a registered group and a ``daemon:`` target a configured daemon. The router
takes the known folders and daemons as plain values: it never looks them up itself.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kanmon.router import (
    MessageFields,
    Route,
    RouteError,
    Verdict,
    check_match,
    check_route,
    parse_match,
    resolve,
    trace,
    validate_route,
)

FOLDERS = frozenset({"support", "corp/eng"})
DAEMONS = frozenset({"hook"})


def refused(match: str = "", target: str = "support", impulse: str | None = None) -> str:
    with pytest.raises(RouteError) as caught:
        validate_route(match, target, impulse, folders=FOLDERS, daemons=DAEMONS)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("match", "fragments"),
    [
        pytest.param("platform telegram", ["'platform'", "no '='", "key=glob"], id="no-equals"),
        pytest.param("platform=telegram room", ["'room'", "no '='"], id="second-term-without-equals"),
        pytest.param("platfrom=telegram", ["unknown key 'platfrom'", "did you mean platform?"], id="misspelled-key"),
        pytest.param("chatjid=tg:1", ["unknown key 'chatjid'", "did you mean chat_jid?"], id="misspelled-chat-jid"),
        pytest.param("colour=red", ["unknown key 'colour'", "keys: platform, room, chat_jid, sender, verb"], id="far"),
        pytest.param("=telegram", ["'=telegram'", "no key"], id="empty-key"),
        pytest.param("room=[a-", ["match term 'room=[a-'", "bad glob"], id="bad-glob"),
        pytest.param("platform=tg verb=", ["match term 'verb='", "never"], id="empty-glob-on-verb"),
        pytest.param("chat_jid=", ["match term 'chat_jid='", "never"], id="empty-glob-on-chat-jid"),
    ],
)
def test_a_match_that_could_never_work_as_meant_is_refused_naming_the_problem(match: str, fragments: list[str]) -> None:
    message = refused(match)
    for fragment in fragments:
        assert fragment in message


def test_a_misspelled_key_that_resembles_nothing_gets_no_suggestion() -> None:
    assert "did you mean" not in refused("colour=red")


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        pytest.param("ghost", ["target 'ghost'", "no group 'ghost'"], id="unknown-folder"),
        pytest.param("folder:ghost", ["no group 'ghost'"], id="unknown-folder-prefix"),
        pytest.param("suport", ["no group 'suport'", "did you mean support?"], id="misspelled-folder"),
        pytest.param("daemon:nothere", ["target 'daemon:nothere'", "no daemon 'nothere'", "daemons"], id="daemon"),
        pytest.param("daemon:hoook", ["did you mean hook?"], id="misspelled-daemon"),
    ],
)
def test_a_target_that_names_nothing_known_is_refused(target: str, fragments: list[str]) -> None:
    message = refused(target=target)
    for fragment in fragments:
        assert fragment in message


def test_with_no_daemons_configured_the_error_says_so() -> None:
    with pytest.raises(RouteError, match="no daemons are configured"):
        validate_route("", "daemon:hook", None, folders=FOLDERS, daemons=())


@pytest.mark.parametrize(
    ("match", "target"),
    [
        pytest.param("", "support", id="wildcard"),
        pytest.param("platform=telegram room=-100*", "folder:corp/eng", id="folder-prefix"),
        pytest.param("verb=react", "builtin:drop", id="builtin"),
        pytest.param("sender=*", "daemon:hook", id="configured-daemon"),
        # Expanded per message: whether the folder exists is decided then (the route falls through if not).
        pytest.param("sender=tg:*", "users/{sender}", id="sender-template"),
        pytest.param("room=a=b*  verb=message", "support", id="equals-in-glob-and-extra-space"),
        pytest.param("sender= room=", "support", id="empty-globs-on-keys-that-can-be-empty"),
    ],
)
def test_routes_that_can_work_are_accepted(match: str, target: str) -> None:
    validate_route(match, target, None, folders=FOLDERS, daemons=DAEMONS)


def test_check_route_makes_only_the_checks_that_need_no_store() -> None:
    check_route("platform=telegram", "ghost", None)  # whether ghost exists is validate_route's question
    with pytest.raises(RouteError, match="did you mean platform"):
        check_route("platfrom=telegram", "ghost", None)


@given(st.text())
@example("platform telegram")
@example("platfrom=x")
@example("room=[ sender=a\\")
@example("=")
@example("verb=\x00 room=\u2028")
def test_any_match_text_is_either_one_clean_error_or_a_parse_that_round_trips(source: str) -> None:
    try:
        expr = check_match(source)
    except RouteError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        assert message.isprintable()
        return
    assert expr.errors == ()
    assert expr.text == " ".join(source.split())
    again = check_match(expr.text)
    assert again.terms == expr.terms == parse_match(source).terms


# --- {sender} targets whose folder is not registered -----------------------------------------------------------


def test_a_sender_route_to_an_unregistered_folder_falls_through_to_the_next_route() -> None:
    routes = [
        Route(id=1, seq=0, match="sender=tg:*", target="users/{sender}"),
        Route(id=2, seq=1, match="", target="lobby"),
    ]
    known = {"users/tg-alice", "lobby"}
    alice = trace(routes, MessageFields("tg:1", sender="tg:alice"), folders=known)
    bob = trace(routes, MessageFields("tg:1", sender="tg:bob"), folders=known)

    assert alice.decision is not None and alice.decision.target.name == "users/tg-alice"
    assert bob.decision is not None and bob.decision.target.name == "lobby"
    assert bob.checks[0].verdict is Verdict.NO_FOLDER
    assert "users/tg-bob" in bob.checks[0].describe() and "not registered" in bob.checks[0].describe()
    assert resolve(routes, MessageFields("tg:1", sender="tg:bob"), folders=known) == bob.decision
