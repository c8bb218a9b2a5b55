"""Agent secrets: the ``secrets:`` section (names and sources), and reading values at a run's start."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanmon import redaction
from kanmon.container.agent_secrets import (
    MAX_SECRET_BYTES,
    MissingSecret,
    SecretSource,
    parse_source,
    read_secret,
    read_secrets,
)
from kanmon.container.errors import InvalidRunSpec
from kanmon.gated.config import ConfigError, Settings, load_settings, render_config
from kanmon.redaction import REDACTED, SecretValues


@pytest.fixture(autouse=True)
def _own_redaction_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "SECRETS", SecretValues())


# --- sources ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "source"),
    [
        ({"env": "OPENAI_API_KEY"}, SecretSource("env", "OPENAI_API_KEY")),
        ({"file": "/run/secrets/gh"}, SecretSource("file", "/run/secrets/gh")),
        ("env:OPENAI_API_KEY", SecretSource("env", "OPENAI_API_KEY")),
        (" file: /run/secrets/gh ", SecretSource("file", "/run/secrets/gh")),
    ],
)
def test_a_source_is_an_environment_variable_or_an_absolute_file(raw: object, source: SecretSource) -> None:
    assert parse_source(raw) == source
    assert parse_source(str(source)) == source


@pytest.mark.parametrize(
    "raw",
    [{"env": "X", "file": "/y"}, {}, {"vault": "x"}, {"env": 5}, "plain", "env:", "env:1BAD", "file:relative", 7, None],
)
def test_anything_else_is_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_source(raw)


def load(tmp_path: Path, yaml_text: str = "", environ: dict[str, str] | None = None) -> Settings:
    (tmp_path / "kanmon.yaml").write_text(yaml_text)
    return load_settings(data_dir=str(tmp_path), config_path=None, environ=environ or {}, overrides={})


def test_the_section_maps_names_to_sources_in_yaml_and_in_the_environment(tmp_path: Path) -> None:
    yaml_text = "secrets:\n  OPENAI_API_KEY:\n    env: OPENAI_API_KEY\n  GH: file:/run/secrets/gh\n"
    settings = load(tmp_path, yaml_text)
    assert dict(settings.secrets) == {
        "OPENAI_API_KEY": SecretSource("env", "OPENAI_API_KEY"),
        "GH": SecretSource("file", "/run/secrets/gh"),
    }
    from_env = load(tmp_path, environ={"KANMON_SECRETS": "A=env:X, B=file:/s/b"})
    assert dict(from_env.secrets) == {"A": SecretSource("env", "X"), "B": SecretSource("file", "/s/b")}
    assert dict(load(tmp_path).secrets) == {}


def test_config_show_lists_names_and_sources_never_values(tmp_path: Path) -> None:
    settings = load(tmp_path, "secrets:\n  API_KEY: env:REAL_KEY\n", environ={"REAL_KEY": "value-4c1e9b"})
    [line] = [line for line in render_config(settings).splitlines() if line.startswith("secrets ")]
    assert "API_KEY=env:REAL_KEY" in line and "value-4c1e9b" not in line
    assert settings.secret_values() == []  # sources are no secret: values are read per run


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("secrets:\n  1BAD: env:X\n", "'1BAD' is not a secret name"),
        ("secrets:\n  bad-name: env:X\n", "'bad-name' is not a secret name"),
        ("secrets:\n  A:\n    env: X\n    file: /y\n", "secret A: expected exactly one of env or file"),
        ("secrets:\n  A:\n    vault: x\n", "secret A: expected {env: VARIABLE} or {file: /absolute/path}"),
        ("secrets:\n  A: file:relative/path\n", "secret A: file: 'relative/path' is not an absolute path"),
        ("secrets:\n  A: env:NOT-A-NAME\n", "secret A: env: 'NOT-A-NAME' is not an environment variable name"),
        ("secrets:\n  A: 5\n", "secret A: expected"),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_key_the_line_and_the_secret(
    tmp_path: Path, yaml_text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, yaml_text)
    message = str(caught.value)
    assert message.startswith(f"config: secrets (from {tmp_path / 'kanmon.yaml'}:1): ") and "\n" not in message
    assert problem in message


def test_a_bad_environment_entry_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config: secrets \(from KANMON_SECRETS\): expected"):
        load(tmp_path, environ={"KANMON_SECRETS": "noequals"})


# --- reading ---------------------------------------------------------------------------------------------------


def test_values_come_from_the_environment_and_from_files_and_are_remembered_for_redaction(tmp_path: Path) -> None:
    (tmp_path / "gh").write_text("gh-value-81f2\n")
    sources = {"API": SecretSource("env", "API_VALUE"), "GH": SecretSource("file", str(tmp_path / "gh"))}
    values = read_secrets(["API", "GH"], sources, {"API_VALUE": "api-value-0d3a"})
    assert values == {"API": "api-value-0d3a", "GH": "gh-value-81f2"}  # one trailing newline is not part of it
    assert redaction.redact("api-value-0d3a gh-value-81f2") == f"{REDACTED} {REDACTED}"
    assert read_secrets([], sources, {}) == {}


def test_a_file_is_read_again_each_time_so_a_rotated_value_counts(tmp_path: Path) -> None:
    source = SecretSource("file", str(tmp_path / "token"))
    (tmp_path / "token").write_text("before-rotation")
    assert read_secret("T", source, {}) == "before-rotation"
    (tmp_path / "token").write_text("after-rotation\r\n")
    assert read_secret("T", source, {}) == "after-rotation"
    (tmp_path / "token").write_text("keeps\n\n")  # only one line ending goes
    assert read_secret("T", source, {}) == "keeps\n"


@pytest.mark.parametrize(
    ("source", "environ", "why"),
    [
        (SecretSource("env", "UNSET_VAR"), {}, "secret S: the environment variable UNSET_VAR of gated is not set"),
        (SecretSource("env", "EMPTY_VAR"), {"EMPTY_VAR": ""}, "the environment variable EMPTY_VAR of gated is empty"),
        (SecretSource("file", "/nonexistent/kanmon/secret"), {}, "cannot read the file /nonexistent/kanmon/secret: No"),
    ],
)
def test_a_missing_value_names_the_secret_and_its_source(
    source: SecretSource, environ: dict[str, str], why: str
) -> None:
    with pytest.raises(MissingSecret) as caught:
        read_secrets(["S"], {"S": source}, environ)
    assert why in str(caught.value) and isinstance(caught.value, InvalidRunSpec)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\xff\xfe-not-utf8", "is not UTF-8 text"),
        (b"x" * (MAX_SECRET_BYTES + 1), "is larger than 64 KiB"),
    ],
)
def test_a_file_that_holds_no_usable_value_is_refused_without_showing_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    (tmp_path / "s").write_bytes(content)
    with pytest.raises(MissingSecret, match=why) as caught:
        read_secret("S", SecretSource("file", str(tmp_path / "s")), {})
    assert "xxxx" not in str(caught.value) and "not-utf8" not in str(caught.value)


def test_a_directory_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissingSecret, match="cannot read the file"):
        read_secret("S", SecretSource("file", str(tmp_path)), {})


def test_a_name_missing_from_the_section_is_refused() -> None:
    with pytest.raises(MissingSecret, match="secret GONE: it is not configured in the secrets: section"):
        read_secrets(["GONE"], {}, {})


def test_reading_never_puts_a_value_in_an_error(tmp_path: Path) -> None:
    (tmp_path / "ok").write_text("first-value-7e2d")
    sources = {"OK": SecretSource("file", str(tmp_path / "ok")), "NO": SecretSource("env", "ABSENT")}
    with pytest.raises(MissingSecret) as caught:
        read_secrets(["OK", "NO"], sources, {})
    assert "first-value-7e2d" not in str(caught.value) and "secret NO" in str(caught.value)
