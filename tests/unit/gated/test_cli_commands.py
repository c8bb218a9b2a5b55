"""The `gated` CLI skeleton: migrate, config show, group, route, send, status, run --no-migrate, placeholders."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect

from kanmon.gated.cli import cli
from kanmon.store import Channel, NewMessage, Store, current_revision, downgrade

Gated = Callable[..., Result]

SPEC_TABLES = {
    "messages",
    "chats",
    "registered_groups",
    "routes",
    "router_state",
    "sessions",
    "session_log",
    "system_messages",
    "channels",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    """Run `gated --data-dir DATA ARGS…` in-process with a clean KANMON_* environment."""
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], env=env, catch_exceptions=False)

    return run


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def tables(data_dir: Path) -> set[str]:
    engine = create_engine(f"sqlite:///{data_dir / 'kanmon.db'}")
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_migrate_on_an_empty_data_dir_creates_every_spec_table(gated: Gated, data_dir: Path) -> None:
    result = gated("migrate")
    assert result.exit_code == 0, result.output
    assert "schema revision" in result.output
    assert tables(data_dir) >= SPEC_TABLES
    assert gated("migrate").exit_code == 0


def test_group_add_registers_the_folder_and_creates_its_directory(gated: Gated, data_dir: Path) -> None:
    result = gated("group", "add", "corp/eng", "--runtime", "process", "--command", "python3 -m agent --flag 'a b'")
    assert result.exit_code == 0, result.output
    assert (data_dir / "groups" / "corp" / "eng").is_dir()
    listing = gated("group", "list").output
    assert "corp/eng" in listing and "runtime=process" in listing


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder away")
@pytest.mark.parametrize(
    ("args", "env", "owner"),
    [
        pytest.param(["--runtime", "docker", "--image", "agent:1"], {}, (1000, 1000), id="runtime-docker"),
        pytest.param([], {}, (1000, 1000), id="docker-by-default"),
        pytest.param(["--runtime", "docker"], {"KANMON_RUNTIME_DOCKER_USER": "2000:2001"}, (2000, 2001), id="user-key"),
        pytest.param(["--runtime", "process", "--command", "agent"], {}, (0, 0), id="process-runs-as-gated"),
    ],
)
def test_group_add_as_root_gives_a_docker_group_folder_to_the_agent_user(
    gated: Gated, data_dir: Path, args: list[str], env: dict[str, str], owner: tuple[int, int]
) -> None:
    # a restored folder already holds files of root's: they become the agent's too
    group = data_dir / "groups" / "g"
    (group / "memory").mkdir(parents=True)
    (group / "memory" / "notes.md").write_text("restored")
    result = gated("group", "add", "g", *args, env=env)
    assert result.exit_code == 0, result.output
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [group, *group.rglob("*")]} == {owner}


def test_group_add_without_root_warns_that_the_agent_cannot_write_its_folder(
    gated: Gated, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gated not root, the agent another user: the group is added, and the one line says what to run as root
    monkeypatch.setattr(os, "geteuid", lambda: 4321)
    result = gated("group", "add", "g", "--runtime", "docker", env={"KANMON_RUNTIME_DOCKER_USER": "4242:4242"})
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "chown -R 4242:4242" in warning[0]
    assert "g\t" in gated("group", "list").output


@pytest.mark.parametrize("folder", ["../x", "Bad", "/etc", "a/../../b", "x y"])
def test_group_add_refuses_a_bad_folder_and_writes_nothing(gated: Gated, data_dir: Path, folder: str) -> None:
    assert_one_line_error(gated("group", "add", folder), 2, "invalid group folder")
    assert not data_dir.exists()


def test_adding_a_group_twice_is_refused(gated: Gated) -> None:
    gated("group", "add", "support")
    assert_one_line_error(gated("group", "add", "support"), 2, "already exists")


def test_group_rm_removes_and_a_missing_group_is_a_clear_error(gated: Gated) -> None:
    gated("group", "add", "support")
    assert gated("group", "rm", "support").exit_code == 0
    assert "no groups registered" in gated("group", "list").output
    assert_one_line_error(gated("group", "rm", "support"), 2, "no group 'support'")


def test_route_add_list_rm_round_trip(gated: Gated) -> None:
    gated("group", "add", "support")
    added = gated("route", "add", "--seq", "5", "--match", "platform=telegram room=-100*", "--target", "support")
    assert added.exit_code == 0, added.output
    assert "seq=5\tmatch='platform=telegram room=-100*'\t-> support" in gated("route", "list").output
    assert gated("route", "rm", "1").exit_code == 0
    assert "no routes" in gated("route", "list").output
    assert_one_line_error(gated("route", "rm", "1"), 2, "no route 1")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--match", "room=[a-", "--target", "support"], "room=[a-", id="unclosed-class"),
        pytest.param(["--match", "sender=x\\", "--target", "support"], "sender=x\\", id="trailing-escape"),
        pytest.param(["--target", "Bad Folder"], "target", id="bad-target"),
        pytest.param(
            ["--target", "support", "--impulse", "{not json"],
            "--impulse '{not json' is not valid JSON",
            id="bad-impulse-json",
        ),
        pytest.param(
            ["--target", "support", "--impulse", "[1]"],
            "--impulse '[1]' must be a JSON object, not list",
            id="impulse-not-an-object",
        ),
        pytest.param(
            ["--target", "support", "--impulse", '{"threshold": "high"}'],
            '--impulse \'{"threshold": "high"}\': threshold must',
            id="bad-threshold",
        ),
    ],
)
def test_route_add_refuses_a_bad_route_and_writes_nothing(
    gated: Gated, data_dir: Path, args: list[str], fragment: str
) -> None:
    result = gated("route", "add", *args)
    assert_one_line_error(result, 2, fragment)
    assert not data_dir.exists()  # refused before the store was looked for
    gated("group", "add", "support")
    assert_one_line_error(gated("route", "add", *args), 2, fragment)
    assert "no routes" in gated("route", "list").output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--match", "platform telegram", "--target", "support"], "has no '='", id="term-without-equals"),
        pytest.param(["--match", "platfrom=telegram", "--target", "support"], "did you mean platform?", id="typo-key"),
        pytest.param(["--target", "ghost"], "no group 'ghost'", id="unknown-group"),
        pytest.param(["--target", "daemon:nothere"], "no daemon 'nothere'", id="unknown-daemon"),
    ],
)
def test_route_add_refuses_a_route_that_could_never_work(gated: Gated, args: list[str], fragment: str) -> None:
    gated("group", "add", "support")
    env = {"KANMON_DAEMONS": "hook=http://127.0.0.1:9/hook"}
    assert_one_line_error(gated("route", "add", *args, env=env), 2, fragment)
    assert "no routes" in gated("route", "list").output


def test_route_add_accepts_a_daemon_target_that_is_configured(gated: Gated) -> None:
    gated("migrate")
    env = {"KANMON_DAEMONS": "hook=http://127.0.0.1:9/hook"}
    added = gated("route", "add", "--match", "verb=join", "--target", "daemon:hook", env=env)
    assert added.exit_code == 0, added.output
    assert "-> daemon:hook" in gated("route", "list").output


def test_group_rm_refuses_while_routes_point_at_the_group_unless_told_to_remove_them(gated: Gated) -> None:
    for folder in ("support", "other"):
        gated("group", "add", folder)
    for target in ("support", "folder:support", "other"):
        assert gated("route", "add", "--target", target).exit_code == 0

    refused = gated("group", "rm", "support")

    assert_one_line_error(refused, 2, "routes 1, 2; remove each with `gated route rm ID`, or use --with-routes")
    assert "support" in gated("group", "list").output
    assert len(gated("route", "list").output.splitlines()) == 3

    removed = gated("group", "rm", "support", "--with-routes")

    assert removed.exit_code == 0, removed.output
    assert "routes 1, 2" in removed.output
    assert [line.split("\t")[0] for line in gated("group", "list").output.splitlines()] == ["other"]
    assert [line.split("\t")[0] for line in gated("route", "list").output.splitlines()] == ["3"]


def test_send_puts_a_message_and_resending_the_same_id_is_a_no_op(gated: Gated) -> None:
    first = gated("send", "telegram:1", "hello", "--sender", "alice", "--id", "m1")
    assert first.exit_code == 0 and first.output.startswith("stored: seq 1 id m1")
    again = gated("send", "telegram:1", "hello", "--id", "m1")
    assert again.output.startswith("already stored: seq 1")
    status = gated("status").output
    assert "messages 1" in status


def test_send_refuses_a_malformed_jid(gated: Gated) -> None:
    assert_one_line_error(gated("send", "nocolon", "hi"), 2, "invalid chat JID")


def test_send_refuses_an_id_gated_derives_for_its_own_rows(gated: Gated) -> None:
    # gated's answer to message 42 is gw-reply-42: a row stored under it first would pass for that answer
    assert_one_line_error(gated("send", "telegram:1", "hi", "--id", "gw-reply-42"), 2, "'gw-reply-42' is an id kanmon")
    assert gated("send", "telegram:1", "hi", "--id", "42").exit_code == 0


def test_run_with_no_migrate_refuses_an_unmigrated_store(gated: Gated, data_dir: Path) -> None:
    assert gated("migrate").exit_code == 0
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    downgrade(store.engine, "-1")  # a store one migration behind
    behind = current_revision(store.engine)
    store.close()
    # a port of its own: the default 8080 may be taken by a gated this machine runs, and is checked first
    assert_one_line_error(gated("run", "--no-migrate", "--http", "127.0.0.1:0"), 1, "not migrated")
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    assert current_revision(store.engine) == behind
    store.close()


def test_run_with_no_migrate_and_no_store_makes_none(gated: Gated, data_dir: Path) -> None:
    """A newcomer's report: it refused, and left an empty kanmon.db that the next command took for a store."""
    result = gated("run", "--no-migrate", "--http", "127.0.0.1:0")
    assert result.exit_code != 0 and "no store at" in result.output, result.output
    assert not (data_dir / "kanmon.db").exists()


@pytest.mark.parametrize("command", [["status"], ["runs"], ["group", "list"]])
def test_a_command_that_makes_no_store_takes_an_empty_file_for_none(
    gated: Gated, data_dir: Path, command: list[str]
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kanmon.db").touch()
    result = gated(*command)
    assert result.exit_code != 0 and "no store at" in result.output and "empty file" in result.output, result.output
    assert (data_dir / "kanmon.db").stat().st_size == 0  # not migrated behind the operator's back


def test_run_refuses_a_bad_http_address_before_touching_the_store(gated: Gated, data_dir: Path) -> None:
    assert_one_line_error(gated("run", "--http", "no-port-here"), 2, "HOST:PORT")
    assert not data_dir.exists()


def test_chat_with_an_unknown_group_says_so_in_one_line(gated: Gated) -> None:
    gated("migrate")
    assert_one_line_error(gated("chat", "nosuch"), 2, "no group 'nosuch'")


def test_config_show_masks_secrets_and_names_sources(gated: Gated) -> None:
    result = gated("config", "show", env={"KANMON_HTTP_CHANNEL_SECRET": "s3cret-value", "KANMON_POLL_INTERVAL": "0.5"})
    assert result.exit_code == 0, result.output
    assert "s3cret-value" not in result.output
    assert "****" in result.output
    assert any("poll_interval" in line and "KANMON_POLL_INTERVAL" in line for line in result.output.splitlines())


def test_an_invalid_config_value_fails_with_one_line_naming_the_key(gated: Gated) -> None:
    result = gated("status", env={"KANMON_MAX_CONCURRENT": "lots"})
    assert_one_line_error(result, 2, "max_concurrent")


def test_bad_yaml_in_the_data_dir_fails_with_one_line(gated: Gated, data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "kanmon.yaml").write_text("poll_interval: [unclosed\n")
    assert_one_line_error(gated("config", "show"), 2, "kanmon.yaml")


def test_python_dash_m_kanmon_is_gated(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kanmon", "--data-dir", str(tmp_path), "migrate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "schema revision" in result.stdout


@pytest.mark.postgres
def test_the_cli_works_the_same_on_postgresql(gated: Gated, pg_database: str) -> None:
    env = {"KANMON_STORE_URL": pg_database}
    assert_one_line_error(gated("status", env=env), 1, "not migrated")
    assert gated("migrate", env=env).exit_code == 0
    assert gated("group", "add", "corp/eng", env=env).exit_code == 0
    assert gated("send", "web:corp/eng", "hi", env=env).exit_code == 0
    status = gated("status", env=env).output
    assert "groups 1" in status and "messages 1" in status


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment pointing the CLI at a fresh store of each backend (asked for before ``gated``, which clears
    the KANMON_* variables the PostgreSQL fixture reads)."""
    return {} if request.param == "sqlite" else {"KANMON_STORE_URL": str(request.getfixturevalue("pg_database"))}


def test_route_add_takes_a_seq_within_its_range_on_every_backend(store_env: dict[str, str], gated: Gated) -> None:
    # routes.seq is a 32-bit column on PostgreSQL: a seq past it was SQLite's to take and a raw driver error there
    env = store_env
    assert gated("migrate", env=env).exit_code == 0
    assert gated("group", "add", "support", env=env).exit_code == 0
    for seq in ("2147483648", "-2147483649", "1000000001", "99999999999999999999999"):
        result = gated("route", "add", "--seq", seq, "--target", "support", env=env)
        assert_one_line_error(result, 2, "--seq: expected an integer from -1000000000 to 1000000000")
    assert "no routes" in gated("route", "list", env=env).output
    for seq in ("1000000000", "-1000000000"):
        assert gated("route", "add", "--seq", seq, "--target", "support", env=env).exit_code == 0
    listed = json.loads(gated("route", "list", "--json", env=env).output)
    assert [route["seq"] for route in listed] == [-1_000_000_000, 1_000_000_000]


def test_agent_echo_speaks_the_container_protocol(tmp_path: Path) -> None:
    payload = '{"prompt": "<messages><message sender=\\"a\\">hi there</message></messages>", "sessionId": "s1"}'
    result = subprocess.run(
        [sys.executable, "-m", "kanmon", "agent", "echo"], input=payload, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("---ARIZUKO_OUTPUT_START---")[1:]
    outputs = [json.loads(b.split("---ARIZUKO_OUTPUT_END---")[0]) for b in blocks]
    answers = [o for o in outputs if not o.get("heartbeat")]
    assert answers == [{"status": "ok", "result": "echo: hi there", "newSessionId": "s1"}]


def test_agent_echo_imports_nothing_of_gated_but_its_command_line(tmp_path: Path) -> None:
    """Every agent run starts it: it must not import the store, FastAPI or the daemon first (≈1 s of CPU each)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kanmon", "agent", "echo"],
        input='{"prompt": "<message>hi</message>"}',
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "echo: hi" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import")}
    assert "kanmon.gated.cli" in imported and "click" in imported
    heavy = {"sqlalchemy", "fastapi", "kanmon.store", "kanmon.gateway", "kanmon.container", "kanmon.gated.app"}
    assert heavy & imported == set()


@pytest.mark.parametrize(
    ("listen", "link"),
    [
        ("0.0.0.0:9999", "http://127.0.0.1:9999/chat/corp#token="),
        ("[::]:8181", "http://[::1]:8181/chat/corp#token="),
        ("192.0.2.7:80", "http://192.0.2.7:80/chat/corp#token="),
        ("127.0.0.1:0", "http://127.0.0.1:PORT/chat/corp#token="),
    ],
)
def test_group_add_web_links_to_the_configured_http_address(
    gated: Gated, data_dir: Path, listen: str, link: str
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kanmon.yaml").write_text(f'http:\n  listen: "{listen}"\n')
    result = gated("group", "add", "corp", "--web")
    assert result.exit_code == 0, result.output
    [chat] = [line for line in result.output.splitlines() if line.startswith("chat: ")]
    assert chat.startswith(f"chat: {link}")


@pytest.mark.parametrize("public", ["https://chat.example.org", "https://chat.example.org/", "http://[::1]:9000"])
def test_web_links_point_at_http_public_url_when_it_is_set(gated: Gated, data_dir: Path, public: str) -> None:
    """Behind a reverse proxy (or on another host's name) the links people get name the public origin."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kanmon.yaml").write_text(f'http:\n  listen: "127.0.0.1:0"\n  public_url: "{public}"\n')
    for args in (["group", "add", "corp", "--web"], ["group", "web-token", "corp"]):
        result = gated(*args)
        assert result.exit_code == 0, result.output
        [chat] = [line for line in result.output.splitlines() if line.startswith("chat: ")]
        assert chat.startswith(f"chat: {public.rstrip('/')}/chat/corp"), chat
        assert "PORT" not in result.output


@pytest.mark.parametrize("bad", ["chat.example.org", "https://chat.example.org/kanmon", "ftp://x", "https://a b"])
def test_http_public_url_is_an_origin_or_refused_in_one_line(gated: Gated, data_dir: Path, bad: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "kanmon.yaml").write_text(f'http:\n  public_url: "{bad}"\n')
    assert_one_line_error(gated("group", "add", "corp", "--web"), 2, "http.public_url")
    assert not (data_dir / "kanmon.db").exists()


def test_shell_completion_as_the_readme_documents_it() -> None:
    """README's Shell completion: click's ``_GATED_COMPLETE``, commands and options, lazily loaded ones too."""
    env = {**os.environ, "_GATED_COMPLETE": "bash_complete", "COMP_WORDS": "gated runs --st", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "kanmon"], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["plain,--status"], result.stderr
    script = subprocess.run(
        [sys.executable, "-m", "kanmon"], env={**os.environ, "_GATED_COMPLETE": "bash_source"}, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert "complete -o nosort -F _gated_completion gated" in script.stdout


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["--data-dir", "{dir}"], {}, "--data-dir"),
        ([], {"KANMON_DATA_DIR": "{dir}"}, "KANMON_DATA_DIR"),
        (["--data-dir", "{dir}"], {"KANMON_DATA_DIR": "/nowhere"}, "--data-dir"),
    ],
)
def test_config_show_names_where_the_data_dir_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], source: str
) -> None:
    for name in [name for name in os.environ if name.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    given = {name: value.format(dir=tmp_path) for name, value in env.items()}
    command = [arg.format(dir=tmp_path) for arg in args]
    result = CliRunner().invoke(cli, [*command, "config", "show"], env=given, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("data_dir "))
    assert line.split()[1:3] == [str(tmp_path), source]


def test_a_new_store_and_its_data_dir_are_private_to_gated_s_user(gated: Gated, data_dir: Path) -> None:
    """Every chat, upload and run log is in the store: no other local user reads it (an attacker's review found
    kanmon.db, its -wal and the data dir readable by all, as the umask 022 left them)."""
    assert gated("group", "add", "corp").exit_code == 0
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        store.set_state("probe", "1")  # while it is open, the -wal and -shm files exist
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in [data_dir, *data_dir.glob("kanmon.db*")]}
    finally:
        store.close()
    assert modes[data_dir.name] == 0o700, modes
    assert {"kanmon.db", "kanmon.db-wal", "kanmon.db-shm"} <= set(modes)
    assert all(modes[name] & 0o077 == 0 for name in modes if name.startswith("kanmon.db")), modes


def test_chat_refuses_a_negative_timeout(gated: Gated) -> None:
    assert gated("group", "add", "corp").exit_code == 0
    result = gated("chat", "corp", "--timeout", "-1")
    assert result.exit_code == 2 and "--timeout" in result.output


def test_status_names_replies_that_wait_for_a_channel_no_one_registered(gated: Gated, data_dir: Path) -> None:
    """A newcomer's report: a reply to telegram:42 with no Telegram adapter showed 'pending, 0 attempts' for a day."""
    assert gated("group", "add", "corp").exit_code == 0
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        for chat in ("telegram:42", "telegram:43", "web:corp", "matrix:!r:hs"):
            store.put_message(NewMessage(chat_jid=chat, content="reply", direction="out"))
        stranded = [line for line in gated("status").output.splitlines() if "no registered channel takes" in line]
        assert len(stranded) == 1 and "3 of them" in stranded[0] and "(matrix:, telegram:)" in stranded[0]
        store.save_channel(
            Channel(name="tg", url="http://127.0.0.1:1", token_hash="x", jid_prefixes=["telegram:"], capabilities={},
                    registered_at=dt.datetime.now(dt.UTC))
        )  # fmt: skip
        stranded = [line for line in gated("status").output.splitlines() if "no registered channel takes" in line]
        assert len(stranded) == 1 and "1 of them" in stranded[0] and "(matrix:)" in stranded[0]
    finally:
        store.close()
