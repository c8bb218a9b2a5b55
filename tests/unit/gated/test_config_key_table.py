"""The key table is complete and consistent with the settings tree it fills."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kanmon.gated.config import KEYS, Settings, load_settings
from kanmon.gated.config_keys import KEYS_BY_ENV
from kanmon.gated.config_kinds import SIZE, Key, format_size, parse_size


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_every_key_has_a_one_line_doc_and_a_default_that_passes_its_own_validation(key: Key) -> None:
    assert key.doc.strip() and "\n" not in key.doc and len(key.doc) <= 100
    assert key.expect
    assert key.coerce(key.default) == key.default


@pytest.mark.parametrize("key", [key for key in KEYS if key.kind is SIZE], ids=lambda key: key.name)
def test_a_size_key_says_it_takes_a_size(key: Key) -> None:
    """A newcomer's report: 'attachments.max_bytes: huge' answered 'expected an integer >= 1', though 20m is taken."""
    assert "size" in key.expect, key.expect


def test_every_key_has_its_own_environment_variable() -> None:
    assert len(KEYS_BY_ENV) == len(KEYS)
    assert KEYS_BY_ENV["KANMON_STORE_URL"].name == "store.url"
    assert KEYS_BY_ENV["KANMON_POLL_INTERVAL"].name == "poll_interval"
    assert KEYS_BY_ENV["KANMON_DATA_DIR"].name == "data_dir"


def test_the_keys_the_spec_names_are_all_there() -> None:
    names = {key.name for key in KEYS}
    required = {
        "data_dir", "instance", "store.url", "store.busy_timeout_ms", "store.pool_size", "poll_interval",
        "poll_batch", "max_concurrent", "max_attempts", "retry_base_delay", "idle_timeout", "timeout", "stop_grace",
        "drain_timeout", "impulse.threshold", "impulse.max_hold_ms", "runtime.default", "runtime.docker.image",
        "runtime.docker.network", "runtime.docker.memory", "runtime.docker.cpus", "runtime.docker.pids_limit",
        "runtime.docker.user", "runtime.mount_allowlist", "host_data_dir", "http.listen", "http.max_body_bytes",
        "http.channel_secret", "http.trusted_sender_header", "delivery.deadline", "session_idle_expiry",
        "log.level", "log.format",
    }  # fmt: skip
    assert required <= names


def test_the_credentials_and_only_they_are_flagged_secret() -> None:
    credential = ("secret", "token", "password")
    assert {key.name for key in KEYS if key.secret} == {key.name for key in KEYS if key.name.endswith(credential)}
    assert {"http.channel_secret", "matrix.access_token", "matrix.password", "telegram.bot_token"} <= {
        k.name for k in KEYS if k.secret
    }


def leaf_fields(cls: type, prefix: str = "") -> set[str]:
    """Every non-section field of a settings dataclass, as a dotted attribute path."""
    found: set[str] = set()
    for item in dataclasses.fields(cls):
        kind = item.type if isinstance(item.type, type) else None
        nested = item.default_factory if item.default_factory is not dataclasses.MISSING else kind
        if isinstance(nested, type) and dataclasses.is_dataclass(nested):
            found |= leaf_fields(nested, f"{prefix}{item.name}.")
        elif item.name != "sources":
            found.add(f"{prefix}{item.name}")
    return found


def test_every_settings_field_is_filled_by_exactly_one_key() -> None:
    attrs = [key.attr for key in KEYS]
    assert len(attrs) == len(set(attrs))
    assert set(attrs) == leaf_fields(Settings)


def test_settings_built_by_hand_equal_an_empty_configuration(tmp_path: Path) -> None:
    loaded = load_settings(data_dir=str(tmp_path), config_path=None, environ={}, overrides={})
    by_hand = Settings(data_dir=loaded.data_dir, instance=loaded.instance)
    assert by_hand == loaded
    for key in KEYS:
        assert loaded.value(key.name) == (
            key.default if key.name not in {"data_dir", "instance"} else loaded.value(key.name)
        )


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path), config_path=None, environ={}, overrides={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.queue.max_concurrent = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 << 20), ("1g", 1 << 30), ("1GiB", 1 << 30), ("1.5g", 3 << 29), ("64k", 64 << 10), ("100", 100)],
)
def test_sizes_parse_in_binary_units_and_format_back(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size
