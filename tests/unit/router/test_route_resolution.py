"""Routes as values: (seq, id) order, first match wins, targets and {sender}, validation before writing."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kanmon.folders import is_valid_folder
from kanmon.router import (
    ImpulseConfig,
    MessageFields,
    Route,
    RouteError,
    TargetKind,
    Verdict,
    check_route,
    ordered,
    parse_target,
    resolve,
    sender_file_id,
    trace,
)

TG = MessageFields(chat_jid="telegram:-1001234", sender="telegram:42")


def route(id: int, seq: int, match: str, target: str, impulse: str | None = None) -> Route:
    return Route(id=id, seq=seq, match=match, target=target, impulse_config=impulse)


# --- order ---------------------------------------------------------------------------------------------------------


def test_routes_are_tried_by_seq_then_id_whatever_order_they_arrive_in() -> None:
    routes = [route(5, 1, "", "e"), route(9, 0, "", "c"), route(2, 0, "", "b"), route(1, 2, "", "f")]
    assert [r.id for r in ordered(routes)] == [2, 9, 5, 1]


def test_equal_seq_is_broken_by_the_lower_id() -> None:
    routes = [route(7, 0, "platform=telegram", "seven"), route(3, 0, "room=*", "three")]
    decision = resolve(routes, TG)
    assert decision is not None
    assert decision.route.id == 3
    assert decision.target.name == "three"


def test_first_matching_route_wins_over_later_ones() -> None:
    routes = [
        route(1, 0, "platform=discord", "dc"),
        route(2, 1, "platform=telegram", "tg"),
        route(3, 2, "", "fallback"),
    ]
    decision = resolve(routes, TG)
    assert decision is not None
    assert decision.route.id == 2


def test_lower_seq_wins_even_with_a_higher_id() -> None:
    routes = [route(1, 5, "", "late"), route(99, 0, "sender=telegram:*", "early")]
    decision = resolve(routes, TG)
    assert decision is not None
    assert decision.target.name == "early"


def test_no_route_matches_gives_none() -> None:
    assert resolve([route(1, 0, "platform=discord", "dc")], TG) is None
    assert resolve([], TG) is None


def test_a_route_with_a_malformed_glob_is_passed_over() -> None:
    routes = [route(1, 0, "room=[", "broken"), route(2, 1, "", "ok")]
    decision = resolve(routes, TG)
    assert decision is not None
    assert decision.target.name == "ok"


# --- targets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        pytest.param("support", TargetKind.FOLDER, "support", id="bare-folder"),
        pytest.param("corp/eng", TargetKind.FOLDER, "corp/eng", id="nested-folder"),
        pytest.param("folder:corp/eng", TargetKind.FOLDER, "corp/eng", id="folder-prefix"),
        pytest.param("builtin:ping", TargetKind.BUILTIN, "ping", id="builtin-ping"),
        pytest.param("builtin:drop", TargetKind.BUILTIN, "drop", id="builtin-drop"),
        pytest.param("daemon:summariser", TargetKind.DAEMON, "summariser", id="daemon"),
    ],
)
def test_target_grammar(text: str, kind: TargetKind, name: str) -> None:
    target = parse_target(text)
    assert (target.kind, target.name) == (kind, name)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "invalid group folder", id="empty"),
        pytest.param("../etc", "invalid group folder", id="dotdot"),
        pytest.param("/abs", "invalid group folder", id="absolute"),
        pytest.param("Support", "invalid group folder", id="uppercase"),
        pytest.param("folder:", "invalid group folder", id="folder-prefix-empty"),
        pytest.param("builtin:echo", "unknown builtin 'echo'", id="unknown-builtin"),
        pytest.param("daemon:", "daemon name", id="daemon-empty"),
        pytest.param("daemon:Bad Name", "daemon name", id="daemon-bad"),
        pytest.param("http://x", "unknown kind 'http'", id="unknown-kind"),
    ],
)
def test_bad_targets_are_refused_with_a_clear_line(text: str, fragment: str) -> None:
    with pytest.raises(RouteError) as caught:
        parse_target(text)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        pytest.param("telegram:42", "telegram-42", id="platform-and-id"),
        pytest.param("api:3", "api-3", id="api-key"),
        pytest.param("x" * 63, "x" * 63, id="plain-at-63"),
        pytest.param("日本", "", id="nothing-safe"),
        pytest.param("", "", id="empty"),
    ],
)
def test_a_plain_sender_keeps_its_text_and_one_without_a_safe_character_has_no_id(sender: str, expected: str) -> None:
    assert sender_file_id(sender) == expected


@pytest.mark.parametrize(
    ("sender", "readable"),
    [
        pytest.param("Alice.Smith@Example.com", "alice-smith-example-com", id="email"),
        pytest.param("--__x", "x", id="leading-junk-trimmed"),
        pytest.param("a  b::c", "a-b-c", id="runs-collapse"),
        pytest.param("user_1-x", "user_1-x", id="safe-but-not-plain"),
        pytest.param("telegram:-1001234", "telegram-1001234", id="telegram-channel"),
        pytest.param("x" * 80, "x" * 45, id="long"),
    ],
)
def test_any_other_sender_is_readable_then_a_digest_of_its_exact_text(sender: str, readable: str) -> None:
    digest = hashlib.sha256(sender.encode()).hexdigest()[:16]
    assert sender_file_id(sender) == f"{readable}--{digest}"


def test_look_alike_senders_get_folders_of_their_own() -> None:
    """An attacker's review: these four all went to the folder u/alice-smith-matrix-org, files and session."""
    look_alikes = [
        "@alice.smith:matrix.org",
        "@alice-smith:matrix.org",
        "@alice=smith:matrix.org",
        "@Alice.Smith:matrix.org",
    ]
    ids = [sender_file_id(sender) for sender in [*look_alikes, "alice-smith-matrix-org", "telegram:1001234"]]
    assert len(set(ids)) == len(ids), ids
    assert sender_file_id("telegram:-1001234") != sender_file_id("telegram:1001234")


@given(st.text(max_size=90), st.text(max_size=90))
@example("a:b", "a-b")
@example("ab", "AB")
def test_two_senders_never_share_an_id_and_every_id_is_a_folder_segment(first: str, second: str) -> None:
    ids = {sender: sender_file_id(sender) for sender in (first, second)}
    for sender_id in ids.values():
        assert sender_id == "" or is_valid_folder(sender_id)
    if first != second and ids[first]:
        assert ids[first] != ids[second]


def test_sender_placeholder_expands_to_the_file_safe_sender_id() -> None:
    decision = resolve([route(1, 0, "", "users/{sender}")], TG)
    assert decision is not None
    assert decision.target.kind is TargetKind.FOLDER
    assert decision.target.name == "users/telegram-42"


def test_a_route_whose_sender_id_is_empty_is_skipped() -> None:
    routes = [route(1, 0, "", "users/{sender}"), route(2, 1, "", "lobby")]
    decision = resolve(routes, MessageFields("web:x", sender=""))
    assert decision is not None
    assert decision.target.name == "lobby"
    assert decision.check.verdict is Verdict.MATCHED


def test_a_route_whose_expanded_folder_is_invalid_is_skipped() -> None:
    # 'u-' + 63 characters makes a 65-character segment, which the folder grammar refuses.
    routes = [route(1, 0, "", "u-{sender}"), route(2, 1, "", "lobby")]
    result = trace(routes, MessageFields("web:x", sender="y" * 70))
    assert result.checks[0].verdict is Verdict.BAD_TARGET
    assert result.decision is not None
    assert result.decision.target.name == "lobby"


# --- explanation ---------------------------------------------------------------------------------------------------


def test_trace_explains_which_route_took_the_message_and_why_the_others_did_not() -> None:
    routes = [
        route(1, 0, "platform=discord", "dc"),
        route(2, 0, "room=[", "broken"),
        route(3, 1, "", "users/{sender}"),
        route(4, 2, "platform=telegram verb=message", "support"),
        route(5, 3, "", "never-looked-at"),
    ]
    result = trace(routes, MessageFields("telegram:-1", sender=""))
    assert [c.verdict for c in result.checks] == [
        Verdict.NO_MATCH,
        Verdict.BAD_GLOB,
        Verdict.NO_SENDER_ID,
        Verdict.MATCHED,
    ]
    lines = result.lines()
    assert (
        lines[0] == "route #1 (seq 0) 'platform=discord' -> dc: no match: platform='telegram' does not match 'discord'"
    )
    assert "'room=[' is malformed (unclosed character class)" in lines[1]
    assert "sender '' gives no file-safe id" in lines[2]
    assert lines[3].endswith("matched: platform='telegram' matches 'telegram'; verb='message' matches 'message'")
    assert lines[4] == "=> folder:support via route #4"


def test_trace_says_when_nothing_matches() -> None:
    result = trace([route(1, 0, "platform=discord", "dc")], TG)
    assert result.decision is None
    assert result.lines()[-1] == "=> no route matches"


def test_a_wildcard_route_explains_itself() -> None:
    result = trace([route(1, 0, "", "builtin:drop")], TG)
    assert result.lines() == [
        "route #1 (seq 0) '' -> builtin:drop: matched: empty match, every message matches",
        "=> builtin:drop via route #1",
    ]


# --- impulse settings on the decision -------------------------------------------------------------------------------


def test_decision_carries_the_winning_routes_impulse_config_merged_over_defaults() -> None:
    decision = resolve([route(1, 0, "", "support", '{"threshold": 300, "weights": {"reply": 50}}')], TG)
    assert decision is not None
    assert decision.impulse.threshold == 300
    assert decision.impulse.weight("reply") == 50
    assert decision.impulse.weight("react") == 0
    assert decision.impulse.max_hold_ms == 300_000


def test_a_stored_route_with_broken_impulse_json_falls_back_to_defaults() -> None:
    decision = resolve([route(1, 0, "", "support", "{not json")], TG)
    assert decision is not None
    assert decision.impulse == ImpulseConfig()


def test_impulse_defaults_weigh_low_value_verbs_zero_and_the_rest_a_hundred() -> None:
    config = ImpulseConfig()
    assert [config.weight(v) for v in ("react", "typing", "join", "edit", "delete")] == [0] * 5
    assert [config.weight(v) for v in ("message", "", "mention", "reply", "follow")] == [100] * 5
    assert (config.threshold, config.max_hold_ms) == (100, 300_000)


def test_impulse_merge_keeps_default_weights_it_does_not_name() -> None:
    config = ImpulseConfig().merged({"weights": {"typing": 5, "post": 20}, "max_hold_ms": 1000})
    assert config.weight("typing") == 5
    assert config.weight("post") == 20
    assert config.weight("edit") == 0
    assert config.max_hold_seconds == 1.0


# --- validation before writing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "target", "impulse"),
    [
        pytest.param("", "support", None, id="wildcard"),
        pytest.param("platform=telegram room=-100*", "folder:corp/eng", "", id="folder-prefix"),
        pytest.param("sender=*", "users/{sender}", "{}", id="sender-template"),
        pytest.param("verb=react", "builtin:drop", '{"threshold": 0}', id="threshold-zero"),
        pytest.param("verb=join", "daemon:hook", '{"weights": {"react": 10}, "max_hold_ms": 500}', id="daemon"),
        pytest.param("room=[^a-z]*", "support", '{"threshold": 1, "weights": {}, "max_hold_ms": 1}', id="all-keys"),
    ],
)
def test_check_route_accepts_well_formed_routes(match: str, target: str, impulse: str | None) -> None:
    check_route(match, target, impulse)


@pytest.mark.parametrize(
    ("match", "target", "impulse", "fragment"),
    [
        pytest.param("room=[", "s", None, "match term 'room=[': bad glob '['", id="unclosed-class"),
        pytest.param("platform=* sender=a\\", "s", None, "match term 'sender=a\\\\'", id="trailing-backslash"),
        pytest.param("verb=[]", "s", None, "empty character class", id="empty-class"),
        pytest.param("", "builtin:nope", None, "unknown builtin", id="unknown-builtin"),
        pytest.param("", "../x", None, "invalid group folder", id="bad-folder"),
        pytest.param("", "users/{name}", None, "the only placeholder is {sender}", id="unknown-placeholder"),
        pytest.param("", "daemon:{sender}", None, "allowed only in a folder target", id="sender-in-daemon"),
        pytest.param("", "s", "{nope", "not valid JSON", id="not-json"),
        pytest.param("", "s", "[1]", "must be a JSON object, not list", id="array"),
        pytest.param("", "s", '{"treshold": 5}', "unknown key(s) treshold", id="unknown-key"),
        pytest.param("", "s", '{"threshold": -1}', "threshold must be an integer >= 0, not -1", id="neg-threshold"),
        pytest.param("", "s", '{"threshold": 1.5}', "threshold must be an integer", id="float-threshold"),
        pytest.param("", "s", '{"threshold": true}', "not true", id="bool-threshold"),
        pytest.param("", "s", '{"max_hold_ms": 0}', "max_hold_ms must be an integer from 1 to", id="zero-hold"),
        # past a week a held chat's deadline was no date, and `gated status` failed with a traceback (a review)
        pytest.param("", "s", '{"max_hold_ms": 1000000000000000}', "from 1 to 604800000", id="hold-too-long"),
        pytest.param("", "s", '{"weights": [1]}', "weights must be an object", id="weights-array"),
        pytest.param("", "s", '{"weights": {"react": -1}}', "weights.react must be an integer >= 0", id="neg-weight"),
        pytest.param("", "s", '{"weights": {"": 1}}', "empty verb", id="empty-verb"),
        pytest.param("", "s", '{"weights": {"x": "1"}}', 'not "1"', id="string-weight"),
    ],
)
def test_check_route_refuses_malformed_routes_with_one_clear_line(
    match: str, target: str, impulse: str | None, fragment: str
) -> None:
    with pytest.raises(RouteError) as caught:
        check_route(match, target, impulse)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


IMPULSE_ERRORS = ["{nope", "[1]", '{"treshold": 5}', '{"threshold": -1}', '{"weights": [1]}', '{"weights": {"": 1}}']


@pytest.mark.parametrize("impulse", IMPULSE_ERRORS)
def test_an_impulse_error_names_the_override_as_its_writer_wrote_it(impulse: str) -> None:
    """The column's name by default; what the operator typed where the caller says (``gated route add``)."""
    with pytest.raises(RouteError) as by_default:
        check_route("", "s", impulse)
    assert str(by_default.value).startswith("impulse_config")
    typed = f"--impulse {impulse!r}"
    with pytest.raises(RouteError) as named:
        check_route("", "s", impulse, impulse_name=typed)
    assert str(named.value).startswith(typed)
    assert "impulse_config" not in str(named.value)


def test_validated_impulse_json_round_trips_through_the_decision() -> None:
    config = {"threshold": 0, "weights": {"typing": 7}, "max_hold_ms": 10}
    check_route("", "support", json.dumps(config))
    decision = resolve([route(1, 0, "", "support", json.dumps(config))], TG)
    assert decision is not None
    assert (decision.impulse.threshold, decision.impulse.weight("typing"), decision.impulse.max_hold_ms) == (0, 7, 10)
