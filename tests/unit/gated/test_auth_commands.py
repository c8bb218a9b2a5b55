"""`gated allow add|rm|list` and `gated pairing list|approve|deny`; refused senders in `gated status`."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kanmon.gated.auth_commands import auth_config
from kanmon.gated.config import load_settings
from kanmon.gateway.auth import AuthConfig, platform_of
from kanmon.gateway.decisions import Layer, Refused
from kanmon.gateway.pairing import on_refused
from kanmon.store import NewMessage, Store
from tests.cli_world import Gated, gated_cli, one_line_error, sqlite_store

CODE = re.compile(r"pairing code is ([A-Z2-9]{8})")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    return gated_cli(data_dir, monkeypatch, "main")


@pytest.fixture
def store(gated: Gated, data_dir: Path) -> Iterator[Store]:
    with sqlite_store(data_dir) as opened:
        yield opened


def refuse(store: Store, chat: str, sender: str, *, direct: bool, seed: int = 7) -> str | None:
    """What the loop does with a refused row from ``sender``; returns the code it sent, if any."""
    row = store.put_message(NewMessage(chat_jid=chat, content="hi", sender=sender, origin="adapter:tg")).message
    decision = Refused(row, Layer.AUTH, "test", direct=direct)
    on_refused(store, decision, AuthConfig(mode="allowlist"), dt.datetime.now(dt.UTC), random.Random(seed))
    sent = [m.content for m in store.chat_messages(chat) if m.direction == "out"]
    found = CODE.search(sent[-1]) if sent else None
    return found.group(1) if found else None


def test_allow_add_list_rm(gated: Gated, store: Store) -> None:
    assert gated("allow", "add", "tg:42").exit_code == 0
    assert "already there" in gated("allow", "add", "tg:42").output
    added = gated("allow", "add", "tg:*", "--platform", "tg", "--group", "main", "--note", "team")
    assert added.exit_code == 0, added.output
    listed = gated("allow", "list").output
    assert "auth.mode: open" in listed
    assert re.search(r"tg:42\tany platform\tevery group\tadded by cli", listed)
    assert re.search(r"tg:\*\ttg\tmain\tteam", listed)
    (entry,) = [e for e in store.list_allow() if e.pattern == "tg:42"]
    assert gated("allow", "rm", str(entry.id)).exit_code == 0
    assert [e.pattern for e in store.list_allow()] == ["tg:*"]


def test_allow_bad_input_is_one_line_and_changes_nothing(gated: Gated, store: Store) -> None:
    one_line_error(gated("allow", "add", "tg:[oops"), "not a sender id or glob")
    one_line_error(gated("allow", "add", "tg:1", "--group", "nope"), "no group 'nope'")
    one_line_error(gated("allow", "add", "tg:1", "--platform", "tg:"), "--platform")
    one_line_error(gated("allow", "rm", "99"), "no allowlist entry 99")
    assert store.list_allow() == []


def test_pairing_list_approve_deny(gated: Gated, store: Store) -> None:
    assert "no pending pairing requests" in gated("pairing", "list").output
    code = refuse(store, "tg:dm-1", "tg:666", direct=True)
    other = refuse(store, "tg:dm-2", "tg:777", direct=True, seed=8)
    assert code and other
    listed = gated("pairing", "list").output
    assert "tg:666" in listed and "tg:777" in listed and code not in listed
    one_line_error(gated("pairing", "approve", "ABCDEFGH"), "no live pairing code")
    one_line_error(gated("pairing", "approve", code, "--group", "nope"), "no group 'nope'")
    approved = gated("pairing", "approve", code.lower(), "--group", "main")
    assert approved.exit_code == 0 and "tg:666 allowed" in approved.output
    (entry,) = store.list_allow()
    assert (entry.pattern, entry.platform, entry.folder) == ("tg:666", platform_of("tg:dm-1"), "main")
    (pending,) = store.pairing_codes(live_at=dt.datetime.now(dt.UTC))
    assert gated("pairing", "deny", str(pending.id)).exit_code == 0
    assert "no pending pairing requests" in gated("pairing", "list").output
    assert "denied" in gated("pairing", "list", "--all").output


def test_status_shows_refused_senders(gated: Gated, store: Store) -> None:
    for _ in range(2):
        assert refuse(store, "tg:public", "tg:666", direct=False) is None  # a group: no code
    status = gated("status").output
    assert "refused senders: 1 (2 messages)  pending pairing codes: 0" in status
    assert "tg:666 in tg:public: 2 refused" in status


def test_auth_keys_load(data_dir: Path, gated: Gated) -> None:
    data_dir.joinpath("kanmon.yaml").write_text("auth:\n  mode: allowlist\n  platforms:\n    tg: open\n")
    assert "auth.mode: allowlist (tg=open)" in gated("allow", "list").output
    data_dir.joinpath("kanmon.yaml").write_text("auth:\n  platforms:\n    tg: sometimes\n")
    one_line_error(gated("allow", "list"), "auth.platforms")


@pytest.mark.parametrize(
    ("yaml_text", "environ"),
    [
        ("auth:\n  platforms:\n    Telegram: Allowlist\n", {}),
        ("", {"KANMON_AUTH_PLATFORMS": "TELEGRAM=allowlist"}),
    ],
)
def test_auth_platforms_are_named_as_jids_name_them(
    data_dir: Path, gated: Gated, monkeypatch: pytest.MonkeyPatch, yaml_text: str, environ: dict[str, str]
) -> None:
    # a JID's platform part is lower case (adapters register lower-case prefixes): a key spelled otherwise is
    # folded, as privacy.redact folds its platform names, instead of never matching a chat
    data_dir.joinpath("kanmon.yaml").write_text(yaml_text)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert "auth.mode: open (telegram=allowlist)" in gated("allow", "list").output
    settings = load_settings(data_dir=str(data_dir), config_path=None, environ=environ, overrides={})
    assert auth_config(settings).mode_for(platform_of("telegram:42")) == "allowlist"


@pytest.mark.parametrize(
    "platforms",
    [
        "    Telegram: allowlist\n    telegram: open\n",  # one platform twice, with two modes
        "    'telegram:': allowlist\n",  # a JID prefix with its colon: no platform is called that
        "    tele gram: allowlist\n",
    ],
)
def test_an_auth_platform_no_jid_can_have_is_one_line(data_dir: Path, gated: Gated, platforms: str) -> None:
    data_dir.joinpath("kanmon.yaml").write_text(f"auth:\n  platforms:\n{platforms}")
    one_line_error(gated("allow", "list"), "auth.platforms")


@pytest.mark.parametrize("platforms", ["telegram=allowlist,telegram=open", "telegram=allowlist,Telegram=open"])
def test_a_platform_given_twice_in_the_environment_is_one_line(
    data_dir: Path, gated: Gated, monkeypatch: pytest.MonkeyPatch, platforms: str
) -> None:
    # the comma-separated form kept the last one without a word: an allowlist was opened by a second entry
    monkeypatch.setenv("KANMON_AUTH_PLATFORMS", platforms)
    one_line_error(gated("allow", "list"), "auth.platforms")


def test_allow_add_names_the_platform_as_jids_do(gated: Gated, store: Store) -> None:
    assert gated("allow", "add", "telegram:42", "--platform", "Telegram").exit_code == 0
    assert [entry.platform for entry in store.list_allow()] == ["telegram"]
    one_line_error(gated("allow", "add", "tg:1", "--platform", "tele gram"), "--platform")


def test_route_test_shows_a_refusal(data_dir: Path, gated: Gated) -> None:
    data_dir.joinpath("kanmon.yaml").write_text("auth:\n  mode: allowlist\n")
    assert gated("route", "add", "--seq", "0", "--match", "chat_jid=tg:*", "--target", "main").exit_code == 0
    probe = ("route", "test", "--chat-jid", "tg:1", "--sender", "tg:9")
    refused = gated(*probe).output
    assert "=> refused by the auth layer" in refused and "tg:9 is not on the tg allowlist of main" in refused
    assert "routing" not in refused
    gated("allow", "add", "tg:9")
    assert "=> forward to folder main" in gated(*probe).output
