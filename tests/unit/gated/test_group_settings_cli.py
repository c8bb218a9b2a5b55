"""`gated group add|set|show`: every agent setting from the CLI, good values stored as the runs read them, bad ones
refused in one line (exit 2) with the group left exactly as it was; `show` never prints a secret's value."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from kanmon.gated.cli import cli
from kanmon.store import Store

Gated = Callable[..., Result]
PLANTED = "planted-value-5e0c81d7"  # the value of API_KEY: in gated's environment only


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """An allowed read-only root, an allowed writable one, and a path outside both."""
    paths = {name: tmp_path / name for name in ("shared", "scratch", "outside")}
    for path in paths.values():
        (path / "sub").mkdir(parents=True)
    (paths["shared"] / "escape").symlink_to(paths["outside"])  # a symlink leaving its root
    return paths


@pytest.fixture
def data_dir(tmp_path: Path, roots: dict[str, Path]) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    config = (
        "secrets:\n  API_KEY:\n    env: KANMON_TEST_API_KEY\n  GH_TOKEN: file:/run/secrets/gh\n"
        "credential_proxy:\n  upstreams:\n    anthropic: {secret: API_KEY}\n"
        f"runtime:\n  mount_allowlist:\n    - {roots['shared']}\n    - {roots['scratch']}:rw\n"
    )
    (path / "kanmon.yaml").write_text(config)
    return path


@pytest.fixture
def gated(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Gated:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KANMON_TEST_API_KEY", PLANTED)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args], catch_exceptions=False)

    return run


def config_of(data_dir: Path, folder: str = "corp") -> dict[str, Any]:
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        group = store.get_group(folder)
        assert group is not None
        return dict(group.container_config)
    finally:
        store.close()


def one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert fragment in lines[0], lines[0]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


GOOD: list[tuple[list[str], dict[str, Any]]] = [
    (["--runtime", "process", "--command", "python3 -m agent --flag 'a b'"],
     {"runtime": "process", "command": ["python3", "-m", "agent", "--flag", "a b"]}),
    (["--runtime", "docker"], {"runtime": "docker"}),
    (["--image", "kanmon-agent:2"], {"image": "kanmon-agent:2"}),
    (["--image", f"registry.local:5000/team/agent@sha256:{'ab' * 32}"],
     {"image": f"registry.local:5000/team/agent@sha256:{'ab' * 32}"}),
    (["--env", "A=1", "--env", "B=", "--env", "C=x=y", "--env", "_D=a b"],
     {"env": {"A": "1", "B": "", "C": "x=y", "_D": "a b"}}),
    (["--secret", "API_KEY", "--secret", "GH_TOKEN", "--secret", "API_KEY"], {"secrets": ["API_KEY", "GH_TOKEN"]}),
    (["--upstream", "anthropic", "--network", "bridge"], {"upstreams": ["anthropic"], "network": "bridge"}),
    (["--runtime", "process", "--command", "a", "--upstream", "anthropic"],
     {"runtime": "process", "command": ["a"], "upstreams": ["anthropic"]}),
    (["--network", "none"], {"network": "none"}),
    (["--network", "bridge"], {"network": "bridge"}),
    (["--network", "my-net_1.x"], {"network": "my-net_1.x"}),
    (["--memory", "512m"], {"memory_bytes": 512 << 20}),
    (["--memory", "2g"], {"memory_bytes": 2 << 30}),
    (["--memory", "1.5GiB"], {"memory_bytes": 3 << 29}),
    (["--cpus", "0.5"], {"cpus": 0.5}),
    (["--cpus", "2"], {"cpus": 2.0}),
    (["--pids", "64"], {"pids": 64}),
    (["--timeout", "2h"], {"timeout": 7200.0}),
    (["--timeout", "5400"], {"timeout": 5400.0}),
    (["--idle-timeout", "90s", "--timeout", "1h30m"], {"idle_timeout": 90.0, "timeout": 5400.0}),
    (["--idle-timeout", "30m"], {"idle_timeout": 1800.0}),
    (["--user", "1001:1001"], {"user": "1001:1001"}),
    (["--user", "agent"], {"user": "agent"}),
]  # fmt: skip


@pytest.mark.parametrize(("args", "stored"), GOOD, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
@pytest.mark.parametrize("command", ["add", "set"])
def test_a_good_value_is_stored_as_runs_read_it_by_add_and_by_set(
    gated: Gated, data_dir: Path, command: str, args: list[str], stored: dict[str, Any]
) -> None:
    if command == "set":
        ok(gated("group", "add", "corp"))
    ok(gated("group", command, "corp", *args))
    assert config_of(data_dir) == stored


def test_mounts_are_stored_read_only_unless_asked_rw_under_a_writable_root(
    gated: Gated, data_dir: Path, roots: dict[str, Path]
) -> None:
    shared, scratch = roots["shared"], roots["scratch"]
    args = ["--mount", f"{shared}/sub:/data/ro", "--mount", f"{scratch}:/data/rw:rw", "--mount", f"{scratch}/sub:/x:ro"]
    ok(gated("group", "add", "corp", *args))
    assert config_of(data_dir)["mounts"] == [
        {"source": f"{shared}/sub", "target": "/data/ro", "read_only": True},
        {"source": str(scratch), "target": "/data/rw", "read_only": False},
        {"source": f"{scratch}/sub", "target": "/x", "read_only": True},
    ]
    # the same container path again replaces the mount; --unset-mount removes one
    ok(gated("group", "set", "corp", "--mount", f"{shared}/sub/:/data/rw/", "--unset-mount", "/x/"))
    assert config_of(data_dir)["mounts"] == [
        {"source": f"{shared}/sub", "target": "/data/ro", "read_only": True},
        {"source": f"{shared}/sub", "target": "/data/rw", "read_only": True},
    ]


BAD: list[tuple[list[str], str]] = [
    (["--runtime", "lxc"], "--runtime: expected docker or process, got 'lxc'"),
    (["--runtime", ""], "--runtime: expected docker or process"),
    (["--image", "two words"], "--image: expected an image reference"),
    (["--image", "UPPER:1"], "--image: expected an image reference"),
    (["--image", ""], "--image: expected an image reference"),
    (["--command", ""], "--command: empty command"),
    (["--command", "'unclosed"], "--command: No closing quotation"),
    (["--env", "NOEQUALS"], "--env 'NOEQUALS': expected KEY=VALUE"),
    (["--env", "=x"], "--env '': not a variable name"),
    (["--env", "1A=x"], "--env '1A': not a variable name"),
    (["--env", "A-B=x"], "--env 'A-B': not a variable name"),
    (["--env", "GITHUB_TOKEN=x"], "--env GITHUB_TOKEN: looks like a credential"),
    (["--env", "OPENAI_API_KEY=x"], "give the group --secret OPENAI_API_KEY"),
    (["--env", "db_password=x"], "--env db_password: looks like a credential"),
    (["--unset-env", "1A"], "--unset-env '1A': not a variable name"),
    (["--secret", "NOPE"], "--secret NOPE: not in the secrets: section of kanmon.yaml (API_KEY, GH_TOKEN)"),
    (["--upstream", "openai", "--network", "bridge"], "--upstream openai: not in credential_proxy.upstreams"),
    (["--upstream", "anthropic"], "--upstream: the agent reaches gated's credential proxy over a network"),
    (["--network", "host"], "--network host: refused"),
    (["--network", "default"], "--network default: refused"),
    (["--network", "container:other"], "--network: expected none, bridge or a network name"),
    (["--network", ""], "--network: expected none, bridge or a network name"),
    (["--mount", "/a"], "--mount '/a': expected HOST:CONTAINER"),
    (["--mount", "/a:/b:rx"], "--mount '/a:/b:rx': expected HOST:CONTAINER"),
    (["--mount", "/a:/b:ro:x"], "expected HOST:CONTAINER"),
    (["--mount", "relative:/b"], "the host path must be absolute"),
    (["--mount", "{shared}:relative"], "the container path must be absolute"),
    (["--mount", "{shared}:/home/agent"], "the container path must be"),
    (["--mount", "{shared}:/proc/x"], "the container path must be"),
    (["--mount", "{shared}:/a/../b"], "the container path must be"),
    (["--mount", "{outside}:/x"], "it is not under any allowed root (runtime.mount_allowlist:"),
    (["--mount", "{shared}/missing:/x"], "it does not exist"),
    (["--mount", "{shared}:/x"], "outside"),  # the root holds a symlink leaving it
    (["--mount", "{shared}/sub:/x:rw"], "cannot be writable: its allowed root"),
    (["--unset-mount", "relative"], "--unset-mount 'relative': expected the mount's absolute container path"),
    (["--memory", "lots"], "--memory: expected a size like 512m or 2g, >= 6m, got 'lots'"),
    (["--memory", "5m"], "--memory: expected a size"),
    (["--memory", "-1g"], "--memory: expected a size"),
    (["--cpus", "0"], "--cpus: expected a number of CPUs >= 0.01"),
    (["--cpus", "nan"], "--cpus: expected"),
    (["--cpus", "inf"], "--cpus: expected"),
    (["--cpus", "two"], "--cpus: expected"),
    (["--pids", "0"], "--pids: expected an integer >= 1, got '0'"),
    (["--pids", "1.5"], "--pids: expected an integer >= 1"),
    (["--timeout", "soon"], "--timeout: expected seconds > 0, or like 90s, 30m, 2h, got 'soon'"),
    (["--timeout", "0"], "--timeout: expected seconds > 0"),
    (["--timeout", "-5s"], "--timeout: expected"),
    (["--timeout", "10m"], "--timeout: 10m must be at least the idle timeout (30m) plus 30s"),
    (["--idle-timeout", "2h"], "--timeout: 1h must be at least the idle timeout (2h) plus 30s"),
    (["--idle-timeout", "10x"], "--idle-timeout: expected"),
    (["--user", "root"], "--user: expected a non-root user[:group] like 1000:1000, got 'root'"),
    (["--user", "0:1000"], "--user: expected a non-root user"),
    (["--user", "a b"], "--user: expected a non-root user"),
    (["--user", "4294967296"], "--user: expected a non-root user"),  # was a traceback (OverflowError in chown)
    (["--user", "1000:4294967295"], "--user: expected a non-root user"),  # (gid_t)-1: "no change" to chown
    (["--user", "1000:0"], "--user: expected a non-root user"),  # the root group
    (["--user", "1000:root"], "--user: expected a non-root user"),
    (["--reset", "colour"], "--reset 'colour': expected one of runtime, image"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_value_is_one_line_exit_2_and_changes_nothing(
    gated: Gated, data_dir: Path, roots: dict[str, Path], args: list[str], fragment: str
) -> None:
    args = [arg.format(**{name: str(path) for name, path in roots.items()}) for arg in args]
    ok(gated("group", "add", "corp", "--env", "KEEP=1", "--memory", "1g"))
    before = config_of(data_dir)
    one_line_error(gated("group", "set", "corp", *args), fragment)
    assert config_of(data_dir) == before
    one_line_error(gated("group", "add", "other", *args), fragment)
    assert "other" not in ok(gated("group", "list")).output
    assert not (data_dir / "groups" / "other").exists()


def test_mounts_need_the_docker_runtime_whichever_comes_first(
    gated: Gated, data_dir: Path, roots: dict[str, Path]
) -> None:
    mount = f"{roots['scratch']}:/data"
    one_line_error(gated("group", "add", "corp", "--runtime", "process", "--mount", mount), "--mount: the process")
    ok(gated("group", "add", "corp", "--mount", mount))
    before = config_of(data_dir)
    one_line_error(gated("group", "set", "corp", "--runtime", "process"), "the group's mounts (--reset mounts")
    assert config_of(data_dir) == before
    ok(gated("group", "set", "corp", "--runtime", "process", "--command", "a", "--reset", "mounts"))
    assert config_of(data_dir) == {"runtime": "process", "command": ["a"]}


def test_the_process_runtime_needs_a_command_whichever_comes_first(gated: Gated, data_dir: Path) -> None:
    """A newcomer's `group add nocmd --runtime process` was accepted, and every message to it was dead-lettered after
    three failed starts ("a run needs an image or a command")."""
    one_line_error(gated("group", "add", "corp", "--runtime", "process"), "the process runtime runs a command")
    assert not (data_dir / "groups" / "corp").exists()
    ok(gated("group", "add", "corp"))
    before = config_of(data_dir)
    one_line_error(gated("group", "set", "corp", "--runtime", "process"), "give --command")
    assert config_of(data_dir) == before
    ok(gated("group", "set", "corp", "--runtime", "process", "--command", "gated agent echo"))
    before = config_of(data_dir)
    one_line_error(gated("group", "set", "corp", "--reset", "command"), "give --command")
    assert config_of(data_dir) == before


def test_unset_and_reset_go_back_to_the_defaults(gated: Gated, data_dir: Path, roots: dict[str, Path]) -> None:
    ok(gated("group", "add", "corp", "--env", "A=1", "--env", "B=2", "--secret", "API_KEY", "--secret", "GH_TOKEN",
             "--mount", f"{roots['scratch']}:/data", "--memory", "2g", "--image", "x:1", "--user", "1001"))  # fmt: skip
    ok(gated("group", "set", "corp", "--unset-env", "A", "--unset-env", "NEVER_SET", "--unset-secret", "API_KEY",
             "--reset", "memory", "--reset", "mounts", "--image", "y:2"))  # fmt: skip
    assert config_of(data_dir) == {"env": {"B": "2"}, "secrets": ["GH_TOKEN"], "image": "y:2", "user": "1001"}
    ok(gated("group", "set", "corp", "--unset-env", "B", "--reset", "secrets", "--reset", "image", "--reset", "user"))
    assert config_of(data_dir) == {}


def test_set_needs_a_change_and_a_group(gated: Gated) -> None:
    ok(gated("group", "add", "corp"))
    one_line_error(gated("group", "set", "corp"), "nothing to change")
    one_line_error(gated("group", "set", "nope", "--cpus", "1"), "no group 'nope': add it with `gated group add nope")
    one_line_error(gated("group", "show", "nope"), "no group 'nope'")


def test_show_prints_effective_settings_and_secret_names_never_their_values(
    gated: Gated, data_dir: Path, roots: dict[str, Path]
) -> None:
    ok(gated("group", "add", "corp", "--env", "A=1", "--secret", "API_KEY", "--memory", "512m", "--idle-timeout",
             "90s", "--mount", f"{roots['scratch']}:/data:rw"))  # fmt: skip
    text = ok(gated("group", "show", "corp")).output
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "docker  (default)" in lines["runtime"] and "kanmon-agent:latest  (default)" in lines["image"]
    assert lines["env"].endswith("A=1") and lines["secrets"].endswith("API_KEY")
    assert lines["memory"].endswith("512m") and "1h  (default)" in lines["timeout"]
    assert f"{roots['scratch']} -> /data (rw)" in lines["mounts"]
    view = json.loads(ok(gated("group", "show", "corp", "--json")).output)
    assert view["settings"]["secrets"] == ["API_KEY"] and view["settings"]["idle_timeout"] == 90.0
    assert view["settings"]["memory_bytes"] == 512 << 20 and view["settings"]["env"] == {"A": "1"}
    assert view["settings"]["mounts"] == [{"host": str(roots["scratch"]), "container": "/data", "mode": "rw"}]
    assert set(view["defaults"]) == {
        "runtime", "image", "command", "network", "cpus", "pids", "timeout", "user", "daily_budget", "timezone",
        "session_reset", "session_idle_expiry", "session_reset_hour", "session_reset_notice", "session_reset_platforms",
        "memory_flush", "memory_flush_prompt", "memory_flush_timeout",
    }  # fmt: skip
    assert (view["folder"], view["web_chat"], view["parent"]) == ("corp", False, None)
    ok(gated("group", "add", "corp/ops"))  # a newcomer's report: shown as 'parent -', yet corp acted as its parent
    nested = json.loads(ok(gated("group", "show", "corp/ops", "--json")).output)
    assert nested["parent"] == "corp"
    rows = ok(gated("group", "show", "corp/ops")).output.splitlines()
    assert [line.split() for line in rows if line.startswith("parent")] == [["parent", "corp"]]
    shown = text + json.dumps(view) + ok(gated("config", "show")).output
    assert PLANTED not in shown
    assert "API_KEY=env:KANMON_TEST_API_KEY,GH_TOKEN=file:/run/secrets/gh" in shown


def test_show_prints_a_command_as_the_shell_would_take_it_back(gated: Gated) -> None:
    """A newcomer's report: --command "python3 -c 'import sys; sys.exit(1)'" showed without its quotes."""
    ok(gated("group", "add", "corp", "--runtime", "process", "--command", "python3 -c 'import sys; sys.exit(1)'"))
    rows = ok(gated("group", "show", "corp")).output.splitlines()
    [command] = [line for line in rows if line.startswith("command")]
    assert command.endswith("python3 -c 'import sys; sys.exit(1)'"), command


def test_show_flags_a_secret_no_longer_configured(gated: Gated, data_dir: Path) -> None:
    ok(gated("group", "add", "corp", "--secret", "GH_TOKEN"))
    (data_dir / "kanmon.yaml").write_text("secrets:\n  API_KEY: env:KANMON_TEST_API_KEY\n")
    assert "GH_TOKEN  (not in the secrets: section" in ok(gated("group", "show", "corp")).output


def test_a_hand_written_setting_set_cannot_read_is_left_to_the_run_to_report(gated: Gated, data_dir: Path) -> None:
    ok(gated("group", "add", "corp"))
    store = Store.open(f"sqlite:///{data_dir / 'kanmon.db'}")
    try:
        store.update_group_config("corp", lambda config: {"timeout": "soon", "secrets": ["API_KEY"]})
    finally:
        store.close()
    ok(gated("group", "set", "corp", "--idle-timeout", "60"))
    assert config_of(data_dir) == {"timeout": "soon", "secrets": ["API_KEY"], "idle_timeout": 60.0}
    assert "'soon'  (not a valid timeout: its runs fail to start)" in ok(gated("group", "show", "corp")).output
