"""Bad input to `gated` is one line on stderr and exit status 2, with no traceback and nothing created on disk.

Each case is an operator's plausible slip: a store URL of the wrong kind, an HTTP port out of range or taken, a data
dir that is a file, a store file that is not a kanmon store, a misspelled ``KANMON_*`` variable, a read-only command
on a data dir that has no store yet.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, inspect, text

from kanmon.gated.cli import cli
from kanmon.gated.exits import Exit

Gated = Callable[..., Result]


def tree(root: Path) -> dict[str, str]:
    """Every file and directory under ``root``, with a hash of each file's bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    """`gated ARGS…` in-process from inside tmp_path, with a clean KANMON_* environment."""
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


def assert_refused(result: Result, *fragments: str) -> str:
    """Exit 2, exactly one line on stderr holding every fragment, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------------- store URL
@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        pytest.param("mysql://kanmon@db/kanmon", ["store.url", "'mysql'", "sqlite:///", "postgresql+psycopg://"]),
        pytest.param("postgres://kanmon@db/kanmon", ["store.url", "use postgresql+psycopg://kanmon@db/kanmon"]),
        pytest.param("postgresql+psycopg2://kanmon:pw@db/kanmon", ["use postgresql+psycopg://kanmon:***@db/kanmon"]),
        pytest.param("no url at all", ["store.url", "expected a URL like sqlite:///PATH", "got 'no url at all'"]),
        pytest.param("sqlite:///", ["store.url", "a SQLite store is a file"]),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["migrate"], ["group", "add", "support"]])
def test_a_store_url_kanmon_cannot_use_is_one_line(
    gated: Gated, tmp_path: Path, url: str, fragments: list[str], command: list[str]
) -> None:
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "data", *command, env={"KANMON_STORE_URL": url}), *fragments)
    assert tree(tmp_path) == before


def test_a_store_url_from_the_config_file_names_its_line(gated: Gated, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kanmon.yaml").write_text("store:\n  url: postgres://kanmon@db/kanmon\n")
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "data", "status"), "kanmon.yaml:2", "postgresql+psycopg://kanmon@db/kanmon")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------------------------------- --http
@pytest.mark.parametrize("address", ["127.0.0.1:65536", "127.0.0.1:99999", "[::1]:70000"])
def test_run_refuses_a_port_out_of_range(gated: Gated, tmp_path: Path, address: str) -> None:
    assert_refused(gated("--data-dir", "data", "run", "--http", address), "--http", "port", "0-65535")
    assert tree(tmp_path) == {}


def test_run_on_a_port_in_use_says_so_in_one_line_and_creates_nothing(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("KANMON_")}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kanmon",
                "--data-dir",
                str(tmp_path / "data"),
                "run",
                "--http",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    finally:
        taken.close()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in line and "address already in use" in line
    assert "--http HOST:PORT" in line  # how to take another (a newcomer found no hint)
    assert tree(tmp_path) == {}


def test_run_refuses_http_and_no_http_together(gated: Gated, tmp_path: Path) -> None:
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "data", "run", "--http", "127.0.0.1:0", "--no-http"), "--http and --no-http")
    assert tree(tmp_path) == before


def test_a_demo_folder_that_is_not_a_folder_name_creates_nothing(gated: Gated, tmp_path: Path) -> None:
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "data", "demo", "--folder", "Bad", "--no-http"), "'Bad'")
    assert tree(tmp_path) == before  # no store, no lock file


@pytest.mark.parametrize("command", [["runs", "--group", "nosuch"], ["task", "list", "--group", "nosuch"]])
def test_listing_an_unknown_group_s_runs_or_tasks_is_one_line(gated: Gated, command: list[str]) -> None:
    assert gated("--data-dir", "data", "group", "add", "support").exit_code == 0
    assert_refused(gated("--data-dir", "data", *command), "no group 'nosuch'")
    assert gated("--data-dir", "data", *command[:-1], "support").exit_code == 0  # a known group with none: fine


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        pytest.param(["send", "web:nosuch", "hi"], "no group 'nosuch'", id="web-chat-of-no-group"),
        pytest.param(["send", "local:nosuch", "hi"], "no group 'nosuch'", id="local-chat-of-no-group"),
        pytest.param(["send", "web:support", "  "], "TEXT is empty", id="empty-message"),
        pytest.param(["replies", "notajid"], "invalid chat JID 'notajid'", id="replies-to-no-jid"),
    ],
)
def test_a_message_nobody_could_answer_is_refused_and_stores_nothing(
    gated: Gated, command: list[str], fragment: str
) -> None:
    assert gated("--data-dir", "data", "group", "add", "support").exit_code == 0
    assert_refused(gated("--data-dir", "data", *command), fragment)
    assert "no replies" in gated("--data-dir", "data", "replies", "web:support").output
    assert gated("--data-dir", "data", "status", "--json").exit_code == Exit.ATTENTION  # read; no gated serves
    stored = gated("--data-dir", "data", "send", "web:support", "", "--verb", "react")  # an empty reaction is fine
    assert stored.exit_code == 0 and "stored: seq 1 " in stored.output  # so nothing was stored before it


# ---------------------------------------------------------------------------------------------------- --data-dir
@pytest.mark.parametrize("command", [["status"], ["migrate"], ["group", "add", "support"], ["config", "show"]])
def test_a_data_dir_that_is_a_file_is_one_line(gated: Gated, tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a directory\n")
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "notes.txt", *command), "data_dir", "notes.txt", "not a directory")
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------------------------------- store files
def _text_file(path: Path) -> None:
    path.write_text("these are my notes, not a database\n" * 20)


def _other_apps_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('alice')")
    db.close()


def _unknown_revision(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('ffffffffffff')")
    db.close()


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        pytest.param(_text_file, ["kanmon.db", "not a SQLite database"], id="text-file"),
        pytest.param(_other_apps_database, ["kanmon.db", "not a kanmon store", "users"], id="another-apps-db"),
        pytest.param(_unknown_revision, ["kanmon.db", "'ffffffffffff'", "unknown"], id="unknown-revision"),
    ],
)
@pytest.mark.parametrize("command", [["status"], ["migrate"], ["group", "add", "support"], ["group", "list"]])
def test_a_store_file_that_is_not_a_kanmon_store_is_one_line_and_left_untouched(
    gated: Gated, tmp_path: Path, make: Callable[[Path], None], fragments: list[str], command: list[str]
) -> None:
    (tmp_path / "data").mkdir()
    make(tmp_path / "data" / "kanmon.db")
    before = tree(tmp_path)
    assert_refused(gated("--data-dir", "data", *command), *fragments)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------------------------------- KANMON_*
@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        pytest.param("KANMON_POL_INTERVAL", "KANMON_POLL_INTERVAL", id="letter-dropped"),
        pytest.param("KANMON_POLL_INTERVALL", "KANMON_POLL_INTERVAL", id="letter-added"),
        pytest.param("KANMON_INSTANSE", "KANMON_INSTANCE", id="letter-wrong"),
        pytest.param("KANMON_DEAMONS", "KANMON_DAEMONS", id="letters-swapped-short-key"),
        pytest.param("KANMON_RUNTIME_DOCKER_MEMROY", "KANMON_RUNTIME_DOCKER_MEMORY", id="section-key"),
        pytest.param("KANMON_DATADIR", "KANMON_DATA_DIR", id="underscore-dropped"),
    ],
)
def test_a_misspelled_kanmon_variable_gets_a_did_you_mean(
    gated: Gated, tmp_path: Path, variable: str, meant: str
) -> None:
    result = gated("--data-dir", "data", "status", env={variable: "1"})
    assert_refused(result, variable, "unknown", f"did you mean {meant}?")
    assert tree(tmp_path) == {}


@pytest.mark.parametrize(
    "variable",
    [
        "KANMON_TEST_PG_URL",  # the test suite's
        "KANMON_TEST_PYTHON_IMAGE",
        "KANMON_SERVICES_DIR",  # scripts/services.sh's
        "KANMON_SERVICES_POLL_INTERVAL",  # tooling's even when it ends like a key
        "KANMON_DATA",  # compose.yaml's: the host path of the data dir
        "KANMON_CHANNEL_SECRET",  # compose.yaml's input to KANMON_HTTP_CHANNEL_SECRET
        "KANMON_IMAGE",
        "KANMON_HTTP_PUBLISH",
        "KANMON_BUILD_NETWORK",
        "KANMON_FOO",
    ],
)
def test_kanmon_variables_of_other_tools_are_ignored(gated: Gated, variable: str) -> None:
    result = gated("--data-dir", "data", "config", "show", env={variable: "1"})
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------------- no store yet
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["route", "test", "--chat-jid", "tg:1"],
        ["route", "list"],
        ["route", "rm", "1"],
        ["group", "list"],
        ["group", "rm", "support"],
        ["group", "web-token", "support"],
        ["onboarding", "list"],
        ["onboarding", "approve", "tg:1", "support"],
        ["onboarding", "reject", "tg:1"],
        ["chat", "support"],
    ],
)
@pytest.mark.parametrize("data_dir", [[], ["--data-dir", "elsewhere"]], ids=["default-data-dir", "given-data-dir"])
def test_a_command_that_needs_a_store_says_there_is_none_and_creates_none(
    gated: Gated, tmp_path: Path, command: list[str], data_dir: list[str]
) -> None:
    where = tmp_path / (data_dir[1] if data_dir else "kanmon-data") / "kanmon.db"
    assert_refused(gated(*data_dir, *command), f"no store at {where}", "`gated migrate`", "`gated run`")
    assert tree(tmp_path) == {}


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["status"], ["migrate"]])
def test_a_postgresql_database_of_another_application_is_refused_and_left_alone(
    gated: Gated, pg_database: str, command: list[str]
) -> None:
    engine = create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id integer PRIMARY KEY)"))
    try:
        result = gated("--data-dir", "data", *command, env={"KANMON_STORE_URL": pg_database})
        assert_refused(result, "not a kanmon store", "users")
        assert set(inspect(engine).get_table_names()) == {"users"}
    finally:
        engine.dispose()
