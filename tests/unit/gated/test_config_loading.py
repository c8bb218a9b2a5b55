"""Loading configuration (SPEC §13): precedence of the sources, the YAML file, and one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from kanmon.errors import InvalidInput
from kanmon.gated.config import ConfigError, Settings, derive_instance, load_settings, render_config
from kanmon.gated.daemon import gateway_config


def load(
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    config_path: Path | None = None,
) -> Settings:
    return load_settings(
        data_dir=str(data_dir),
        config_path=None if config_path is None else str(config_path),
        environ=environ or {},
        overrides=overrides or {},
    )


def write_yaml(data_dir: Path, text: str, name: str = "kanmon.yaml") -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(data_dir: Path, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(data_dir, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config: ")
    return message


# --- precedence ------------------------------------------------------------------------------------------------

PRECEDENCE_CASES = [
    # key, yaml text, env var, env value, flag value, attribute path, (yaml, env, flag) expected typed values
    ("poll_interval", "poll_interval: 4.5", "KANMON_POLL_INTERVAL", "6", "7.25", "gateway.poll_interval",
     (4.5, 6.0, 7.25)),
    ("store.url", "store:\n  url: sqlite:///y.db", "KANMON_STORE_URL", "sqlite:///e.db", "sqlite:///f.db", "store.url",
     ("sqlite:///y.db", "sqlite:///e.db", "sqlite:///f.db")),
    ("max_concurrent", "max_concurrent: 2", "KANMON_MAX_CONCURRENT", "3", 4, "queue.max_concurrent", (2, 3, 4)),
    ("runtime.docker.memory", "runtime:\n  docker:\n    memory: 512m", "KANMON_RUNTIME_DOCKER_MEMORY", "2g", "256m",
     "runtime.docker.memory_bytes", (512 << 20, 2 << 30, 256 << 20)),
    ("log.level", "log: {level: debug}", "KANMON_LOG_LEVEL", "warning", "ERROR", "log.level",
     ("DEBUG", "WARNING", "ERROR")),
]  # fmt: skip


def attribute(settings: Settings, path: str) -> object:
    node: object = settings
    for part in path.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("key", "yaml_text", "env", "env_value", "flag", "attr", "expected"), PRECEDENCE_CASES)
def test_each_source_overrides_the_one_below_it(
    tmp_path: Path,
    key: str,
    yaml_text: str,
    env: str,
    env_value: str,
    flag: object,
    attr: str,
    expected: tuple[object, object, object],
) -> None:
    default = attribute(load(tmp_path), attr)
    write_yaml(tmp_path, yaml_text)
    from_yaml = load(tmp_path)
    from_env = load(tmp_path, environ={env: env_value})
    from_flag = load(tmp_path, environ={env: env_value}, overrides={key: flag})

    assert [attribute(s, attr) for s in (from_yaml, from_env, from_flag)] == list(expected)
    assert default not in expected
    assert from_yaml.sources[key] == f"{tmp_path / 'kanmon.yaml'}:{yaml_text.count(chr(10)) + 1}"
    assert from_env.sources[key] == env
    assert from_flag.sources[key] == "command line"


def test_defaults_apply_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.gateway.poll_interval == 2.0
    assert settings.queue.max_concurrent == 5
    assert settings.runtime.docker.memory_bytes == 1 << 30
    assert settings.store_url == f"sqlite:///{tmp_path.resolve() / 'kanmon.db'}"
    assert settings.sources.get("poll_interval") is None


def test_none_overrides_and_empty_environment_variables_count_as_unset(tmp_path: Path) -> None:
    settings = load(tmp_path, environ={"KANMON_POLL_INTERVAL": "  "}, overrides={"max_concurrent": None})
    assert settings.gateway.poll_interval == 2.0
    assert settings.queue.max_concurrent == 5


def test_unrelated_kanmon_environment_variables_are_ignored(tmp_path: Path) -> None:
    environ = {"KANMON_TEST_PG_URL": "postgresql://x", "KANMON_SERVICES_DIR": "/tmp/s", "KANMON_": "", "PATH": "/bin"}
    assert load(tmp_path, environ=environ) == load(tmp_path)


# --- the data dir and its default file -------------------------------------------------------------------------


def test_the_data_dir_flag_beats_kanmon_data_dir_which_beats_the_default(tmp_path: Path) -> None:
    environ = {"KANMON_DATA_DIR": str(tmp_path / "env")}
    assert load_settings(data_dir=None, config_path=None, environ=environ, overrides={}).data_dir == tmp_path / "env"
    from_flag = load(tmp_path / "flag", environ=environ)
    assert from_flag.data_dir == (tmp_path / "flag").resolve()
    assert from_flag.sources["data_dir"] == "--data-dir"


def test_a_relative_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(data_dir=None, config_path=None, environ={}, overrides={})
    assert settings.data_dir == tmp_path.resolve() / "kanmon-data"


def test_kanmon_yaml_in_the_data_dir_is_read_when_present(tmp_path: Path) -> None:
    write_yaml(tmp_path, "max_attempts: 9\nimpulse:\n  threshold: 50\n")
    settings = load(tmp_path)
    assert (settings.queue.max_attempts, settings.impulse.threshold) == (9, 50)


def test_an_explicit_config_file_replaces_the_data_dir_one(tmp_path: Path) -> None:
    write_yaml(tmp_path, "max_attempts: 9\n")
    explicit = write_yaml(tmp_path / "etc", "poll_batch: 10\n", name="other.yaml")
    settings = load(tmp_path, config_path=explicit)
    assert (settings.queue.max_attempts, settings.gateway.poll_batch) == (3, 10)


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, config_path=tmp_path / "nope.yaml")
    assert message == f"config: {tmp_path / 'nope.yaml'} (from --config): file not found"


@pytest.mark.parametrize("size", ["1x", "1m"])
def test_a_container_memory_too_small_or_not_a_size_says_what_is_expected_in_words(tmp_path: Path, size: str) -> None:
    message = error_of(tmp_path, environ={"KANMON_RUNTIME_DOCKER_MEMORY": size})
    assert message.endswith(f": expected a size like 512m or 1g, at least 6m, got {size!r}")  # not ">= 6291456"


def test_an_explicit_config_that_is_a_directory_says_so(tmp_path: Path) -> None:
    message = error_of(tmp_path, config_path=tmp_path)
    assert message == f"config: {tmp_path} (from --config): is a directory; expected a YAML file"


def test_an_empty_or_comment_only_file_means_all_defaults(tmp_path: Path) -> None:
    without_file = load(tmp_path)
    write_yaml(tmp_path, "# nothing yet\nstore:\n  # url: sqlite:///x\n")
    assert load(tmp_path) == without_file


def test_the_data_dir_cannot_be_set_from_inside_a_config_file(tmp_path: Path) -> None:
    write_yaml(tmp_path, "data_dir: /elsewhere\n")
    assert error_of(tmp_path) == (
        f"config: data_dir (from {tmp_path / 'kanmon.yaml'}:1): cannot be set in a config file; "
        "use a flag or KANMON_DATA_DIR"
    )


def test_the_instance_is_derived_from_the_data_dir_unless_set(tmp_path: Path) -> None:
    first, second = load(tmp_path / "a"), load(tmp_path / "b")
    assert first.instance == derive_instance((tmp_path / "a").resolve())
    assert first.instance != second.instance
    assert first.instance.startswith("k") and len(first.instance) == 9
    assert load(tmp_path / "a", environ={"KANMON_INSTANCE": "prod-1"}).instance == "prod-1"


# --- YAML shape ------------------------------------------------------------------------------------------------


def test_dotted_keys_may_also_be_written_flat_in_yaml(tmp_path: Path) -> None:
    write_yaml(tmp_path, "runtime.docker.cpus: 2.5\n")
    assert load(tmp_path).runtime.docker.cpus == 2.5


def test_an_unknown_yaml_key_names_the_key_and_line_and_suggests_the_right_one(tmp_path: Path) -> None:
    write_yaml(tmp_path, "poll_interval: 1\nstore:\n  busy_timeout: 5\n")
    assert error_of(tmp_path) == (
        f"config: store.busy_timeout (from {tmp_path / 'kanmon.yaml'}:3): unknown key "
        "(did you mean store.busy_timeout_ms?)"
    )


def test_a_key_given_twice_in_yaml_is_an_error_not_last_wins(tmp_path: Path) -> None:
    write_yaml(tmp_path, "timeout: 4000\ntimeout: 5000\n")
    assert error_of(tmp_path) == f"config: timeout (from {tmp_path / 'kanmon.yaml'}:2): given twice"


def test_a_section_given_a_scalar_is_an_error(tmp_path: Path) -> None:
    write_yaml(tmp_path, "http: 8080\n")
    assert "http (from" in error_of(tmp_path) and "expected a mapping of its keys" in error_of(tmp_path)


def test_bad_yaml_syntax_reports_the_file_and_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "poll_interval: 1\nstore:\n  url: [unclosed\nlog: {}\n")
    message = error_of(tmp_path)
    assert message.startswith(f"config: {path}:4: invalid YAML: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_yaml_top_level_that_is_not_a_mapping_is_an_error(tmp_path: Path, text: str) -> None:
    write_yaml(tmp_path, text)
    assert "the top level must be a mapping of keys" in error_of(tmp_path)


def test_keys_that_are_not_names_are_rejected(tmp_path: Path) -> None:
    write_yaml(tmp_path, "log:\n  level: INFO\n  42: x\n")
    assert error_of(tmp_path).startswith(f"config: log.42 (from {tmp_path / 'kanmon.yaml'}:3): unknown key")
    write_yaml(tmp_path, "? [a, b]\n: 1\n")
    assert "invalid YAML: found unhashable key" in error_of(tmp_path)


def test_an_unknown_override_key_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path, overrides={"poll_intervall": 3}).startswith(
        "config: poll_intervall (from command line): unknown key (did you mean poll_interval?)"
    )


# --- values and their errors -----------------------------------------------------------------------------------


def test_the_example_error_from_the_spec_is_exactly_one_line(tmp_path: Path) -> None:
    assert error_of(tmp_path, environ={"KANMON_POLL_INTERVAL": "abc"}) == (
        "config: poll_interval (from KANMON_POLL_INTERVAL): expected a number > 0, got 'abc'"
    )


INVALID_VALUES = [
    ("poll_interval", "0"),
    ("poll_interval", "nan"),
    ("poll_batch", "1.5"),
    ("store.busy_timeout_ms", "-1"),
    ("store.pool_size", "0"),
    ("store.url", "not a url"),
    ("max_concurrent", "0"),
    ("max_attempts", "three"),
    ("retry_base_delay", "-5"),
    ("impulse.threshold", "0"),
    ("impulse.max_hold_ms", "soon"),
    ("impulse.max_hold_ms", "1000000000000000"),  # past a week: a held chat's deadline is no date
    ("idle_timeout", "0"),
    ("stop_grace", "-1"),
    ("drain_timeout", "x"),
    ("runtime.default", "kubernetes"),
    ("runtime.output_cap", "10"),
    ("runtime.docker.image", "two words"),
    ("runtime.docker.memory", "lots"),
    ("runtime.docker.memory", "1m"),
    ("runtime.docker.cpus", "0"),
    ("runtime.docker.pids_limit", "0"),
    ("runtime.docker.user", "root"),
    ("runtime.docker.user", "0:0"),
    ("runtime.docker.user", "1000:0"),
    ("auth.operators", "telegram:42,tele[gram:1"),
    ("runtime.docker.user", "4294967296"),
    ("runtime.mount_allowlist", "/ok,relative/path"),
    ("runtime.reasoning_tags", "think,two words"),
    ("runtime.reasoning_tags", "think,<b>"),
    ("host_data_dir", "relative"),
    ("instance", "Has Spaces"),
    ("http.listen", "8080"),
    ("http.listen", "localhost:http"),
    ("http.listen", "localhost:70000"),
    ("http.max_body_bytes", "0"),
    ("http.trusted_sender_header", "X Bad"),
    ("delivery.deadline", "0"),
    ("session_idle_expiry", "-1"),
    ("session_idle_expiry", "0.5"),
    ("session_idle_expiry", "1e12"),
    ("onboarding.enabled", "maybe"),
    ("daemons", "noequals"),
    ("daemons", "hook=ftp://h/x"),
    ("daemons", "hook=not-a-url"),
    ("daemons", "hook=http:///no-host"),
    ("daemons", "Bad Name=http://h/x"),
    ("log.level", "LOUD"),
    ("log.format", "xml"),
]


@pytest.mark.parametrize(("key", "raw"), INVALID_VALUES)
def test_an_invalid_environment_value_names_the_key_and_the_variable(tmp_path: Path, key: str, raw: str) -> None:
    env = "KANMON_" + key.upper().replace(".", "_")
    message = error_of(tmp_path, environ={env: raw})
    assert message.startswith(f"config: {key} (from {env}): expected ")
    assert message.endswith(f"got {raw!r}")


@pytest.mark.parametrize(("key", "raw"), INVALID_VALUES)
def test_an_invalid_flag_value_names_the_key_and_the_command_line(tmp_path: Path, key: str, raw: str) -> None:
    assert error_of(tmp_path, overrides={key: raw}).startswith(f"config: {key} (from command line): expected ")


@pytest.mark.parametrize(
    ("yaml_text", "key", "line"),
    [
        ("max_concurrent: true\n", "max_concurrent", 1),
        ("\nstore:\n  pool_size: [1, 2]\n", "store.pool_size", 3),
        ("runtime:\n  docker:\n    user: 0\n", "runtime.docker.user", 3),
        ("runtime:\n  mount_allowlist: /a\n  default: 5\n", "runtime.default", 3),
        ("daemons:\n  bot: {url: x}\n", "daemons", 1),
    ],
)
def test_an_invalid_yaml_value_names_the_key_and_the_file_line(
    tmp_path: Path, yaml_text: str, key: str, line: int
) -> None:
    path = write_yaml(tmp_path, yaml_text)
    assert error_of(tmp_path).startswith(f"config: {key} (from {path}:{line}): expected ")


def test_an_unquoted_yaml_number_for_a_string_key_suggests_quoting(tmp_path: Path) -> None:
    write_yaml(tmp_path, "runtime:\n  docker:\n    user: 1000:50\n")  # YAML 1.1 reads this as the number 60050
    assert error_of(tmp_path).endswith("got the number 60050 (quote it in YAML)")


def test_an_invalid_value_fails_even_when_a_higher_source_overrides_it(tmp_path: Path) -> None:
    message = error_of(tmp_path, environ={"KANMON_POLL_INTERVAL": "abc"}, overrides={"poll_interval": 3})
    assert "KANMON_POLL_INTERVAL" in message


def test_config_errors_are_invalid_input_so_the_cli_exits_2(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        load(tmp_path, environ={"KANMON_MAX_CONCURRENT": "0"})


@pytest.mark.parametrize(("raw", "expected"), [("yes", True), ("1", True), ("On", True), ("no", False), ("0", False)])
def test_booleans_accept_the_usual_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    assert load(tmp_path, environ={"KANMON_ONBOARDING_ENABLED": raw}).gateway.onboarding is expected


def test_lists_are_comma_separated_in_the_environment_and_yaml_lists_in_the_file(tmp_path: Path) -> None:
    from_env = load(tmp_path, environ={"KANMON_RUNTIME_MOUNT_ALLOWLIST": "/srv/a, /srv/b,"})
    assert [entry.root for entry in from_env.runtime.mount_allowlist] == [Path("/srv/a"), Path("/srv/b")]
    write_yaml(tmp_path, "runtime:\n  mount_allowlist:\n    - /srv/c\n")
    assert [entry.root for entry in load(tmp_path).runtime.mount_allowlist] == [Path("/srv/c")]


def test_daemon_targets_are_a_mapping_in_yaml_and_pairs_in_the_environment(tmp_path: Path) -> None:
    from_env = load(tmp_path, environ={"KANMON_DAEMONS": "a=http://h:1/x, b=http://h:2/y"})
    assert dict(from_env.daemons) == {"a": "http://h:1/x", "b": "http://h:2/y"}
    write_yaml(tmp_path, "daemons:\n  triage: http://127.0.0.1:9000/hook\n")
    assert dict(load(tmp_path).daemons) == {"triage": "http://127.0.0.1:9000/hook"}


def test_the_configured_daemons_reach_the_gateway_with_the_delivery_settings(tmp_path: Path) -> None:
    settings = load(tmp_path, environ={"KANMON_DAEMONS": "triage=http://h:1/x", "KANMON_DELIVERY_DEADLINE": "60"})
    config = gateway_config(settings)
    assert dict(config.daemons) == {"triage": "http://h:1/x"}
    assert config.adapters.deadline == 60.0


def test_auth_operators_from_the_file_or_the_environment_reach_the_command_layer(tmp_path: Path) -> None:
    write_yaml(tmp_path, 'auth:\n  operators: ["telegram:42", "matrix:@me:*"]\n')
    assert gateway_config(load(tmp_path)).loop.auth.operators == ("telegram:42", "matrix:@me:*")
    from_env = load(tmp_path, environ={"KANMON_AUTH_OPERATORS": "telegram:7, telegram:8"})
    assert gateway_config(from_env).loop.auth.operators == ("telegram:7", "telegram:8")


def test_the_reply_cap_a_log_names_is_a_key_that_reaches_every_run(tmp_path: Path) -> None:
    """watch.py stops a run "(runtime.max_replies)": the key it names must exist and be the cap runs get."""
    assert gateway_config(load(tmp_path)).run.max_replies == 500
    settings = load(tmp_path, environ={"KANMON_RUNTIME_MAX_REPLIES": "20"})
    assert gateway_config(settings).run.max_replies == 20
    assert "runtime.max_replies" in error_of(tmp_path, environ={"KANMON_RUNTIME_MAX_REPLIES": "0"})


def test_the_session_watch_interval_reaches_the_expiry_watcher(tmp_path: Path) -> None:
    assert gateway_config(load(tmp_path)).session_watch == 60.0
    assert gateway_config(load(tmp_path, overrides={"session_watch_interval": 5})).session_watch == 5.0


def test_http_listen_splits_into_host_and_port_including_ipv6(tmp_path: Path) -> None:
    http = load(tmp_path, overrides={"http.listen": "[::1]:0"}).http
    assert (http.host, http.port) == ("::1", 0)


# --- the timeout cross-check -----------------------------------------------------------------------------------


def test_a_timeout_shorter_than_idle_timeout_plus_30s_names_both_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, environ={"KANMON_IDLE_TIMEOUT": "600"}, overrides={"timeout": "620"})
    assert message == (
        "config: timeout (from command line): must be at least idle_timeout + 30 s = 630 "
        "(idle_timeout is 600 from KANMON_IDLE_TIMEOUT), got 620"
    )


def test_a_timeout_of_exactly_idle_timeout_plus_30s_is_accepted(tmp_path: Path) -> None:
    settings = load(tmp_path, overrides={"idle_timeout": 600, "timeout": 630})
    assert (settings.runtime.idle_timeout, settings.runtime.timeout) == (600.0, 630.0)


def test_raising_idle_timeout_alone_past_the_default_timeout_is_caught(tmp_path: Path) -> None:
    message = error_of(tmp_path, environ={"KANMON_IDLE_TIMEOUT": "3600"})
    assert message.startswith("config: timeout (from default): must be at least idle_timeout + 30 s")


# --- config show -----------------------------------------------------------------------------------------------


def test_render_masks_secrets_and_url_passwords_but_shows_sources(tmp_path: Path) -> None:
    environ = {"KANMON_HTTP_CHANNEL_SECRET": "hunter2", "KANMON_STORE_URL": "postgresql+psycopg://kanmon:pw@db/k"}
    text = render_config(load(tmp_path, environ=environ))
    assert "hunter2" not in text and ":pw@" not in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()}
    assert rows["http.channel_secret"][1:3] == ["****", "KANMON_HTTP_CHANNEL_SECRET"]
    assert rows["store.url"][1:3] == ["postgresql+psycopg://kanmon:****@db/k", "KANMON_STORE_URL"]
    assert rows["poll_interval"][1:3] == ["2.0", "default"]


def test_an_unset_secret_renders_as_empty(tmp_path: Path) -> None:
    entry = next(e for e in load(tmp_path).describe() if e.key == "http.channel_secret")
    assert (entry.value, entry.source) == ("", "default")


def test_an_invalid_secret_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    write_yaml(tmp_path, "http:\n  channel_secret: [hunter2]\n")
    message = error_of(tmp_path)
    assert "hunter2" not in message and message.endswith("got '****'")


def test_secrets_and_store_passwords_stay_out_of_repr(tmp_path: Path) -> None:
    environ = {"KANMON_HTTP_CHANNEL_SECRET": "hunter2", "KANMON_STORE_URL": "postgresql+psycopg://kanmon:pw@db/k"}
    text = repr(load(tmp_path, environ=environ))
    assert "hunter2" not in text and ":pw@" not in text


def test_every_secret_the_settings_hold_is_listed_for_the_log_redaction(tmp_path: Path) -> None:
    environ = {
        "KANMON_HTTP_CHANNEL_SECRET": "hunter2",
        "KANMON_STORE_URL": "postgresql+psycopg://kanmon:p%40ss-word@db/k",
        "KANMON_DAEMONS": "a=http://u:daemon-pw@h:1/x, b=http://h:2/y",
    }
    assert set(load(tmp_path, environ=environ).secret_values()) == {"hunter2", "p@ss-word", "p%40ss-word", "daemon-pw"}
    assert load(tmp_path).secret_values() == []


def test_sizes_render_in_their_short_form(tmp_path: Path) -> None:
    entries = {e.key: e.value for e in load(tmp_path, environ={"KANMON_RUNTIME_DOCKER_MEMORY": "1.5g"}).describe()}
    assert entries["runtime.docker.memory"] == "1536m"
    assert entries["runtime.output_cap"] == "10m"


def test_reasoning_tags_are_a_list_of_names_kept_in_lower_case(tmp_path: Path) -> None:
    assert "reasoning" in load(tmp_path).runtime.reasoning_tags
    from_env = load(tmp_path, environ={"KANMON_RUNTIME_REASONING_TAGS": "think, Scratch,"})
    assert from_env.runtime.reasoning_tags == ("think", "scratch")
    write_yaml(tmp_path, "runtime:\n  reasoning_tags: []\n")
    assert load(tmp_path).runtime.reasoning_tags == ()
