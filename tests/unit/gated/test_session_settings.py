"""`gated group set` session options (issue 16 items 2 and 3): stored as the runner reads them, shown by `group show`,
refused in one line (exit 2) with the group unchanged; the per-platform grammar, by example and by hypothesis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from kanmon.errors import InvalidInput
from kanmon.gated.cli import cli
from kanmon.gated.session_settings import parse_platform_policy
from kanmon.gated.setting_values import format_duration
from kanmon.gateway.session_policy import ResetPolicy, policy_for
from kanmon.store import Store


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--data-dir", str(self.data_dir), *args], catch_exceptions=False)

    def config(self) -> dict[str, object]:
        store = Store.open(f"sqlite:///{self.data_dir / 'kanmon.db'}")
        try:
            group = store.get_group("corp")
            assert group is not None
            return dict(group.container_config)
        finally:
            store.close()


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in [n for n in os.environ if n.startswith("KANMON_")]:
        monkeypatch.delenv(name)
    run = Cli(tmp_path / "data")
    assert run("group", "add", "corp").exit_code == 0
    return run


def test_session_settings_are_stored_as_the_runner_reads_them_and_shown(gated: Cli) -> None:
    result = gated(
        "group", "set", "corp", "--session-reset", "both", "--session-idle", "24h", "--session-reset-hour", "5",
        "--timezone", "Europe/Berlin", "--session-reset-notice", "on", "--session-reset-for", "telegram=idle:30m",
        "--session-reset-for", "web=none", "--memory-flush", "on", "--flush-prompt", "save", "--flush-timeout", "2m",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = gated.config()
    assert config == {
        "session_reset": "both", "session_idle_expiry": 86400.0, "session_reset_hour": 5, "timezone": "Europe/Berlin",
        "session_reset_notice": True, "memory_flush": True, "memory_flush_prompt": "save",
        "memory_flush_timeout": 120.0,
        "session_reset_platforms": {"telegram": {"mode": "idle", "idle": 1800.0}, "web": {"mode": "none"}},
    }  # fmt: skip
    default = ResetPolicy(mode="idle")
    assert policy_for(config, "telegram", default) == ResetPolicy("idle", 1800.0, 5, "Europe/Berlin", True)
    assert policy_for(config, "web", default).mode == "none"
    shown = gated("group", "show", "corp").output
    assert "telegram: idle after 30m" in shown and "flush before reset    on" in shown
    assert gated("group", "set", "corp", "--unset-session-reset-for", "web", "--reset", "memory-flush").exit_code == 0
    config = gated.config()
    assert "memory_flush" not in config
    assert config["session_reset_platforms"] == {"telegram": {"mode": "idle", "idle": 1800.0}}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--session-reset", "weekly"], "--session-reset: expected one of none, idle, daily, both"),
        (["--session-idle", "soon"], "--session-idle: expected 0 (never), or an idle length from 1s to 365d"),
        (["--session-idle", "-5m"], "--session-idle: expected 0 (never), or an idle length from 1s to 365d"),
        (["--session-reset-hour", "24"], "--session-reset-hour: expected an hour from 0 to 23"),
        (["--session-reset-notice", "maybe"], "--session-reset-notice: expected on or off"),
        (["--memory-flush", "2"], "--memory-flush: expected on or off"),
        (["--flush-timeout", "0"], "--flush-timeout: expected seconds > 0"),
        (["--flush-prompt", " "], "--flush-prompt: expected some text"),
        (["--session-reset-for", "telegram"], "expected PLATFORM=POLICY"),
        (["--session-reset-for", "telegram=idle"], "POLICY is none, idle:DURATION, daily:H or both:DURATION:H"),
        (["--session-reset-for", "telegram=daily:25"], "expected an hour from 0 to 23"),
    ],
)
def test_a_bad_value_is_one_line_and_changes_nothing(gated: Cli, args: list[str], fragment: str) -> None:
    assert gated("group", "set", "corp", "--session-reset", "idle").exit_code == 0
    result = gated("group", "set", "corp", *args, "--timezone", "Asia/Tokyo")  # a good value beside it: not kept
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and fragment in lines[0], result.output
    assert gated.config() == {"session_reset": "idle"}


@pytest.mark.parametrize("never", ["0", "never"])
def test_an_idle_length_of_0_is_never_as_the_readme_says(gated: Cli, never: str) -> None:
    result = gated("group", "set", "corp", "--session-reset", "idle", "--session-idle", "24h")
    assert result.exit_code == 0, result.output
    result = gated("group", "set", "corp", "--session-idle", never)
    assert result.exit_code == 0, result.output
    config = gated.config()
    assert config["session_idle_expiry"] == 0.0
    assert policy_for(config, "web", ResetPolicy(mode="idle")).idle == 0.0
    assert "never" in gated("group", "show", "corp").output


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        # an idle policy that never goes idle resets nothing: `none` says that, `daily:H` is `both` without idle
        ("tg=idle:0", "idle:0 never resets: write tg=none"),
        ("tg=idle:never", "idle:never never resets: write tg=none"),
        ("tg=both:0:4", "both:0:4 never resets for idle: write tg=daily:4"),
        ("tg=idle:0.0000001", "--session-reset-for tg: expected an idle length from 1s to 365d"),
        ("tg=idle:0.5", "--session-reset-for tg: expected an idle length from 1s to 365d"),
        ("tg=idle:366d", "--session-reset-for tg: expected an idle length from 1s to 365d"),
        ("tg=both:1e9:4", "--session-reset-for tg: expected an idle length from 1s to 365d"),
        ("tg=idle:-5m", "--session-reset-for tg: expected an idle length from 1s to 365d"),
    ],
)
def test_a_platform_policy_that_cannot_act_is_refused(gated: Cli, spec: str, fragment: str) -> None:
    result = gated("group", "set", "corp", "--session-reset-for", spec)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and fragment in lines[0], result.output
    assert "session_reset_platforms" not in gated.config()


@pytest.mark.parametrize("idle", ["0.0000001", "0.5", "366d", "99999999999999999999"])
def test_an_absurd_group_idle_length_is_refused(gated: Cli, idle: str) -> None:
    result = gated("group", "set", "corp", "--session-idle", idle)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "--session-idle: expected 0 (never), or an idle length from 1s to 365d" in lines[0]
    assert "session_idle_expiry" not in gated.config()


PLATFORMS = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
HOURS = st.integers(0, 23)
MINUTES = st.integers(1, 10_000)


@given(
    platform=PLATFORMS,
    policy=st.one_of(
        st.just(("none", {})),
        MINUTES.map(lambda m: (f"idle:{m}m", {"idle": 60.0 * m})),
        HOURS.map(lambda h: (f"daily:{h}", {"hour": h})),
        st.tuples(MINUTES, HOURS).map(lambda t: (f"both:{t[0]}m:{t[1]}", {"idle": 60.0 * t[0], "hour": t[1]})),
    ),
)
def test_every_platform_policy_reads_back(platform: str, policy: tuple[str, dict[str, float]]) -> None:
    text, fields = policy
    assert parse_platform_policy(f"{platform}={text}") == (platform, {"mode": text.split(":")[0], **fields})


def _spelled(platform: str, policy: dict[str, Any]) -> str:
    """``policy`` written back as ``--session-reset-for`` takes it."""
    fields = [format_duration(policy["idle"])] if "idle" in policy else []
    return ":".join([f"{platform}={policy['mode']}", *fields, *([str(policy["hour"])] if "hour" in policy else [])])


# near the grammar, so that most examples get past PLATFORM=MODE to the numbers
SPECS = st.from_regex(r"tg=(none|idle|daily|both)(:(never|[0-9]{0,10}(\.[0-9]{0,8})?[smhd]?)){0,3}", fullmatch=True)


@given(st.one_of(st.text(max_size=40), SPECS))
def test_any_text_is_a_policy_that_reads_back_or_one_clear_error(text: str) -> None:
    try:
        platform, policy = parse_platform_policy(text)
    except InvalidInput as exc:
        assert "--session-reset-for" in str(exc) and "\n" not in str(exc)
    else:
        assert policy["mode"] in ("none", "idle", "daily", "both") and platform
        assert parse_platform_policy(_spelled(platform, policy)) == (platform, policy)
        if "idle" in policy:  # a policy that acts: an idle length a session can reach and a duration shown as such
            assert 1 <= policy["idle"] <= 365 * 86400
