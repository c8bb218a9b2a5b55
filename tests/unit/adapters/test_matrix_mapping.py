"""The Matrix adapter's mapping rules on real event JSON (shapes from the Matrix spec), its config and command line.

The behaviour against a homeserver is tested end to end in tests/e2e/matrix; these are the edge cases that need no
server: fallbacks, joins, relations of kanmon's own topics, inviter globs, and one-line errors.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from kanmon.adapters.matrix.adapter import inviter_allowed
from kanmon.adapters.matrix.config import MatrixConfig
from kanmon.adapters.matrix.inbound import Bot, Room, inbound_body, joined_at, strip_reply_fallback
from kanmon.adapters.matrix.outbound import Outgoing, text_contents
from kanmon.adapters.matrix.server import create_app
from kanmon.errors import InvalidInput
from kanmon.gated.cli import cli
from tests.cli_world import settings_of

BOT = Bot(user_id="@kanmon:hs", display_name="Kanmon", media_url="http://127.0.0.1:8090")
ROOM = Room(room_id="!r:hs", name="team", is_group=True, member_names={"@alice:hs": "Alice"})


def event(content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "event_id": "$e1", "sender": "@alice:hs", "origin_server_ts": 1_700_000_000_000,
            "content": content, **fields}  # fmt: skip


def test_a_plain_message() -> None:
    body = inbound_body(event({"msgtype": "m.text", "body": "hi"}), ROOM, BOT)
    assert body == {
        "id": "$e1", "chat_jid": "matrix:!r:hs", "sender": "@alice:hs", "sender_name": "Alice",
        "timestamp": 1_700_000_000.0, "is_group": True, "topic": "", "content": "hi", "verb": "message",
    }  # fmt: skip


def test_the_bot_notices_state_and_unreadable_events_are_skipped() -> None:
    assert inbound_body(event({"msgtype": "m.text", "body": "x"}, sender=BOT.user_id), ROOM, BOT) is None
    assert inbound_body(event({"msgtype": "m.notice", "body": "a bot"}), ROOM, BOT) is None
    assert inbound_body(event({"membership": "join"}, type="m.room.member", state_key="@a:hs"), ROOM, BOT) is None
    assert inbound_body(event({"algorithm": "m.megolm.v1.aes-sha2"}, type="m.room.encrypted"), ROOM, BOT) is None
    encrypted_file = {"msgtype": "m.file", "body": "secret.pdf", "file": {"url": "mxc://hs/x"}}
    assert inbound_body(event(encrypted_file), ROOM, BOT) is None


@pytest.mark.parametrize(
    ("content", "verb"),
    [
        ({"msgtype": "m.text", "body": "hi kanmon!", "m.mentions": {}}, "message"),  # m.mentions present: it rules
        ({"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": ["@kanmon:hs"]}}, "mention"),
        ({"msgtype": "m.text", "body": "hey kanmon, look"}, "mention"),  # the display name, any case
        ({"msgtype": "m.text", "body": "kanmonitor is a word"}, "message"),
        ({"msgtype": "m.text", "body": "x", "formatted_body": '<a href="https://matrix.to/#/@kanmon:hs">K</a>'},
         "mention"),
    ],
)  # fmt: skip
def test_mentions(content: dict[str, Any], verb: str) -> None:
    body = inbound_body(event(content), ROOM, BOT)
    assert body is not None and body["verb"] == verb


def test_a_thread_fallback_is_not_a_reply_but_a_real_reply_in_a_thread_is() -> None:
    fallback = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
                "m.in_reply_to": {"event_id": "$last"}}  # fmt: skip
    body = inbound_body(event({"msgtype": "m.text", "body": "t", "m.relates_to": fallback}), ROOM, BOT)
    assert body is not None and body["topic"] == "$root" and "reply_to" not in body
    real = {**fallback, "is_falling_back": False}
    body = inbound_body(event({"msgtype": "m.text", "body": "t", "m.relates_to": real}), ROOM, BOT)
    assert body is not None and body["reply_to"] == "$last"


def test_reply_fallbacks_are_cut() -> None:
    assert strip_reply_fallback("> <@a:hs> quoted\n> more\n\nthe answer") == "the answer"
    assert strip_reply_fallback("no quote\n> later") == "no quote\n> later"


def test_media_without_a_caption_get_a_placeholder_the_command_layer_skips() -> None:
    content = {"msgtype": "m.audio", "body": "note.ogg", "url": "mxc://hs/abc", "info": {"mimetype": "audio/ogg"}}
    body = inbound_body(event(content), ROOM, BOT)
    assert body is not None and body["content"] == "[audio: note.ogg]"
    assert body["attachments"] == [{"kind": "audio", "mxc": "mxc://hs/abc", "filename": "note.ogg",
                                    "url": "http://127.0.0.1:8090/media/hs/abc", "mime": "audio/ogg"}]  # fmt: skip


def test_history_before_the_bots_own_join_is_dropped() -> None:
    def member(user: str, membership: str, prev: str | None = None) -> dict[str, Any]:
        unsigned = {"prev_content": {"membership": prev}} if prev else {}
        return {"type": "m.room.member", "state_key": user, "content": {"membership": membership}, "unsigned": unsigned}

    old = event({"msgtype": "m.text", "body": "old"})
    events = [old, member("@kanmon:hs", "invite"), member("@kanmon:hs", "join", "invite"), event({"body": "new"})]
    assert joined_at(events, "@kanmon:hs") == 3
    renamed = member("@kanmon:hs", "join", "join")  # a display name change is no join
    assert joined_at([old, renamed], "@kanmon:hs") == 0


def test_a_topic_of_kanmons_own_is_not_sent_as_a_thread() -> None:
    [content] = text_contents("hi", thread_id="#support", reply_to="$q", limit=1000)
    assert content == {"msgtype": "m.notice", "body": "hi", "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}}}
    first, *rest = text_contents("a\n\n" + "b " * 400, thread_id="$root", reply_to="$q", limit=600)
    assert rest
    assert first["m.relates_to"] == {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": False,
                                     "m.in_reply_to": {"event_id": "$q"}}  # fmt: skip
    assert all(c["m.relates_to"]["rel_type"] == "m.thread" and c["m.relates_to"]["is_falling_back"] for c in rest)


def test_inviters_are_matched_with_kanmons_globs() -> None:
    assert inviter_allowed(["@*:example.org"], "@alice:example.org")
    assert not inviter_allowed(["@*:example.org"], "@mallory:example.org.evil")
    assert not inviter_allowed([], "@alice:example.org")


def test_config_names_what_is_missing_and_derives_the_urls(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"set matrix.homeserver \(KANMON_MATRIX_HOMESERVER\), .*password"):
        MatrixConfig.from_settings(settings_of(tmp_path))
    env = {"KANMON_MATRIX_HOMESERVER": "https://hs.example/", "KANMON_MATRIX_USER_ID": "@b:hs.example",
           "KANMON_MATRIX_ACCESS_TOKEN": "tok", "KANMON_HTTP_CHANNEL_SECRET": "s",
           "KANMON_HTTP_LISTEN": "0.0.0.0:9000"}  # fmt: skip
    config = MatrixConfig.from_settings(settings_of(tmp_path, **env), listen="[::1]:8091")
    assert (config.homeserver, config.gated_url, config.url) == (
        "https://hs.example", "http://127.0.0.1:9000", "http://[::1]:8091"
    )  # fmt: skip
    assert "tok" not in repr(config) and "s'" not in repr(config)
    on_wildcards = MatrixConfig.from_settings(settings_of(tmp_path, **env), listen="[::]:8091")
    assert on_wildcards.url == "http://[::1]:8091"  # reached on the loopback of its family, as gated's own links
    assert config.state_dir == tmp_path.resolve() / "adapters" / "matrix"


def test_the_command_fails_in_one_line_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "adapter", "matrix"], env={})
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "matrix.homeserver" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"KANMON_MATRIX_HOMESERVER": "http://127.0.0.1:1", "KANMON_MATRIX_USER_ID": "@b:hs",
               "KANMON_MATRIX_PASSWORD": "pw-not-shown", "KANMON_HTTP_CHANNEL_SECRET": "s"}  # fmt: skip
        args = ["--data-dir", str(tmp_path), "adapter", "matrix", "--listen", f"127.0.0.1:{port}"]
        result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2 and "cannot listen on 127.0.0.1" in result.output
    shown = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "config", "show"], env=env).output
    assert "pw-not-shown" not in shown and "****" in shown


def test_markdown_goes_out_rendered_beside_the_plain_text_and_raw_html_is_escaped() -> None:
    [content] = text_contents("**done** <script>x</script>\n\n```py\nx = 1\n```", thread_id=None, reply_to=None,
                              limit=1000)  # fmt: skip
    assert content["body"].startswith("**done**")
    assert content["format"] == "org.matrix.custom.html"
    assert "<strong>done</strong> &lt;script&gt;" in content["formatted_body"]
    assert '<pre><code class="language-py">x = 1' in content["formatted_body"]
    assert "formatted_body" not in text_contents("plain words", thread_id=None, reply_to=None, limit=1000)[0]
    [plain] = text_contents("**as is**", thread_id=None, reply_to=None, limit=1000, markdown=False)
    assert plain == {"msgtype": "m.notice", "body": "**as is**"}


def test_the_media_route_passes_on_only_a_content_uris_parts() -> None:
    asked: list[tuple[str, str]] = []

    async def media(server: str, media_id: str) -> httpx.Response:
        asked.append((server, media_id))
        return httpx.Response(200, content=b"file", headers={"content-type": "image/png"})

    async def send(outgoing: Outgoing) -> list[str]:
        raise AssertionError("not sent")

    app = create_app(send, "s3cret", media=media, health=lambda: {"ok": True})
    with TestClient(app) as client:
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/media/hs.example:8448/AbC_1-2", headers=auth).content == b"file"
        assert client.get("/media/hs.example/AbC", headers={"Authorization": "Bearer nope"}).status_code == 401
        for server, media_id in [("%2E%2E", "x"), ("hs", "a%2Eb"), ("h%24s", "x")]:
            assert client.get(f"/media/{server}/{media_id}", headers=auth).status_code == 404
    assert asked == [("hs.example:8448", "AbC_1-2")]


@pytest.mark.parametrize(("adapter", "module"), [("matrix", "nio"), ("telegram", "telegram")])
def test_a_missing_extra_is_one_line_and_exit_2_for_either_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: str, module: str
) -> None:
    """A newcomer's report: telegram said so with exit 2, matrix with exit 1 and other words."""
    loaded = [name for name in sys.modules if name == module or name.startswith((f"{module}.", "kanmon.adapters."))]
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the extra were not installed
    configured = {"KANMON_TELEGRAM_BOT_TOKEN": "123:abc", "KANMON_HTTP_CHANNEL_SECRET": "s"}  # checked first
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "adapter", adapter], env=configured)
    assert result.exit_code == 2, result.output
    assert (
        result.output.strip().splitlines()[-1]
        == f"Error: gated adapter {adapter} needs {module}: pip install 'kanmon[{adapter}]'"
    )
